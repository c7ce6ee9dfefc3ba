//! The deployment and the stage (`prod`): X-Ray tracing, execution metrics, and (when
//! configured) method throttling for every method (`*/*`): a ceiling above the usage plans'
//! per-key limits. Its access logs are a resource of their own ([`super::stage_access_logs`]):
//! they need the account's CloudWatch role, which the stage, its usage plans and keys do not
//! wait for.
//!
//! A deployment is a snapshot of the API's methods. Its description carries the hash of the API
//! definition it was made from (`movies-stack definition {hash}`), so `observe` knows whether the
//! stage serves the current definition without comparing snapshots, and we redeploy exactly when
//! the definition changed — never otherwise (CreateDeployment is limited to 1 request / 5 s, and
//! a stage pointing at a stale deployment is the classic "changes not live" bug:
//! hashicorp/terraform#6613).

use async_trait::async_trait;
use aws_sdk_apigateway::types::{Deployment, PatchOperation};

use super::apigw::{self, SERVICE, call, dns_suffix, found, gone_is_ok, replace, tag_pairs};
use super::rest_api::LiveApi;
use super::{
    Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Name, Resource, Scope, at_most_one, log_group,
    permission, rest_api,
};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::Result;
use serde_json::json;

pub const ID: Id<LiveStage> = Id::new("stage");

/// The method-settings key that applies to every method of the stage.
const ALL_METHODS: &str = "*/*";
const DESCRIPTION_PREFIX: &str = "movies-stack definition ";

#[derive(Debug, Clone, PartialEq)]
pub struct Stage {
    pub stage_name: String,
    /// (rate, burst) of every method; `None`: not managed (left as it is).
    pub throttle: Option<(f64, i32)>,
}

/// What the stage must look like, from the stage's config and its dependencies' outputs.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredStage {
    pub definition_hash: String,
    pub throttle: Option<(f64, i32)>,
}

/// The live stage, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LiveStage {
    pub api_id: String,
    pub name: String,
    /// `https://{api}.execute-api.{region}.amazonaws.com/{stage}/`
    pub url: String,
    pub deployment_id: String,
    /// The description of the deployment the stage points at (None: deployment not found).
    pub deployment_description: Option<String>,
    pub tracing_enabled: bool,
    /// Read here (one GetStage), compared and set by [`super::stage_access_logs`].
    pub access_log_destination: Option<String>,
    pub access_log_format: Option<String>,
    pub metrics_enabled: bool,
    /// The `*/*` method settings' (rate, burst); `None` without `*/*` settings.
    pub throttle: Option<(f64, i32)>,
}

/// The description of the deployment of a definition.
pub fn deployment_description(definition_hash: &str) -> String {
    format!("{DESCRIPTION_PREFIX}{definition_hash}")
}

/// One difference of the stage; all but `Deployment` are one patch of one UpdateStage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StageChange {
    /// The stage serves another definition than the API's: redeploy.
    Deployment(FieldChange),
    Tracing,
    Metrics,
    /// Rate and burst, together.
    Throttle(FieldChange),
}

impl KindChange for StageChange {
    fn show(&self) -> FieldChange {
        match self {
            StageChange::Deployment(c) | StageChange::Throttle(c) => c.clone(),
            StageChange::Tracing => FieldChange::update("tracing_enabled", true, false),
            StageChange::Metrics => FieldChange::update("metrics_enabled", true, false),
        }
    }
}

pub fn diff(desired: &DesiredStage, live: &LiveStage) -> Vec<StageChange> {
    let mut changes = Vec::new();
    let live_hash = live.deployment_description.as_deref().and_then(|d| d.strip_prefix(DESCRIPTION_PREFIX));
    if live_hash != Some(desired.definition_hash.as_str()) {
        changes.push(StageChange::Deployment(FieldChange::update(
            "deployment",
            &desired.definition_hash,
            live_hash.map(str::to_string).unwrap_or_else(|| format!("{} (not ours)", live.deployment_id)),
        )));
    }
    if !live.tracing_enabled {
        changes.push(StageChange::Tracing);
    }
    if !live.metrics_enabled {
        changes.push(StageChange::Metrics);
    }
    if let Some(want) = desired.throttle
        && !live.throttle.is_some_and(|have| same_throttle(have, want))
    {
        changes.push(StageChange::Throttle(FieldChange::update(
            "throttle",
            throttle_text(Some(want)),
            throttle_text(live.throttle),
        )));
    }
    changes
}

