//! API Gateway control-plane quotas as token buckets per account (one proxy: one account).
//! Past a quota API Gateway answers 429 TooManyRequestsException "Too Many Requests"
//! (aws-behaviours.md §4.4; aws/aws-cdk#15573, pulumi/pulumi-cdk#277).

use std::collections::HashMap;
use std::time::Instant;

use super::timings::{ApiGatewayQuotas, Rate};
use crate::proxy::Fault;

/// A token bucket: full at first, refilled continuously.
#[derive(Debug, Clone, Copy)]
pub struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Bucket {
    pub fn full(rate: Rate, now: Instant) -> Bucket {
        Bucket { tokens: f64::from(rate.burst), last: now }
    }

    /// Take one token if there is one.
    pub fn take(&mut self, rate: Rate, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate.per_second()).min(f64::from(rate.burst));
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The account's buckets: one per named operation, one shared by all others.
#[derive(Debug, Default)]
pub struct Buckets(HashMap<&'static str, Bucket>);

const SHARED: &str = "(all other operations)";

impl Buckets {
    /// Take a token for `operation`, or the 429 API Gateway answers.
    pub fn take(&mut self, operation: &str, quotas: &ApiGatewayQuotas, now: Instant) -> Option<Fault> {
        let (name, rate) = quotas.of(operation);
        let bucket = self.0.entry(name.unwrap_or(SHARED)).or_insert_with(|| Bucket::full(rate, now));
        (!bucket.take(rate, now)).then(|| Fault {
            status: 429,
            code: "TooManyRequestsException".into(),
            message: "Too Many Requests".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn buckets_refill_at_their_rate_and_cap_at_their_burst() {
        let t0 = Instant::now();
        let q = ApiGatewayQuotas::aws();
        let mut b = Buckets::default();
        // DeleteRestApi: 1 per 30 s.
        assert!(b.take("DeleteRestApi", &q, t0).is_none());
        let f = b.take("DeleteRestApi", &q, t0 + Duration::from_secs(29)).unwrap();
        assert_eq!(
            (f.status, f.code.as_str(), f.message.as_str()),
            (429, "TooManyRequestsException", "Too Many Requests")
        );
        assert!(b.take("DeleteRestApi", &q, t0 + Duration::from_secs(31)).is_none());
        // Everything else: burst 40, then 10 per second.
        let got = (0..41).filter(|_| b.take("GetRestApis", &q, t0).is_none()).count();
        assert_eq!(got, 40);
        assert!(b.take("GetStage", &q, t0).is_some(), "the other operations share one bucket");
        assert!(b.take("GetStage", &q, t0 + Duration::from_millis(100)).is_none());
        // A named operation's bucket is its own.
        assert!(b.take("CreateRestApi", &q, t0).is_none());
        // GetResources: 5 per 2 s.
        let got = (0..6).filter(|_| b.take("GetResources", &q, t0).is_none()).count();
        assert_eq!(got, 5);
        assert!(b.take("GetResources", &q, t0 + Duration::from_millis(400)).is_none());
    }
}
