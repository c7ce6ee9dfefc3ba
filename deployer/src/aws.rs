//! The SDK configuration (profile / region / endpoint / credentials) and the one struct that
//! holds every client. Also: mapping SDK errors to [`AwsError`], the retry classifier that keeps
//! quota errors from being retried, the interceptor that counts calls, and the [`Fence`] that
//! stops a run's changes once it can no longer be sure it holds the stack lock.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_smithy_http_client::{Builder as HttpBuilder, tls};
use aws_smithy_runtime_api::box_error::BoxError;
use aws_smithy_runtime_api::client::interceptors::Intercept;
use aws_smithy_runtime_api::client::interceptors::context::{
    BeforeSerializationInterceptorContextRef, InterceptorContext,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpResponse, Metadata};
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_runtime_api::client::retries::classifiers::{ClassifyRetry, RetryAction, RetryClassifierPriority};
use aws_smithy_types::config_bag::ConfigBag;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use crate::error::{AwsError, Codes, Error, ErrorKind, Result, chain, classify_with};

/// Where the SDK configuration comes from: flags > environment > config file > AWS defaults.
#[derive(Debug, Clone, Default)]
pub struct AwsSettings {
    pub profile: Option<String>,
    pub region: Option<String>,
    pub endpoint_url: Option<String>,
    /// Fixed dummy credentials, for emulators only.
    pub dummy_credentials: bool,
    /// API Gateway's quotas times this (1 against AWS; an emulator's own, faster quotas:
    /// `MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP`).
    pub quota_speedup: f64,
}

/// Every client the stack needs, built once from one [`SdkConfig`].
#[derive(Clone)]
pub struct Clients {
    pub region: String,
    pub ec2: aws_sdk_ec2::Client,
    pub lambda: aws_sdk_lambda::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub apigateway: aws_sdk_apigateway::Client,
    pub logs: aws_sdk_cloudwatchlogs::Client,
    pub iam: aws_sdk_iam::Client,
    pub sts: aws_sdk_sts::Client,
    pub cloudformation: aws_sdk_cloudformation::Client,
    pub cloudtrail: aws_sdk_cloudtrail::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub wafv2: aws_sdk_wafv2::Client,
    /// X-Ray: `traces` reads the stack's traces and service map (reads only).
    pub xray: aws_sdk_xray::Client,
    /// Calls on the stack's resources.
    pub calls: CallCounter,
    /// DynamoDB for the stack lock only, counted apart: taking and releasing the lock is not a
    /// change to the stack.
    pub lock_dynamodb: aws_sdk_dynamodb::Client,
    pub lock_calls: CallCounter,
    /// Closed when this run may no longer hold the stack lock: every stack client refuses its
    /// mutating calls from then on (the lock's own client is not fenced).
    pub fence: Fence,
    /// The credentials the clients sign with (`serve` hands them to the function it runs).
    pub credentials: Option<aws_sdk_sts::config::SharedCredentialsProvider>,
}

macro_rules! client {
    ($krate:ident, $sdk:expr, $calls:expr, $retries:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .retry_classifier(QuotaIsNotRetried)
                .interceptor($calls.clone())
                .interceptor($retries.clone())
                .build(),
        )
    };
    ($krate:ident, $sdk:expr, $calls:expr, $retries:expr, $fence:expr) => {
        $krate::Client::from_conf(
            $krate::config::Builder::from($sdk)
                .retry_classifier(QuotaIsNotRetried)
                .interceptor($calls.clone())
                .interceptor($retries.clone())
                .interceptor($fence.clone())
                .build(),
        )
    };
}

/// The SDK app name: `app/movies-stack` in the user agent.
pub const APP_NAME: &str = "movies-stack";

/// Who the credentials are.
#[derive(Debug, Clone)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

impl Clients {
    /// Who the credentials are: STS GetCallerIdentity. It needs no permission, so its failure is
    /// about the credentials, the region or the endpoint.
    pub async fn caller(&self) -> Result<Identity> {
        let out = self.sts.get_caller_identity().send().await.aws("STS", "GetCallerIdentity")?;
        Ok(Identity {
            account: out.account().unwrap_or_default().to_string(),
            arn: out.arn().unwrap_or_default().to_string(),
        })
    }