fn same_throttle((rate, burst): (f64, i32), (want_rate, want_burst): (f64, i32)) -> bool {
    (rate - want_rate).abs() < 1e-9 && burst == want_burst
}

fn throttle_text(t: Option<(f64, i32)>) -> String {
    match t {
        Some((rate, burst)) => format!("{rate} rps, burst {burst}"),
        None => "none".to_string(),
    }
}

/// The UpdateStage patch operations (path, value) for the given changes; `deployment_id` is
/// the deployment to point at when the `deployment` change is among them. Pure.
pub fn stage_patches(
    changes: &[StageChange],
    desired: &DesiredStage,
    deployment_id: Option<&str>,
) -> Vec<(String, String)> {
    changes
        .iter()
        .flat_map(|change| match change {
            StageChange::Deployment(_) => {
                deployment_id.map(|id| ("/deploymentId".to_string(), id.to_string())).into_iter().collect()
            }
            StageChange::Tracing => vec![("/tracingEnabled".to_string(), "true".to_string())],
            StageChange::Metrics => vec![(format!("/{ALL_METHODS}/metrics/enabled"), "true".to_string())],
            StageChange::Throttle(_) => match desired.throttle {
                // `100`, not `100.0`: as API Gateway writes rates.
                Some((rate, burst)) => vec![
                    (format!("/{ALL_METHODS}/throttling/rateLimit"), format!("{rate}")),
                    (format!("/{ALL_METHODS}/throttling/burstLimit"), burst.to_string()),
                ],
                None => vec![],
            },
        })
        .collect()
}

fn url(ctx: &Ctx, api_id: &str, stage_name: &str) -> String {
    format!("https://{api_id}.execute-api.{}.{}/{stage_name}/", ctx.aws.region, dns_suffix(&ctx.aws.region))
}

async fn deployments(ctx: &Ctx, api_id: &str) -> Result<Vec<Deployment>> {
    apigw::list(ctx, ID, "GetDeployments", || {
        ctx.aws.apigateway.get_deployments().rest_api_id(api_id).limit(500).into_paginator().items().send()
    })
    .await
}

/// The live stage `stage_name` of our API, read once per sweep (GetStage and GetDeployments at
/// once): the stage and its access logs both observe it.
pub async fn read(ctx: &Ctx, stage_name: &str) -> Result<Option<LiveStage>> {
    let read = ctx.once(format!("apigateway:GetStage:{stage_name}"), || async {
        // The stage lives in our API: no API, no stage (and no call).
        let apis = apigw::rest_apis(ctx).await?;
        let ours: Vec<_> = apis.iter().filter(|a| ctx.owns(rest_api::ID.name(), tag_pairs(a.tags()))).collect();
        let Some(api) = at_most_one(ours, "REST API", rest_api::ID.name())? else { return Ok(None) };
        let api_id = api.id().unwrap_or_default();
        let stage = async {
            found(
                call(ctx, ID, "GetStage", || async {
                    ctx.aws
                        .apigateway
                        .get_stage()
                        .rest_api_id(api_id)
                        .stage_name(stage_name)
                        .send()
                        .await
                        .aws(SERVICE, "GetStage")
                })
                .await,
            )
        };
        let (stage, deployments) = tokio::try_join!(stage, deployments(ctx, api_id))?;
        let Some(stage) = stage else { return Ok(None) };
        let deployment_id = stage.deployment_id().unwrap_or_default().to_string();
        let deployment_description = deployments
            .iter()
            .find(|d| d.id() == Some(deployment_id.as_str()))
            .map(|d| d.description().unwrap_or_default().to_string());
        let logs = stage.access_log_settings();
        let all_methods = stage.method_settings().and_then(|m| m.get(ALL_METHODS));
        Ok(Some(LiveStage {
            api_id: api_id.to_string(),
            name: stage_name.to_string(),
            url: url(ctx, api_id, stage_name),
            deployment_id,
            deployment_description,
            tracing_enabled: stage.tracing_enabled(),
            access_log_destination: logs.and_then(|l| l.destination_arn()).map(str::to_string),
            access_log_format: logs.and_then(|l| l.format()).map(str::to_string),
            metrics_enabled: all_methods.is_some_and(|s| s.metrics_enabled()),
            throttle: all_methods.map(|s| (s.throttling_rate_limit(), s.throttling_burst_limit())),
        }))
    });
    Ok(read.await?.as_ref().clone())
}

