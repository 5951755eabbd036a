//! Users, groups, capabilities, umask and environment of the supervised commands
//! (`-u`, `-U`, `-g`, `-G`, `--cap`, `--no-new-privs`, `--allow-new-privs`,
//! `--umask`, `--clean-env`). docs/privileges.md has the user's view.
//!
//! Two stages, as everywhere in dmon. Before the fork, [`KeptCaps::parse`] and
//! [`Credentials::resolve`] look everything up: the user and group databases (NSS
//! look-ups allocate, take locks and may talk to daemons, none of which is safe in
//! a forked child), the capability names, and what dmon itself may do, so that a
//! request dmon cannot carry out is an error before anything starts. In the child,
//! [`Credentials::apply`] only makes raw system calls on the prepared values.
//!
//! The order in the child, and why (capabilities(7), "Effect of user ID changes on
//! capabilities"; prctl(2)):
//! 1. Narrow the bounding set (`PR_CAPBSET_DROP` needs CAP_SETPCAP, gone after the
//!    uid change).
//! 2. With capabilities to keep, `PR_SET_KEEPCAPS`: without it, a change from uid 0
//!    to another clears the permitted set.
//! 3. `setgroups`, `setresgid`, `setresuid`: groups and gid first, while the uid
//!    still allows it; all three ids of each kind, so no saved id keeps root.
//! 4. Set permitted, effective and inheritable to the kept set, then raise it in the
//!    ambient set (a capability can be raised there only if it is permitted and
//!    inheritable). Ambient capabilities are what survive `execve` of an ordinary
//!    program for a non-root uid. Without `--cap`, a drop to a non-root uid clears
//!    all three (the kernel has cleared permitted, effective and ambient already;
//!    the inheritable set would otherwise stay as dmon had it).
//! 5. `PR_SET_NO_NEW_PRIVS` last; it changes nothing about the steps above.
//!
//! Without `--cap` the bounding set is left as dmon has it, as su, s6-setuidgid and
//! systemd's `User=` do: the dropped uid has no capabilities, and set-user-ID
//! programs (passwd, ping) keep working. `--no-new-privs` is the switch that closes
//! those too.
//!
//! With `--cap`, no_new_privs is on unless `--allow-new-privs` turns it off. The
//! narrowed bounding set keeps a set-user-ID root program from gaining a capability,
//! but not from gaining uid 0: execve still sets the effective and saved uid to the
//! file's owner (capabilities(7): the bounding set limits only the permitted set),
//! and with saved uid 0 `setresuid(0, 0, 0)` succeeds. Root's files then are the
//! program's, capabilities or not. Only no_new_privs stops the set-user-ID bit.

use std::ffi::CString;
use std::fmt;
use std::io;
use std::str::FromStr;

use caps::{CapSet, Capability};
use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User};

/// What makes a user, a group or a capability request impossible, found before
/// anything starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredsError {
    UnknownCap(String),
    /// dmon's own capabilities could not be read (the caps crate's message).
    ReadCaps(String),
    /// Capabilities to keep that dmon does not hold (a mask).
    NotHeld(u64),
    NoSetpcap,
    UnknownUser(String),
    LookupUser(String, Errno),
    UnknownGroup(String),
    LookupGroup(String, Errno),
    /// A numeric uid without a passwd entry, and no group given.
    NoPasswdEntry(u32),
    NulInName,
    ListGroups(String, Errno),
    /// dmon (`euid`), without CAP_SETUID/CAP_SETGID, asked for other ids.
    Unprivileged {
        euid: u32,
        refused: Refused,
    },
}

/// What an unprivileged dmon was asked to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    User { name: String, uid: u32 },
    PrimaryGroup(u32),
    Groups,
}

