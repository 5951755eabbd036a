//! The task machine, event by event: restarts and their backoff, stops and
//! timeouts, the log command's drain, the shared terminal, and OOM.

mod control;

use super::*;

const EXIT_0: i32 = 0;
const EXIT_1: i32 = 1 << 8;

fn policy() -> Policy {
    Policy {
        once: false,
        max_respawns: None,
        interval: None,
        timeout: None,
        grace: Duration::from_secs(5),
        backoff_max: Duration::from_secs(60),
        terminal: None,
    }
}

/// A task asked at `t0` to start: its first spawn is under way.
fn starting(policy: Policy, t0: Instant) -> Task {
    let mut task = Task::new(policy);
    assert_eq!(task.handle(Event::Start, t0), [Action::Spawn { frozen: false }]);
    task
}

/// A task started and running as pid 100 at `t0`.
fn running(policy: Policy, t0: Instant) -> Task {
    let mut task = starting(policy, t0);
    assert_eq!(task.handle(Event::Spawned { pid: 100 }, t0), [Action::Report(Status::Start(100))]);
    task
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A task running as pid 100 since `t0`, with `-t` of `timeout` seconds.
fn timed(timeout: u64, t0: Instant) -> Task {
    let mut p = policy();
    p.timeout = Some(secs(timeout));
    running(p, t0)
}

/// A task whose leader (pid 100) and its restart (101) both ended at once
/// with `status`: waiting out the backoff.
fn failed_twice(policy: Policy, status: i32, t0: Instant) -> Task {
    let mut task = running(policy, t0);
    task.handle(Event::Exited { status, tree_empty: true }, t0);
    task.handle(Event::Spawned { pid: 101 }, t0);
    task.handle(Event::Exited { status, tree_empty: true }, t0);
    task
}

/// A task stopped by `d` at `t0`, its run over: down and idle.
fn downed(t0: Instant) -> Task {
    let mut task = running(policy(), t0);
    task.handle(Event::Down, t0);
    task.handle(Event::Exited { status: 15, tree_empty: true }, t0);
    task
}

/// What a pause of `pid`'s tree for `cause` asks for.
fn freeze(pid: i32, cause: Cause) -> [Action; 2] {
    [Action::Report(Status::Pause(pid, cause)), Action::Freeze]
}

/// What the resume of `pid`'s tree from `cause` asks for.
fn thaw(pid: i32, cause: Cause) -> [Action; 2] {
    [Action::Report(Status::Resume(pid, cause)), Action::Thaw]
}

#[test]
fn restarts_at_once_after_a_long_run() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(60));
    assert_eq!(out, [Action::Report(Status::Exit(100, EXIT_1, Reason::Exit)), Action::Spawn { frozen: false }]);
    assert_eq!(task.last_status(), Some(EXIT_1));
}

#[test]
fn quick_failures_back_off_growing_to_the_cap() {
    let t0 = Instant::now();
    let mut p = policy();
    p.backoff_max = Duration::from_millis(350);
    let mut task = running(p, t0);
    let mut now = t0;
    let mut delays = Vec::new();
    for pid in 101..107 {
        let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, now);
        match task.state() {
            State::Waiting { until } => {
                delays.push(*until - now);
                now = *until;
                assert_eq!(task.handle(Event::Tick, now), [Action::Spawn { frozen: false }]);
            }
            State::Idle => {
                delays.push(Duration::ZERO);
                assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
            }
            other => panic!("unexpected {other:?}"),
        }
        task.handle(Event::Spawned { pid }, now);
    }
    let ms: Vec<u128> = delays.iter().map(Duration::as_millis).collect();
    assert_eq!(ms, [0, 100, 200, 350, 350, 350]);
}

#[test]
fn a_healthy_run_resets_the_backoff() {
    let t0 = Instant::now();
    let mut task = failed_twice(policy(), EXIT_1, t0);
    assert!(matches!(task.state(), State::Waiting { .. }));
    task.handle(Event::Tick, t0 + secs(1));
    task.handle(Event::Spawned { pid: 102 }, t0 + secs(1));
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
}