    /// The account a policy is printed for: `given` (`--account`), else the caller's.
    pub async fn account_id(&self, given: Option<&str>) -> Result<String> {
        Ok(match given {
            Some(a) => a.to_string(),
            None => self.caller().await?.account,
        })
    }

    /// `reporter`: where the SDK's own retries are announced (a progress line each).
    pub async fn new(
        settings: &AwsSettings,
        reporter: Option<std::sync::Arc<dyn crate::ui::Printer>>,
    ) -> Result<Clients> {
        let http = HttpBuilder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .build_https();
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .http_client(http)
            // `app/movies-stack` in every request's user agent: CloudTrail shows which calls the
            // tool made, and the test proxy tells them from the function's and the tests' own.
            .app_name(aws_config::AppName::new(APP_NAME).expect("a valid app name"))
            // Throttling and 5xx are retried by the SDK a few times; longer waits (IAM
            // propagation, API Gateway's 1-per-N-seconds limits) are ours, with progress lines.
            .retry_config(RetryConfig::standard().with_max_attempts(4))
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .operation_attempt_timeout(Duration::from_secs(60))
                    .build(),
            );
        if let Some(profile) = &settings.profile {
            loader = loader.profile_name(profile);
        }
        if let Some(region) = &settings.region {
            loader = loader.region(Region::new(region.clone()));
        }
        if let Some(url) = &settings.endpoint_url {
            loader = loader.endpoint_url(url);
        }
        if settings.dummy_credentials {
            loader = loader.credentials_provider(aws_sdk_sts::config::Credentials::new(
                "testing",
                "testing",
                None,
                None,
                "movies-stack-dummy-credentials",
            ));
        }
        let sdk: SdkConfig = loader.load().await;
        let region = match sdk.region() {
            Some(r) => r.to_string(),
            None => {
                return Err(Error::input(
                    "no AWS region: pass --region, set AWS_REGION, set `aws.region` in the config file, or give the profile a region",
                ));
            }
        };
        validate_region(&region)?;
        let calls = CallCounter::default();
        let lock_calls = CallCounter::default();
        let retries = RetryAnnouncer(reporter);
        // API Gateway's control plane throttles every call, reads included (10 rps account-wide,
        // some operations 1 per 5-30 s): give its SDK retries a longer runway (exponential backoff
        // with jitter, capped at 20 s: about a minute in all). Writes add our own longer retry.
        let apigw_sdk = sdk
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(10).with_max_backoff(Duration::from_secs(20)))
            .build();
        // EC2 throttles each account by token buckets per action (RequestLimitExceeded), often
        // for several seconds under load: 4 attempts can all land in one throttled stretch (the
        // suite's fault test saw it). Eight, with backoff capped at 20 s, as for API Gateway.
        let ec2_sdk = sdk
            .to_builder()
            .retry_config(RetryConfig::standard().with_max_attempts(8).with_max_backoff(Duration::from_secs(20)))
            .build();
        let fence = Fence::default();
        Ok(Clients {
            lock_dynamodb: client!(aws_sdk_dynamodb, &sdk, lock_calls, retries),
            lock_calls,
            region,
            ec2: client!(aws_sdk_ec2, &ec2_sdk, calls, retries, fence),
            lambda: client!(aws_sdk_lambda, &sdk, calls, retries, fence),
            dynamodb: client!(aws_sdk_dynamodb, &sdk, calls, retries, fence),
            apigateway: client!(aws_sdk_apigateway, &apigw_sdk, calls, retries, fence),
            logs: client!(aws_sdk_cloudwatchlogs, &sdk, calls, retries, fence),
            iam: client!(aws_sdk_iam, &sdk, calls, retries, fence),
            sts: client!(aws_sdk_sts, &sdk, calls, retries, fence),
            cloudformation: client!(aws_sdk_cloudformation, &sdk, calls, retries, fence),
            cloudtrail: client!(aws_sdk_cloudtrail, &sdk, calls, retries, fence),
            cloudwatch: client!(aws_sdk_cloudwatch, &sdk, calls, retries, fence),
            wafv2: client!(aws_sdk_wafv2, &sdk, calls, retries, fence),
            xray: client!(aws_sdk_xray, &sdk, calls, retries, fence),
            fence,
            calls,
            credentials: sdk.credentials_provider(),
        })
    }
}

