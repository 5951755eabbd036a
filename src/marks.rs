//! High and low marks, and where a reading stands against them: what the load
//! watcher ([`crate::watch`]) and the pressure watchers ([`crate::psi`]) both
//! report to the gate.

/// Pause above `high`, resume below `low`: a load average, or a percentage of
/// stalled time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Marks {
    pub high: f64,
    pub low: f64,
}

impl Marks {
    pub fn level(self, value: f64) -> Level {
        if value > self.high {
            Level::High
        } else if value < self.low {
            Level::Low
        } else {
            Level::Between
        }
    }
}

/// Where a source stands against its marks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    High,
    Between,
    Low,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_say_high_between_and_low() {
        let marks = Marks { high: 2.0, low: 1.0 };
        let levels: Vec<_> = [2.5, 2.0, 1.5, 1.0, 0.5].iter().map(|v| marks.level(*v)).collect();
        use Level::*;
        assert_eq!(levels, [High, Between, Between, Between, Low]);
    }
}
