//! The kernel's flat-keyed text: one `key value` pair a line (`cgroup.events`,
//! `cpu.stat`, `memory.events`, `Rss:   148 kB` in `/proc/self/smaps`), and
//! `key=value` words on a line (`io.stat`, the pressure files). See "Interface
//! Files" in Documentation/admin-guide/cgroup-v2.rst for the formats.

use std::str::FromStr;

/// What follows `key` on the first line of `text` whose first word is `key`.
pub fn line<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines().find_map(|line| {
        let rest = line.trim_start().strip_prefix(key)?;
        (rest.is_empty() || rest.starts_with(char::is_whitespace)).then(|| rest.trim())
    })
}

/// The number after `key` in a `key value` file: `number("populated 1\nfrozen 0\n",
/// "frozen")` is 0, `number("Rss:   148 kB", "Rss:")` is 148 (a unit after the
/// number is left out).
pub fn number(text: &str, key: &str) -> Option<u64> {
    line(text, key)?.split_whitespace().next()?.parse().ok()
}

/// The value of the word `key=value` among the words of `words`:
/// `pair::<u64>("8:0 rbytes=4096 wbytes=0", "wbytes")` is 0.
pub fn pair<T: FromStr>(words: &str, key: &str) -> Option<T> {
    words.split_whitespace().find_map(|word| word.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
}

/// The sum over the lines of `text` of their `key=value` words, as in
/// `io.stat`, one line per device.
pub fn sum(text: &str, key: &str) -> u64 {
    text.lines().filter_map(|line| pair::<u64>(line, key)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_of_key_value_lines() {
        let events = "populated 1\nfrozen 0\n";
        assert_eq!((number(events, "populated"), number(events, "frozen")), (Some(1), Some(0)));
        assert_eq!(number(events, "froze"), None, "a key is a whole word");
        assert_eq!(number(events, "oom_kill"), None);
        let stat = "usage_usec 3000\nuser_usec 2000\nsystem_usec 1000\n";
        assert_eq!(number(stat, "user_usec"), Some(2000));
        assert_eq!(number(stat, "usec"), None);
        assert_eq!(number("Rss:                 148 kB\nAnonymous:   12 kB\n", "Anonymous:"), Some(12));
        assert_eq!(number("max 18446744073709551615\n", "max"), Some(u64::MAX));
        assert_eq!(number("frozen x\n", "frozen"), None);
        assert_eq!(number("frozen\n", "frozen"), None);
        assert_eq!(number("", "frozen"), None);
    }

    #[test]
    fn the_rest_of_a_keyed_line() {
        let pressure = "some avg10=1.50 avg60=0.00 avg300=0.00 total=12\nfull avg10=0.25 avg60=0.00\n";
        assert_eq!(line(pressure, "full"), Some("avg10=0.25 avg60=0.00"));
        assert_eq!(line(pressure, "none"), None);
        assert_eq!(line("frozen\n", "frozen"), Some(""));
    }

    #[test]
    fn key_equals_value_words() {
        let pressure = "some avg10=1.50 avg60=0.00 avg300=0.00 total=12";
        assert_eq!(pair::<f64>(pressure, "avg10"), Some(1.5));
        assert_eq!(pair::<u64>(pressure, "total"), Some(12));
        assert_eq!(pair::<u64>(pressure, "avg"), None);
        assert_eq!(pair::<u64>("rbytes=x", "rbytes"), None);
        let io = "8:0 rbytes=4096 wbytes=512 rios=1 wios=1\n8:16 rbytes=1 wbytes=2 rios=1 wios=1\n";
        assert_eq!((sum(io, "rbytes"), sum(io, "wbytes"), sum(io, "dbytes")), (4097, 514, 0));
        assert_eq!(sum("", "rbytes"), 0);
    }
}