/// Whether a named profile exists in the shared config or credentials file (the files
/// `AWS_CONFIG_FILE` / `AWS_SHARED_CREDENTIALS_FILE` name, else `~/.aws/config` and
/// `~/.aws/credentials`). Err: the files looked at, for the message. Checked before any call:
/// the SDK itself only reports "no credentials found in chain" for a misspelt profile.
pub fn check_profile_exists(name: &str) -> std::result::Result<(), String> {
    let home = std::env::var_os("HOME").map(std::path::PathBuf::from).unwrap_or_default();
    let config =
        std::env::var_os("AWS_CONFIG_FILE").map(std::path::PathBuf::from).unwrap_or_else(|| home.join(".aws/config"));
    let creds = std::env::var_os("AWS_SHARED_CREDENTIALS_FILE")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| home.join(".aws/credentials"));
    let sections = |path: &std::path::Path| -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().strip_prefix('[')?.strip_suffix(']').map(|s| s.trim().to_string()))
            .collect()
    };
    let in_config = sections(&config)
        .iter()
        .any(|s| s.strip_prefix("profile").map(str::trim) == Some(name) || (name == "default" && s == "default"));
    let in_creds = sections(&creds).iter().any(|s| s == name);
    if in_config || in_creds { Ok(()) } else { Err(format!("{} or {}", config.display(), creds.display())) }
}

/// An AWS partition: its name in ARNs and the DNS suffix of its endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Partition {
    pub id: &'static str,
    pub dns_suffix: &'static str,
}

const AWS: Partition = Partition { id: "aws", dns_suffix: "amazonaws.com" };

/// The partitions the SDK knows (smithy-rs `partitions.json`, embedded in each SDK crate's
/// `endpoint_lib.rs`; aws-sdk-lambda 1.156.0), each with the leading parts of its regions' names:
/// a region is that prefix, then `-\w+-\d+` (the partition's `regionRegex`). The SDK resolves a
/// name that matches none to `aws`: we refuse it instead, before any call.
const PARTITIONS: &[(&[&str], Partition)] = &[
    (&["us", "gov"], Partition { id: "aws-us-gov", dns_suffix: "amazonaws.com" }),
    (&["us", "iso"], Partition { id: "aws-iso", dns_suffix: "c2s.ic.gov" }),
    (&["us", "isob"], Partition { id: "aws-iso-b", dns_suffix: "sc2s.sgov.gov" }),
    (&["eu", "isoe"], Partition { id: "aws-iso-e", dns_suffix: "cloud.adc-e.uk" }),
    (&["us", "isof"], Partition { id: "aws-iso-f", dns_suffix: "csp.hci.ic.gov" }),
    (&["eusc", "de"], Partition { id: "aws-eusc", dns_suffix: "amazonaws.eu" }),
    (&["cn"], Partition { id: "aws-cn", dns_suffix: "amazonaws.com.cn" }),
    (&["us"], AWS),
    (&["eu"], AWS),
    (&["ap"], AWS),
    (&["sa"], AWS),
    (&["ca"], AWS),
    (&["me"], AWS),
    (&["af"], AWS),
    (&["il"], AWS),
    (&["mx"], AWS),
];

/// The partition of a region name (`None`: a name no partition has). Pure.
pub fn partition_of_region(region: &str) -> Option<Partition> {
    let parts: Vec<&str> = region.split('-').collect();
    let word = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let number = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit());
    PARTITIONS
        .iter()
        .find(|(prefix, _)| {
            parts.len() == prefix.len() + 2
                && parts.starts_with(prefix)
                && word(parts[prefix.len()])
                && number(parts[prefix.len() + 1])
        })
        .map(|(_, p)| *p)
}

