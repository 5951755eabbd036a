//! What `/proc/self/mountinfo` and `/proc/PID/cgroup` say about cgroups: the
//! mounts of cgroup filesystems, and the cgroup a process is in within each
//! hierarchy. The one parser of both (proc(5), cgroups(7)); detection and the v1
//! limits read them through it.

/// One line of `/proc/self/mountinfo`, the fields dmon needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// The path inside the filesystem that is mounted (field 4).
    pub root: String,
    pub mount_point: String,
    pub fs_type: String,
    pub super_options: String,
}

impl Mount {
    /// Whether this is a v1 hierarchy that carries `controller`.
    pub fn carries(&self, controller: &str) -> bool {
        self.fs_type == "cgroup" && self.super_options.split(',').any(|o| o == controller)
    }
}

/// Parses mountinfo: `ID PARENT MAJ:MIN ROOT POINT OPTS [TAGS...] - TYPE SOURCE SUPER`.
/// The optional tags (`shared:9 master:2`) are as many as there are, so the
/// fields after them are found from the ` - ` that ends them.
pub fn parse_mountinfo(text: &str) -> Vec<Mount> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let left: Vec<&str> = left.split(' ').collect();
            let right: Vec<&str> = right.split(' ').collect();
            Some(Mount {
                root: unescape(left.get(3)?),
                mount_point: unescape(left.get(4)?),
                fs_type: right.first()?.to_string(),
                super_options: right.get(2).copied().unwrap_or("").to_string(),
            })
        })
        .collect()
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = bytes[i + 1..i + 4].iter().fold(0u32, |acc, b| acc * 8 + (b - b'0') as u32);
            out.push(value as u8);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// One line of `/proc/PID/cgroup`: `ID:CONTROLLERS:PATH`. The v2 line is
/// `0::PATH`; a v1 line lists the hierarchy's controllers, and a named
/// hierarchy shows as `name=NAME` among them (`1:name=systemd:/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership<'a> {
    pub id: &'a str,
    pub controllers: Vec<&'a str>,
    pub path: &'a str,
}

impl Membership<'_> {
    /// The cgroup v2 line.
    pub fn is_v2(&self) -> bool {
        self.id == "0" && self.controllers.is_empty()
    }

    pub fn has(&self, controller: &str) -> bool {
        self.controllers.contains(&controller)
    }
}

/// Parses `/proc/PID/cgroup`, one [`Membership`] a line; a malformed line is
/// left out. The path may hold a `:` (only the first two separate fields).
pub fn parse_cgroups(text: &str) -> Vec<Membership<'_>> {
    text.lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (id, list, path) = (parts.next()?, parts.next()?, parts.next()?);
            Some(Membership { id, controllers: list.split(',').filter(|c| !c.is_empty()).collect(), path })
        })
        .collect()
}

/// This process's `/proc/self/mountinfo` and `/proc/self/cgroup` (empty where
/// unreadable: no cgroups then).
pub fn read_own() -> (String, String) {
    let read = |path| std::fs::read_to_string(path).unwrap_or_default();
    (read("/proc/self/mountinfo"), read("/proc/self/cgroup"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines as a hybrid host shows them, with a mount point holding a space and
    /// one with two optional tags.
    const MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
33 31 0:30 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,cpu,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime shared:9 master:2 - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 /jobs /srv/my\\040cgroups rw,relatime - cgroup2 cgroup2 rw,nsdelegate
42 31 0:39 / /back\\134slash\\011tab rw - cgroup2 none rw
";

    fn mount(root: &str, point: &str, fs_type: &str, options: &str) -> Mount {
        Mount { root: root.into(), mount_point: point.into(), fs_type: fs_type.into(), super_options: options.into() }
    }

    #[test]
    fn mountinfo_lines_with_tags_and_escapes() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 7);
        assert_eq!(mounts[0], mount("/", "/sys/fs/cgroup", "tmpfs", "rw,mode=755"));
        assert_eq!(mounts[3], mount("/", "/sys/fs/cgroup/cpu,cpuacct", "cgroup", "rw,cpu,cpuacct"));
        assert_eq!(mounts[4], mount("/", "/sys/fs/cgroup/systemd", "cgroup", "rw,xattr,name=systemd"));
        assert_eq!(mounts[5], mount("/jobs", "/srv/my cgroups", "cgroup2", "rw,nsdelegate"));
        assert_eq!(mounts[6].mount_point, "/back\\slash\ttab");
        assert!(mounts[2].carries("freezer") && !mounts[1].carries("freezer"));
        assert!(mounts[3].carries("cpuacct") && !mounts[3].carries("cpu,cpuacct"));
        assert!(!mounts[0].carries("mode=755") && !mounts[5].carries("nsdelegate"), "only v1 hierarchies carry");
    }

    #[test]
    fn malformed_mountinfo_lines_are_left_out() {
        assert!(parse_mountinfo("garbage\n").is_empty());
        assert!(parse_mountinfo("1 2 0:3 / - cgroup2 none rw\n").is_empty(), "no mount point");
        assert_eq!(parse_mountinfo("1 2 0:3 / /x rw - cgroup2\n")[0].super_options, "");
        // A backslash not followed by three octal digits stays as it is.
        assert_eq!(parse_mountinfo("1 2 0:3 / /a\\09 rw - tmpfs t rw\n")[0].mount_point, "/a\\09");
    }

    #[test]
    fn proc_cgroup_of_the_hybrid_layout() {
        let text = "9:name=systemd:/user.slice/user-0.slice/session-1.scope\n6:freezer:/\n\
                    4:memory:/process_api/84d2\n2:cpu,cpuacct:/\n0::/user.slice/user-0.slice/session-1.scope\n";
        let lines = parse_cgroups(text);
        assert_eq!(lines.len(), 5);
        assert_eq!(
            lines[0],
            Membership { id: "9", controllers: vec!["name=systemd"], path: "/user.slice/user-0.slice/session-1.scope" }
        );
        assert_eq!((lines[1].has("freezer"), lines[1].path), (true, "/"));
        assert_eq!(lines[2].path, "/process_api/84d2");
        assert_eq!(lines[3].controllers, ["cpu", "cpuacct"]);
        assert!(lines[3].has("cpuacct") && !lines[3].has("cpu,cpuacct"));
        assert!(lines[4].is_v2() && lines[4].controllers.is_empty());
        assert_eq!(lines.iter().filter(|l| l.is_v2()).count(), 1);
    }

    #[test]
    fn proc_cgroup_of_pure_v2_and_odd_lines() {
        assert_eq!(parse_cgroups("0::/\n"), [Membership { id: "0", controllers: vec![], path: "/" }]);
        assert_eq!(parse_cgroups("0::/a:b\n")[0].path, "/a:b", "a path may hold a colon");
        assert!(parse_cgroups("garbage\n0:\n").is_empty());
        assert!(!parse_cgroups("1:name=systemd:/\n")[0].is_v2());
    }
}
