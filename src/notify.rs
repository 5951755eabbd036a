//! Readiness for systemd (sd_notify(3)): when `NOTIFY_SOCKET` names a socket,
//! dmon sends `READY=1` (with `MAINPID=`) once the command and the log command
//! have both started, and `STOPPING=1` when it begins to stop. Each is sent once.
//!
//! The protocol is one datagram per message on an `AF_UNIX` `SOCK_DGRAM` socket,
//! newline-separated `KEY=VALUE` assignments. `NOTIFY_SOCKET` is a path, or an
//! abstract socket name written with a leading `@`. The `vsock:` addresses of
//! virtual machines are not supported; dmon warns and carries on.
//!
//! `MAINPID=` matters when dmon detaches (the default): the process systemd
//! started exits, and the daemon that stays is another pid. systemd accepts that
//! message only with `NotifyAccess=all`; docs/systemd.md recommends `dmon -n`
//! with `Type=notify` instead, where dmon stays the main process.
//!
//! The commands dmon starts do not see `NOTIFY_SOCKET` (the supervisor removes it
//! from their environment): dmon speaks for the service, and a command that also
//! sent `READY=1` or `STOPPING=1` would be taken for dmon.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for a `Type=notify` service.
pub const SOCKET_VAR: &str = "NOTIFY_SOCKET";

/// A connection to the service manager's notification socket.
pub struct Notifier {
    socket: UnixDatagram,
    address: SocketAddr,
    ready_sent: bool,
    stopping_sent: bool,
}

impl Notifier {
    /// A notifier for the socket `NOTIFY_SOCKET` names; `None` when it is unset,
    /// empty, or cannot be used (which is logged).
    pub fn from_env() -> Option<Notifier> {
        let value = std::env::var_os(SOCKET_VAR)?;
        let value = value.to_str().filter(|v| !v.is_empty())?;
        match Notifier::new(value) {
            Ok(notifier) => Some(notifier),
            Err(e) => {
                tracing::warn!("{SOCKET_VAR}='{value}': {}; not notifying", crate::io_reason(&e));
                None
            }
        }
    }

    /// A notifier for the socket `name`: a path, or `@` and an abstract name.
    pub fn new(name: &str) -> io::Result<Notifier> {
        let address = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes())?,
            None if name.starts_with('/') => SocketAddr::from_pathname(name)?,
            None => {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, "not a socket path or @name"));
            }
        };
        let socket = UnixDatagram::unbound()?;
        Ok(Notifier { socket, address, ready_sent: false, stopping_sent: false })
    }

    /// Sends `READY=1` and `MAINPID=` with dmon's pid, the first time only.
    pub fn ready(&mut self) {
        if !std::mem::replace(&mut self.ready_sent, true) {
            self.send(&format!("READY=1\nMAINPID={}\n", std::process::id()));
        }
    }

    /// Sends `STOPPING=1`, the first time only.
    pub fn stopping(&mut self) {
        if !std::mem::replace(&mut self.stopping_sent, true) {
            self.send("STOPPING=1\n");
        }
    }

    /// Sends one message. A failure is logged and otherwise ignored: supervision
    /// goes on without the service manager's knowledge, as sd_notify(3) callers do.
    fn send(&self, message: &str) {
        if let Err(e) = self.socket.send_to_addr(message.as_bytes(), &self.address) {
            tracing::warn!("cannot notify the service manager ({}): {}", message.trim_end(), crate::io_reason(&e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn receive(socket: &UnixDatagram) -> String {
        socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buffer = [0u8; 512];
        let n = socket.recv(&mut buffer).unwrap();
        String::from_utf8(buffer[..n].to_vec()).unwrap()
    }

    #[test]
    fn path_socket_gets_each_message_once() {
        let path = std::env::temp_dir().join(format!("dmon-notify-unit-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let listener = UnixDatagram::bind(&path).unwrap();
        let mut notifier = Notifier::new(path.to_str().unwrap()).unwrap();
        notifier.ready();
        notifier.ready();
        notifier.stopping();
        notifier.stopping();
        assert_eq!(receive(&listener), format!("READY=1\nMAINPID={}\n", std::process::id()));
        assert_eq!(receive(&listener), "STOPPING=1\n");
        listener.set_nonblocking(true).unwrap();
        assert!(listener.recv(&mut [0u8; 64]).is_err(), "a message was sent twice");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn abstract_socket() {
        let name = format!("dmon-notify-unit-{}", std::process::id());
        let listener = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
        let mut notifier = Notifier::new(&format!("@{name}")).unwrap();
        notifier.stopping();
        assert_eq!(receive(&listener), "STOPPING=1\n");
    }

    #[test]
    fn relative_names_are_refused() {
        assert!(Notifier::new("run/notify").is_err());
    }
}