/// `replace` operations for (path, value) pairs.
fn replaces(ops: Vec<(String, String)>) -> Vec<PatchOperation> {
    ops.into_iter().map(|(p, v)| replace(p, v)).collect()
}

/// One UpdateStage with these operations, none without (for `who`'s progress and errors): the
/// stage's settings and its access logs.
pub async fn update_stage(
    ctx: &Ctx,
    who: impl Into<Name>,
    api_id: &str,
    stage_name: &str,
    ops: Vec<PatchOperation>,
) -> Result<()> {
    if ops.is_empty() {
        return Ok(());
    }
    call(ctx, who, "UpdateStage", || async {
        ctx.aws
            .apigateway
            .update_stage()
            .rest_api_id(api_id)
            .stage_name(stage_name)
            .set_patch_operations(Some(ops.clone()))
            .send()
            .await
            .aws(SERVICE, "UpdateStage")
    })
    .await?;
    Ok(())
}

impl Stage {
    fn desired(&self, inputs: &LiveStates) -> Result<DesiredStage> {
        Ok(DesiredStage { definition_hash: inputs.get(rest_api::ID)?.definition_hash.clone(), throttle: self.throttle })
    }

    /// The deployment of this definition: an existing one with its description (left by a run
    /// killed between CreateDeployment and UpdateStage), else a new one. Deployments are
    /// snapshots; one made from the same definition hash is as good as a new one. An API this
    /// run created has none: no GetDeployments.
    async fn deployment_for(&self, ctx: &Ctx, api: &LiveApi, definition_hash: &str) -> Result<String> {
        let api_id = api.id.as_str();
        let description = deployment_description(definition_hash);
        let existing = if api.created_in_this_run { Vec::new() } else { deployments(ctx, api_id).await? };
        if let Some(d) = existing
            .iter()
            .filter(|d| d.description() == Some(description.as_str()))
            .max_by_key(|d| d.created_date().map(|t| (t.secs(), t.subsec_nanos())))
        {
            return Ok(d.id().unwrap_or_default().to_string());
        }
        ctx.progress(ID, "deploying the API");
        // Without a stage name: CreateDeployment(stageName) would create the stage implicitly,
        // untagged. Limited to 1 request per 5 s: paced.
        let out = call(ctx, ID, "CreateDeployment", || async {
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
}

#[async_trait]
impl Resource for Stage {
    type Live = LiveStage;
    type Change = StageChange;

    fn id(&self) -> Id<LiveStage> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::Stage
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        // The stage and its deployments are the REST API's: its tag covers them.
        vec![apigw::the_stacks_own(s, "/restapis")]
    }

    fn deps(&self) -> Vec<Dep> {
        // The Lambda permission first: the stage serves traffic as soon as it exists. Not the
        // account's CloudWatch role: only the access logs need it (`stage-access-logs`).
        vec![Dep::on(rest_api::ID), Dep::on(permission::ID)]
    }

    fn create_rounds(&self) -> u32 {
        3 // CreateDeployment, CreateStage, UpdateStage (an API created with it has no deployment to look for)
    }

    fn export(&self, ctx: &Ctx, live: &LiveStage) -> Vec<CfnResource> {
        let deployment = CfnResource::part(
            ID.name(),
            "Deployment",
            "AWS::ApiGateway::Deployment",
            json!({ "RestApiId": cfn::reference(rest_api::ID), "Description": live.deployment_description }),
            cfn::identifier(&[("DeploymentId", &live.deployment_id), ("RestApiId", &live.api_id)]),
        )
        // A deployment of an API without methods is refused.
        .after(rest_api::cfn_method_ids());
        let mut all_methods =
            json!({ "ResourcePath": "/*", "HttpMethod": "*", "MetricsEnabled": live.metrics_enabled });
        if let Some((rate, burst)) = live.throttle {
            all_methods["ThrottlingRateLimit"] = json!(rate);
            all_methods["ThrottlingBurstLimit"] = json!(burst);
        }
        let log_group = cfn::logical_id(log_group::ACCESS);
        let stage = CfnResource::new(
            ID,
            "AWS::ApiGateway::Stage",
            json!({
                "RestApiId": cfn::reference(rest_api::ID),
                "StageName": live.name,
                "DeploymentId": { "Ref": format!("{}Deployment", cfn::logical_id(ID)) },
                "TracingEnabled": live.tracing_enabled,
                // Set by `stage-access-logs`, read with the stage: CloudFormation has them here.
                "AccessLogSetting": {
                    // The group's ARN without the `:*` its `Arn` attribute ends with.
                    "DestinationArn": cfn::sub(format!(
                        "arn:${{AWS::Partition}}:logs:${{AWS::Region}}:${{AWS::AccountId}}:log-group:${{{log_group}}}"
                    )),
                    "Format": live.access_log_format,
                },
                "MethodSettings": [all_methods],
                "Tags": cfn::tags(&ctx.tags(ID.name())),
            }),
            cfn::identifier(&[("RestApiId", &live.api_id), ("StageName", &live.name)]),
        )
        .with_output(
            "ApiUrl",
            cfn::sub(format!(
                "https://${{{}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{}/",
                cfn::logical_id(rest_api::ID),
                live.name
            )),
        );
        vec![deployment, stage]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveStage>> {
        read(ctx, &self.stage_name).await
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveStage) -> Result<Vec<StageChange>> {
        Ok(diff(&self.desired(inputs)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveStage> {
        let desired = self.desired(inputs)?;
        let api = inputs.get(rest_api::ID)?;
        let api_id = api.id.clone();
        let deployment_id = self.deployment_for(ctx, api, &desired.definition_hash).await?;
        call(ctx, ID, "CreateStage", || async {
            ctx.aws
                .apigateway
                .create_stage()
                .rest_api_id(&api_id)
                .stage_name(&self.stage_name)
                .deployment_id(&deployment_id)
                .tracing_enabled(true)
                .set_tags(Some(ctx.tag_map(ID.name())))
                .send()
                .await
                .aws(SERVICE, "CreateStage")
        })
        .await?;
        // Metrics and throttling cannot be set by CreateStage. A run killed before this call
        // leaves a stage whose `diff` shows them, and the next run's `update` sets them.
        let live = LiveStage {
            api_id: api_id.clone(),
            name: self.stage_name.clone(),
            url: url(ctx, &api_id, &self.stage_name),
            deployment_id: deployment_id.clone(),
            deployment_description: Some(deployment_description(&desired.definition_hash)),
            tracing_enabled: true,
            ..LiveStage::default()
        };
        let ops = stage_patches(&diff(&desired, &live), &desired, None);
        update_stage(ctx, ID, &api_id, &self.stage_name, replaces(ops)).await?;
        Ok(LiveStage { metrics_enabled: true, throttle: desired.throttle, ..live })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveStage,
        changes: &[StageChange],
    ) -> Result<LiveStage> {
        let desired = self.desired(inputs)?;
        let mut live = live.clone();
        let redeploy = changes.iter().any(|c| matches!(c, StageChange::Deployment(_)));
        if redeploy {
            live.deployment_id = self.deployment_for(ctx, inputs.get(rest_api::ID)?, &desired.definition_hash).await?;
            live.deployment_description = Some(deployment_description(&desired.definition_hash));
        }
        // One UpdateStage with every patch operation.
        let ops = stage_patches(changes, &desired, redeploy.then_some(live.deployment_id.as_str()));
        update_stage(ctx, ID, &live.api_id, &self.stage_name, replaces(ops)).await?;
        Ok(LiveStage {
            tracing_enabled: true,
            metrics_enabled: true,
            throttle: desired.throttle.or(live.throttle),
            ..live
        })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveStage) -> Result<()> {
        // Deployments go with the API.
        gone_is_ok(
            call(ctx, ID, "DeleteStage", || async {
                ctx.aws
                    .apigateway
                    .delete_stage()
                    .rest_api_id(&live.api_id)
                    .stage_name(&self.stage_name)
                    .send()
                    .await
                    .aws(SERVICE, "DeleteStage")
            })
            .await,
        )
    }

    fn health(&self, live: &LiveStage) -> Vec<(&'static str, String)> {
        vec![("deployment_id", live.deployment_id.clone())]
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveStage) -> Vec<(&'static str, String)> {
        vec![("ApiUrl", live.url.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOGS: &str = "arn:aws:logs:us-east-1:123456789012:log-group:/movies/access";

    fn desired() -> DesiredStage {
        DesiredStage { definition_hash: "h1".into(), throttle: None }
    }

    fn in_sync() -> LiveStage {
        LiveStage {
            api_id: "a1".into(),
            name: "prod".into(),
            url: "https://a1.execute-api.us-east-1.amazonaws.com/prod/".into(),
            deployment_id: "d1".into(),
            deployment_description: Some(deployment_description("h1")),
            tracing_enabled: true,
            access_log_destination: Some(LOGS.into()),
            // Compared by `stage-access-logs`, not here.
            access_log_format: Some("$context.requestId".into()),
            metrics_enabled: true,
            // API Gateway's own values once `*/*` settings exist (moto: 1000 rps, burst 2000).
            throttle: Some((10_000.0, 5_000)),
        }
    }

    fn fields(changes: &[StageChange]) -> Vec<String> {
        changes.iter().map(|c| c.show().field).collect()
    }

    #[test]
    fn access_logs_are_not_the_stage_s_to_compare() {
        let mut live = in_sync();
        live.access_log_destination = None;
        live.access_log_format = None;
        assert!(diff(&desired(), &live).is_empty(), "`stage-access-logs` compares them");
    }

    #[test]
    fn in_sync_stage_has_no_changes() {
        assert!(diff(&desired(), &in_sync()).is_empty());
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
        live.metrics_enabled = false;
        let changes = diff(&desired(), &live);
        assert_eq!(fields(&changes), vec!["tracing_enabled", "metrics_enabled"]);
        let ops = stage_patches(&changes, &desired(), None);
        assert_eq!(
            ops,
            vec![
                ("/tracingEnabled".to_string(), "true".to_string()),
                ("/*/*/metrics/enabled".to_string(), "true".to_string()),
            ]
        );
    }

    #[test]
    fn throttling_is_compared_only_when_configured_and_fixed_in_one_update() {
        // Not configured: whatever the stage has is left alone.
        assert!(diff(&desired(), &in_sync()).is_empty());
        let mut live = in_sync();
        live.throttle = None;
        assert!(diff(&desired(), &live).is_empty());

        let mut d = desired();
        d.throttle = Some((100.0, 200));
        let changes = diff(&d, &in_sync());
        assert_eq!(
            changes,
            vec![StageChange::Throttle(FieldChange::update("throttle", "100 rps, burst 200", "10000 rps, burst 5000"))]
        );
        assert_eq!(
            stage_patches(&changes, &d, None),
            vec![
                ("/*/*/throttling/rateLimit".to_string(), "100".to_string()),
                ("/*/*/throttling/burstLimit".to_string(), "200".to_string()),
            ]
        );
        let mut live = in_sync();
        live.throttle = Some((100.0, 200));
        assert!(diff(&d, &live).is_empty());
        // A burst changed by hand, or no `*/*` settings at all.
        for throttle in [Some((100.0, 50)), None] {
            live.throttle = throttle;
            assert_eq!(fields(&diff(&d, &live)), vec!["throttle"], "{throttle:?}");
        }
    }
}
