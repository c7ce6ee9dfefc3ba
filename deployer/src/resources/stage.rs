//! The deployment and the stage (`prod`): X-Ray tracing, JSON access logs to the stack's access
//! log group, execution metrics.
//!
//! A deployment is a snapshot of the API's methods. Its description carries the hash of the API
//! definition it was made from (`movies-stack definition {hash}`), so `observe` knows whether the
//! stage serves the current definition without comparing snapshots, and we redeploy exactly when
//! the definition changed — never otherwise (CreateDeployment is limited to 1 request / 5 s, and
//! a stage pointing at a stale deployment is the classic "changes not live" bug:
//! hashicorp/terraform#6613).

use async_trait::async_trait;
use aws_sdk_apigateway::types::PatchOperation;

use super::apigw::{SERVICE, dns_suffix, found, gone_is_ok, pace, replace};
use super::{Change, Ctx, Inputs, Observed, Outputs, Resource, outputs};
use crate::aws::AwsResultExt;
use crate::error::Result;
use crate::wait::apigw_write;

pub const ID: &str = "stage";

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

/// The method-settings key that applies to every method of the stage.
const ALL_METHODS: &str = "*/*";
const DESCRIPTION_PREFIX: &str = "movies-stack definition ";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub stage_name: String,
}

/// What the stage must look like, from the stage's config and its dependencies' outputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredStage {
    pub definition_hash: String,
    /// The access log group's ARN, without a trailing `:*`.
    pub access_log_destination: String,
}

/// The live stage, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveStage {
    pub deployment_id: String,
    /// The description of the deployment the stage points at (None: deployment not found).
    pub deployment_description: Option<String>,
    pub tracing_enabled: bool,
    pub access_log_destination: Option<String>,
    pub access_log_format: Option<String>,
    pub metrics_enabled: bool,
}

/// The description of the deployment of a definition.
pub fn deployment_description(definition_hash: &str) -> String {
    format!("{DESCRIPTION_PREFIX}{definition_hash}")
}

/// `DescribeLogGroups` returns ARNs ending in `:*`; a stage's destination must not have it.
pub fn log_group_arn(arn: &str) -> &str {
    arn.strip_suffix(":*").unwrap_or(arn)
}

pub fn diff(desired: &DesiredStage, live: &LiveStage) -> Vec<Change> {
    let mut changes = Vec::new();
    let live_hash = live.deployment_description.as_deref().and_then(|d| d.strip_prefix(DESCRIPTION_PREFIX));
    if live_hash != Some(desired.definition_hash.as_str()) {
        changes.push(Change::update(
            "deployment",
            &desired.definition_hash,
            live_hash.map(str::to_string).unwrap_or_else(|| format!("{} (not ours)", live.deployment_id)),
        ));
    }
    if !live.tracing_enabled {
        changes.push(Change::update("tracing_enabled", true, false));
    }
    let live_dest = live.access_log_destination.as_deref().map(log_group_arn);
    if live_dest != Some(log_group_arn(&desired.access_log_destination)) {
        changes.push(Change::update(
            "access_log_destination",
            log_group_arn(&desired.access_log_destination),
            live_dest.unwrap_or("none"),
        ));
    }
    if live.access_log_format.as_deref() != Some(ACCESS_LOG_FORMAT) {
        changes.push(Change::update(
            "access_log_format",
            ACCESS_LOG_FORMAT,
            live.access_log_format.as_deref().unwrap_or("none"),
        ));
    }
    if !live.metrics_enabled {
        changes.push(Change::update("metrics_enabled", true, false));
    }
    changes
}

/// The UpdateStage patch operations (path, value) for the given changes; `deployment_id` is
/// the deployment to point at when the `deployment` change is among them. Pure.
pub fn stage_patches(changes: &[Change], desired: &DesiredStage, deployment_id: Option<&str>) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for change in changes {
        match change.field.as_str() {
            "deployment" => {
                if let Some(id) = deployment_id {
                    ops.push(("/deploymentId".to_string(), id.to_string()));
                }
            }
            "tracing_enabled" => ops.push(("/tracingEnabled".to_string(), "true".to_string())),
            "access_log_destination" => ops.push((
                "/accessLogSettings/destinationArn".to_string(),
                log_group_arn(&desired.access_log_destination).to_string(),
            )),
            "access_log_format" => ops.push(("/accessLogSettings/format".to_string(), ACCESS_LOG_FORMAT.to_string())),
            "metrics_enabled" => ops.push((format!("/{ALL_METHODS}/metrics/enabled"), "true".to_string())),
            _ => {}
        }
    }
    ops
}

impl Stage {
    fn desired(&self, inputs: &Inputs) -> Result<DesiredStage> {
        Ok(DesiredStage {
            definition_hash: inputs.desired("api", "definition_hash")?.to_string(),
            access_log_destination: log_group_arn(inputs.desired("access-log-group", "arn")?).to_string(),
        })
    }