/// The partition of a region: `aws`, `aws-cn`, `aws-us-gov`, `aws-iso`, ... (`aws` for a name
/// [`validate_region`] refuses, which every command checks before its first call).
pub fn partition(region: &str) -> &'static str {
    partition_of_region(region).unwrap_or(AWS).id
}

/// The DNS suffix of a region's endpoints (`amazonaws.com`, `amazonaws.com.cn`, `c2s.ic.gov`...).
pub fn dns_suffix(region: &str) -> &'static str {
    partition_of_region(region).unwrap_or(AWS).dns_suffix
}

/// `us-east-1`, `eu-west-3`, `us-gov-west-1`, `cn-north-1`, `us-iso-east-1`, `eusc-de-east-1`...:
/// a region of a partition the SDK knows.
pub fn validate_region(region: &str) -> Result<()> {
    if partition_of_region(region).is_some() {
        Ok(())
    } else {
        Err(Error::input(format!(
            "region `{region}` is not a region of any AWS partition this tool knows (expected something like \
             us-east-1, cn-north-1, us-gov-west-1, us-iso-east-1, us-isob-east-1, eu-isoe-west-1, us-isof-south-1 or \
             eusc-de-east-1)"
        )))
    }
}

/// Map an SDK result to ours, naming the service and operation.
pub trait AwsResultExt<T> {
    fn aws(self, service: &'static str, operation: &'static str) -> Result<T>;
    /// As [`AwsResultExt::aws`], for a kind whose calls meet codes of their own (`codes`, listed
    /// in its module), classified before the generic ones ([`classify_with`]).
    fn aws_with(self, service: &'static str, operation: &'static str, codes: &Codes) -> Result<T>;
}

impl<T, E> AwsResultExt<T> for std::result::Result<T, SdkError<E, HttpResponse>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    fn aws(self, service: &'static str, operation: &'static str) -> Result<T> {
        self.aws_with(service, operation, &[])
    }

    fn aws_with(self, service: &'static str, operation: &'static str, codes: &Codes) -> Result<T> {
        self.map_err(|e| Error::Aws(aws_error(&e, service, operation, codes)))
    }
}

pub fn aws_error<E>(
    e: &SdkError<E, HttpResponse>,
    service: &'static str,
    operation: &'static str,
    codes: &Codes,
) -> AwsError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            let code = err.code().map(str::to_string);
            let message = err.message().map(str::to_string).unwrap_or_default();
            let kind = classify_with(codes, code.as_deref(), &message, status);
            AwsError { service, operation, code, message, kind, status }
        }
        other => {
            let message = chain(other);
            let kind = if message.contains("credential") || message.contains("profile") {
                ErrorKind::Auth
            } else {
                ErrorKind::Fatal
            };
            AwsError { service, operation, code: None, message, kind, status }
        }
    }
}

/// API Gateway and DynamoDB call quota errors `LimitExceededException`, and the SDK's standard
/// classifier treats that code as throttling. A quota does not go away by retrying: forbid it.
#[derive(Debug)]
struct QuotaIsNotRetried;

impl ClassifyRetry for QuotaIsNotRetried {
    fn classify_retry(&self, ctx: &InterceptorContext) -> RetryAction {
        let Some(Err(err)) = ctx.output_or_error() else {
            return RetryAction::NoActionIndicated;
        };
        // The operation error is the service's own enum; its Debug output carries the modeled
        // variant name or the error code. REST services also send the code in a header.
        let header = ctx
            .response()
            .and_then(|r| r.headers().get("x-amzn-errortype"))
            .map(|v| v.split(':').next().unwrap_or(v).to_string());
        let text = err.as_operation_error().map(|e| format!("{e:?}")).unwrap_or_default();
        if header.as_deref() == Some("LimitExceededException") || text.contains("LimitExceededException") {
            RetryAction::RetryForbidden
        } else {
            RetryAction::NoActionIndicated
        }
    }

    fn name(&self) -> &'static str {
        "QuotaIsNotRetried"
    }

    fn priority(&self) -> RetryClassifierPriority {
        RetryClassifierPriority::run_after(RetryClassifierPriority::transient_error_classifier())
    }
}

