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
use std::str::FromStr;

use caps::{CapSet, Capability};
use nix::errno::Errno;
use nix::unistd::{Gid, Group, Uid, User};

mod apply;

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

/// A `USER[:GROUP...]` spec that names no user, or an empty group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpecError {
    NoUser(String),
    EmptyGroup(String),
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            SpecError::NoUser(spec) => write!(f, "'{spec}' does not name a user (expected USER[:GROUP...])"),
            SpecError::EmptyGroup(spec) => write!(f, "'{spec}' has an empty group name (expected USER[:GROUP...])"),
        }
    }
}

impl std::error::Error for SpecError {}

impl UserSpec {
    pub fn parse(spec: &str, primary_group: Option<&str>) -> Result<UserSpec, SpecError> {
        let mut parts = spec.split(':');
        let user = parts.next().unwrap_or_default();
        if user.is_empty() {
            return Err(SpecError::NoUser(spec.to_string()));
        }
        let groups: Vec<String> = parts.map(str::to_string).collect();
        if groups.iter().any(String::is_empty) || primary_group == Some("") {
            return Err(SpecError::EmptyGroup(spec.to_string()));
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
}

#[cfg(test)]
mod tests;
