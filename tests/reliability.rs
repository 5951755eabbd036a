//! Reliability: what dmon does on the bad day. Each test drives the built binary
//! with real processes, signals, files and mounts, and fails when dmon loses data,
//! leaks, hangs, panics or lets something escape. docs/reliability.md lists each
//! case, what it proves and its latest figures.
//!
//! The soak cases run short by default (CI); `DMON_SOAK=1` runs their long form.
//! Conditions are polled with generous bounds; nothing asserts a duration.

mod common;

#[path = "reliability/support.rs"]
mod support;

#[path = "reliability/bad_input.rs"]
mod bad_input;

#[path = "reliability/crash_loop.rs"]
mod crash_loop;

#[path = "reliability/timeouts.rs"]
mod timeouts;

#[path = "reliability/logger_faults.rs"]
mod logger_faults;

#[path = "reliability/killed.rs"]
mod killed;

#[path = "reliability/full_disk.rs"]
mod full_disk;

#[path = "reliability/signal_storm.rs"]
mod signal_storm;

#[path = "reliability/hostile_paths.rs"]
mod hostile_paths;

#[path = "reliability/child_setup.rs"]
mod child_setup;

#[path = "reliability/guards.rs"]
mod guards;
