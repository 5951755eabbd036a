//! Which cgroup layout this host has, and where dmon may put its cgroups.
//!
//! Everything here reads text and paths handed in by the caller, so the rules are
//! unit-tested against fixture directories that stand in for the kernel:
//! [`Layout::detect`] takes the contents of `/proc/self/mountinfo` and
//! `/proc/self/cgroup` and a filesystem root under which the mount points are
//! resolved; [`choose`] takes the layout, the `--tree` choice, an explicit parent
//! and whether systemd runs the host.
//!
//! Layouts (see Documentation/admin-guide/cgroup-v2.rst and cgroup-v1/):
//! - pure v2: a cgroup2 mount at `/sys/fs/cgroup`;
//! - hybrid: `/sys/fs/cgroup` is a tmpfs of v1 hierarchies and cgroup2 sits at
//!   `/sys/fs/cgroup/unified`. The v2 tree has no controllers there, but
//!   `cgroup.freeze`, `cgroup.events` and `cgroup.kill` are core files that work
//!   without any, so v2 is preferred over the v1 freezer;
//! - v1 freezer only: no cgroup2 mount, a v1 hierarchy carrying `freezer`;
//! - none: neither, or nothing dmon may write.

mod choice;
mod host;
mod layout;

pub use choice::{Backend, Choice, Refusal, TreeChoice, Unavailable, choose, refusal};
pub use host::{
    AskError, ForeignWriter, Host, UserUnit, Writer, delegated_at, foreign_writer, is_delegated, is_writable,
};
pub use layout::{Kind, Layout, V1Hierarchy, v1_hierarchies, v1_hierarchies_here};

#[cfg(test)]
mod tests;