#[test]
fn once_stops_after_success_only() {
    let t0 = Instant::now();
    let mut p = policy();
    p.once = true;
    let mut task = running(p, t0);
    task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(20));
    assert_eq!(task.state(), &State::Idle);
    task.handle(Event::Spawned { pid: 101 }, t0 + secs(20));
    task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(40));
    assert!(task.is_done());
    assert_eq!(exit_code(task.last_status().unwrap()), 0);
}

#[test]
fn max_respawns_counts_restarts() {
    let t0 = Instant::now();
    let mut p = policy();
    p.max_respawns = Some(2);
    let mut task = running(p, t0);
    let mut now = t0;
    for pid in 101..=102 {
        now += secs(30);
        task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, now);
        task.handle(Event::Spawned { pid }, now);
    }
    now += secs(30);
    task.handle(Event::Exited { status: 9, tree_empty: true }, now);
    assert!(task.is_done());
    assert_eq!(exit_code(task.last_status().unwrap()), 128 + 9);
}

#[test]
fn interval_waits_after_success() {
    let t0 = Instant::now();
    let mut p = policy();
    p.interval = Some(secs(30));
    let mut task = running(p, t0);
    task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(20));
    assert_eq!(task.deadline(), Some(t0 + secs(50)));
    assert_eq!(task.handle(Event::Tick, t0 + secs(49)), []);
    assert_eq!(task.handle(Event::Tick, t0 + secs(50)), [Action::Spawn { frozen: false }]);
}

#[test]
fn spawn_failure_backs_off_like_a_quick_exit() {
    let t0 = Instant::now();
    let mut task = starting(policy(), t0);
    // A first start that fails otherwise than at exec is retried.
    let failed = Event::SpawnFailed { status: 1 << 8, kind: Failure::Other };
    assert_eq!(task.handle(failed, t0), [Action::ReportStartFailure, Action::Spawn { frozen: false }]);
    assert_eq!(task.handle(failed, t0), [Action::ReportStartFailure]);
    assert_eq!(task.deadline(), Some(t0 + BACKOFF_START));
    assert_eq!(exit_code(task.last_status().unwrap()), 1);
    // A command that ran once and can no longer be executed is retried too.
    let mut task = running(policy(), t0);
    task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(60));
    let failed = Event::SpawnFailed { status: 127 << 8, kind: Failure::Exec };
    assert_eq!(task.handle(failed, t0 + secs(60)), [Action::ReportStartFailure]);
    assert!(matches!(task.state(), State::Waiting { .. }));
    assert_eq!(exit_code(task.last_status().unwrap()), 127);
}

#[test]
fn timeout_terminates_then_kills_then_waits_for_an_empty_tree() {
    let t0 = Instant::now();
    let mut task = timed(10, t0);
    assert_eq!(task.deadline(), Some(t0 + secs(10)));
    let out = task.handle(Event::Tick, t0 + secs(10));
    assert_eq!(out, [Action::Report(Status::Timeout(100)), Action::Terminate]);
    assert_eq!(task.deadline(), Some(t0 + secs(15)));
    assert_eq!(task.handle(Event::Tick, t0 + secs(15)), [Action::Kill]);
    assert_eq!(task.deadline(), Some(t0 + secs(15) + KILL_REPEAT));
    assert_eq!(task.handle(Event::Exited { status: 9, tree_empty: false }, t0 + secs(15)), []);
    // The run ends, and the next starts, only once the tree is empty.
    assert_eq!(
        task.handle(Event::TreeEmpty, t0 + secs(16)),
        [Action::Report(Status::Exit(100, 9, Reason::Timeout)), Action::Spawn { frozen: false }]
    );
}

#[test]
fn leftovers_of_an_exited_leader_are_stopped_before_the_next_run() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: false }, t0 + secs(30));
    assert_eq!(out, [Action::Terminate]);
    // A shutdown while the leftovers are stopped does not change why the run ended.
    assert_eq!(task.handle(Event::Stop, t0 + secs(30)), []);
    assert_eq!(task.handle(Event::TreeEmpty, t0 + secs(31)), [Action::Report(Status::Exit(100, EXIT_0, Reason::Exit))]);
    assert!(task.is_done());
}