    fn outputs(&self, ctx: &Ctx, api_id: &str, deployment_id: &str) -> Outputs {
        outputs([
            ("name", self.stage_name.clone()),
            ("api_id", api_id.to_string()),
            ("deployment_id", deployment_id.to_string()),
            (
                "url",
                format!(
                    "https://{api_id}.execute-api.{}.{}/{}/",
                    ctx.aws.region,
                    dns_suffix(&ctx.aws.region),
                    self.stage_name
                ),
            ),
        ])
    }

    async fn read(&self, ctx: &Ctx, api_id: &str) -> Result<Option<LiveStage>> {
        let res = ctx
            .aws
            .apigateway
            .get_stage()
            .rest_api_id(api_id)
            .stage_name(&self.stage_name)
            .send()
            .await
            .aws(SERVICE, "GetStage");
        let Some(stage) = found(res)? else {
            return Ok(None);
        };
        let deployment_id = stage.deployment_id().unwrap_or_default().to_string();
        let deployment_description = if deployment_id.is_empty() {
            None
        } else {
            let res = ctx
                .aws
                .apigateway
                .get_deployment()
                .rest_api_id(api_id)
                .deployment_id(&deployment_id)
                .send()
                .await
                .aws(SERVICE, "GetDeployment");
            found(res)?.map(|d| d.description().unwrap_or_default().to_string())
        };
        let logs = stage.access_log_settings();
        Ok(Some(LiveStage {
            deployment_id,
            deployment_description,
            tracing_enabled: stage.tracing_enabled(),
            access_log_destination: logs.and_then(|l| l.destination_arn()).map(str::to_string),
            access_log_format: logs.and_then(|l| l.format()).map(str::to_string),
            metrics_enabled: stage
                .method_settings()
                .and_then(|m| m.get(ALL_METHODS))
                .is_some_and(|s| s.metrics_enabled()),
        }))
    }

    /// The deployment of this definition: an existing one with its description (left by a run
    /// killed between CreateDeployment and UpdateStage), else a new one. Deployments are
    /// snapshots; one made from the same definition hash is as good as a new one.
    async fn deployment_for(&self, ctx: &Ctx, api_id: &str, definition_hash: &str) -> Result<String> {
        let description = deployment_description(definition_hash);
        let existing: Vec<_> = ctx
            .aws
            .apigateway
            .get_deployments()
            .rest_api_id(api_id)
            .limit(500)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .aws(SERVICE, "GetDeployments")?;
        if let Some(d) = existing
            .iter()
            .filter(|d| d.description() == Some(description.as_str()))
            .max_by_key(|d| d.created_date().map(|t| (t.secs(), t.subsec_nanos())))
        {
            return Ok(d.id().unwrap_or_default().to_string());
        }
        ctx.progress(ID, "deploying the API");
        // Without a stage name: CreateDeployment(stageName) would create the stage implicitly,
        // untagged.
        let out = apigw_write(ctx, ID, "CreateDeployment", pace::CREATE_DEPLOYMENT, || async {
            ctx.aws
                .apigateway
                .create_deployment()
                .rest_api_id(api_id)
                .description(&description)
                .send()
                .await
                .aws(SERVICE, "CreateDeployment")
        })
        .await?;
        Ok(out.id().unwrap_or_default().to_string())
    }

