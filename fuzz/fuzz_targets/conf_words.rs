//! The `-C` file lexer: any bytes give words or a positioned error, never a panic.
//! Words keep their order and every position is inside the text.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match dmon::conf::words(data) {
        Ok(words) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            let mut last = (0, 0);
            for word in &words {
                assert!(word.line >= 1 && word.line <= lines && word.column >= 1);
                assert!((word.line, word.column) > last, "words out of order");
                last = (word.line, word.column);
            }
        }
        Err(e) => {
            let lines = data.iter().filter(|&&b| b == b'\n').count() + 1;
            assert!(e.line >= 1 && e.line <= lines && e.column >= 1);
            assert!(!e.message.is_empty() && !e.message.contains('\n'));
        }
    }
});
