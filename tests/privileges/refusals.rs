//! Users, groups and capabilities that cannot be had: one line, exit 2, and
//! the command never runs.

use super::*;

fn refused(args: &[&str], as_nobody: bool) -> (Output, Dir) {
    let dir = shared_dir("refused");
    let mut command = dmon();
    command.args(["-n", "-1", "-I", &dir.s("status")]).args(args).args(["touch", &dir.s("marker")]);
    command.current_dir(&dir.0);
    if as_nobody {
        let nobody = getent("passwd", "nobody");
        command.uid(nobody[2].parse().unwrap()).gid(nobody[3].parse().unwrap());
    }
    (command.output().expect("dmon runs"), dir)
}

#[test]
fn unknown_names_are_refused_before_anything_starts() {
    need_root!();
    let cases: &[(&[&str], &str)] = &[
        (&["-u", "no-such-user-here"], "-u/--cmd-user: unknown user 'no-such-user-here'"),
        (&["-U", "no-such-user-here"], "-U/--log-user: unknown user 'no-such-user-here'"),
        (&["-u", "nobody:no-such-group"], "-u/--cmd-user: unknown group 'no-such-group'"),
        (&["-u", "nobody", "-g", "no-such-group"], "-u/--cmd-user: unknown group 'no-such-group'"),
        (&["-U", "nobody", "-G", "no-such-group"], "-U/--log-user: unknown group 'no-such-group'"),
        (&["-u", "4321"], "-u/--cmd-user: user 4321 has no passwd entry"),
        (&["--cap", "NET_BIND_SERVIC"], "--cap: unknown capability 'NET_BIND_SERVIC'"),
        (&["-u", "nobody", "--cap", "CAP_NOPE"], "--cap: unknown capability 'CAP_NOPE'"),
    ];
    for (args, message) in cases {
        let (output, dir) = refused(args, false);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.starts_with(&format!("dmon: {message}")), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(!dir.path("marker").exists(), "{args:?}: the command ran");
    }
}

#[test]
fn a_capability_dmon_lacks_is_refused() {
    need_root!();
    let permitted = own_caps("CapPrm");
    let Some(missing) = (0..=40).find(|c| permitted & (1u64 << c) == 0) else {
        return common::skip("this root holds every capability, none is missing to ask for");
    };
    let Some(name) = caps::all().into_iter().find(|c| c.index() == missing).map(|c| c.to_string()) else {
        return common::skip(&format!("capability {missing} is missing here but has no name in the caps crate"));
    };
    let (output, dir) = refused(&["-u", "nobody", "--cap", &name], false);
    assert_eq!(output.status.code(), Some(2), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains(&format!("does not hold {name}")), "{}", stderr_of(&output));
    assert!(!dir.path("marker").exists());
}

#[test]
fn without_root_another_user_is_an_error_not_a_no_op() {
    need_root!();
    // dmon itself runs as nobody here.
    for (args, message) in [
        (&["-u", "root"][..], "-u/--cmd-user: dmon runs as uid 65534 without root's CAP_SETUID/CAP_SETGID"),
        (&["-U", "4321:4321"][..], "-U/--log-user: dmon runs as uid 65534"),
        (&["-u", "nobody:nogroup:users"][..], "cannot change the supplementary groups"),
        (&["--cap", "NET_BIND_SERVICE"][..], "--cap: dmon itself does not hold CAP_NET_BIND_SERVICE"),
    ] {
        let (output, dir) = refused(args, true);
        let stderr = stderr_of(&output);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        let message = message.replace("65534", &getent("passwd", "nobody")[2]);
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
        assert!(!dir.path("marker").exists(), "{args:?}: the command ran");
    }
    // Naming the user dmon already is works, and changes nothing.
    let (output, dir) = refused(&["-u", "nobody"], true);
    assert_eq!(output.status.code(), Some(0), "{}", stderr_of(&output));
    let owner = std::os::unix::fs::MetadataExt::uid(&fs::metadata(dir.path("marker")).unwrap());
    assert_eq!(owner.to_string(), getent("passwd", "nobody")[2]);
}
