//! The tasks' actions carried out with system calls: a start, TERM and KILL to
//! a tree, a freeze or thaw, a record in the status file, the end of dmon. A
//! follow-up (a start's `Spawned`) goes back to the loop's queue.

use std::time::Instant;

use super::{Proc, RELEASE_AFTER, Step, Supervisor, Which};
use crate::status::Record;
use crate::task::{Action, Status};

impl Supervisor {
    pub(super) fn act(&mut self, which: Which, action: Action, now: Instant) {
        let name = which.name();
        tracing::debug!("{name}: {action}");
        let result = match action {
            Action::Report(status) => {
                let measured = self.start.usage;
                let proc = self.proc(which);
                // The exit of a run comes once its tree is empty: what it used is complete.
                let usage = (measured && matches!(status, Status::Exit(..)))
                    .then(|| proc.meter.finish(proc.tree.dir(), Instant::now()));
                if let Some(file) = self.status.as_mut() {
                    file.report(name, status, usage.as_ref());
                }
                Ok(())
            }
            Action::ReportOom { pid } => {
                tracing::warn!(
                    "{name}: out of memory (--memory-max): the kernel killed a process of the run; ending it"
                );
                if let Some(status) = self.status.as_mut() {
                    status.record(Record::Oom { process: name, pid });
                }
                Ok(())
            }
            Action::ReportStartFailure => {
                let proc = self.proc(which);
                if let Some(e) = proc.start_error.take() {
                    if !std::mem::replace(&mut proc.start_failure_reported, true) {
                        tracing::error!("{name}: {e}");
                    }
                }
                Ok(())
            }
            Action::EndDmon { code } => {
                let message = self.proc(which).start_error.take().unwrap_or_default();
                self.fatal.get_or_insert((code, message));
                self.queue.push_back(Step::Shutdown);
                Ok(())
            }
            Action::Shutdown => {
                self.queue.push_back(Step::Shutdown);
                Ok(())
            }
            Action::Unlogged => {
                let unlogged = self.start.pipe_read.as_ref().map_or(0, crate::logpipe::bytes_in);
                if unlogged > 0 {
                    tracing::warn!(
                        "{unlogged} bytes of the command's output were left unlogged: the log command made no \
                         progress for {} s",
                        self.proc(which).task.grace().as_secs_f64()
                    );
                }
                Ok(())
            }
            Action::Spawn { frozen } => {
                let proc = match which {
                    Which::Cmd => &mut self.cmd,
                    Which::Log => self.log.as_mut().expect("log task without a log command"),
                };
                let event = self.start.spawn(which, proc, frozen);
                self.queue.push_back(Step::Feed(which, event));
                Ok(())
            }
            Action::Terminate => self.proc(which).tree.terminate(),
            Action::Kill => self.proc(which).tree.kill(),
            Action::Freeze => {
                self.release_at = Some(now + RELEASE_AFTER);
                let proc = self.proc(which);
                proc.meter.pause(Instant::now());
                proc.tree.freeze()
            }
            Action::Thaw => {
                self.release_at = Some(now + RELEASE_AFTER);
                let proc = self.proc(which);
                proc.meter.resume(Instant::now());
                proc.tree.thaw()
            }
        };
        if let Err(e) = result {
            tracing::warn!("{name}: {action} failed: {}", crate::io_reason(&e));
        }
    }

    /// Tells the service manager that dmon is ready (`READY=1`) once the command
    /// and the log command have both started.
    pub(super) fn notify_ready(&mut self) {
        let started = |p: &Proc| p.task.pid().is_some();
        if !self.shutting_down && started(&self.cmd) && self.log.as_ref().is_none_or(started) {
            crate::daemon::ready();
            if let Some(notify) = self.notify.as_mut() {
                notify.ready();
            }
        }
    }

    /// Keeps the command's tree from claiming the log command's processes.
    pub(super) fn update_foreign(&mut self) {
        let foreign: Vec<i32> = self.log.as_ref().and_then(|l| l.task.pid()).into_iter().collect();
        self.cmd.tree.set_foreign(&foreign);
        let foreign: Vec<i32> = self.cmd.task.pid().into_iter().collect();
        if let Some(log) = self.log.as_mut() {
            log.tree.set_foreign(&foreign);
        }
    }

    /// Brings `supervise/status`, `stat` and `pid` up to date.
    pub(super) fn publish_control(&mut self) {
        let Some(control) = self.control.as_mut() else { return };
        control.cmd.publish(&self.cmd.task, self.shutting_down);
        if let (Some(supervise), Some(log)) = (control.log.as_mut(), self.log.as_ref()) {
            supervise.publish(&log.task, self.shutting_down);
        }
    }
}
