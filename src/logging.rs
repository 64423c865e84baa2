//! sluice's own log: one line per event on stderr, and a rate limiter so
//! that hostile input cannot flood it.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Metadata, Record};

use crate::time::Timestamp;

struct StderrLogger;

impl log::Log for StderrLogger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let mut ts = Vec::with_capacity(32);
        Timestamp {
            frac_digits: 3,
            ..Timestamp::now()
        }
        .write_rfc3339(&mut ts);
        let level = match r.level() {
            Level::Error => "ERROR",
            Level::Warn => "WARN ",
            Level::Info => "INFO ",
            Level::Debug => "DEBUG",
            Level::Trace => "TRACE",
        };
        let line = format!(
            "{} {level} sluice: {}\n",
            String::from_utf8_lossy(&ts),
            r.args()
        );
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

static LOGGER: StderrLogger = StderrLogger;

/// Installs the stderr logger. The level comes from `SLUICE_LOG`
/// (error, warn, info, debug, trace), default info.
pub fn init() {
    let level = match std::env::var("SLUICE_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        Ok("trace") => LevelFilter::Trace,
        Ok("off") => LevelFilter::Off,
        _ => LevelFilter::Info,
    };
    if log::set_logger(&LOGGER).is_ok() {
        log::set_max_level(level);
    }
}

/// Lets one message through per interval and counts the ones held back,
/// so the next message can say how many were suppressed.
pub struct RateLimit {
    interval_ns: u64,
    /// ns since `epoch` of the last message let through (+1; 0 = never).
    last: AtomicU64,
    suppressed: AtomicU64,
    epoch: Instant,
}

impl RateLimit {
    pub fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval_ns: interval.as_nanos() as u64,
            last: AtomicU64::new(0),
            suppressed: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    /// `Some(suppressed_since_last)` when a message may be logged now.
    pub fn allow(&self) -> Option<u64> {
        let now = self.epoch.elapsed().as_nanos() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now - last < self.interval_ns {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        if self
            .last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
        {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        Some(self.suppressed.swap(0, Ordering::Relaxed))
    }
}

/// `warn!` at most once per limiter interval, noting suppressed repeats.
#[macro_export]
macro_rules! warn_limited {
    ($limit:expr, $($arg:tt)+) => {
        if let Some(n) = $limit.allow() {
            if n > 0 {
                log::warn!("{} ({} similar messages suppressed)", format_args!($($arg)+), n);
            } else {
                log::warn!($($arg)+);
            }
        }
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rate_limit_lets_one_through_per_interval_and_counts_the_rest() {
        let r = RateLimit::new(Duration::from_secs(3600));
        assert_eq!(r.allow(), Some(0));
        assert_eq!(r.allow(), None);
        assert_eq!(r.allow(), None);
        let r2 = RateLimit::new(Duration::from_nanos(1));
        assert!(r2.allow().is_some());
        std::thread::sleep(Duration::from_millis(1));
        assert!(r2.allow().is_some());
    }
}
