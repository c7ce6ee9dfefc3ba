//! Helpers shared by the API Gateway resources (REST API, stage, usage plans, API keys, the
//! account's CloudWatch role): write pacing, patch operations, ownership by tags.

use std::collections::HashMap;

use aws_sdk_apigateway::types::{Op, PatchOperation};

use crate::error::{Error, Result};

/// The service name in our error messages.
pub const SERVICE: &str = "API Gateway";

/// First retry delay after a `TooManyRequestsException`, per operation: the documented
/// control-plane rates (https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html,
/// "API Gateway quotas for creating, deploying and managing an API"; fixed, not raisable).
pub mod pace {
    use std::time::Duration;

    /// Everything not listed below: 10 rps account-wide (burst 40).
    pub const WRITE: Duration = Duration::from_secs(1);
    /// CreateRestApi, regional or private: 1 request / 3 s (edge-optimized: 1 / 30 s).
    pub const CREATE_REST_API: Duration = Duration::from_secs(3);
    /// DeleteRestApi: 1 request / 30 s.
    pub const DELETE_REST_API: Duration = Duration::from_secs(30);
    /// CreateDeployment: 1 request / 5 s.
    pub const CREATE_DEPLOYMENT: Duration = Duration::from_secs(5);
    /// UpdateUsagePlan: 1 request / 20 s.
    pub const UPDATE_USAGE_PLAN: Duration = Duration::from_secs(20);
    /// UpdateAccount: 1 request / 20 s.
    pub const UPDATE_ACCOUNT: Duration = Duration::from_secs(20);
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

/// The DNS suffix of execute-api endpoints in a region.
pub fn dns_suffix(region: &str) -> &'static str {
    if region.starts_with("cn-") { "amazonaws.com.cn" } else { "amazonaws.com" }
}

/// At most one item may carry our resource tag; more is something we did not do.
pub fn at_most_one<T>(mut found: Vec<T>, what: &str, resource: &str) -> Result<Option<T>> {
    match found.len() {
        0 => Ok(None),
        1 => Ok(found.pop()),
        n => Err(Error::other(format!(
            "found {n} {what}s tagged {}={resource} in this stack; expected one. Delete the extra ones",
            super::TAG_RESOURCE
        ))),
    }
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
    fn tag_pairs_of_absent_tags_is_empty() {
        assert_eq!(tag_pairs(None).count(), 0);
        let m: HashMap<String, String> = [("a".to_string(), "b".to_string())].into();
        assert_eq!(tag_pairs(Some(&m)).collect::<Vec<_>>(), vec![("a", "b")]);
    }
}
