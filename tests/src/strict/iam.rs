//! IAM eventual consistency: after CreateRole, PutRolePolicy or AttachRolePolicy on a role, the
//! services that use the role do not see the change for a while, and refuse in their own words
//! (aws-behaviours.md §4.1, §4.5, §7):
//! - Lambda CreateFunction / UpdateFunctionConfiguration: 400 InvalidParameterValueException,
//!   the family terraform-provider-aws `retryFunctionOp` retries;
//! - EC2 CreateFlowLogs: 400 InvalidParameter "Unable to assume given IAM role"
//!   (hashicorp/terraform-provider-aws#29323);
//! - API Gateway UpdateAccount `/cloudwatchRoleArn`: 400 BadRequestException (terraform's
//!   `aws_api_gateway_account` retries it for 2 minutes).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::Exchange;
use crate::proxy::Fault;

/// [`super::Behaviour::IamBoundary`]: CreateRole or PutRolePermissionsBoundary naming a boundary
/// policy that does not exist is refused with 404 NoSuchEntity (IAM API reference, CreateRole:
/// "The request was rejected because it referenced a resource entity that does not exist");
/// moto accepts any ARN. AWS-managed policies (`iam::aws:`) are taken to exist.
pub async fn missing_boundary(moto: &super::MotoEc2, ex: &Exchange) -> Option<Fault> {
    if ex.service != "iam" || !matches!(ex.operation.as_str(), "CreateRole" | "PutRolePermissionsBoundary") {
        return None;
    }
    let arn = ex.str_at(&["PermissionsBoundary"])?;
    if arn.contains(":iam::aws:policy/") {
        return None;
    }
    let answer = moto.query("iam", "2010-05-08", "GetPolicy", &[("PolicyArn".into(), arn.into())]).await;
    match answer {
        Err(e) if e.contains("NoSuchEntity") => Some(Fault {
            status: 404,
            code: "NoSuchEntity".into(),
            message: format!("Scope ARN: {arn} does not exist or is not attachable."),
        }),
        _ => None,
    }
}

/// A role's name from its ARN (`arn:aws:iam::<account>:role/<path><name>`) or its name.
pub fn role_name(arn_or_name: &str) -> &str {
    match arn_or_name.split_once(":role/") {
        Some((_, path_and_name)) => path_and_name.rsplit('/').next().unwrap_or(path_and_name),
        None => arn_or_name,
    }
}

/// Roles changed recently, by name.
#[derive(Debug, Default)]
pub struct Roles {
    changed: HashMap<String, Instant>,
    /// Which refusal each role gets next, so that a retrying caller meets all of them.
    cycle: HashMap<String, usize>,
}

impl Roles {
    /// A successful call that changes a role starts its window.
    pub fn record(&mut self, ex: &Exchange, now: Instant) {
        if ex.service == "iam"
            && matches!(ex.operation.as_str(), "CreateRole" | "PutRolePolicy" | "AttachRolePolicy")
            && let Some(name) = ex.str_at(&["RoleName"])
        {
            self.changed.insert(name.to_string(), now);
        }
    }

    fn fresh(&self, role: &str, now: Instant, window: Duration) -> bool {
        self.changed.get(role_name(role)).is_some_and(|t| now.saturating_duration_since(*t) < window)
    }

    /// A consumer of a role inside its window. `function_role`: the role of the function an
    /// UpdateFunctionConfiguration names, when the request does not name one.
    pub fn check(
        &mut self,
        ex: &Exchange,
        function_role: Option<&str>,
        now: Instant,
        window: Duration,
    ) -> Option<Fault> {
        let fault = |status: u16, code: &str, message: String| Some(Fault { status, code: code.into(), message });
        match (ex.service.as_str(), ex.operation.as_str()) {
            ("lambda", "CreateFunction" | "UpdateFunctionConfiguration") => {
                let role = ex.str_at(&["Role"]).or(function_role)?;
                if !self.fresh(role, now, window) {
                    return None;
                }
                let messages = lambda_messages(ex);
                let n = self.cycle.entry(role_name(role).to_string()).or_insert(0);
                let message = messages[*n % messages.len()].clone();
                *n += 1;
                fault(400, "InvalidParameterValueException", message)
            }
            ("ec2", "CreateFlowLogs") => {
                let role = ex.str_at(&["DeliverLogsPermissionArn"])?;
                self.fresh(role, now, window)
                    .then(|| fault(400, "InvalidParameter", format!("Unable to assume given IAM role: '{role}'")))?
            }
            ("apigateway", "UpdateAccount") => {
                let ops = ex.input.get("patchOperations")?.as_array()?;
                let role = ops.iter().find_map(|op| {
                    (op.get("path")?.as_str()? == "/cloudwatchRoleArn").then(|| op.get("value")?.as_str())?
                })?;
                self.fresh(role, now, window).then(|| {
                    fault(
                        400,
                        "BadRequestException",
                        "The role ARN does not have required permissions set to API Gateway".into(),
                    )
                })?
            }
            _ => None,
        }
    }
}

