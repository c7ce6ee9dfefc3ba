//! The stage's access logs: one JSON line per request into the stack's access log group.
//!
//! A resource of its own, not a part of the stage, because it alone needs the account's
//! CloudWatch role: API Gateway refuses access log settings until the account has one
//! ("CloudWatch Logs role ARN must be set in account settings to enable logging", anomalyco/sst#1556),
//! and that role is the slowest thing a cold `up` makes (IAM propagation before UpdateAccount,
//! about 10 s on AWS). Split off, the deployment, the stage, the usage plans and the keys are made
//! while the role propagates, and only this one UpdateStage waits for it.
//!
//! It reads nothing of its own: the stage's one GetStage ([`stage::read`]) carries the settings.
//! CloudFormation has them in the stage (`AccessLogSetting`), which `stage` exports.

use async_trait::async_trait;
use aws_sdk_apigateway::types::{Op, PatchOperation};

use super::apigw::{self, gone_is_ok, replace};
use super::{
    Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, account_role, log_group, stage,
};
use crate::cfn::CfnResource;
use crate::error::Result;

pub const ID: Id<LiveAccessLogs> = Id::new("stage-access-logs");

/// One JSON object per request, on one line (CloudWatch Logs Insights parses it as JSON).
/// Values are strings so that an empty context variable (`-`) never makes the line invalid JSON.
pub const ACCESS_LOG_FORMAT: &str = concat!(
    r#"{"requestId":"$context.requestId","#,
    r#""ip":"$context.identity.sourceIp","#,
    r#""userAgent":"$context.identity.userAgent","#,
    r#""requestTime":"$context.requestTime","#,
    r#""httpMethod":"$context.httpMethod","#,
    r#""resourcePath":"$context.resourcePath","#,
    r#""status":"$context.status","#,
    r#""responseLatency":"$context.responseLatency","#,
    r#""apiKeyId":"$context.identity.apiKeyId","#,
    r#""xrayTraceId":"$context.xrayTraceId"}"#
);

const DESTINATION: &str = "/accessLogSettings/destinationArn";
const FORMAT: &str = "/accessLogSettings/format";

#[derive(Debug, Clone, PartialEq)]
pub struct StageAccessLogs {
    pub stage_name: String,
    /// The access log group's name.
    pub log_group: String,
}

/// The stage's access log settings, as far as we compare them.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveAccessLogs {
    pub api_id: String,
    pub stage_name: String,
    /// The destination's ARN, without a trailing `:*`.
    pub destination: Option<String>,
    pub format: Option<String>,
}

/// `DescribeLogGroups` returns ARNs ending in `:*`; a stage's destination must not have it.
pub fn log_group_arn(arn: &str) -> &str {
    arn.strip_suffix(":*").unwrap_or(arn)
}

/// One difference; each is one patch operation of one UpdateStage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessLogsChange {
    Destination(FieldChange),
    Format(FieldChange),
}

impl KindChange for AccessLogsChange {
    fn show(&self) -> FieldChange {
        match self {
            AccessLogsChange::Destination(c) | AccessLogsChange::Format(c) => c.clone(),
        }
    }
}

/// What differs from the settings that log to `destination` (a log group's ARN). Pure.
pub fn diff(destination: &str, live: &LiveAccessLogs) -> Vec<AccessLogsChange> {
    let want = log_group_arn(destination);
    let mut changes = Vec::new();
    let live_dest = live.destination.as_deref().map(log_group_arn);
    if live_dest != Some(want) {
        changes.push(AccessLogsChange::Destination(FieldChange::update(
            "access_log_destination",
            want,
            live_dest.unwrap_or("none"),
        )));
    }
    if live.format.as_deref() != Some(ACCESS_LOG_FORMAT) {
        changes.push(AccessLogsChange::Format(FieldChange::update(
            "access_log_format",
            ACCESS_LOG_FORMAT,
            live.format.as_deref().unwrap_or("none"),
        )));
    }
    changes
}

/// The UpdateStage patch operations (path, value) for the given changes. Pure.
pub fn patches(changes: &[AccessLogsChange], destination: &str) -> Vec<(&'static str, String)> {
    changes
        .iter()
        .map(|c| match c {
            AccessLogsChange::Destination(_) => (DESTINATION, log_group_arn(destination).to_string()),
            AccessLogsChange::Format(_) => (FORMAT, ACCESS_LOG_FORMAT.to_string()),
        })
        .collect()
}

impl StageAccessLogs {
    /// The access log group's ARN (as `DescribeLogGroups` has it, with `:*`).
    fn destination(&self, ctx: &Ctx) -> String {
        log_group::arn(ctx, &self.log_group)
    }

    async fn set(&self, ctx: &Ctx, api_id: &str, changes: &[AccessLogsChange]) -> Result<LiveAccessLogs> {
        let destination = self.destination(ctx);
        let ops = patches(changes, &destination).into_iter().map(|(path, value)| replace(path, value)).collect();
        stage::update_stage(ctx, ID, api_id, &self.stage_name, ops).await?;
        Ok(LiveAccessLogs {
            api_id: api_id.to_string(),
            stage_name: self.stage_name.clone(),
            destination: Some(log_group_arn(&destination).to_string()),
            format: Some(ACCESS_LOG_FORMAT.to_string()),
        })
    }
}