#[test]
fn stop_ends_in_done() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    assert_eq!(task.handle(Event::Stop, t0), [Action::Report(Status::Stop(100)), Action::Terminate]);
    assert_eq!(task.handle(Event::Exited { status: 15, tree_empty: true }, t0).len(), 1);
    assert!(task.is_done());
    let mut waiting = failed_twice(policy(), EXIT_1, t0);
    assert_eq!(waiting.handle(Event::Stop, t0), []);
    assert!(waiting.is_done());
}

#[test]
fn stop_during_a_timeout_becomes_a_shutdown() {
    let t0 = Instant::now();
    let mut task = timed(1, t0);
    task.handle(Event::Tick, t0 + secs(1));
    task.handle(Event::Stop, t0 + secs(2));
    task.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(2));
    assert!(task.is_done());
}

#[test]
fn pause_freezes_and_stops_the_timeout_clock() {
    let t0 = Instant::now();
    let mut task = timed(10, t0);
    assert_eq!(task.handle(Event::Pause(Cause::Load), t0 + secs(4)), freeze(100, Cause::Load));
    assert_eq!(task.handle(Event::Pause(Cause::Load), t0 + secs(5)), []);
    assert_eq!(task.deadline(), None);
    assert_eq!(task.handle(Event::Resume, t0 + secs(100)), thaw(100, Cause::Load));
    assert_eq!(task.deadline(), Some(t0 + secs(106)));
    assert_eq!(task.handle(Event::Resume, t0 + secs(101)), []);
}

#[test]
fn a_respawn_while_paused_starts_frozen() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    task.handle(Event::Pause(Cause::Load), t0);
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: true }));
    let out = task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
    assert_eq!(out, [Action::Report(Status::Start(101)), Action::Report(Status::Pause(101, Cause::Load))]);
    assert_eq!(task.handle(Event::Resume, t0 + secs(31)), thaw(101, Cause::Load));
}

#[test]
fn stopping_a_paused_tree_thaws_it() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    task.handle(Event::Pause(Cause::Load), t0);
    assert_eq!(task.handle(Event::Stop, t0), [Action::Report(Status::Stop(100)), Action::Terminate, Action::Thaw]);
}

#[test]
fn draining_log_reads_to_the_end_then_is_stopped() {
    let t0 = Instant::now();
    let mut task = running(Policy::forever(secs(5), secs(60)), t0);
    assert_eq!(task.handle(Event::Drain, t0), []);
    assert_eq!(task.deadline(), Some(t0 + secs(5)));
    // It ends by itself at end of input: done, nothing left unlogged.
    let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, t0 + secs(1));
    assert_eq!(out, [Action::Report(Status::Exit(100, EXIT_0, Reason::Exit))]);
    assert!(task.is_done());

    let mut slow = running(Policy::forever(secs(5), secs(60)), t0);
    slow.handle(Event::Drain, t0);
    // While it keeps reading, it gets more time; once it stops reading, it is stopped.
    slow.handle(Event::Input { left: true, progress: true }, t0 + secs(5));
    assert_eq!(slow.handle(Event::Tick, t0 + secs(5)), []);
    assert_eq!(slow.deadline(), Some(t0 + secs(10)));
    slow.handle(Event::Input { left: true, progress: false }, t0 + secs(10));
    assert_eq!(slow.handle(Event::Tick, t0 + secs(10)), [Action::Report(Status::Stop(100)), Action::Terminate]);
    // Given up with input left: what stays unlogged is said.
    let out = slow.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(10));
    assert_eq!(out, [Action::Report(Status::Exit(100, 15, Reason::Shutdown)), Action::Unlogged]);
    assert!(slow.is_done());
}

#[test]
fn a_log_command_that_dies_while_input_is_left_is_restarted() {
    let t0 = Instant::now();
    let mut task = running(Policy::forever(secs(5), secs(60)), t0);
    task.handle(Event::Drain, t0);
    // It read part of the rest, then died.
    task.handle(Event::Input { left: true, progress: true }, t0 + secs(20));
    let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(20));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
}

#[test]
fn a_first_start_that_cannot_exec_ends_dmon() {
    let t0 = Instant::now();
    let mut task = starting(policy(), t0);
    let failed = Event::SpawnFailed { status: 127 << 8, kind: Failure::Exec };
    assert_eq!(task.handle(failed, t0), [Action::EndDmon { code: 127 }]);
    assert!(task.is_done());
    assert_eq!(exit_code(task.last_status().unwrap()), 127);
}

