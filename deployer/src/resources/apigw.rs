//! Helpers shared by the API Gateway resources (REST API, stage, usage plans, API keys, the
//! account's CloudWatch role): pacing by the control-plane quotas, patch operations, ownership by
//! tags, and the account-wide lists every one of them reads (one each per run).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::{ApiKey, Op, PatchOperation, RestApi, UsagePlan, UsagePlanKey};

use aws_smithy_async::future::pagination_stream::PaginationStream;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;

use super::{Grant, Scope, request_tagged, resource_tagged};
use crate::aws::AwsResultExt;
use crate::ctx::Ctx;
use crate::error::{AwsError, ErrorKind, Result};
use crate::events::Event;
use crate::ids::Name;
use crate::wait::{backoff, pause};

/// The service name in our error messages.
pub const SERVICE: &str = "API Gateway";

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

/// One API Gateway call, paced by its quota. A 429 anyway (another client spent the quota) is
/// retried after the quota's interval, doubling, for `ctx.timeouts.throttling`: never hammered.
/// A concurrent modification of the same REST API (see [`CONCURRENT_MODIFICATION`]) is retried
/// with its own backoff, for as long.
pub async fn call<T, F, Fut>(ctx: &Ctx, id: impl Into<Name>, operation: &'static str, mut op: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T>>,
{
    let id: Name = id.into();
    let interval = ctx.apigw.interval(operation);
    let start = Instant::now();
    let mut attempt = 0u32;
    let mut conflicts = 0u32;
    loop {
        let wait = ctx.apigw.reserve(operation, Instant::now());
        if !wait.is_zero() {
            if wait >= Duration::from_secs(1) {
                ctx.progress(id, format!("{operation}: waiting {wait:.0?} for API Gateway's rate limit"));
            }
            pause(ctx, &format!("API Gateway's rate limit for {operation}"), wait).await?;
        }
        match op().await {
            Err(e) if e.kind() == Some(ErrorKind::Throttled) && start.elapsed() < ctx.timeouts.throttling => {
                let delay = interval.saturating_mul(2u32.saturating_pow(attempt.min(5))).min(Duration::from_secs(60));
                ctx.printer.event(Event::Retrying {
                    id,
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
                let delay = backoff::CONCURRENT_MODIFICATION.delay(conflicts);
                ctx.printer.event(Event::Retrying {
                    id,
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

/// Every item of a paginated API Gateway list, every page (`limit(500)`), as one paced call.
pub async fn list<T, E>(
    ctx: &Ctx,
    who: impl Into<Name>,
    operation: &'static str,
    items: impl Fn() -> PaginationStream<std::result::Result<T, SdkError<E, HttpResponse>>>,
) -> Result<Vec<T>>
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    call(ctx, who, operation, || async {
        items().collect::<std::result::Result<Vec<_>, _>>().await.aws(SERVICE, operation)
    })
    .await
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
        list(ctx, Name::of("api"), "GetRestApis", || {
            ctx.aws.apigateway.get_rest_apis().limit(500).into_paginator().items().send()
        })
    })
    .await
}

/// The keys in one usage plan (GetUsagePlanKeys, every page), for `who`'s progress lines.
pub async fn usage_plan_keys(ctx: &Ctx, who: impl Into<Name>, plan_id: &str) -> Result<Vec<UsagePlanKey>> {
    list(ctx, who, "GetUsagePlanKeys", || {
        ctx.aws.apigateway.get_usage_plan_keys().usage_plan_id(plan_id).limit(500).into_paginator().items().send()
    })
    .await
}

/// One API key with its value (GetApiKey, includeValue): for `keys` and `serve` only. Never log
/// the value.
pub async fn api_key_with_value(
    ctx: &Ctx,
    who: impl Into<Name>,
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
        list(ctx, Name::of("usage-plans"), "GetUsagePlans", || {
            ctx.aws.apigateway.get_usage_plans().limit(500).into_paginator().items().send()
        })
    })
    .await
}

/// Every API key of the account and region, without values (one paginated read per run).
pub async fn api_keys(ctx: &Ctx) -> Result<Arc<Vec<ApiKey>>> {
    ctx.once("apigateway:GetApiKeys", || {
        list(ctx, Name::of("api-keys"), "GetApiKeys", || {
            ctx.aws.apigateway.get_api_keys().include_values(false).limit(500).into_paginator().items().send()
        })
    })
    .await
}

/// What a kind that API Gateway keeps in a collection (`/restapis`, `/usageplans`, `/apikeys`)
/// needs of the tool's policy. API Gateway's actions are HTTP verbs on resource paths. Finding
/// the stack's own lists the collection: a list is not a tagged resource, AWS cannot scope it
/// (docs/iam.md, "What the policy cannot scope"). A create needs the stack's tag in the request, and
/// a create that carries tags is also authorized as a PUT on the new resource's `/tags/<ARN>`
/// (mattclay/aws-terminator#284): only with the stack's tag.
pub fn grants(s: &Scope, collection: &str) -> Vec<Grant> {
    vec![
        Grant::new("ApiGatewayFind", &["apigateway:GET"], [s.apigateway(collection)]),
        Grant::new("ApiGatewayCreateTaggedAsTheStack", &["apigateway:POST"], [s.apigateway(collection)])
            .when(request_tagged(s)),
        Grant::new("ApiGatewayTagOnCreate", &["apigateway:PUT"], [s.apigateway("/tags/*")]).when(request_tagged(s)),
        the_stacks_own(s, collection),
    ]
}

/// The stack's REST API, plans and keys, by their tag; methods, stages, deployments and plan keys
/// inherit their parent's tags for this ("API Gateway resources that can be tagged", tag
/// inheritance).
pub fn the_stacks_own(s: &Scope, collection: &str) -> Grant {
    let verbs = ["apigateway:GET", "apigateway:POST", "apigateway:PUT", "apigateway:PATCH", "apigateway:DELETE"];
    Grant::new("ApiGatewayTheStacksOwn", &verbs, [s.apigateway(&format!("{collection}/*"))]).when(resource_tagged(s))
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
}
