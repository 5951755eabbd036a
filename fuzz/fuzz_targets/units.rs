//! The value parsers: times, sizes, counts, loads and `-r` limits. Any text gives
//! a value or an error; accepted times are within the 100-year bound.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    if let Ok(time) = dmon::units::parse_time(text) {
        assert!(time <= dmon::units::MAX_TIME);
    }
    let _ = dmon::units::parse_size(text);
    let _ = dmon::units::parse_count(text);
    if let Ok(load) = dmon::units::parse_load(text) {
        assert!(load.is_finite() && load >= 0.0);
    }
    let _ = dmon::limits::Limit::parse(text);
});
