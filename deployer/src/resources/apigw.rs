//! Helpers shared by the API Gateway resources (REST API, stage, usage plans, API keys, the
//! account's CloudWatch role): pacing by the control-plane quotas, patch operations, ownership by
//! tags, and the account-wide lists every one of them reads (one each per run).

use std::collections::HashMap;
use std::fmt::Display;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::{ApiKey, Op, PatchOperation, RestApi, UsagePlan, UsagePlanKey};

use crate::aws::AwsResultExt;
use crate::ctx::Ctx;
use crate::error::{AwsError, ErrorKind, Result};
use crate::ui::Event;
use crate::wait::{Backoff, pause};

/// The service name in our error messages.
pub const SERVICE: &str = "API Gateway";

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

    fn reserve(&self, operation: &str, now: Instant) -> Duration {
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

/// The start of API Gateway's answer to a write that met another write to the same REST API:
/// 409 ConflictException "Unable to complete operation due to concurrent modification. Please
/// try again later." API Gateway applies one write to an API's resources, methods and
/// integrations at a time (hashicorp/terraform-provider-aws#776, #16439: terraform retries this
/// error on every API Gateway call since v3.24.0). Other ConflictExceptions are real conflicts
/// ("Another resource with the same parent already has this name") and are not retried.
const CONCURRENT_MODIFICATION: &str = "Unable to complete operation due to concurrent modification";

/// Whether an API Gateway error is the concurrent-modification conflict, which clears by itself.
fn is_concurrent_modification(e: &AwsError) -> bool {
    e.code.as_deref() == Some("ConflictException") && e.message.starts_with(CONCURRENT_MODIFICATION)
}

/// Retrying a concurrent modification: the other write takes a fraction of a second.
const CONCURRENT_MODIFICATION_BACKOFF: Backoff = Backoff::new(200, 5000);

/// One API Gateway call, paced by its quota. A 429 anyway (another client spent the quota) is
/// retried after the quota's interval, doubling, for `ctx.timeouts.throttling`: never hammered.
/// A concurrent modification of the same REST API (see [`CONCURRENT_MODIFICATION`]) is retried
/// with its own backoff, for as long.
pub async fn call<T, F, Fut>(ctx: &Ctx, id: impl Display, operation: &'static str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let interval = ctx.apigw.interval(operation);
    let start = Instant::now();
    let mut attempt = 0u32;
    let mut conflicts = 0u32;
    loop {
        let wait = ctx.apigw.reserve(operation, Instant::now());
        if !wait.is_zero() {
            if wait >= Duration::from_secs(1) {
                ctx.progress(&id, format!("{operation}: waiting {wait:.0?} for API Gateway's rate limit"));
            }
            pause(ctx, &format!("API Gateway's rate limit for {operation}"), wait).await?;
        }
        match op().await {
            Err(e) if e.kind() == Some(ErrorKind::Throttled) && start.elapsed() < ctx.timeouts.throttling => {
                let delay = interval.saturating_mul(2u32.saturating_pow(attempt.min(5))).min(Duration::from_secs(60));
                ctx.printer.event(Event::Retrying {
                    id: id.to_string(),
                    what: format!("API Gateway throttling of {operation}"),
                    code: e.aws().and_then(|a| a.code.clone()).unwrap_or_default(),
                    delay,
                    elapsed: start.elapsed(),
                    deadline: ctx.timeouts.throttling,
                });
                pause(ctx, operation, delay).await?;
                attempt += 1;
            }
            Err(e) if e.aws().is_some_and(is_concurrent_modification) && start.elapsed() < ctx.timeouts.throttling => {
                let delay = CONCURRENT_MODIFICATION_BACKOFF.delay(conflicts);
                ctx.printer.event(Event::Retrying {
                    id: id.to_string(),
                    what: format!("another write to the REST API to finish before {operation}"),
                    code: e.aws().and_then(|a| a.code.clone()).unwrap_or_default(),
                    delay,
                    elapsed: start.elapsed(),
                    deadline: ctx.timeouts.throttling,
                });
                pause(ctx, operation, delay).await?;
                conflicts += 1;
            }
            other => return other,
        }
    }
}

/// One JSON-Patch operation of an Update* call.
pub fn patch(op: Op, path: impl Into<String>, value: impl Into<String>) -> PatchOperation {
    PatchOperation::builder().op(op).path(path).value(value).build()
}

/// A `replace` operation.
pub fn replace(path: impl Into<String>, value: impl Into<String>) -> PatchOperation {
    patch(Op::Replace, path, value)
}

/// The tags of an API Gateway item (`tags` of get_rest_apis / get_usage_plans / get_api_keys
/// items) as pairs for [`Ctx::owns`].
///
/// We read tags from the listed items, never with GetTags: moto 5.2.5 answers GetTags on
/// restapi / usageplan / apikey ARNs with a 404 (its `/tags/{arn}` route does not match ARNs
/// containing `/`), while the items carry the tags set at create time, as AWS's do.
pub fn tag_pairs(tags: Option<&HashMap<String, String>>) -> impl Iterator<Item = (&str, &str)> {
    tags.into_iter().flat_map(|m| m.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

pub use crate::error::gone_is_ok;

/// Ok(None) for "not found": the common shape of a Get that may miss.
pub fn found<T>(res: Result<T>) -> Result<Option<T>> {
    match res {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The partition of an ARN (`aws`, `aws-cn`, `aws-us-gov`), `aws` when it cannot be read.
pub fn partition_of(arn: &str) -> &str {
    match arn.split(':').nth(1) {
        Some(p) if arn.starts_with("arn:") && !p.is_empty() => p,
        _ => "aws",
    }
}

/// The DNS suffix of execute-api endpoints in a region: its partition's.
pub use crate::aws::dns_suffix;

/// Every REST API of the account and region (one paginated read per run).
pub async fn rest_apis(ctx: &Ctx) -> Result<Arc<Vec<RestApi>>> {
    ctx.once("apigateway:GetRestApis", || {
        call(ctx, "api", "GetRestApis", || async {
            ctx.aws
                .apigateway
                .get_rest_apis()
                .limit(500)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .aws(SERVICE, "GetRestApis")
        })
    })
    .await
}

/// The keys in one usage plan (GetUsagePlanKeys, every page), for `who`'s progress lines.
pub async fn usage_plan_keys(ctx: &Ctx, who: impl Display, plan_id: &str) -> Result<Vec<UsagePlanKey>> {
    call(ctx, who, "GetUsagePlanKeys", || async {
        ctx.aws
            .apigateway
            .get_usage_plan_keys()
            .usage_plan_id(plan_id)
            .limit(500)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .aws(SERVICE, "GetUsagePlanKeys")
    })
    .await
}

/// One API key with its value (GetApiKey, includeValue): for `keys` and `serve` only. Never log
/// the value.
pub async fn api_key_with_value(
    ctx: &Ctx,
    who: impl Display,
    id: &str,
) -> Result<aws_sdk_apigateway::operation::get_api_key::GetApiKeyOutput> {
    call(ctx, who, "GetApiKey", || async {
        ctx.aws.apigateway.get_api_key().api_key(id).include_value(true).send().await.aws(SERVICE, "GetApiKey")
    })
    .await
}

/// Every usage plan of the account and region (one paginated read per run).
pub async fn usage_plans(ctx: &Ctx) -> Result<Arc<Vec<UsagePlan>>> {
    ctx.once("apigateway:GetUsagePlans", || {
        call(ctx, "usage-plans", "GetUsagePlans", || async {
            ctx.aws
                .apigateway
                .get_usage_plans()
                .limit(500)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .aws(SERVICE, "GetUsagePlans")
        })
    })
    .await
}

/// Every API key of the account and region, without values (one paginated read per run).
pub async fn api_keys(ctx: &Ctx) -> Result<Arc<Vec<ApiKey>>> {
    ctx.once("apigateway:GetApiKeys", || {
        call(ctx, "api-keys", "GetApiKeys", || async {
            ctx.aws
                .apigateway
                .get_api_keys()
                .include_values(false)
                .limit(500)
                .into_paginator()
                .items()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .aws(SERVICE, "GetApiKeys")
        })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_suffixes() {
        assert_eq!(partition_of("arn:aws:lambda:us-east-1:1:function:f"), "aws");
        assert_eq!(partition_of("arn:aws-cn:lambda:cn-north-1:1:function:f"), "aws-cn");
        assert_eq!(partition_of("nonsense"), "aws");
        assert_eq!(dns_suffix("us-east-1"), "amazonaws.com");
        assert_eq!(dns_suffix("cn-north-1"), "amazonaws.com.cn");
    }

    #[test]
    fn only_the_concurrent_modification_conflict_is_retried() {
        let err = |code: &str, message: &str| AwsError {
            service: SERVICE,
            operation: "PutMethod",
            code: Some(code.to_string()),
            message: message.to_string(),
            kind: crate::error::classify(Some(code), message, Some(409)),
            status: Some(409),
        };
        assert!(is_concurrent_modification(&err(
            "ConflictException",
            "Unable to complete operation due to concurrent modification. Please try again later."
        )));
        assert!(!is_concurrent_modification(&err(
            "ConflictException",
            "Another resource with the same parent already has this name: {proxy+}"
        )));
        assert!(!is_concurrent_modification(&err("ConflictException", "Usage plan already exists")));
        assert!(!is_concurrent_modification(&err(
            "BadRequestException",
            "Unable to complete operation due to concurrent modification. Please try again later."
        )));
    }

    #[test]
    fn tag_pairs_of_absent_tags_is_empty() {
        assert_eq!(tag_pairs(None).count(), 0);
        let m: HashMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert_eq!(tag_pairs(Some(&m)).collect::<Vec<_>>(), vec![("a", "b")]);
    }

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
