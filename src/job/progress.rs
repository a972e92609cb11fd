//! Progress of a job: fraction, stage and an ETA.

use std::time::{Duration, Instant};

/// A progress report.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Progress {
    /// What the job is doing ("epoch 2/3", "scoring").
    pub stage: String,
    /// Units done.
    pub done: u64,
    /// Units in all.
    pub total: u64,
    /// Seconds since the stage began.
    pub elapsed_secs: f64,
    /// Estimated seconds left, once some work is done.
    pub eta_secs: Option<f64>,
}

impl Progress {
    /// Fraction done in [0, 1].
    pub fn fraction(&self) -> f32 {
        if self.total == 0 {
            0.0
        } else {
            (self.done as f64 / self.total as f64).clamp(0.0, 1.0) as f32
        }
    }

    /// "1m 05s left", or "" when unknown.
    pub fn eta_text(&self) -> String {
        match self.eta_secs {
            Some(s) if s.is_finite() => format!("{} left", format_secs(s)),
            _ => String::new(),
        }
    }
}

/// Formats seconds as "12s" or "3m 04s".
pub fn format_secs(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    if s >= 60 {
        format!("{}m {:02}s", s / 60, s % 60)
    } else {
        format!("{s}s")
    }
}

/// Measures a job's time per stage to estimate the time left.
#[derive(Debug)]
pub struct ProgressClock {
    started: Instant,
    stage: parking_lot::Mutex<(String, Instant)>,
}

impl ProgressClock {
    /// Starts the clock now.
    pub fn start() -> Self {
        let now = Instant::now();
        Self {
            started: now,
            stage: parking_lot::Mutex::new((String::new(), now)),
        }
    }

    /// Time since the job began.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A progress report; the ETA assumes the rest of the stage runs at the rate so far.
    pub fn progress(&self, stage: &str, done: u64, total: u64) -> Progress {
        let mut st = self.stage.lock();
        if st.0 != stage {
            *st = (stage.to_string(), Instant::now());
        }
        let elapsed_secs = st.1.elapsed().as_secs_f64();
        let eta_secs =
            (done > 0 && total >= done).then(|| elapsed_secs / done as f64 * (total - done) as f64);
        Progress {
            stage: stage.to_string(),
            done,
            total,
            elapsed_secs,
            eta_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eta_scales_with_remaining_work() {
        let p = Progress {
            stage: "x".into(),
            done: 1,
            total: 4,
            elapsed_secs: 2.0,
            eta_secs: Some(6.0),
        };
        assert_eq!(p.fraction(), 0.25);
        assert_eq!(p.eta_text(), "6s left");
        assert_eq!(format_secs(65.0), "1m 05s");
        let clock = ProgressClock::start();
        let q = clock.progress("s", 0, 10);
        assert!(q.eta_secs.is_none());
    }
}
