//! A usage plan (one per tier: `standard`, `premium`): per-key throttle and quota, bound to the
//! stack's stage. API keys join it through usage-plan keys (see `api_key.rs`).
//!
//! Throttling and quotas are best effort in AWS (UsagePlan API reference), not hard limits.

use async_trait::async_trait;
use aws_sdk_apigateway::types::{ApiStage, Op, QuotaPeriodType, QuotaSettings, ThrottleSettings};

use super::apigw::{self, SERVICE, call, gone_is_ok, patch, tag_pairs};
use super::{
    Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, at_most_one, rest_api, stage,
};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::Result;
use serde_json::json;

pub const STANDARD: Id<LivePlan> = Id::new("usage-plan-standard");
pub const PREMIUM: Id<LivePlan> = Id::new("usage-plan-premium");

/// The plan of a tier: `usage-plan-{tier}`.
pub fn id(tier: &str) -> Id<LivePlan> {
    if tier == "premium" { PREMIUM } else { STANDARD }
}

#[derive(Debug, Clone, PartialEq)]
pub struct UsagePlan {
    /// `standard` | `premium`.
    pub tier: String,
    pub name: String,
    /// Steady-state requests per second per key.
    pub rate_limit: f64,
    pub burst_limit: i32,
    pub quota_limit: i32,
    /// `DAY` | `WEEK` | `MONTH`.
    pub quota_period: String,
    id: Id<LivePlan>,
}

impl UsagePlan {
    pub fn new(
        tier: impl Into<String>,
        name: impl Into<String>,
        rate_limit: f64,
        burst_limit: i32,
        quota_limit: i32,
        quota_period: impl Into<String>,
    ) -> Self {
        let tier = tier.into();
        UsagePlan {
            id: id(&tier),
            tier,
            name: name.into(),
            rate_limit,
            burst_limit,
            quota_limit,
            quota_period: quota_period.into(),
        }
    }
}

/// The live plan, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct LivePlan {
    pub id: String,
    pub name: String,
    /// None: the plan has no throttle at all.
    pub throttle: Option<(f64, i32)>,
    /// None: the plan has no quota at all.
    pub quota: Option<(i32, String)>,
    /// (apiId, stage) bindings.
    pub api_stages: Vec<(String, String)>,
}

/// The UpdateUsagePlan patch operation that fixes one change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPatch {
    pub op: &'static str,
    pub path: String,
    pub value: String,
}

fn p(op: &'static str, path: &str, value: impl ToString) -> PlanPatch {
    PlanPatch { op, path: path.to_string(), value: value.to_string() }
}

/// A rate as API Gateway (and moto, which parses it with `int()`) reads it: `50`, not `50.0`.
fn rate_text(rate: f64) -> String {
    format!("{rate}")
}