impl fmt::Display for CredsError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            CredsError::UnknownCap(name) => {
                write!(f, "unknown capability '{name}' (see capabilities(7), e.g. NET_BIND_SERVICE)")
            }
            CredsError::ReadCaps(e) => write!(f, "cannot read dmon's own capabilities: {e}"),
            CredsError::NotHeld(mask) => {
                write!(
                    f,
                    "dmon itself does not hold {}, so it cannot keep it for a command",
                    names_of(*mask).join(", ")
                )
            }
            CredsError::NoSetpcap => {
                write!(f, "dmon needs CAP_SETPCAP (run it as root) to narrow the commands' capabilities")
            }
            CredsError::UnknownUser(name) => write!(f, "unknown user '{name}'"),
            CredsError::LookupUser(name, e) => write!(f, "cannot look up user '{name}': {}", e.desc()),
            CredsError::UnknownGroup(name) => write!(f, "unknown group '{name}'"),
            CredsError::LookupGroup(name, e) => write!(f, "cannot look up group '{name}': {}", e.desc()),
            CredsError::NoPasswdEntry(uid) => {
                write!(f, "user {uid} has no passwd entry: give its group (-u {uid}:GROUP)")
            }
            CredsError::NulInName => write!(f, "user name has a NUL byte"),
            CredsError::ListGroups(name, e) => write!(f, "cannot list the groups of '{name}': {}", e.desc()),
            CredsError::Unprivileged { euid, refused } => {
                write!(f, "dmon runs as uid {euid} without root's CAP_SETUID/CAP_SETGID: ")?;
                match refused {
                    Refused::User { name, uid } => write!(f, "it cannot run a command as '{name}' (uid {uid})"),
                    Refused::PrimaryGroup(gid) => write!(f, "it cannot change the primary group to {gid}"),
                    Refused::Groups => write!(f, "it cannot change the supplementary groups"),
                }
            }
        }
    }
}

impl std::error::Error for CredsError {}

/// `USER[:GROUP[:GROUP...]]` plus `-g GROUP`, as typed; nothing looked up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    /// The groups listed after the user: exactly the supplementary groups, and
    /// the first is the primary group unless `-g` names one.
    pub groups: Vec<String>,
    /// `-g` / `-G`: the primary group.
    pub primary_group: Option<String>,
}

impl UserSpec {
    pub fn parse(spec: &str, primary_group: Option<&str>) -> Result<UserSpec, String> {
        let mut parts = spec.split(':');
        let user = parts.next().unwrap_or_default();
        if user.is_empty() {
            return Err(format!("'{spec}' does not name a user (expected USER[:GROUP...])"));
        }
        let groups: Vec<String> = parts.map(str::to_string).collect();
        if groups.iter().any(String::is_empty) || primary_group == Some("") {
            return Err(format!("'{spec}' has an empty group name (expected USER[:GROUP...])"));
        }
        Ok(UserSpec { user: user.to_string(), groups, primary_group: primary_group.map(str::to_string) })
    }
}

/// The capabilities `--cap` keeps, as a mask of capability numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeptCaps {
    pub mask: u64,
}

impl KeptCaps {
    /// Validates `--cap` names (as in capabilities(7), with or without `CAP_`, in
    /// any case). No names: `None`, capabilities are left alone. Checks that dmon
    /// holds each capability it is asked to keep and may narrow the bounding set.
    pub fn parse(names: &[String]) -> Result<Option<KeptCaps>, CredsError> {
        let mut mask = 0;
        for name in names {
            mask |= Capability::from_str(&caps::to_canonical(name))
                .map_err(|_| CredsError::UnknownCap(name.clone()))?
                .bitmask();
        }
        if names.is_empty() {
            return Ok(None);
        }
        let read = |set: CapSet| -> Result<u64, CredsError> {
            caps::read(None, set)
                .map(|caps| caps.iter().fold(0, |m, c| m | c.bitmask()))
                .map_err(|e| CredsError::ReadCaps(e.to_string()))
        };
        let kept = KeptCaps { mask };
        kept.check_holds(read(CapSet::Permitted)?, read(CapSet::Effective)?)?;
        Ok(Some(kept))
    }

    fn check_holds(&self, permitted: u64, effective: u64) -> Result<(), CredsError> {
        let missing = self.mask & !permitted;
        if missing != 0 {
            return Err(CredsError::NotHeld(missing));
        }
        if effective & Capability::CAP_SETPCAP.bitmask() == 0 {
            return Err(CredsError::NoSetpcap);
        }
        Ok(())
    }
}

/// The capability names of a mask, for messages.
fn names_of(mask: u64) -> Vec<String> {
    let mut all: Vec<Capability> = caps::all().into_iter().filter(|c| mask & c.bitmask() != 0).collect();
    all.sort_by_key(Capability::index);
    all.iter().map(Capability::to_string).collect()
}

/// The ids a child switches to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ids {
    pub uid: u32,
    pub gid: u32,
    /// Exactly the supplementary groups, in the order given; the kernel sorts them.
    pub groups: Vec<u32>,
}

