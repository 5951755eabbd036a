//! Users, groups and capabilities of the supervised commands (`-u`, `-U`, `-g`,
//! `-G`, `--cap`, `--no-new-privs`).
//!
//! Everything that needs the user and group databases is resolved before the fork
//! (NSS look-ups allocate and may talk to daemons, which is not safe in a forked
//! child). The child then only makes raw system calls on the prepared values.

use std::ffi::CString;

use nix::unistd::{Gid, Group, Uid, User};

/// `USER[:GROUP[:GROUP...]]` plus `-g GROUP`, as typed; nothing looked up yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSpec {
    pub user: String,
    /// Supplementary groups listed after the user.
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

/// The ids a child switches to, resolved before the fork.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
    /// `USER`, `LOGNAME` and `HOME` of the target user.
    pub env: Vec<(String, String)>,
}

fn lookup_user(name: &str) -> Result<(u32, Option<User>), String> {
    if let Ok(uid) = name.parse::<u32>() {
        let entry = User::from_uid(Uid::from_raw(uid)).ok().flatten();
        return Ok((uid, entry));
    }
    match User::from_name(name) {
        Ok(Some(user)) => Ok((user.uid.as_raw(), Some(user))),
        Ok(None) => Err(format!("unknown user '{name}'")),
        Err(e) => Err(format!("cannot look up user '{name}': {}", e.desc())),
    }
}

fn lookup_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse::<u32>() {
        return Ok(gid);
    }
    match Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        Ok(None) => Err(format!("unknown group '{name}'")),
        Err(e) => Err(format!("cannot look up group '{name}': {}", e.desc())),
    }
}

impl Credentials {
    /// Resolves a spec against the user and group databases. The primary group is
    /// `-g`'s if given, else the user's; the supplementary groups are exactly the
    /// listed ones if any are listed, else the user's groups from the database.
    pub fn resolve(spec: &UserSpec) -> Result<Credentials, String> {
        let (uid, entry) = lookup_user(&spec.user)?;
        let gid = match (&spec.primary_group, &entry) {
            (Some(group), _) => lookup_group(group)?,
            (None, Some(user)) => user.gid.as_raw(),
            (None, None) => match spec.groups.first() {
                Some(group) => lookup_group(group)?,
                None => return Err(format!("user {uid} has no passwd entry: give its group (-u {uid}:GROUP)")),
            },
        };
        let groups = if !spec.groups.is_empty() {
            spec.groups.iter().map(|g| lookup_group(g)).collect::<Result<Vec<_>, _>>()?
        } else if let Some(user) = &entry {
            let name = CString::new(user.name.as_bytes()).map_err(|_| "user name has a NUL byte".to_string())?;
            nix::unistd::getgrouplist(&name, Gid::from_raw(gid))
                .map_err(|e| format!("cannot list the groups of '{}': {}", user.name, e.desc()))?
                .into_iter()
                .map(Gid::as_raw)
                .collect()
        } else {
            vec![gid]
        };
        let mut env = Vec::new();
        if let Some(user) = &entry {
            env.push(("USER".to_string(), user.name.clone()));
            env.push(("LOGNAME".to_string(), user.name.clone()));
            env.push(("HOME".to_string(), user.dir.to_string_lossy().into_owned()));
        }
        Ok(Credentials { uid, gid, groups, env })
    }

    /// Switches the calling process to these ids: groups, then gid, then uid, with
    /// `setres*` so that no saved id keeps root. Runs in the child between fork and
    /// exec: raw system calls on prepared data only.
    pub fn apply(&self) -> std::io::Result<()> {
        let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
        // SAFETY: plain system calls on values owned by self.
        unsafe {
            check(libc::setgroups(self.groups.len(), self.groups.as_ptr()))?;
            check(libc::setresgid(self.gid, self.gid, self.gid))?;
            check(libc::setresuid(self.uid, self.uid, self.uid))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs() {
        let spec = UserSpec::parse("log:wheel:users", Some("adm")).unwrap();
        assert_eq!(spec.user, "log");
        assert_eq!(spec.groups, ["wheel", "users"]);
        assert_eq!(spec.primary_group.as_deref(), Some("adm"));
        assert!(UserSpec::parse("", None).is_err());
        assert!(UserSpec::parse(":x", None).is_err());
        assert!(UserSpec::parse("a::b", None).is_err());
    }

    #[test]
    fn resolves_root_and_numbers() {
        let root = Credentials::resolve(&UserSpec::parse("root", None).unwrap()).unwrap();
        assert_eq!((root.uid, root.gid), (0, 0));
        let numeric = Credentials::resolve(&UserSpec::parse("4321:4321", None).unwrap()).unwrap();
        assert_eq!((numeric.uid, numeric.gid, numeric.groups.as_slice()), (4321, 4321, &[4321][..]));
        assert!(Credentials::resolve(&UserSpec::parse("no-such-user-here", None).unwrap()).unwrap_err().contains("unknown user"));
    }
}