/// Every difference with its patch operation; `binding` is the (apiId, stage) the plan must
/// be bound to. `add` where the live plan has no throttle / quota at all, `replace` otherwise
/// (as terraform-provider-aws's `aws_api_gateway_usage_plan` does). Pure.
pub fn plan(desired: &UsagePlan, binding: (&str, &str), live: &LivePlan) -> Vec<(FieldChange, PlanPatch)> {
    let mut steps = Vec::new();
    if live.name != desired.name {
        steps.push((FieldChange::update("name", &desired.name, &live.name), p("replace", "/name", &desired.name)));
    }
    let (rate, burst) = live.throttle.unwrap_or((f64::NAN, i32::MIN));
    let op = if live.throttle.is_some() { "replace" } else { "add" };
    if (rate - desired.rate_limit).abs() > 1e-9 || rate.is_nan() {
        steps.push((
            FieldChange::update(
                "throttle.rate_limit",
                desired.rate_limit,
                live.throttle.map(|t| t.0.to_string()).unwrap_or("none".into()),
            ),
            p(op, "/throttle/rateLimit", rate_text(desired.rate_limit)),
        ));
    }
    if live.throttle.is_none() || burst != desired.burst_limit {
        steps.push((
            FieldChange::update(
                "throttle.burst_limit",
                desired.burst_limit,
                live.throttle.map(|t| t.1.to_string()).unwrap_or("none".into()),
            ),
            p(op, "/throttle/burstLimit", desired.burst_limit),
        ));
    }
    let op = if live.quota.is_some() { "replace" } else { "add" };
    let (limit, period) = live.quota.clone().unwrap_or((i32::MIN, String::new()));
    if live.quota.is_none() || limit != desired.quota_limit {
        steps.push((
            FieldChange::update(
                "quota.limit",
                desired.quota_limit,
                live.quota.as_ref().map(|q| q.0.to_string()).unwrap_or("none".into()),
            ),
            p(op, "/quota/limit", desired.quota_limit),
        ));
    }
    if live.quota.is_none() || period != desired.quota_period {
        steps.push((
            FieldChange::update(
                "quota.period",
                &desired.quota_period,
                if period.is_empty() { "none" } else { period.as_str() },
            ),
            p(op, "/quota/period", &desired.quota_period),
        ));
    }
    let (api, stage) = binding;
    if !live.api_stages.iter().any(|(a, s)| a == api && s == stage) {
        steps.push((
            FieldChange::update(format!("api_stage {api}:{stage}"), "bound", "missing"),
            p("add", "/apiStages", format!("{api}:{stage}")),
        ));
    }
    for (a, s) in &live.api_stages {
        if !(a == api && s == stage) {
            steps.push((
                FieldChange::update(format!("api_stage {a}:{s}"), "absent", "bound"),
                p("remove", "/apiStages", format!("{a}:{s}")),
            ));
        }
    }
    steps
}

/// One difference, with the patch operation that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanChange {
    pub change: FieldChange,
    pub patch: PlanPatch,
}

impl KindChange for PlanChange {
    fn show(&self) -> FieldChange {
        self.change.clone()
    }
}

pub fn diff(desired: &UsagePlan, binding: (&str, &str), live: &LivePlan) -> Vec<PlanChange> {
    plan(desired, binding, live).into_iter().map(|(change, patch)| PlanChange { change, patch }).collect()
}

pub fn live_plan(p: &aws_sdk_apigateway::types::UsagePlan) -> LivePlan {
    LivePlan {
        id: p.id().unwrap_or_default().to_string(),
        name: p.name().unwrap_or_default().to_string(),
        throttle: p.throttle().map(|t| (t.rate_limit(), t.burst_limit())),
        quota: p.quota().map(|q| (q.limit(), q.period().map(|x| x.as_str().to_string()).unwrap_or_default())),
        api_stages: p
            .api_stages()
            .iter()
            .map(|s| (s.api_id().unwrap_or_default().to_string(), s.stage().unwrap_or_default().to_string()))
            .collect(),
    }
}

fn op_of(op: &str) -> Op {
    Op::from(op)
}

impl UsagePlan {
    fn binding<'a>(&self, inputs: &'a LiveStates) -> Result<(&'a str, &'a str)> {
        Ok((&inputs.get(rest_api::ID)?.id, &inputs.get(stage::ID)?.name))
    }

    /// One UpdateUsagePlan (limited to 1 request / 20 s: paced) with every patch operation.
    async fn patch(&self, ctx: &Ctx, id: &str, patches: Vec<PlanPatch>) -> Result<()> {
        if patches.is_empty() {
            return Ok(());
        }
        let ops: Vec<_> = patches.into_iter().map(|x| patch(op_of(x.op), x.path, x.value)).collect();
        call(ctx, self.id, "UpdateUsagePlan", || async {
            ctx.aws
                .apigateway
                .update_usage_plan()
                .usage_plan_id(id)
                .set_patch_operations(Some(ops.clone()))
                .send()
                .await
                .aws(SERVICE, "UpdateUsagePlan")
        })
        .await?;
        Ok(())
    }
}