/// Everything a child changes about its privileges, resolved before the fork.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// The ids to switch to; `None` keeps dmon's (no `-u`, or `-u` naming the
    /// ids dmon already runs with, when it may not change them).
    pub ids: Option<Ids>,
    /// `USER`, `LOGNAME` and `HOME` of the target user (unless `-E` sets them).
    pub env: Vec<(String, String)>,
    /// `--cap`: the only capabilities left, in every set.
    pub keep: Option<KeptCaps>,
    /// `--no-new-privs`, or `--cap` without `--allow-new-privs`.
    pub no_new_privs: bool,
    /// The umask to set: `--umask`, else 022 for a command with a user of its own.
    pub umask: Option<u32>,
    /// `--clean-env`: start from the few variables [`crate::spawn::environment`] keeps.
    pub clean_env: bool,
}

/// The umask a command with `-u` or `-U` gets without `--umask`, as login(1) and
/// systemd's services give: files readable by all, writable by the owner only.
/// dmon's own umask is the caller's (a root shell's may be 0, or 077), not the
/// service's.
pub const USER_UMASK: u32 = 0o022;

/// The options that apply to both commands alike, as given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shared {
    /// `--cap`.
    pub keep: Option<KeptCaps>,
    /// `--no-new-privs`.
    pub no_new_privs: bool,
    /// `--allow-new-privs`.
    pub allow_new_privs: bool,
    /// `--umask`.
    pub umask: Option<u32>,
    /// `--clean-env`.
    pub clean_env: bool,
}

/// What dmon itself runs with, the yardstick for what it may ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Current {
    pub ruid: u32,
    pub euid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// CAP_SETUID and CAP_SETGID in the effective set (root has them).
    pub can_change_ids: bool,
}

impl Current {
    pub fn read() -> Current {
        let has = |cap| caps::has_cap(None, CapSet::Effective, cap).unwrap_or(false);
        Current {
            ruid: nix::unistd::getuid().as_raw(),
            euid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            groups: nix::unistd::getgroups().unwrap_or_default().into_iter().map(Gid::as_raw).collect(),
            can_change_ids: has(Capability::CAP_SETUID) && has(Capability::CAP_SETGID),
        }
    }
}

fn lookup_user(name: &str) -> Result<(u32, Option<User>), CredsError> {
    if let Ok(uid) = name.parse::<u32>() {
        let entry = User::from_uid(Uid::from_raw(uid)).ok().flatten();
        return Ok((uid, entry));
    }
    match User::from_name(name) {
        Ok(Some(user)) => Ok((user.uid.as_raw(), Some(user))),
        Ok(None) => Err(CredsError::UnknownUser(name.to_string())),
        Err(e) => Err(CredsError::LookupUser(name.to_string(), e)),
    }
}

fn lookup_group(name: &str) -> Result<u32, CredsError> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(CredsError::UnknownGroup(name.to_string())),
        Err(e) => Err(CredsError::LookupGroup(name.to_string(), e)),
    }
}

impl Ids {
    /// Resolves a spec against the user and group databases.
    ///
    /// - Primary group: `-g`'s if given, else the first listed group, else the
    ///   user's primary group from the passwd entry.
    /// - Supplementary groups: exactly the listed ones if any are listed; else the
    ///   user's groups from the group database (`getgrouplist` with the primary
    ///   group, as `initgroups` in su does); for a numeric uid without a passwd
    ///   entry, just the primary group. Never anything of dmon's own.
    pub fn resolve(spec: &UserSpec) -> Result<(Ids, Option<User>), CredsError> {
        let (uid, entry) = lookup_user(&spec.user)?;
        let gid = match (&spec.primary_group, spec.groups.first(), &entry) {
            (Some(group), _, _) | (None, Some(group), _) => lookup_group(group)?,
            (None, None, Some(user)) => user.gid.as_raw(),
            (None, None, None) => return Err(CredsError::NoPasswdEntry(uid)),
        };
        let mut groups = Vec::new();
        if !spec.groups.is_empty() {
            for name in &spec.groups {
                let group = lookup_group(name)?;
                if !groups.contains(&group) {
                    groups.push(group);
                }
            }
        } else if let Some(user) = &entry {
            let name = CString::new(user.name.as_bytes()).map_err(|_| CredsError::NulInName)?;
            groups = nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
                .map_err(|e| CredsError::ListGroups(user.name.clone(), e))?
                .into_iter()
                .map(Gid::as_raw)
                .collect();
        } else {
            groups.push(gid);
        }
        Ok((Ids { uid, gid, groups }, entry))
    }
}