/// Says on the progress output when the SDK retries a call (throttling, 5xx), so a slow run
/// shows why it is slow.
#[derive(Clone)]
struct RetryAnnouncer(Option<std::sync::Arc<dyn crate::ui::Printer>>);

impl std::fmt::Debug for RetryAnnouncer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RetryAnnouncer")
    }
}

impl Intercept for RetryAnnouncer {
    fn name(&self) -> &'static str {
        "RetryAnnouncer"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let attempt =
            cfg.load::<aws_smithy_runtime_api::client::retries::RequestAttempts>().map(|a| a.attempts()).unwrap_or(1);
        if let (Some(reporter), true) = (&self.0, attempt > 1) {
            let op = cfg.load::<Metadata>().map(|m| format!("{} {}", m.service(), m.name())).unwrap_or_default();
            reporter.event(crate::events::Event::SdkRetry { operation: op, attempt });
        }
        Ok(())
    }
}

/// Counts every operation the tool starts, by service and operation (for the run summary).
#[derive(Debug, Clone, Default)]
pub struct CallCounter(Arc<Mutex<BTreeMap<(String, String), u32>>>);

impl CallCounter {
    pub fn snapshot(&self) -> BTreeMap<(String, String), u32> {
        self.0.lock().expect("counter lock").clone()
    }

    /// (all calls, mutating calls)
    pub fn totals(&self) -> (u32, u32) {
        let snap = self.snapshot();
        let all = snap.values().sum();
        let mutating = snap.iter().filter(|((_, op), _)| is_mutating(op)).map(|(_, n)| n).sum();
        (all, mutating)
    }
}

/// Whether an operation name changes anything (read-only operations are named Describe*, Get*,
/// List*, ...).
pub fn is_mutating(operation: &str) -> bool {
    const READS: [&str; 6] = ["Describe", "Get", "List", "BatchGet", "Query", "Scan"];
    !READS.iter().any(|p| operation.starts_with(p)) && operation != "LookupEvents"
}

impl Intercept for CallCounter {
    fn name(&self) -> &'static str {
        "CallCounter"
    }

    fn read_before_serialization(
        &self,
        _context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        if let Some(meta) = cfg.load::<Metadata>() {
            let mut map = self.0.lock().expect("counter lock");
            *map.entry((meta.service().to_string(), meta.name().to_string())).or_default() += 1;
        }
        Ok(())
    }
}

/// The stack lock's fence, on this run's own monotonic clock. Open until the lock is taken
/// ([`Fence::hold`]); then open only while the last successful renewal (timed from before it was
/// sent) is younger than the lease minus a margin, and shut for good once the lock was taken
/// away. AWS cannot refuse a run that lost its lease, so the run refuses itself: each attempt of
/// a mutating call on a stack client checks the fence first.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Mutex<FenceState>>);

#[derive(Debug, Default)]
struct FenceState {
    /// (sent at, how long after it this run may still change the stack)
    held: Option<(Instant, Duration)>,
    lost: Option<String>,
}

impl Fence {
    /// The lock was taken (or renewed) by a request sent at `sent`: changes are allowed until
    /// `sent + safe_for`.
    pub fn hold(&self, sent: Instant, safe_for: Duration) {
        let mut st = self.0.lock().expect("fence lock");
        if st.lost.is_none() {
            st.held = Some((sent, safe_for));
        }
    }

    /// The lock was released: nothing to time any more (a lost lock stays lost).
    pub fn release(&self) {
        self.0.lock().expect("fence lock").held = None;
    }

    /// The lock is someone else's now: no change from this run any more.
    pub fn lose(&self, why: impl Into<String>) {
        self.0.lock().expect("fence lock").lost.get_or_insert_with(|| why.into());
    }

    /// Why this run may not change the stack any more; `None` while it may (or before the lock
    /// is held: commands that take no lock are never fenced).
    pub fn closed(&self) -> Option<String> {
        let st = self.0.lock().expect("fence lock");
        if let Some(why) = &st.lost {
            return Some(why.clone());
        }
        let (sent, safe_for) = st.held?;
        let age = sent.elapsed();
        (age > safe_for).then(|| {
            format!(
                "its lock was last renewed {:.0} s ago, past the {:.0} s this run may keep changing the stack without \
                 renewing it",
                age.as_secs_f64(),
                safe_for.as_secs_f64()
            )
        })
    }
}