/// One day of a key's usage: requests used, and what remained of the quota period after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DayUsage {
    pub used: i64,
    pub remaining: i64,
}

/// GetUsage for one key of a plan, `start`..=`end` (`YYYY-MM-DD`, UTC): one entry per day, in
/// order, or none when API Gateway has recorded nothing for the key. The answer's `values` (the
/// SDK's `items`) maps key ids to `[[used, remaining], ...]` (API Gateway REST API reference,
/// "Usage").
pub async fn usage(ctx: &Ctx, plan_id: &str, key_id: &str, start: &str, end: &str) -> Result<Vec<DayUsage>> {
    let pages: Vec<_> = call(ctx, crate::ids::Name::of("usage"), "GetUsage", || async {
        ctx.aws
            .apigateway
            .get_usage()
            .usage_plan_id(plan_id)
            .key_id(key_id)
            .start_date(start)
            .end_date(end)
            .limit(500)
            .into_paginator()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .aws(SERVICE, "GetUsage")
    })
    .await?;
    let mut days = Vec::new();
    for page in pages {
        for (id, rows) in page.items().into_iter().flatten() {
            if id == key_id {
                days.extend(rows.iter().map(|r| DayUsage {
                    used: r.first().copied().unwrap_or(0),
                    remaining: r.get(1).copied().unwrap_or(0),
                }));
            }
        }
    }
    Ok(days)
}

#[async_trait]
impl Resource for UsagePlan {
    type Live = LivePlan;
    type Change = PlanChange;