/// The command's policy when it shares dmon's terminal.
fn on_terminal(hup_to_cmd: bool, hup_forwarded: bool) -> Policy {
    Policy { terminal: Some(Terminal { hup_to_cmd, hup_forwarded }), ..policy() }
}

#[test]
fn ctrl_c_on_the_shared_terminal_ends_dmon() {
    let t0 = Instant::now();
    for signal in [libc::SIGINT, libc::SIGQUIT, libc::SIGHUP] {
        let mut task = running(on_terminal(false, false), t0);
        let out = task.handle(Event::Exited { status: signal, tree_empty: true }, t0 + secs(30));
        assert_eq!(
            out,
            [
                Action::Report(Status::Stop(100)),
                Action::Terminate,
                Action::Report(Status::Exit(100, signal, Reason::Shutdown)),
                Action::Shutdown
            ],
            "signal {signal}"
        );
        assert!(task.is_done());
    }
    // With -s, a death by HUP may be the user's HUP: the command is restarted.
    let mut task = running(on_terminal(true, true), t0);
    let out = task.handle(Event::Exited { status: libc::SIGHUP, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
    let out = task.handle(Event::Exited { status: libc::SIGINT, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Shutdown));
    // Off the terminal, Ctrl-C is just a death by a signal.
    let mut task = running(policy(), t0);
    let out = task.handle(Event::Exited { status: libc::SIGINT, tree_empty: true }, t0 + secs(30));
    assert_eq!(out, [Action::Report(Status::Exit(100, libc::SIGINT, Reason::Signal)), Action::Spawn { frozen: false }]);
}

#[test]
fn a_hangup_of_the_shared_terminal_ends_dmon_unless_hup_is_forwarded() {
    let t0 = Instant::now();
    assert_eq!(running(on_terminal(false, false), t0).handle(Event::Hangup, t0), [Action::Shutdown]);
    assert_eq!(running(on_terminal(false, true), t0).handle(Event::Hangup, t0), []);
    assert_eq!(running(policy(), t0).handle(Event::Hangup, t0), []);
}

#[test]
fn out_of_memory_kills_the_run_and_its_exit_says_oom() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    assert_eq!(task.handle(Event::OutOfMemory, t0), [Action::ReportOom { pid: 100 }, Action::Kill]);
    // Said once per run.
    assert_eq!(task.handle(Event::OutOfMemory, t0), []);
    let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(30));
    assert_eq!(out[0], Action::Report(Status::Exit(100, 9, Reason::Oom)));
    task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
    // The next run's exit is its own.
    let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(60));
    assert_eq!(out[0], Action::Report(Status::Exit(101, 9, Reason::Signal)));
    // Leftovers: the record waits for the empty tree, and still says oom.
    task.handle(Event::Spawned { pid: 102 }, t0 + secs(60));
    task.handle(Event::Exited { status: 9, tree_empty: false }, t0 + secs(90));
    task.handle(Event::OutOfMemory, t0 + secs(90));
    let out = task.handle(Event::TreeEmpty, t0 + secs(90));
    assert_eq!(out[0], Action::Report(Status::Exit(102, 9, Reason::Oom)));
}

#[test]
fn a_finished_run_restarts_at_once_but_true_in_a_loop_backs_off() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    let mut now = t0;
    for pid in 101..106 {
        now += Duration::from_millis(1500);
        let out = task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now);
        assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }), "run {pid}");
        task.handle(Event::Spawned { pid }, now);
    }
    // Zero exits after a few milliseconds are not finished work.
    task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now + Duration::from_millis(5));
    task.handle(Event::Spawned { pid: 200 }, now);
    task.handle(Event::Exited { status: EXIT_0, tree_empty: true }, now + Duration::from_millis(10));
    assert!(matches!(task.state(), State::Waiting { .. }));
}

