//! `serve`'s own counters, per minute over the last hour: what CloudWatch would show for the
//! stage (API Gateway's `Count`, `4XXError`, `5XXError`, `Latency`, `IntegrationLatency`), the
//! function (`Invocations`, `Errors`) and the table (calls and throttles, from the function's
//! X-Ray subsegments). Read as [`local::MinuteStats`] by `GET /stats` (`super::admin`).
//!
//! Bounded: [`MINUTES`] minutes are kept (older ones are dropped as time moves on), and each
//! minute keeps at most [`SAMPLES_PER_MINUTE`] latencies per measure (a uniform sample of the
//! minute's requests past that, "reservoir sampling"), so its percentiles are exact up to that
//! many requests a minute and estimates beyond, in a bounded amount of memory whatever the load.

use std::collections::VecDeque;
use std::sync::Mutex;

use crate::local::MinuteStats;

/// The minutes kept: the last hour.
pub const MINUTES: u64 = 60;

/// Latencies kept per minute and measure.
pub const SAMPLES_PER_MINUTE: usize = 4096;

/// What one answered request adds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Answered {
    /// When it was received, seconds since the epoch.
    pub at: i64,
    pub status: u16,
    /// A key's throttle or quota refused it (429).
    pub throttled: bool,
    /// Received → answered, and of the integration alone (None: the function was not invoked).
    pub latency_ms: f64,
    pub integration_ms: Option<f64>,
    /// The function failed it (an error, a crash, a timeout, or no answer in time).
    pub function_error: bool,
}

/// A uniform sample of at most [`SAMPLES_PER_MINUTE`] values.
#[derive(Debug, Clone, Default)]
struct Sample {
    seen: u64,
    kept: Vec<f64>,
}

impl Sample {
    fn add(&mut self, value: f64, random: u64) {
        self.seen += 1;
        if self.kept.len() < SAMPLES_PER_MINUTE {
            self.kept.push(value);
        } else if let Some(slot) = self.kept.get_mut((random % self.seen) as usize) {
            // Kept with probability SAMPLES_PER_MINUTE / seen (Vitter's algorithm R).
            *slot = value;
        }
    }

    /// The nearest-rank percentile `p` (0–100] of the values; None without any. Pure.
    fn percentile(&self, p: f64) -> Option<f64> {
        percentile(&self.kept, p)
    }
}

/// The nearest-rank percentile `p` (0–100] of `values`, rounded to microseconds. Pure.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    let v = sorted[rank.min(sorted.len()) - 1];
    Some((v * 1000.0).round() / 1000.0)
}

#[derive(Debug, Clone, Default)]
struct Minute {
    counts: MinuteStats,
    latency: Sample,
    integration: Sample,
}

/// The counters, shared by the gateway (requests), the X-Ray daemon (DynamoDB calls) and the
/// admin listener (reads). Survive a `serve --watch` swap: they belong to neither pool.
#[derive(Debug, Default)]
pub struct Stats {
    /// Oldest first, at most [`MINUTES`], each a different minute.
    minutes: Mutex<VecDeque<Minute>>,
}

impl Stats {
    /// Count one answered request.
    pub fn answered(&self, a: Answered) {
        let random = super::random_u64();
        self.with_minute(a.at, |m| {
            let c = &mut m.counts;
            c.requests += 1;
            match a.status {
                400..=499 => c.status_4xx += 1,
                500..=599 => c.status_5xx += 1,
                _ => {}
            }
            if a.throttled {
                c.throttled += 1;
            }
            m.latency.add(a.latency_ms, random);
            if let Some(ms) = a.integration_ms {
                c.invocations += 1;
                m.integration.add(ms, random >> 1);
            }
            if a.function_error {
                c.function_errors += 1;
            }
        });
    }

    /// Count one DynamoDB call the function made at `at` (seconds since the epoch).
    pub fn dynamodb_call(&self, at: i64, throttled: bool) {
        self.with_minute(at, |m| {
            m.counts.dynamodb_calls += 1;
            if throttled {
                m.counts.dynamodb_throttles += 1;
            }
        });
    }

    /// Add to the minute of `at`, unless it is older than the minutes kept (a late datagram).
    fn with_minute(&self, at: i64, add: impl FnOnce(&mut Minute)) {
        let start = u64::try_from(at.max(0)).unwrap_or(0) / 60 * 60;
        let mut minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        let newest = minutes.back().map_or(start, |m| m.counts.start.max(start));
        while minutes.front().is_some_and(|m| m.counts.start + MINUTES * 60 <= newest) {
            minutes.pop_front();
        }
        if start + MINUTES * 60 <= newest {
            return;
        }
        let at = match minutes.iter().position(|m| m.counts.start >= start) {
            Some(i) if minutes[i].counts.start == start => i,
            Some(i) => {
                minutes
                    .insert(i, Minute { counts: MinuteStats { start, ..MinuteStats::default() }, ..Minute::default() });
                i
            }
            None => {
                minutes
                    .push_back(Minute { counts: MinuteStats { start, ..MinuteStats::default() }, ..Minute::default() });
                minutes.len() - 1
            }
        };
        add(&mut minutes[at]);
    }