#[async_trait]
impl Resource for StageAccessLogs {
    type Live = LiveAccessLogs;
    type Change = AccessLogsChange;

    fn id(&self) -> Id<LiveAccessLogs> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::StageAccessLogs
    }

    fn grants(&self, s: &Scope) -> Vec<Grant> {
        // UpdateStage on the stage of our REST API: its tag covers it.
        vec![apigw::the_stacks_own(s, "/restapis")]
    }

    fn deps(&self) -> Vec<Dep> {
        // The account's CloudWatch role: without it API Gateway refuses the settings. Deleting
        // the stage deletes its settings: no call of their own then.
        vec![Dep::on(stage::ID).goes_with(), Dep::on(log_group::ACCESS), Dep::on(account_role::ID)]
    }

    fn create_rounds(&self) -> u32 {
        1 // UpdateStage
    }

    fn export(&self, _ctx: &Ctx, _live: &LiveAccessLogs) -> Vec<CfnResource> {
        // `AWS::ApiGateway::Stage`'s `AccessLogSetting`, in the stage's resource.
        Vec::new()
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveAccessLogs>> {
        Ok(stage::read(ctx, &self.stage_name).await?.map(|s| LiveAccessLogs {
            api_id: s.api_id,
            stage_name: s.name,
            destination: s.access_log_destination,
            format: s.access_log_format,
        }))
    }

    fn diff(&self, ctx: &Ctx, _inputs: &LiveStates, live: &LiveAccessLogs) -> Result<Vec<AccessLogsChange>> {
        Ok(diff(&self.destination(ctx), live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveAccessLogs> {
        let stage = inputs.get(stage::ID)?;
        let changes = diff(&self.destination(ctx), &LiveAccessLogs::default());
        self.set(ctx, &stage.api_id, &changes).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveAccessLogs,
        changes: &[AccessLogsChange],
    ) -> Result<LiveAccessLogs> {
        self.set(ctx, &live.api_id, changes).await
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveAccessLogs) -> Result<()> {
        // Only when the stage stays (it is deleted with the stage otherwise).
        let off = PatchOperation::builder().op(Op::Remove).path("/accessLogSettings").build();
        gone_is_ok(stage::update_stage(ctx, ID, &live.api_id, &self.stage_name, vec![off]).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/movies/access";

    fn in_sync() -> LiveAccessLogs {
        LiveAccessLogs {
            api_id: "a1".into(),
            stage_name: "prod".into(),
            destination: Some(LOGS.into()),
            format: Some(ACCESS_LOG_FORMAT.into()),
        }
    }

    #[test]
    fn access_log_format_is_one_line_of_json_with_every_field() {
        let v: serde_json::Value = serde_json::from_str(ACCESS_LOG_FORMAT).expect("valid JSON");
        assert!(!ACCESS_LOG_FORMAT.contains('\n'));
        for var in [
            "$context.requestId",
            "$context.identity.sourceIp",
            "$context.identity.userAgent",
            "$context.requestTime",
            "$context.httpMethod",
            "$context.resourcePath",
            "$context.status",
            "$context.responseLatency",
            "$context.identity.apiKeyId",
            "$context.xrayTraceId",
        ] {
            assert!(v.as_object().unwrap().values().any(|x| x == var), "{var}");
        }
    }

    #[test]
    fn in_sync_settings_have_no_changes_even_with_a_star_suffixed_log_arn() {
        let described = format!("{LOGS}:*");
        assert!(diff(&described, &in_sync()).is_empty());
        let mut live = in_sync();
        live.destination = Some(described.clone());
        assert!(diff(&described, &live).is_empty());
    }

    #[test]
    fn drift_and_absence_are_one_update_with_a_patch_per_field() {
        let fields = |changes: &[AccessLogsChange]| changes.iter().map(|c| c.show().field).collect::<Vec<_>>();
        let mut live = in_sync();
        live.format = Some("$context.requestId".into());
        let changes = diff(LOGS, &live);
        assert_eq!(fields(&changes), ["access_log_format"]);
        assert_eq!(patches(&changes, LOGS), [(FORMAT, ACCESS_LOG_FORMAT.to_string())]);

        // A stage without access logs (a run killed between CreateStage and this UpdateStage).
        let changes = diff(&format!("{LOGS}:*"), &LiveAccessLogs { destination: None, format: None, ..in_sync() });
        assert_eq!(fields(&changes), ["access_log_destination", "access_log_format"]);
        assert_eq!(
            patches(&changes, &format!("{LOGS}:*")),
            [(DESTINATION, LOGS.to_string()), (FORMAT, ACCESS_LOG_FORMAT.to_string())]
        );
    }

    #[test]
    fn log_group_arns_lose_the_star() {
        assert_eq!(log_group_arn(&format!("{LOGS}:*")), LOGS);
        assert_eq!(log_group_arn(LOGS), LOGS);
    }
}
