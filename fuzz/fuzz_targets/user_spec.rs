//! `USER[:GROUP...]` with an optional `-g GROUP` (after the first newline): any
//! text gives a spec with a non-empty user and non-empty groups, or an error.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|text: &str| {
    let (spec, group) = match text.split_once('\n') {
        Some((spec, group)) => (spec, Some(group)),
        None => (text, None),
    };
    if let Ok(parsed) = dmon::creds::UserSpec::parse(spec, group) {
        assert!(!parsed.user.is_empty());
        assert!(parsed.groups.iter().all(|g| !g.is_empty()));
        assert_eq!(parsed.primary_group.as_deref(), group);
    }
});
