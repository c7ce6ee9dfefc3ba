//! API Gateway's control-plane quotas, spent as fast as they allow: a token bucket per
//! operation that every API Gateway call takes a token of before it goes out. Knows nothing of
//! the crate: the context (`ctx.rs`) holds one, `resources/apigw.rs` spends it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// API Gateway's control-plane quotas (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html,
/// "API Gateway quotas for creating, deploying and managing an API"; per account, not raisable):
/// (operation, requests, per seconds, burst). Regional CreateRestApi (ours) is 1 per 3 s.
const QUOTAS: &[(&str, f64, f64, f64)] = &[
    ("CreateRestApi", 1.0, 3.0, 1.0),
    ("DeleteRestApi", 1.0, 30.0, 1.0),
    ("CreateDeployment", 1.0, 5.0, 1.0),
    ("UpdateAccount", 1.0, 20.0, 1.0),
    ("UpdateUsagePlan", 1.0, 20.0, 1.0),
    ("CreateApiKey", 5.0, 1.0, 5.0),
    ("DeleteApiKey", 5.0, 1.0, 5.0),
    ("CreateResource", 5.0, 1.0, 5.0),
    ("DeleteResource", 5.0, 1.0, 5.0),
    ("GetResources", 5.0, 2.0, 5.0),
];
/// The share of AWS's rates the pacer spends. Our clock starts when a call takes its token, AWS's
/// when the request arrives: a call paced to exactly the quota's interval arrives a few
/// milliseconds early as often as late, and is then refused (the benchmark saw UpdateUsagePlan
/// 19.999 s after the previous one answered 429). 5% under the rate costs 1 s on a 1-per-20-s
/// quota; a 429 costs a retry.
const PACE: f64 = 0.95;
/// Every other operation, together: 10 requests per second, burst 40.
const OTHERS: (f64, f64, f64) = (10.0, 1.0, 40.0);
const OTHERS_KEY: &str = "(all other operations)";

fn quota(operation: &str) -> (&'static str, f64, f64, f64) {
    QUOTAS
        .iter()
        .find(|(op, ..)| *op == operation)
        .map(|&(op, n, per, burst)| (op, n, per, burst))
        .unwrap_or((OTHERS_KEY, OTHERS.0, OTHERS.1, OTHERS.2))
}

/// A token bucket: `capacity` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
struct Bucket {
    tokens: f64,
    capacity: f64,
    rate: f64,
    last: Instant,
}

impl Bucket {
    fn new(capacity: f64, rate: f64, now: Instant) -> Bucket {
        Bucket { tokens: capacity, capacity, rate, last: now }
    }

    /// Take a token; how long to wait before using it (tokens may go negative: a queue).
    fn reserve(&mut self, now: Instant) -> Duration {
        let refill = now.saturating_duration_since(self.last).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.capacity);
        self.last = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 { Duration::ZERO } else { Duration::from_secs_f64(-self.tokens / self.rate) }
    }
}

/// Spends API Gateway's quotas as fast as they allow: every call takes a token of its bucket
/// first. Independent calls go out at once while tokens last; a 1-per-30-s call waits its turn.
#[derive(Debug)]
pub struct Pacer {
    buckets: Mutex<HashMap<&'static str, Bucket>>,
    /// AWS's rates times this: 1 against AWS. An emulator whose quotas are faster than AWS's
    /// (the test suite's strict model runs them 10 times faster) may be paced faster
    /// ([`EMULATOR_QUOTA_SPEEDUP`]); never above 1 without an endpoint override.
    speedup: f64,
}

/// The environment variable that sets [`Pacer`]'s speed-up against an emulator.
pub const EMULATOR_QUOTA_SPEEDUP: &str = "MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP";

impl Default for Pacer {
    fn default() -> Self {
        Pacer::with_speedup(1.0)
    }
}

impl Pacer {
    /// `speedup` below 1 (or not a number) counts as 1: never slower than AWS's quotas.
    pub fn with_speedup(speedup: f64) -> Pacer {
        let speedup = if speedup >= 1.0 { speedup } else { 1.0 };
        Pacer { buckets: Mutex::new(HashMap::new()), speedup }
    }

    pub fn reserve(&self, operation: &str, now: Instant) -> Duration {
        let (key, n, per, burst) = quota(operation);
        let rate = n / per * self.speedup * PACE;
        let mut buckets = self.buckets.lock().expect("pacer lock");
        buckets.entry(key).or_insert_with(|| Bucket::new(burst, rate, now)).reserve(now)
    }

    /// The interval between two calls of `operation` at its quota's rate (AWS's, not [`PACE`]'s).
    pub fn interval(&self, operation: &str) -> Duration {
        let (_, n, per, _) = quota(operation);
        Duration::from_secs_f64(per / n / self.speedup)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_spend_the_burst_then_pace_at_the_rate() {
        let t0 = Instant::now();
        let pacer = Pacer::default();
        // 5% under AWS's rates: `secs` of AWS's spacing is `paced(secs)` of ours.
        let paced = |secs: f64| (secs / PACE * 1000.0) as u128;
        // DeleteRestApi: 1 per 30 s, no burst: the second waits 30 s (+5%), the third 60 s.
        let waits: Vec<u128> = (0..3).map(|_| pacer.reserve("DeleteRestApi", t0).as_millis()).collect();
        assert_eq!(waits, [0, paced(30.0), paced(60.0)]);
        // Everything else shares 10 rps with a burst of 40: 40 at once, then 0.1 s apart.
        let others: Vec<Duration> =
            (0..42).map(|i| pacer.reserve(if i % 2 == 0 { "GetStage" } else { "PutMethod" }, t0)).collect();
        assert!(others[..40].iter().all(|w| w.is_zero()));
        assert_eq!(others[40].as_millis(), paced(0.1));
        assert_eq!(others[41].as_millis(), paced(0.2));
        // Time refills: a second later the shared bucket has 10 tokens again (minus the queue).
        let later = pacer.reserve("GetStage", t0 + Duration::from_secs(3));
        assert!(later.is_zero(), "{later:?}");
        // CreateDeployment has its own bucket, untouched by the others.
        assert!(pacer.reserve("CreateDeployment", t0).is_zero());
        assert_eq!(pacer.reserve("CreateDeployment", t0).as_millis(), paced(5.0));
    }

    #[test]
    fn an_emulator_with_faster_quotas_is_paced_faster() {
        let t0 = Instant::now();
        let pacer = Pacer::with_speedup(10.0);
        let waits: Vec<u128> = (0..3).map(|_| pacer.reserve("DeleteRestApi", t0).as_millis()).collect();
        assert_eq!(waits, [0, (3000.0 / PACE) as u128, (6000.0 / PACE) as u128]);
        assert_eq!(pacer.interval("UpdateUsagePlan"), Duration::from_secs(2));
        assert_eq!(Pacer::default().interval("UpdateUsagePlan"), Duration::from_secs(20));
    }
}
