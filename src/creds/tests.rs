//! Specs, look-ups against this host's user and group databases, what an
//! unprivileged dmon may ask for, and the capability names.

use super::*;

fn root() -> Current {
    Current { ruid: 0, euid: 0, gid: 0, groups: vec![], can_change_ids: true }
}

fn resolve(spec: &str, group: Option<&str>) -> Result<Ids, CredsError> {
    Ids::resolve(&UserSpec::parse(spec, group).unwrap()).map(|(ids, _)| ids)
}

/// Why `spec` cannot be resolved, as said.
fn refusal(spec: &str, group: Option<&str>) -> String {
    resolve(spec, group).unwrap_err().to_string()
}

#[test]
fn parses_specs() {
    let spec = UserSpec::parse("log:wheel:users", Some("adm")).unwrap();
    assert_eq!(spec.user, "log");
    assert_eq!(spec.groups, ["wheel", "users"]);
    assert_eq!(spec.primary_group.as_deref(), Some("adm"));
    assert!(UserSpec::parse("", None).is_err());
    assert!(UserSpec::parse(":x", None).is_err());
    assert!(UserSpec::parse("a::b", None).is_err());
    assert!(UserSpec::parse("a:", None).is_err());
    assert!(UserSpec::parse("a", Some("")).is_err());
    let said = |spec, group| UserSpec::parse(spec, group).unwrap_err().to_string();
    assert_eq!(said(":x", None), "':x' does not name a user (expected USER[:GROUP...])");
    assert_eq!(said("a::b", None), "'a::b' has an empty group name (expected USER[:GROUP...])");
    assert_eq!(said("a", Some("")), "'a' has an empty group name (expected USER[:GROUP...])");
}

#[test]
fn resolves_root_and_numbers() {
    let root = resolve("root", None).unwrap();
    assert_eq!((root.uid, root.gid), (0, 0));
    assert_eq!(resolve("4321:4321", None).unwrap(), Ids { uid: 4321, gid: 4321, groups: vec![4321] });
    assert_eq!(resolve("4321", Some("77")).unwrap(), Ids { uid: 4321, gid: 77, groups: vec![77] });
    assert!(refusal("4321", None).contains("give its group"));
    assert!(refusal("no-such-user-here", None).contains("unknown user 'no-such-user-here'"));
    assert!(refusal("root:no-such-group", None).contains("unknown group 'no-such-group'"));
    assert!(refusal("root", Some("no-such-group")).contains("unknown group"));
}

#[test]
fn listed_groups_are_exact_and_the_first_is_primary() {
    assert_eq!(resolve("0:5:7:5", None).unwrap(), Ids { uid: 0, gid: 5, groups: vec![5, 7] });
    // -g names the primary group; the supplementary list stays exactly as listed.
    assert_eq!(resolve("0:5:7", Some("9")).unwrap(), Ids { uid: 0, gid: 9, groups: vec![5, 7] });
}

#[test]
fn numeric_users_get_an_environment_but_not_roots() {
    let creds = Credentials::resolve_for(&UserSpec::parse("4321:4321", None).unwrap(), &root()).unwrap();
    let env: Vec<(&str, &str)> = creds.env.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
    assert_eq!(env, [("USER", "4321"), ("LOGNAME", "4321"), ("HOME", "/")]);
}

#[test]
fn nothing_to_do_without_options() {
    assert_eq!(Credentials::for_command(None, &Shared::default()), Ok(None));
    let nnp = Credentials::for_command(None, &Shared { no_new_privs: true, ..Shared::default() }).unwrap().unwrap();
    assert!(nnp.ids.is_none() && nnp.no_new_privs && nnp.env.is_empty() && nnp.keep.is_none());
    assert_eq!(nnp.umask, None, "no user of its own: dmon's umask");
    let keep = Some(KeptCaps { mask: 1 << 10 });
    let root = UserSpec::parse("0:0", None).unwrap();
    let root = Credentials::for_command(Some(&root), &Shared { keep, ..Shared::default() }).unwrap().unwrap();
    assert_eq!(root.keep, keep);
    assert_eq!(root.umask, Some(USER_UMASK));
}

#[test]
fn kept_capabilities_come_with_no_new_privs_unless_allowed() {
    let keep = Some(KeptCaps { mask: 1 << 10 });
    let with = |shared: Shared| Credentials::for_command(None, &shared).unwrap().unwrap();
    assert!(with(Shared { keep, ..Shared::default() }).no_new_privs);
    assert!(!with(Shared { keep, allow_new_privs: true, ..Shared::default() }).no_new_privs);
    let clean = with(Shared { clean_env: true, umask: Some(0o77), ..Shared::default() });
    assert!(clean.clean_env && !clean.no_new_privs);
    assert_eq!(clean.umask, Some(0o77));
}

#[test]
fn an_unprivileged_dmon_may_only_name_itself() {
    let me = Current { ruid: 4321, euid: 4321, gid: 4321, groups: vec![4321], can_change_ids: false };
    let spec = |s: &str, g: Option<&str>| UserSpec::parse(s, g).unwrap();
    let run = |s: &str, g: Option<&str>| Credentials::resolve_for(&spec(s, g), &me);
    assert!(run("0", Some("0")).unwrap_err().to_string().contains("cannot run a command as '0' (uid 0)"));
    assert!(run("4321:7", None).unwrap_err().to_string().contains("primary group"));
    assert!(run("4321:4321:7", None).unwrap_err().to_string().contains("supplementary groups"));
    let same = run("4321:4321", None).unwrap();
    assert_eq!(same.ids, None, "nothing to change");
    assert_eq!(same.env[0], ("USER".to_string(), "4321".to_string()));
}

#[test]
fn capability_names() {
    let mask = |names: &[&str]| {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        KeptCaps::parse(&names)
    };
    assert_eq!(mask(&[]), Ok(None));
    assert!(mask(&["NET_BIND_SRVICE"]).unwrap_err().to_string().contains("unknown capability 'NET_BIND_SRVICE'"));
    let kept = KeptCaps { mask: Capability::CAP_NET_BIND_SERVICE.bitmask() | Capability::CAP_KILL.bitmask() };
    for spelling in [["net_bind_service", "KILL"], ["CAP_NET_BIND_SERVICE", "cap_kill"]] {
        let names: Vec<String> = spelling.iter().map(|s| s.to_string()).collect();
        // Whether dmon holds them depends on who runs the test; the names parse.
        match KeptCaps::parse(&names) {
            Ok(parsed) => assert_eq!(parsed, Some(kept)),
            Err(e) => assert!(e.to_string().contains("dmon"), "{e}"),
        }
    }
    assert_eq!(kept.check_holds(0, u64::MAX), Err(CredsError::NotHeld(kept.mask)));
    assert_eq!(kept.check_holds(u64::MAX, 0), Err(CredsError::NoSetpcap));
    let message = CredsError::NotHeld(kept.mask).to_string();
    assert!(message.contains("does not hold CAP_KILL, CAP_NET_BIND_SERVICE"), "{message}");
    assert_eq!(kept.check_holds(kept.mask, u64::MAX), Ok(()));
}
