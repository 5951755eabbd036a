//! Pauses by hand and the control FIFO's `d`, `u` and `o`, and how they mix
//! with the watchers' pauses.

use super::*;

#[test]
fn a_manual_pause_holds_while_the_load_comes_and_goes() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    let hold = task.handle(Event::Hold, t0);
    assert_eq!(hold, freeze(100, Cause::Manual));
    // The load rises and falls: the tree stays frozen, nothing is said.
    assert_eq!(task.handle(Event::Pause(Cause::Load), t0 + secs(1)), []);
    assert_eq!(task.handle(Event::Resume, t0 + secs(2)), []);
    assert!(task.frozen());
    assert_eq!(task.handle(Event::Release, t0 + secs(3)), thaw(100, Cause::Manual));
    assert!(!task.frozen());
}

#[test]
fn a_load_pause_held_by_hand_waits_for_the_release() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    assert_eq!(task.handle(Event::Pause(Cause::Load), t0), freeze(100, Cause::Load));
    assert_eq!(task.handle(Event::Hold, t0 + secs(1)), []);
    assert_eq!(task.handle(Event::Resume, t0 + secs(2)), []);
    assert!(task.frozen() && task.held());
    assert_eq!(task.handle(Event::Release, t0 + secs(3)), thaw(100, Cause::Manual));
    // Released while the load is still high: the load's pause goes on.
    let mut busy = running(policy(), t0);
    busy.handle(Event::Pause(Cause::Load), t0);
    busy.handle(Event::Hold, t0);
    assert_eq!(busy.handle(Event::Release, t0 + secs(1)), []);
    assert_eq!(busy.handle(Event::Resume, t0 + secs(2)), thaw(100, Cause::Load));
}

#[test]
fn a_watchers_pause_and_its_resume_name_the_source_that_rose() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    assert_eq!(task.handle(Event::Pause(Cause::Pressure), t0)[0], Action::Report(Status::Pause(100, Cause::Pressure)));
    assert_eq!(task.handle(Event::Resume, t0)[0], Action::Report(Status::Resume(100, Cause::Pressure)));
    assert_eq!(task.handle(Event::Pause(Cause::Load), t0)[0], Action::Report(Status::Pause(100, Cause::Load)));
    assert_eq!(task.handle(Event::Resume, t0)[0], Action::Report(Status::Resume(100, Cause::Load)));
}

#[test]
fn a_manual_pause_stops_the_timeout_clock_and_holds_across_runs() {
    let t0 = Instant::now();
    let mut task = timed(10, t0);
    task.handle(Event::Hold, t0 + secs(4));
    assert_eq!(task.deadline(), None);
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: true }));
    let out = task.handle(Event::Spawned { pid: 101 }, t0 + secs(30));
    assert_eq!(out, [Action::Report(Status::Start(101)), Action::Report(Status::Pause(101, Cause::Manual))]);
    task.handle(Event::Release, t0 + secs(40));
    assert_eq!(task.deadline(), Some(t0 + secs(50)));
}

#[test]
fn down_stops_the_tree_and_starts_no_other_run() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    assert_eq!(task.handle(Event::Down, t0), [Action::Report(Status::Stop(100)), Action::Terminate]);
    assert!(!task.wants_up());
    assert_eq!(task.handle(Event::Tick, t0 + secs(5)), [Action::Kill]);
    let out = task.handle(Event::Exited { status: 9, tree_empty: true }, t0 + secs(5));
    assert_eq!(out, [Action::Report(Status::Exit(100, 9, Reason::Down))]);
    assert_eq!(task.state(), &State::Idle);
    assert_eq!(task.deadline(), None);
    assert!(!task.is_done());
    // Down again, or a stop of dmon, while down.
    assert_eq!(task.handle(Event::Down, t0 + secs(6)), []);
    assert_eq!(task.handle(Event::Stop, t0 + secs(7)), []);
    assert!(task.is_done());
}

#[test]
fn down_of_a_frozen_tree_thaws_it_to_die() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    task.handle(Event::Hold, t0);
    assert_eq!(task.handle(Event::Down, t0), [Action::Report(Status::Stop(100)), Action::Terminate, Action::Thaw]);
}

#[test]
fn up_starts_a_fresh_run_after_down() {
    let t0 = Instant::now();
    let mut task = downed(t0);
    assert_eq!(task.handle(Event::Up, t0 + secs(1)), [Action::Spawn { frozen: false }]);
    assert!(task.wants_up());
    task.handle(Event::Spawned { pid: 101 }, t0 + secs(1));
    assert_eq!(task.handle(Event::Up, t0 + secs(2)), []);
    // It restarts as usual again.
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
}

#[test]
fn up_while_a_down_is_being_stopped_restarts_after_it() {
    let t0 = Instant::now();
    let mut task = running(policy(), t0);
    task.handle(Event::Down, t0);
    assert_eq!(task.handle(Event::Up, t0), []);
    let out = task.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(20));
    assert_eq!(out.last(), Some(&Action::Spawn { frozen: false }));
}

#[test]
fn down_while_waiting_to_restart_cancels_the_restart() {
    let t0 = Instant::now();
    let mut task = failed_twice(policy(), EXIT_1, t0);
    assert!(matches!(task.state(), State::Waiting { .. }));
    assert_eq!(task.handle(Event::Down, t0), []);
    assert_eq!(task.state(), &State::Idle);
    // A timeout's stop in progress becomes a down: no restart after it.
    let mut timed = timed(1, t0);
    timed.handle(Event::Tick, t0 + secs(1));
    timed.handle(Event::Down, t0 + secs(2));
    let out = timed.handle(Event::Exited { status: 15, tree_empty: true }, t0 + secs(2));
    assert_eq!(out, [Action::Report(Status::Exit(100, 15, Reason::Timeout))]);
    assert_eq!(timed.state(), &State::Idle);
}

#[test]
fn once_runs_one_more_time_then_stays_down() {
    let t0 = Instant::now();
    let mut task = downed(t0);
    assert_eq!(task.handle(Event::Once, t0 + secs(1)), [Action::Spawn { frozen: false }]);
    task.handle(Event::Spawned { pid: 101 }, t0 + secs(1));
    assert!(!task.wants_up());
    let out = task.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(out, [Action::Report(Status::Exit(101, EXIT_1, Reason::Exit))]);
    assert_eq!(task.state(), &State::Idle);
    // `o` on a running task only says: no run after this one.
    let mut up = running(policy(), t0);
    assert_eq!(up.handle(Event::Once, t0), []);
    up.handle(Event::Exited { status: EXIT_1, tree_empty: true }, t0 + secs(30));
    assert_eq!(up.state(), &State::Idle);
}