    fn id(&self) -> Id<LivePlan> {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::UsagePlan
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        apigw::grants(s, "/usageplans")
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn deps(&self) -> Vec<Dep> {
        // The stage must exist first: CreateUsagePlan / UpdateUsagePlan fail with "Invalid API
        // Stage {api: ..., stage: ...} specified for usageplan" otherwise (aws/aws-cdk#6169).
        // And it goes first: DeleteStage drops the stage from every usage plan (a deleted stage
        // "will remove downstream resources such as ... aws_api_gateway_usage_plan associated with
        // that stage", terraform-provider-aws#14100), after which the plan is deleted in one call,
        // where unbinding it first takes an UpdateUsagePlan (1 request / 20 s per account).
        vec![Dep::on(rest_api::ID), Dep::on(stage::ID).deleted_after()]
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    fn delete_rounds(&self) -> u32 {
        1 // DeleteUsagePlan: the stage's deletion unbound it, our keys' deletions emptied it
    }

    fn export(&self, ctx: &Ctx, live: &LivePlan) -> Vec<CfnResource> {
        let mut properties = json!({
            "UsagePlanName": live.name,
            "ApiStages": [{ "ApiId": cfn::reference(rest_api::ID), "Stage": cfn::reference(stage::ID) }],
            "Tags": cfn::tags(&ctx.tags(self.id.name())),
        });
        if let Some((rate, burst)) = live.throttle {
            properties["Throttle"] = json!({ "RateLimit": rate, "BurstLimit": burst });
        }
        if let Some((limit, period)) = &live.quota {
            properties["Quota"] = json!({ "Limit": limit, "Period": period });
        }
        vec![CfnResource::new(self.id, "AWS::ApiGateway::UsagePlan", properties, cfn::identifier(&[("Id", &live.id)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LivePlan>> {
        let all = apigw::usage_plans(ctx).await?;
        let ours: Vec<_> =
            all.iter().filter(|p| ctx.owns(self.id.name(), tag_pairs(p.tags()))).map(live_plan).collect();
        at_most_one(ours, "usage plan", self.id.name())
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LivePlan) -> Result<Vec<PlanChange>> {
        Ok(diff(self, self.binding(inputs)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LivePlan> {
        let (api, stage) = self.binding(inputs)?;
        let out = call(ctx, self.id, "CreateUsagePlan", || async {
            ctx.aws
                .apigateway
                .create_usage_plan()
                .name(&self.name)
                .description(format!("{} tier of movies-stack stack {}", self.tier, ctx.stack))
                .api_stages(ApiStage::builder().api_id(api).stage(stage).build())
                .throttle(ThrottleSettings::builder().rate_limit(self.rate_limit).burst_limit(self.burst_limit).build())
                .quota(
                    QuotaSettings::builder()
                        .limit(self.quota_limit)
                        .period(QuotaPeriodType::from(self.quota_period.as_str()))
                        .build(),
                )
                .set_tags(Some(ctx.tag_map(self.id.name())))
                .send()
                .await
                .aws(SERVICE, "CreateUsagePlan")
        })
        .await?;
        Ok(LivePlan {
            id: out.id().unwrap_or_default().to_string(),
            name: self.name.clone(),
            throttle: Some((self.rate_limit, self.burst_limit)),
            quota: Some((self.quota_limit, self.quota_period.clone())),
            api_stages: vec![(api.to_string(), stage.to_string())],
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LivePlan,
        changes: &[PlanChange],
    ) -> Result<LivePlan> {
        self.patch(ctx, &live.id, changes.iter().map(|c| c.patch.clone()).collect()).await?;
        let (api, stage) = self.binding(inputs)?;
        Ok(LivePlan {
            id: live.id.clone(),
            name: self.name.clone(),
            throttle: Some((self.rate_limit, self.burst_limit)),
            quota: Some((self.quota_limit, self.quota_period.clone())),
            api_stages: vec![(api.to_string(), stage.to_string())],
        })
    }

    async fn delete(&self, ctx: &Ctx, live: &LivePlan) -> Result<()> {
        // Usually one call: our keys left the plan already (their `delete` runs first) and the
        // stage's deletion unbound it (see `deps`). A plan something still holds (a stage this run
        // did not delete, someone else's key) is refused: "Cannot delete Usage Plan ... because
        // there are API Stages associated with it". That one is released first, then deleted.
        match self.delete_plan(ctx, &live.id).await {
            Err(e) if still_held(&e) => {
                ctx.progress(self.id, "something still uses the plan: unbinding it first");
            }
            done => return done,
        }
        self.release(ctx, live).await?;
        self.delete_plan(ctx, &live.id).await
    }
}

/// DeleteUsagePlan's refusal of a plan that a stage or a key is still bound to.
fn still_held(e: &crate::error::Error) -> bool {
    e.aws().is_some_and(|a| a.code.as_deref() == Some("BadRequestException") && a.message.contains("associated with"))
}

impl UsagePlan {
    async fn delete_plan(&self, ctx: &Ctx, id: &str) -> Result<()> {
        gone_is_ok(
            call(ctx, self.id, "DeleteUsagePlan", || async {
                ctx.aws.apigateway.delete_usage_plan().usage_plan_id(id).send().await.aws(SERVICE, "DeleteUsagePlan")
            })
            .await,
        )
    }

    /// Every key and stage off the plan, at once (they touch different parts of it). The stages
    /// are read again: the sweep's may have been deleted since, and unbound with them.
    async fn release(&self, ctx: &Ctx, live: &LivePlan) -> Result<()> {
        let id = &live.id;
        let now = call(ctx, self.id, "GetUsagePlan", || async {
            ctx.aws.apigateway.get_usage_plan().usage_plan_id(id).send().await.aws(SERVICE, "GetUsagePlan")
        })
        .await?;
        let stages: Vec<(String, String)> = now
            .api_stages()
            .iter()
            .map(|s| (s.api_id().unwrap_or_default().to_string(), s.stage().unwrap_or_default().to_string()))
            .collect();
        let remove_keys = async {
            let keys = apigw::usage_plan_keys(ctx, self.id, id).await?;
            crate::wait::settle_all(keys.iter().map(|key| async move {
                let key_id = key.id().unwrap_or_default();
                gone_is_ok(
                    call(ctx, self.id, "DeleteUsagePlanKey", || async {
                        ctx.aws
                            .apigateway
                            .delete_usage_plan_key()
                            .usage_plan_id(id)
                            .key_id(key_id)
                            .send()
                            .await
                            .aws(SERVICE, "DeleteUsagePlanKey")
                    })
                    .await,
                )
            }))
            .await
        };
        let unbind: Vec<_> = stages.iter().map(|(a, s)| p("remove", "/apiStages", format!("{a}:{s}"))).collect();
        // Both run to their end (neither is cut by the other's failure or by Ctrl-C).
        let (removed, unbound) = tokio::join!(remove_keys, self.patch(ctx, id, unbind));
        removed?;
        unbound?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    fn standard() -> UsagePlan {
        UsagePlan::new("standard", "Standard", 50.0, 100, 10_000, "DAY")
    }

    fn in_sync() -> LivePlan {
        LivePlan {
            id: "up1".into(),
            name: "Standard".into(),
            throttle: Some((50.0, 100)),
            quota: Some((10_000, "DAY".into())),
            api_stages: vec![("api1".into(), "prod".into())],
        }
    }

    const BINDING: (&str, &str) = ("api1", "prod");

    fn patches(live: &LivePlan) -> Vec<PlanPatch> {
        plan(&standard(), BINDING, live).into_iter().map(|(_, x)| x).collect()
    }

    #[test]
    fn id_follows_the_tier() {
        assert_eq!(Resource::id(&standard()).to_string(), "usage-plan-standard");
        assert_eq!(Resource::id(&UsagePlan::new("premium", "Premium", 100.0, 200, 50_000, "DAY")), PREMIUM);
    }

    #[test]
    fn in_sync_plan_has_no_changes() {
        assert!(diff(&standard(), BINDING, &in_sync()).is_empty());
    }

    #[test]
    fn drift_becomes_patch_operations() {
        let cases: Vec<(&str, BoxedEdit<LivePlan>, Vec<PlanPatch>)> = vec![
            ("rate", Box::new(|l| l.throttle = Some((10.0, 100))), vec![p("replace", "/throttle/rateLimit", "50")]),
            ("burst", Box::new(|l| l.throttle = Some((50.0, 5))), vec![p("replace", "/throttle/burstLimit", "100")]),
            (
                "no throttle at all",
                Box::new(|l| l.throttle = None),
                vec![p("add", "/throttle/rateLimit", "50"), p("add", "/throttle/burstLimit", "100")],
            ),
            (
                "quota limit",
                Box::new(|l| l.quota = Some((1, "DAY".into()))),
                vec![p("replace", "/quota/limit", "10000")],
            ),
            (
                "quota period",
                Box::new(|l| l.quota = Some((10_000, "MONTH".into()))),
                vec![p("replace", "/quota/period", "DAY")],
            ),
            (
                "no quota at all",
                Box::new(|l| l.quota = None),
                vec![p("add", "/quota/limit", "10000"), p("add", "/quota/period", "DAY")],
            ),
            ("name", Box::new(|l| l.name = "Old".into()), vec![p("replace", "/name", "Standard")]),
            ("binding missing", Box::new(|l| l.api_stages.clear()), vec![p("add", "/apiStages", "api1:prod")]),
            (
                "stale binding to an old API",
                Box::new(|l| l.api_stages = vec![("old".into(), "prod".into())]),
                vec![p("add", "/apiStages", "api1:prod"), p("remove", "/apiStages", "old:prod")],
            ),
            (
                "extra binding",
                Box::new(|l| l.api_stages.push(("api1".into(), "dev".into()))),
                vec![p("remove", "/apiStages", "api1:dev")],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut live = in_sync();
            mutate(&mut live);
            assert_eq!(patches(&live), want, "{name}");
        }
    }

    #[test]
    fn fractional_rates_are_kept() {
        assert_eq!(rate_text(50.0), "50");
        assert_eq!(rate_text(0.5), "0.5");
    }
}