#[test]
fn a_log_command_waiting_to_restart_is_started_to_drain_the_rest() {
    let t0 = Instant::now();
    let mut task = failed_twice(Policy::forever(secs(5), secs(60)), 9, t0);
    assert!(matches!(task.state(), State::Waiting { .. }));
    task.handle(Event::Input { left: true, progress: false }, t0);
    assert_eq!(task.handle(Event::Drain, t0), [Action::Spawn { frozen: false }]);
    task.handle(Event::Spawned { pid: 102 }, t0);
    assert!(matches!(task.state(), State::Draining { pid: 102, .. }));

    // With nothing left in the pipe, a waiting log command is simply done.
    let mut idle = failed_twice(Policy::forever(secs(5), secs(60)), 9, t0);
    idle.handle(Event::Input { left: false, progress: false }, t0);
    assert_eq!(idle.handle(Event::Drain, t0), []);
    assert!(idle.is_done());
}

#[test]
fn a_draining_log_command_that_keeps_failing_is_given_up_after_the_grace() {
    let t0 = Instant::now();
    let mut task = running(Policy::forever(secs(5), secs(60)), t0);
    task.handle(Event::Input { left: true, progress: false }, t0);
    task.handle(Event::Drain, t0);
    let mut now = t0;
    let mut starts = 0;
    let mut unlogged = 0;
    while !task.is_done() {
        assert!(now < t0 + secs(6), "never given up");
        task.handle(Event::Input { left: true, progress: false }, now);
        let out = match task.state() {
            State::Waiting { until } => {
                now = *until;
                task.handle(Event::Tick, now)
            }
            _ => task.handle(Event::Exited { status: 1 << 8, tree_empty: true }, now),
        };
        unlogged += out.iter().filter(|a| **a == Action::Unlogged).count();
        if out.contains(&Action::Spawn { frozen: false }) {
            starts += 1;
            task.handle(Event::Spawned { pid: 200 + starts }, now);
        }
    }
    assert!(starts > 1, "it was retried ({starts} starts)");
    assert_eq!(unlogged, 1, "the output left is said once");
    // Progress (the pipe got shorter, or the logger worked) gives it more time.
    let mut busy = running(Policy::forever(secs(5), secs(60)), t0);
    busy.handle(Event::Input { left: true, progress: false }, t0);
    busy.handle(Event::Drain, t0);
    busy.handle(Event::Input { left: true, progress: true }, t0 + secs(4));
    busy.handle(Event::Exited { status: 1 << 8, tree_empty: true }, t0 + secs(4));
    busy.handle(Event::Spawned { pid: 300 }, t0 + secs(4));
    busy.handle(Event::Input { left: true, progress: false }, t0 + secs(6));
    busy.handle(Event::Exited { status: 1 << 8, tree_empty: true }, t0 + secs(6));
    assert!(!busy.is_done());
}

#[test]
fn the_exit_record_says_why_the_run_ended() {
    let t0 = Instant::now();
    let exit = |task: &mut Task, status| task.handle(Event::Exited { status, tree_empty: true }, t0)[0];
    let mut task = running(policy(), t0);
    assert_eq!(exit(&mut task, EXIT_1), Action::Report(Status::Exit(100, EXIT_1, Reason::Exit)));
    task.handle(Event::Spawned { pid: 101 }, t0);
    // Killed from outside: dmon sent nothing.
    assert_eq!(exit(&mut task, 9), Action::Report(Status::Exit(101, 9, Reason::Signal)));
    task.handle(Event::Tick, t0 + secs(1));
    task.handle(Event::Spawned { pid: 102 }, t0 + secs(1));
    task.handle(Event::Stop, t0 + secs(1));
    // Ended by the TERM of a shutdown, whatever its status.
    assert_eq!(exit(&mut task, EXIT_0), Action::Report(Status::Exit(102, EXIT_0, Reason::Shutdown)));

    // A log command stopped after draining was shut down; one that ends at
    // the end of its input ended by itself.
    let mut log = running(Policy::forever(secs(5), secs(60)), t0);
    log.handle(Event::Drain, t0);
    log.handle(Event::Tick, t0 + secs(5));
    assert_eq!(exit(&mut log, 15), Action::Report(Status::Exit(100, 15, Reason::Shutdown)));
    let mut log = running(Policy::forever(secs(5), secs(60)), t0);
    log.handle(Event::Drain, t0);
    assert_eq!(exit(&mut log, EXIT_0), Action::Report(Status::Exit(100, EXIT_0, Reason::Exit)));
}
