//! Usage-plan enforcement per API key: a token bucket (throttle) and a request count per quota
//! period, as API Gateway documents them ("Throttle and quota" in the usage plans guide;
//! https://repost.aws/knowledge-center/api-gateway-429-limit).
//!
//! - Throttle: a bucket of `burst` tokens, refilled at `rate` per second, starts full; each
//!   request takes one token; none left → 429 `Too Many Requests`.
//! - Quota: at most `limit` requests per period (DAY / WEEK / MONTH from its start in UTC, see
//!   [`Period::start`](super::rules::Period::start)); one more → 429 `Limit Exceeded`.
//!
//! The throttle is checked first: a throttled request does not count against the quota.
//! State is per (plan, key): it survives a reload of the rules (SIGHUP) as long as the key stays
//! in the same plan, as AWS keeps a key's usage when a plan's limits change.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use super::rules::{Period, Plan, Quota, Throttle};

/// What the usage plan says about one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    /// The key's token bucket is empty.
    Throttled,
    /// The key's quota for the current period is used up.
    QuotaExceeded,
}

/// A token bucket. Pure: the caller passes the time.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenBucket {
    tokens: f64,
    refilled: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn full(throttle: &Throttle, now: Instant) -> TokenBucket {
        TokenBucket { tokens: throttle.burst, refilled: now }
    }

    /// Refill for the time since the last call (never above `burst`, which may have changed),
    /// then take a token if there is one.
    pub fn take(&mut self, throttle: &Throttle, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.refilled).as_secs_f64();
        self.tokens = (self.tokens + elapsed * throttle.rate).min(throttle.burst);
        self.refilled = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Requests counted in the current quota period. Pure: the caller passes the time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QuotaCount {
    period_start: i64,
    used: u64,
}

impl QuotaCount {
    /// Count one request at `now` (Unix seconds) unless the period's quota is used up.
    pub fn take(&mut self, quota: &Quota, now: i64) -> bool {
        let start = quota.period.start(now);
        if start != self.period_start {
            *self = QuotaCount { period_start: start, used: 0 };
        }
        if self.used < quota.limit {
            self.used += 1;
            true
        } else {
            false
        }
    }

    /// The requests counted in the period that starts at `period_start` (0 in another one).
    pub fn used_in(&self, period_start: i64) -> u64 {
        if self.period_start == period_start { self.used } else { 0 }
    }
}

#[derive(Debug)]
struct KeyState {
    bucket: Option<TokenBucket>,
    quota: QuotaCount,
    /// The requests allowed today (UTC), whatever the plan's quota period: `serve`'s counters
    /// (as API Gateway's GetUsage reports a key's use per day).
    today: QuotaCount,
}

/// A day without a limit, for [`KeyState::today`].
const TODAY: Quota = Quota { limit: u64::MAX, period: Period::Day };

/// The usage of every key, shared by all connections.
#[derive(Debug, Default)]
pub struct Limiter {
    state: Mutex<HashMap<(String, String), KeyState>>,
}

impl Limiter {
    /// Check and count one request of `key_id` under `plan` at `now` / `epoch_secs`.
    pub fn check(&self, plan: &Plan, key_id: &str, now: Instant, epoch_secs: i64) -> Verdict {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let entry = state.entry((plan.id.clone(), key_id.to_string())).or_insert_with(|| KeyState {
            bucket: None,
            quota: QuotaCount::default(),
            today: QuotaCount::default(),
        });
        if let Some(throttle) = &plan.throttle {
            let bucket = entry.bucket.get_or_insert_with(|| TokenBucket::full(throttle, now));
            if !bucket.take(throttle, now) {
                return Verdict::Throttled;
            }
        }
        if let Some(quota) = &plan.quota
            && !entry.quota.take(quota, epoch_secs)
        {
            return Verdict::QuotaExceeded;
        }
        entry.today.take(&TODAY, epoch_secs);
        Verdict::Allowed
    }

    /// The requests of `key_id` under `plan_id` allowed on the UTC day of `epoch_secs`.
    pub fn used_today(&self, plan_id: &str, key_id: &str, epoch_secs: i64) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .get(&(plan_id.to_string(), key_id.to_string()))
            .map_or(0, |k| k.today.used_in(Period::Day.start(epoch_secs)))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn plan(throttle: Option<(f64, f64)>, quota: Option<(u64, Period)>) -> Plan {
        Plan {
            id: "p".into(),
            name: "plan".into(),
            throttle: throttle.map(|(rate, burst)| Throttle { rate, burst }),
            quota: quota.map(|(limit, period)| Quota { limit, period }),
        }
    }

    #[test]
    fn the_bucket_allows_a_burst_then_the_rate() {
        let t = Throttle { rate: 2.0, burst: 3.0 };
        let t0 = Instant::now();
        let mut b = TokenBucket::full(&t, t0);
        assert_eq!([b.take(&t, t0), b.take(&t, t0), b.take(&t, t0), b.take(&t, t0)], [true, true, true, false]);
        // 2 rps: one token after 0.5 s, not before.
        assert!(!b.take(&t, t0 + Duration::from_millis(400)));
        assert!(b.take(&t, t0 + Duration::from_millis(510)));
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..4).filter(|_| b.take(&t, later)).count(), 3);
    }

    #[test]
    fn the_quota_counts_per_period_and_resets_at_the_next() {
        let q = Quota { limit: 2, period: Period::Day };
        let day = 20_000 * 86_400;
        let mut c = QuotaCount::default();
        assert_eq!([c.take(&q, day + 10), c.take(&q, day + 20), c.take(&q, day + 86_399)], [true, true, false]);
        assert!(c.take(&q, day + 86_400), "a new day");
    }

    #[test]
    fn throttle_first_then_quota_per_key() {
        let l = Limiter::default();
        let p = plan(Some((1.0, 2.0)), Some((3, Period::Month)));
        let t0 = Instant::now();
        let now = 1_795_705_445;
        let verdicts: Vec<Verdict> = (0..3).map(|_| l.check(&p, "k1", t0, now)).collect();
        assert_eq!(verdicts, [Verdict::Allowed, Verdict::Allowed, Verdict::Throttled]);
        // Another key has its own bucket and quota.
        assert_eq!(l.check(&p, "k2", t0, now), Verdict::Allowed);
        // The throttled request did not count: one more is allowed once a token is back, then
        // the quota (3) is used up.
        let t1 = t0 + Duration::from_secs(5);
        assert_eq!(l.check(&p, "k1", t1, now), Verdict::Allowed);
        assert_eq!(l.check(&p, "k1", t1, now), Verdict::QuotaExceeded);
        // Today's use counts the allowed requests only, per key; nothing on another day.
        assert_eq!((l.used_today("p", "k1", now), l.used_today("p", "k2", now)), (3, 1));
        assert_eq!(l.used_today("p", "k1", now + 86_400), 0);
        assert_eq!(l.used_today("other-plan", "k1", now), 0);
    }

    #[test]
    fn a_plan_without_limits_allows_everything() {
        let l = Limiter::default();
        let p = plan(None, None);
        let t0 = Instant::now();
        assert!((0..1000).all(|_| l.check(&p, "k", t0, 0) == Verdict::Allowed));
    }
}