    async fn update_stage(&self, ctx: &Ctx, api_id: &str, ops: Vec<(String, String)>) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let ops: Vec<PatchOperation> = ops.into_iter().map(|(p, v)| replace(p, v)).collect();
        apigw_write(ctx, ID, "UpdateStage", pace::WRITE, || async {
            ctx.aws
                .apigateway
                .update_stage()
                .rest_api_id(api_id)
                .stage_name(&self.stage_name)
                .set_patch_operations(Some(ops.clone()))
                .send()
                .await
                .aws(SERVICE, "UpdateStage")
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for Stage {
    fn id(&self) -> &str {
        ID
    }

    fn kind(&self) -> &'static str {
        "API stage"
    }

    fn deps(&self) -> Vec<String> {
        // The account's CloudWatch role first: without it, access log settings fail with
        // "CloudWatch Logs role ARN must be set in account settings to enable logging".
        // The Lambda permission first: the stage serves traffic as soon as it exists.
        ["api", "access-log-group", "apigw-account", "api-permission"].map(String::from).to_vec()
    }

    async fn observe(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Observed> {
        let desired = self.desired(inputs)?;
        let api_id = inputs.get("api", "id")?;
        Ok(match self.read(ctx, api_id).await? {
            None => Observed::Missing,
            Some(live) => {
                let mut outputs = self.outputs(ctx, api_id, &live.deployment_id);
                // Health, shown by `status`: is the stage serving the API as it is defined now?
                let current = live.deployment_description.as_deref()
                    == Some(deployment_description(&desired.definition_hash).as_str());
                outputs.insert("serves_current_definition".into(), current.to_string());
                Observed::Present { outputs, changes: diff(&desired, &live) }
            }
        })
    }

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Outputs> {
        let desired = self.desired(inputs)?;
        let api_id = inputs.get("api", "id")?;
        let deployment_id = self.deployment_for(ctx, api_id, &desired.definition_hash).await?;
        apigw_write(ctx, ID, "CreateStage", pace::WRITE, || async {
            ctx.aws
                .apigateway
                .create_stage()
                .rest_api_id(api_id)
                .stage_name(&self.stage_name)
                .deployment_id(&deployment_id)
                .tracing_enabled(true)
                .set_tags(Some(ctx.tag_map(ID)))
                .send()
                .await
                .aws(SERVICE, "CreateStage")
        })
        .await?;
        // Access logs and metrics cannot be set by CreateStage. A run killed before this call
        // leaves a stage whose `diff` shows them, and the next run's `update` sets them.
        let live = LiveStage {
            deployment_id: deployment_id.clone(),
            deployment_description: Some(deployment_description(&desired.definition_hash)),
            tracing_enabled: true,
            ..LiveStage::default()
        };
        let ops = stage_patches(&diff(&desired, &live), &desired, None);
        self.update_stage(ctx, api_id, ops).await?;
        Ok(self.outputs(ctx, api_id, &deployment_id))
    }

    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs> {
        let desired = self.desired(inputs)?;
        let api_id = inputs.get("api", "id")?;
        let mut deployment_id = live.get("deployment_id").cloned().unwrap_or_default();
        let redeploy = changes.iter().any(|c| c.field == "deployment");
        if redeploy {
            deployment_id = self.deployment_for(ctx, api_id, &desired.definition_hash).await?;
        }
        // One UpdateStage with every patch operation.
        let ops = stage_patches(changes, &desired, redeploy.then_some(deployment_id.as_str()));
        self.update_stage(ctx, api_id, ops).await?;
        Ok(self.outputs(ctx, api_id, &deployment_id))
    }

    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()> {
        let Some(api_id) = live.get("api_id") else {
            return Ok(());
        };
        // Deployments go with the API.
        gone_is_ok(
            apigw_write(ctx, ID, "DeleteStage", pace::WRITE, || async {
                ctx.aws
                    .apigateway
                    .delete_stage()
                    .rest_api_id(api_id)
                    .stage_name(&self.stage_name)
                    .send()
                    .await
                    .aws(SERVICE, "DeleteStage")
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/movies/access";

    fn desired() -> DesiredStage {
        DesiredStage { definition_hash: "h1".into(), access_log_destination: format!("{LOGS}:*") }
    }

    fn in_sync() -> LiveStage {
        LiveStage {
            deployment_id: "d1".into(),
            deployment_description: Some(deployment_description("h1")),
            tracing_enabled: true,
            access_log_destination: Some(LOGS.into()),
            access_log_format: Some(ACCESS_LOG_FORMAT.into()),
            metrics_enabled: true,
        }
    }

    fn fields(changes: &[Change]) -> Vec<&str> {
        changes.iter().map(|c| c.field.as_str()).collect()
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
    fn in_sync_stage_has_no_changes_even_with_a_star_suffixed_log_arn() {
        assert!(diff(&desired(), &in_sync()).is_empty());
        let mut live = in_sync();
        live.access_log_destination = Some(format!("{LOGS}:*"));
        assert!(diff(&desired(), &live).is_empty());
    }

    #[test]
    fn new_definition_redeploys_and_nothing_else_does() {
        let mut d = desired();
        d.definition_hash = "h2".into();
        let changes = diff(&d, &in_sync());
        assert_eq!(fields(&changes), vec!["deployment"]);
        assert_eq!(stage_patches(&changes, &d, Some("d2")), vec![("/deploymentId".to_string(), "d2".to_string())]);

        // A deployment someone else made (other description) or one that vanished: redeploy.
        for description in [Some("made by hand".to_string()), None] {
            let mut live = in_sync();
            live.deployment_description = description;
            assert_eq!(fields(&diff(&desired(), &live)), vec!["deployment"]);
        }
    }

    #[test]
    fn settings_drift_is_one_update_without_redeploy() {
        let mut live = in_sync();
        live.tracing_enabled = false;
        live.access_log_destination = None;
        live.access_log_format = Some("$context.requestId".into());
        live.metrics_enabled = false;
        let changes = diff(&desired(), &live);
        assert_eq!(
            fields(&changes),
            vec!["tracing_enabled", "access_log_destination", "access_log_format", "metrics_enabled"]
        );
        let ops = stage_patches(&changes, &desired(), None);
        assert_eq!(
            ops,
            vec![
                ("/tracingEnabled".to_string(), "true".to_string()),
                ("/accessLogSettings/destinationArn".to_string(), LOGS.to_string()),
                ("/accessLogSettings/format".to_string(), ACCESS_LOG_FORMAT.to_string()),
                ("/*/*/metrics/enabled".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn log_group_arns_lose_the_star() {
        assert_eq!(log_group_arn(&format!("{LOGS}:*")), LOGS);
        assert_eq!(log_group_arn(LOGS), LOGS);
    }
}