/// The refusals Lambda gives a role it cannot use yet, as far as the request makes each one
/// possible (aws-behaviours.md §4.1 and §7; serverless/serverless#6931).
fn lambda_messages(ex: &Exchange) -> Vec<String> {
    let mut m = vec!["The role defined for the function cannot be assumed by Lambda.".to_string()];
    if ex.strings_at(&["VpcConfig", "SubnetIds"]).is_some_and(|s| !s.is_empty()) {
        m.push("The provided execution role does not have permissions to call CreateNetworkInterface on EC2".into());
    }
    if ex.str_at(&["TracingConfig", "Mode"]) == Some("Active") {
        m.push("The provided execution role does not have permissions to call PutTraceSegments on XRAY".into());
    }
    if ex
        .input
        .get("Environment")
        .and_then(|e| e.get("Variables"))
        .and_then(|v| v.as_object())
        .is_some_and(|v| !v.is_empty())
    {
        m.push(
            "Lambda was unable to configure access to your environment variables because the KMS key is invalid for \
             CreateGrant. Please check your KMS key settings. KMS Exception: InvalidGrantTokenException KMS Message: \
             Grant token provided is invalid or expired"
                .into(),
        );
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ex(service: &str, operation: &str, input: serde_json::Value) -> Exchange {
        Exchange { service: service.into(), operation: operation.into(), input }
    }

    #[test]
    fn a_fresh_role_fails_its_consumers_for_the_window_with_every_message_in_turn() {
        let t0 = Instant::now();
        let w = Duration::from_secs(2);
        let mut roles = Roles::default();
        roles.record(&ex("iam", "CreateRole", json!({"RoleName": "fn-role"})), t0);
        let create = ex(
            "lambda",
            "CreateFunction",
            json!({"Role": "arn:aws:iam::123456789012:role/service/fn-role", "VpcConfig": {"SubnetIds": ["subnet-1"]},
                   "TracingConfig": {"Mode": "Active"}, "Environment": {"Variables": {"A": "1"}}}),
        );
        let got: Vec<String> = (0..4).map(|_| roles.check(&create, None, t0, w).unwrap().message).collect();
        assert!(got[0].contains("cannot be assumed by Lambda"));
        assert!(got[1].contains("CreateNetworkInterface on EC2"));
        assert!(got[2].contains("PutTraceSegments on XRAY"));
        assert!(got[3].contains("KMS key is invalid for CreateGrant"));
        assert!(roles.check(&create, None, t0 + w, w).is_none(), "the window is over");

        // Without a VPC, tracing or variables only the first message is possible.
        let plain = ex("lambda", "CreateFunction", json!({"Role": "arn:aws:iam::123456789012:role/fn-role"}));
        assert!(roles.check(&plain, None, t0, w).unwrap().message.contains("cannot be assumed"));
        // An update that does not name the role uses the function's.
        let update = ex("lambda", "UpdateFunctionConfiguration", json!({"FunctionName": "f"}));
        assert!(roles.check(&update, Some("arn:aws:iam::123456789012:role/fn-role"), t0, w).is_some());
        assert!(roles.check(&update, None, t0, w).is_none());
    }

    #[test]
    fn flow_logs_and_the_api_gateway_account_role() {
        let t0 = Instant::now();
        let w = Duration::from_secs(2);
        let mut roles = Roles::default();
        roles.record(&ex("iam", "AttachRolePolicy", json!({"RoleName": "apigw-cw"})), t0);
        roles.record(&ex("iam", "PutRolePolicy", json!({"RoleName": "flow"})), t0);
        let arn = "arn:aws:iam::123456789012:role/flow";
        let f =
            roles.check(&ex("ec2", "CreateFlowLogs", json!({"DeliverLogsPermissionArn": arn})), None, t0, w).unwrap();
        assert_eq!(
            (f.code.as_str(), f.message),
            ("InvalidParameter", format!("Unable to assume given IAM role: '{arn}'"))
        );
        let patch = json!({"patchOperations": [{"op": "replace", "path": "/cloudwatchRoleArn",
                                               "value": "arn:aws:iam::123456789012:role/apigw-cw"}]});
        let f = roles.check(&ex("apigateway", "UpdateAccount", patch), None, t0, w).unwrap();
        assert_eq!(f.code, "BadRequestException");
        // GetRole is no consumer.
        roles.record(&ex("iam", "GetRole", json!({"RoleName": "other"})), t0);
        assert!(!roles.changed.contains_key("other"));
    }
}