/// A mutating call refused by the [`Fence`].
#[derive(Debug, thiserror::Error)]
#[error("this run stopped before {operation}: it may no longer hold the stack lock ({why})")]
pub struct Fenced {
    pub operation: String,
    pub why: String,
}

impl Intercept for Fence {
    fn name(&self) -> &'static str {
        "Fence"
    }

    fn read_before_attempt(
        &self,
        _context: &aws_smithy_runtime_api::client::interceptors::context::BeforeTransmitInterceptorContextRef<'_>,
        _components: &aws_smithy_runtime_api::client::runtime_components::RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> std::result::Result<(), BoxError> {
        let Some(meta) = cfg.load::<Metadata>() else { return Ok(()) };
        if !is_mutating(meta.name()) {
            return Ok(());
        }
        match self.closed() {
            Some(why) => Err(Box::new(Fenced { operation: format!("{} {}", meta.service(), meta.name()), why })),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_opens_with_the_lock_and_closes_with_its_age_or_its_loss() {
        let fence = Fence::default();
        assert_eq!(fence.closed(), None, "no lock held: never fenced");
        fence.hold(Instant::now(), Duration::from_secs(50));
        assert_eq!(fence.closed(), None, "just renewed");
        fence.hold(Instant::now() - Duration::from_secs(51), Duration::from_secs(50));
        assert!(fence.closed().is_some_and(|w| w.contains("51 s ago")), "{:?}", fence.closed());
        fence.hold(Instant::now(), Duration::from_secs(50));
        assert_eq!(fence.closed(), None, "renewed again");
        fence.lose("taken by bob");
        fence.hold(Instant::now(), Duration::from_secs(50));
        assert_eq!(fence.closed().as_deref(), Some("taken by bob"), "a lost lock stays lost");
    }

    #[test]
    fn region_names() {
        for ok in ["us-east-1", "eu-west-3", "us-gov-west-1", "ap-southeast-4", "il-central-1", "eusc-de-east-1"] {
            validate_region(ok).unwrap();
        }
        for bad in ["useast1", "us-east", "US-EAST-1", "us-east-1a", "", "moon-base-x", "xx-east-1", "eusc-east-1"] {
            let e = validate_region(bad).unwrap_err();
            assert_eq!(e.exit_code(), crate::error::exit::INPUT, "{bad}");
            assert!(!e.to_string().contains('\n'), "one line: {e}");
        }
    }

    #[test]
    fn every_partition_the_sdk_knows_with_its_dns_suffix() {
        let cases = [
            ("us-east-1", "aws", "amazonaws.com"),
            ("mx-central-1", "aws", "amazonaws.com"),
            ("cn-northwest-1", "aws-cn", "amazonaws.com.cn"),
            ("us-gov-west-1", "aws-us-gov", "amazonaws.com"),
            ("us-iso-east-1", "aws-iso", "c2s.ic.gov"),
            ("us-isob-east-1", "aws-iso-b", "sc2s.sgov.gov"),
            ("eu-isoe-west-1", "aws-iso-e", "cloud.adc-e.uk"),
            ("us-isof-south-1", "aws-iso-f", "csp.hci.ic.gov"),
            ("eusc-de-east-1", "aws-eusc", "amazonaws.eu"),
        ];
        for (region, id, suffix) in cases {
            assert_eq!((partition(region), dns_suffix(region)), (id, suffix), "{region}");
        }
        assert_eq!(partition_of_region("jp-east-1"), None);
    }

    #[test]
    fn mutating_operations() {
        assert!(is_mutating("CreateVpc"));
        assert!(is_mutating("PutItem"));
        assert!(is_mutating("UpdateFunctionCode"));
        assert!(!is_mutating("DescribeVpcs"));
        assert!(!is_mutating("GetRestApis"));
        assert!(!is_mutating("ListTagsOfResource"));
    }
}
