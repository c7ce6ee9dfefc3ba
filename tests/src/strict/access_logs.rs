//! API Gateway access logs need the account's CloudWatch role ([`super::Behaviour::AccessLogsAccountRole`]):
//! an UpdateStage that sets `/accessLogSettings/*` while the account (GetAccount) has no
//! `cloudwatchRoleArn` answers 400 BadRequestException "CloudWatch Logs role ARN must be set in
//! account settings to enable logging" (anomalyco/sst#1556; `../shared/notes/aws-behaviours.md`).
//! moto sets access logs on any stage.

use serde_json::Value;

use super::Exchange;
use super::direct::MotoEc2;
use crate::proxy::Fault;

pub const MESSAGE: &str = "CloudWatch Logs role ARN must be set in account settings to enable logging";

/// Whether a request sets access log settings (a `replace` or `add` under `/accessLogSettings`).
fn sets_access_logs(ex: &Exchange) -> bool {
    ex.is("apigateway", "UpdateStage")
        && ex.input.get("patchOperations").and_then(Value::as_array).is_some_and(|ops| {
            ops.iter().any(|op| {
                op["path"].as_str().is_some_and(|p| p.starts_with("/accessLogSettings"))
                    && matches!(op["op"].as_str(), Some("replace" | "add"))
            })
        })
}

/// The refusal AWS gives access log settings in an account without a CloudWatch role, read from
/// moto's account settings.
pub async fn refuse_without_role(moto: &MotoEc2, ex: &Exchange) -> Option<Fault> {
    if !sets_access_logs(ex) {
        return None;
    }
    let account = moto.get_json("/account").await.ok()?;
    let has_role = account["cloudwatchRoleArn"].as_str().is_some_and(|r| !r.is_empty());
    (!has_role).then(|| Fault { status: 400, code: "BadRequestException".into(), message: MESSAGE.into() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn update_stage(ops: Value) -> Exchange {
        Exchange {
            service: "apigateway".into(),
            operation: "UpdateStage".into(),
            input: json!({ "restApiId": "a1", "stageName": "prod", "patchOperations": ops }),
        }
    }

    #[test]
    fn only_setting_access_logs_needs_the_role() {
        let set = json!([{ "op": "replace", "path": "/accessLogSettings/destinationArn", "value": "arn" }]);
        assert!(sets_access_logs(&update_stage(set)));
        let off = json!([{ "op": "remove", "path": "/accessLogSettings" }]);
        assert!(!sets_access_logs(&update_stage(off)), "turning them off needs no role");
        let tracing = json!([{ "op": "replace", "path": "/tracingEnabled", "value": "true" }]);
        assert!(!sets_access_logs(&update_stage(tracing)));
        let other = Exchange { operation: "UpdateRestApi".into(), ..update_stage(json!([])) };
        assert!(!sets_access_logs(&other));
    }
}