impl Credentials {
    /// Everything one command runs with: its user (`-u`/`-U`, if given) and the
    /// options that apply to both commands. `None` when there is nothing to change.
    pub fn for_command(spec: Option<&UserSpec>, shared: &Shared) -> Result<Option<Credentials>, CredsError> {
        let no_new_privs = shared.no_new_privs || (shared.keep.is_some() && !shared.allow_new_privs);
        let mut creds = match spec {
            Some(spec) => Credentials::resolve(spec)?,
            None if shared.keep.is_some() || no_new_privs || shared.umask.is_some() || shared.clean_env => {
                Credentials::default()
            }
            None => return Ok(None),
        };
        creds.keep = shared.keep;
        creds.no_new_privs = no_new_privs;
        creds.umask = shared.umask.or(spec.map(|_| USER_UMASK));
        creds.clean_env = shared.clean_env;
        Ok(Some(creds))
    }

    /// Resolves a user spec alone into ids and environment, checked against what
    /// dmon runs as.
    pub fn resolve(spec: &UserSpec) -> Result<Credentials, CredsError> {
        Credentials::resolve_for(spec, &Current::read())
    }

    /// [`Credentials::resolve`] against a given state of dmon (for tests).
    pub fn resolve_for(spec: &UserSpec, current: &Current) -> Result<Credentials, CredsError> {
        let (ids, entry) = Ids::resolve(spec)?;
        let env = match &entry {
            Some(user) => vec![
                ("USER".to_string(), user.name.clone()),
                ("LOGNAME".to_string(), user.name.clone()),
                ("HOME".to_string(), user.dir.to_string_lossy().into_owned()),
            ],
            // No passwd entry: no name and no home, but never root's.
            None => vec![
                ("USER".to_string(), ids.uid.to_string()),
                ("LOGNAME".to_string(), ids.uid.to_string()),
                ("HOME".to_string(), "/".to_string()),
            ],
        };
        let ids = if current.can_change_ids { Some(ids) } else { Credentials::unprivileged(spec, ids, current)? };
        Ok(Credentials { ids, env, ..Credentials::default() })
    }

    /// Without CAP_SETUID and CAP_SETGID dmon can only run a command as itself:
    /// asking for anything else is an error, not a silent no-op.
    fn unprivileged(spec: &UserSpec, ids: Ids, current: &Current) -> Result<Option<Ids>, CredsError> {
        let refuse = |refused| Err(CredsError::Unprivileged { euid: current.euid, refused });
        if ids.uid != current.euid || ids.uid != current.ruid {
            return refuse(Refused::User { name: spec.user.clone(), uid: ids.uid });
        }
        if ids.gid != current.gid {
            return refuse(Refused::PrimaryGroup(ids.gid));
        }
        let mut wanted = ids.groups.clone();
        let mut have = current.groups.clone();
        wanted.sort_unstable();
        have.sort_unstable();
        if !spec.groups.is_empty() && wanted != have {
            return refuse(Refused::Groups);
        }
        // Already the user asked for: nothing to change.
        Ok(None)
    }

    /// Carries the change out in the calling process (see the module doc for the
    /// order). Runs in the child between fork and exec: raw system calls on
    /// prepared data only, no allocation, no locks.
    pub fn apply(&self) -> io::Result<()> {
        if let Some(mask) = self.umask {
            // SAFETY: umask takes an integer and cannot fail.
            unsafe { libc::umask(mask as libc::mode_t) };
        }
        if let Some(keep) = self.keep {
            narrow_bounding_set(keep.mask)?;
        }
        if let Some(ids) = &self.ids {
            if self.keep.is_some() {
                nix::sys::prctl::set_keepcaps(true)?;
            }
            // Raw system calls: glibc's wrappers would broadcast the change to
            // other threads (there are none after fork) under a lock.
            // SAFETY: the pointer and length describe a live slice of gid_t.
            unsafe {
                syscall(libc::syscall(libc::SYS_setgroups, ids.groups.len(), ids.groups.as_ptr()))?;
                syscall(libc::syscall(libc::SYS_setresgid, ids.gid, ids.gid, ids.gid))?;
                syscall(libc::syscall(libc::SYS_setresuid, ids.uid, ids.uid, ids.uid))?;
            }
        }
        match (self.keep, &self.ids) {
            (Some(keep), ids) => {
                capset(keep.mask)?;
                prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)?;
                for cap in 0..64 {
                    if keep.mask & (1 << cap) != 0 {
                        prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, cap)?;
                    }
                }
                if ids.is_some() {
                    nix::sys::prctl::set_keepcaps(false)?;
                }
            }
            (None, Some(ids)) if ids.uid != 0 => capset(0)?,
            (None, _) => {}
        }
        if self.no_new_privs {
            nix::sys::prctl::set_no_new_privs()?;
        }
        Ok(())
    }
}