    /// The minutes of the hour before `now` (seconds since the epoch) that saw anything, oldest
    /// first, with their percentiles.
    pub fn minutes(&self, now: u64) -> Vec<MinuteStats> {
        let minutes = self.minutes.lock().unwrap_or_else(|p| p.into_inner());
        let first = (now / 60 * 60).saturating_sub((MINUTES - 1) * 60);
        minutes
            .iter()
            .filter(|m| m.counts.start >= first)
            .map(|m| MinuteStats {
                latency_p50_ms: m.latency.percentile(50.0),
                latency_p99_ms: m.latency.percentile(99.0),
                integration_p50_ms: m.integration.percentile(50.0),
                integration_p99_ms: m.integration.percentile(99.0),
                ..m.counts.clone()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(at: i64, ms: f64) -> Answered {
        Answered {
            at,
            status: 200,
            throttled: false,
            latency_ms: ms,
            integration_ms: Some(ms - 1.0),
            function_error: false,
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 50.0), Some(50.0));
        assert_eq!(percentile(&v, 99.0), Some(99.0));
        assert_eq!(percentile(&[7.25], 99.0), Some(7.25));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn requests_are_counted_by_minute_and_status() {
        let s = Stats::default();
        let t = 1_795_632_000; // a minute's start
        s.answered(ok(t + 1, 10.0));
        s.answered(ok(t + 59, 30.0));
        s.answered(Answered { status: 403, integration_ms: None, ..ok(t + 5, 1.0) });
        s.answered(Answered { status: 429, throttled: true, integration_ms: None, ..ok(t + 61, 2.0) });
        s.answered(Answered { status: 502, function_error: true, ..ok(t + 62, 40.0) });
        s.dynamodb_call(t + 2, false);
        s.dynamodb_call(t + 63, true);
        let m = s.minutes(t as u64 + 70);
        assert_eq!(m.len(), 2);
        let (a, b) = (&m[0], &m[1]);
        assert_eq!((a.start, a.requests, a.status_4xx, a.status_5xx, a.invocations), (t as u64, 3, 1, 0, 2));
        assert_eq!((a.latency_p50_ms, a.latency_p99_ms), (Some(10.0), Some(30.0)));
        assert_eq!((a.integration_p50_ms, a.integration_p99_ms), (Some(9.0), Some(29.0)));
        assert_eq!((a.dynamodb_calls, a.dynamodb_throttles), (1, 0));
        assert_eq!((b.requests, b.status_4xx, b.throttled, b.status_5xx), (2, 1, 1, 1));
        assert_eq!((b.invocations, b.function_errors, b.dynamodb_calls, b.dynamodb_throttles), (1, 1, 1, 1));
    }

    #[test]
    fn only_the_last_hour_is_kept() {
        let s = Stats::default();
        let t = 1_795_632_000;
        for minute in 0..90 {
            s.answered(ok(t + minute * 60, 5.0));
        }
        let now = (t + 89 * 60) as u64;
        let m = s.minutes(now);
        assert_eq!(m.len(), MINUTES as usize);
        assert_eq!(m.first().map(|m| m.start), Some(now - (MINUTES - 1) * 60));
        assert_eq!(m.last().map(|m| m.start), Some(now));
        assert!(m.windows(2).all(|w| w[0].start < w[1].start), "oldest first");
        // A late call for a minute already dropped is not counted; one within the hour is.
        s.dynamodb_call(t, false);
        s.dynamodb_call(t + 80 * 60, false);
        let m = s.minutes(now);
        assert_eq!(m.iter().map(|m| m.dynamodb_calls).sum::<u64>(), 1);
        // An hour later with nothing new: nothing to show.
        assert!(s.minutes(now + 3600).is_empty());
    }

    #[test]
    fn a_busy_minute_keeps_a_bounded_sample() {
        let s = Stats::default();
        let t = 1_795_632_000;
        for i in 0..(SAMPLES_PER_MINUTE * 3) {
            s.answered(ok(t, 1.0 + (i % 100) as f64));
        }
        let m = s.minutes(t as u64);
        assert_eq!(m[0].requests, (SAMPLES_PER_MINUTE * 3) as u64);
        let p50 = m[0].latency_p50_ms.unwrap();
        assert!((40.0..=60.0).contains(&p50), "estimated p50 {p50}");
        let minutes = s.minutes.lock().unwrap();
        assert_eq!(minutes[0].latency.kept.len(), SAMPLES_PER_MINUTE);
    }
}
