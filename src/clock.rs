//! Wall-clock formatting without a date crate, for dmon's status file and the
//! log tools: DMon's `YYYY-mm-dd/HH:MM:SS` and RFC 3339 in UTC (as DMon's C tools
//! used `gmtime`), and the local `Mmm dd HH:MM:SS` that syslog daemons expect in
//! a message header.

use std::time::{SystemTime, UNIX_EPOCH};

/// A broken-down UTC time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    pub micros: u32,
}

impl Civil {
    /// Splits seconds and microseconds since the epoch into a UTC date and time.
    pub fn from_unix(secs: i64, micros: u32) -> Civil {
        let days = secs.div_euclid(86400);
        let rest = secs.rem_euclid(86400) as u32;
        // Days to a proleptic Gregorian date, counting in 400-year eras that start
        // on 1 March, so the leap day is the last day of the counted year.
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        let year = yoe + era * 400 + i64::from(month <= 2);
        Civil { year, month, day, hour: rest / 3600, minute: rest / 60 % 60, second: rest % 60, micros }
    }

    pub fn now() -> Civil {
        let since = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        Civil::from_unix(since.as_secs() as i64, since.subsec_micros())
    }

    /// `2024-05-01/12:34:56`, DMon's timestamp.
    pub fn dmon(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}/{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// `2024-05-01T12:34:56.123456Z`.
    pub fn rfc3339(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.micros
        )
    }

    /// `2024-05-01-12:34:56`, the date part of a rotated file's name.
    pub fn file_stamp(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}-{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// `May  1 12:34:56` in local time, the RFC 3164 header timestamp.
pub fn syslog_stamp() -> String {
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let now = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as libc::time_t);
    // SAFETY: `struct tm` is plain data, for which all zeroes is a value (its
    // zone name pointer null).
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: localtime_r reads `now` and writes only into `tm`, both live locals.
    if unsafe { libc::localtime_r(&now, &mut tm) }.is_null() {
        let c = Civil::from_unix(now, 0);
        tm.tm_mon = c.month as i32 - 1;
        tm.tm_mday = c.day as i32;
        tm.tm_hour = c.hour as i32;
        tm.tm_min = c.minute as i32;
        tm.tm_sec = c.second as i32;
    }
    format!(
        "{} {:2} {:02}:{:02}:{:02}",
        MONTHS[tm.tm_mon.clamp(0, 11) as usize],
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates() {
        assert_eq!(Civil::from_unix(0, 0).dmon(), "1970-01-01/00:00:00");
        // 2000-02-29 (a leap day in a century year divisible by 400).
        assert_eq!(Civil::from_unix(951_782_400, 0).dmon(), "2000-02-29/00:00:00");
        assert_eq!(Civil::from_unix(1_709_251_199, 0).dmon(), "2024-02-29/23:59:59");
        assert_eq!(Civil::from_unix(1_714_566_896, 42).rfc3339(), "2024-05-01T12:34:56.000042Z");
        assert_eq!(Civil::from_unix(4_102_444_800, 0).file_stamp(), "2100-01-01-00:00:00");
        assert_eq!(Civil::from_unix(-1, 0).dmon(), "1969-12-31/23:59:59");
    }
}