fn syscall(r: libc::c_long) -> io::Result<()> {
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn prctl(option: libc::c_int, arg2: libc::c_ulong, arg3: libc::c_ulong) -> io::Result<()> {
    // SAFETY: prctl with integer arguments only, for options that take no
    // pointer (the ambient set and the bounding set).
    syscall(unsafe { libc::prctl(option, arg2, arg3, 0 as libc::c_ulong, 0 as libc::c_ulong) } as libc::c_long)
}

/// Drops every capability outside `keep` from the bounding set. Capability
/// numbers past the kernel's last one fail with EINVAL, which ends the walk; the
/// walk covers numbers the caps crate does not know yet.
fn narrow_bounding_set(keep: u64) -> io::Result<()> {
    for cap in 0..64 {
        if keep & (1 << cap) != 0 {
            continue;
        }
        if let Err(e) = prctl(libc::PR_CAPBSET_DROP, cap, 0) {
            if e.raw_os_error() == Some(libc::EINVAL) {
                break;
            }
            return Err(e);
        }
    }
    Ok(())
}

/// `struct __user_cap_header_struct` (linux/capability.h).
#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

/// `struct __user_cap_data_struct` (linux/capability.h).
#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// `_LINUX_CAPABILITY_VERSION_3`: 64-bit sets, as two 32-bit halves.
const CAPABILITY_VERSION_3: u32 = 0x2008_0522;

/// Sets the permitted, effective and inheritable sets of the calling thread to
/// `mask` (capset(2) as a raw system call; the caps crate allocates).
fn capset(mask: u64) -> io::Result<()> {
    let half = |shift: u32| {
        let bits = (mask >> shift) as u32;
        CapData { effective: bits, permitted: bits, inheritable: bits }
    };
    let header = CapHeader { version: CAPABILITY_VERSION_3, pid: 0 };
    let data = [half(0), half(32)];
    // SAFETY: capset reads one header and two data structs, laid out as the
    // kernel's.
    syscall(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn root() -> Current {
        Current { ruid: 0, euid: 0, gid: 0, groups: vec![], can_change_ids: true }
    }

    fn resolve(spec: &str, group: Option<&str>) -> Result<Ids, String> {
        Ids::resolve(&UserSpec::parse(spec, group).unwrap()).map(|(ids, _)| ids).map_err(|e| e.to_string())
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
    }

    #[test]
    fn resolves_root_and_numbers() {
        let root = resolve("root", None).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        assert_eq!(resolve("4321:4321", None).unwrap(), Ids { uid: 4321, gid: 4321, groups: vec![4321] });
        assert_eq!(resolve("4321", Some("77")).unwrap(), Ids { uid: 4321, gid: 77, groups: vec![77] });
        assert!(resolve("4321", None).unwrap_err().contains("give its group"));
        assert!(resolve("no-such-user-here", None).unwrap_err().contains("unknown user 'no-such-user-here'"));
        assert!(resolve("root:no-such-group", None).unwrap_err().contains("unknown group 'no-such-group'"));
        assert!(resolve("root", Some("no-such-group")).unwrap_err().contains("unknown group"));
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
        let run = |s: &str, g: Option<&str>| Credentials::resolve_for(&spec(s, g), &me).map_err(|e| e.to_string());
        assert!(run("0", Some("0")).unwrap_err().contains("cannot run a command as '0' (uid 0)"));
        assert!(run("4321:7", None).unwrap_err().contains("primary group"));
        assert!(run("4321:4321:7", None).unwrap_err().contains("supplementary groups"));
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
}
