//! An API key (one per tier) and its usage-plan key, the membership that lets it call the stage.
//!
//! The key's VALUE is a secret: it is never put in outputs, progress lines, logs or errors.
//! Listing uses `includeValues=false`; only [`key_value`] (for the `keys` command) reads it.

use async_trait::async_trait;

use super::apigw::{self, SERVICE, call, found, gone_is_ok, replace, tag_pairs};
use super::usage_plan::{self, LivePlan};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, at_most_one};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Error, ErrorKind, Result};
use serde_json::json;

pub const STANDARD: Id<LiveKey> = Id::new("api-key-standard");
pub const PREMIUM: Id<LiveKey> = Id::new("api-key-premium");

/// The key of a tier: `api-key-{tier}`.
pub fn id(tier: &str) -> Id<LiveKey> {
    if tier == "premium" { PREMIUM } else { STANDARD }
}

/// The stack output of a key's id.
fn output_name(id: Id<LiveKey>) -> &'static str {
    if id == PREMIUM { "PremiumApiKeyId" } else { "StandardApiKeyId" }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `standard` | `premium`: the key joins the usage plan of the same tier.
    pub tier: String,
    pub name: String,
    id: Id<LiveKey>,
    plan: Id<LivePlan>,
}

impl ApiKey {
    pub fn new(tier: impl Into<String>, name: impl Into<String>) -> Self {
        let tier = tier.into();
        ApiKey { id: id(&tier), plan: usage_plan::id(&tier), tier, name: name.into() }
    }
}

/// The live key, as far as we compare it (never its value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveKey {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// The plan of its tier, when a usage-plan key binds it to it.
    pub plan_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    Name {
        live: String,
    },
    Enable,
    /// No usage-plan key binds it to its tier's plan: it cannot call the stage.
    JoinPlan,
}

/// Pure. Membership of other plans is not ours to judge and is ignored.
pub fn diff(desired: &ApiKey, live: &LiveKey) -> Vec<KeyChange> {
    let mut changes = Vec::new();
    if live.name != desired.name {
        changes.push(KeyChange::Name { live: live.name.clone() });
    }
    if !live.enabled {
        changes.push(KeyChange::Enable);
    }
    if live.plan_id.is_none() {
        changes.push(KeyChange::JoinPlan);
    }
    changes
}

impl ApiKey {
    fn show(&self, change: &KeyChange) -> FieldChange {
        match change {
            KeyChange::Name { live } => FieldChange::update("name", &self.name, live),
            KeyChange::Enable => FieldChange::update("enabled", true, false),
            KeyChange::JoinPlan => FieldChange::update("usage_plan_key", format!("in {}", self.plan), "missing"),
        }
    }
}

/// A key change as people read it (the plan named by the key's tier).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyDrift {
    pub change: KeyChange,
    shown: FieldChange,
}

impl KindChange for KeyDrift {
    fn show(&self) -> FieldChange {
        self.shown.clone()
    }
}

/// The key's value, for the `keys` command only. Never log it.
pub async fn key_value(ctx: &Ctx, id: &str) -> Result<String> {
    let out = apigw::api_key_with_value(ctx, crate::ids::Name::of("keys"), id).await?;
    out.value()
        .map(str::to_string)
        .ok_or_else(|| Error::other(format!("API key {id} has no value in the GetApiKey answer")))
}

impl ApiKey {
    /// The ids of the keys in a plan. GetUsagePlanKeys answers ids (and values: not kept).
    async fn plan_keys(&self, ctx: &Ctx, plan_id: &str) -> Result<Vec<String>> {
        let keys = apigw::usage_plan_keys(ctx, self.id, plan_id).await;
        Ok(found(keys)?.unwrap_or_default().iter().filter_map(|k| k.id().map(str::to_string)).collect())
    }

    /// CreateUsagePlanKey: a second one is a ConflictException in AWS (moto accepts duplicates
    /// silently); `live` says it is not there.
    async fn join_plan(&self, ctx: &Ctx, plan_id: &str, key_id: &str) -> Result<()> {
        let res = call(ctx, self.id, "CreateUsagePlanKey", || async {
            ctx.aws
                .apigateway
                .create_usage_plan_key()
                .usage_plan_id(plan_id)
                .key_id(key_id)
                .key_type("API_KEY")
                .send()
                .await
                .aws(SERVICE, "CreateUsagePlanKey")
        })
        .await;
        match res {
            Ok(_) => Ok(()),
            // Joined in the meantime: what we wanted.
            Err(e) if e.kind() == Some(ErrorKind::AlreadyExists) || e.kind() == Some(ErrorKind::Conflict) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn patch_key(&self, ctx: &Ctx, key_id: &str, path: &str, value: &str) -> Result<()> {
        call(ctx, self.id, "UpdateApiKey", || async {
            ctx.aws
                .apigateway
                .update_api_key()
                .api_key(key_id)
                .patch_operations(replace(path, value))
                .send()
                .await
                .aws(SERVICE, "UpdateApiKey")
        })
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Resource for ApiKey {
    type Live = LiveKey;
    type Change = KeyDrift;

    fn id(&self) -> Id<LiveKey> {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::ApiKey
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        apigw::grants(s, "/apikeys")
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(self.plan)]
    }

    fn create_rounds(&self) -> u32 {
        2 // CreateApiKey, CreateUsagePlanKey
    }

    fn delete_rounds(&self) -> u32 {
        2 // DeleteUsagePlanKey, DeleteApiKey
    }

    fn export(&self, ctx: &Ctx, live: &LiveKey) -> Vec<CfnResource> {
        // Never the key's value: CloudFormation reads it from the live key.
        let key = CfnResource::new(
            self.id,
            "AWS::ApiGateway::ApiKey",
            json!({ "Name": live.name, "Enabled": live.enabled, "Tags": cfn::tags(&ctx.tags(self.id.name())) }),
            cfn::identifier(&[("APIKeyId", &live.id)]),
        )
        .with_output(output_name(self.id), cfn::reference(self.id));
        // Its binding to the plan of its tier: `{keyId}:{usagePlanId}` is its identifier.
        let binding = live.plan_id.as_ref().map(|plan_id| {
            CfnResource::part(
                self.id.name(),
                "Binding",
                "AWS::ApiGateway::UsagePlanKey",
                json!({
                    "KeyId": cfn::reference(self.id),
                    "KeyType": "API_KEY",
                    "UsagePlanId": cfn::reference(self.plan),
                }),
                cfn::identifier(&[("Id", &format!("{}:{plan_id}", live.id))]),
            )
        });
        std::iter::once(key).chain(binding).collect()
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveKey>> {
        let (keys, plans) = tokio::try_join!(apigw::api_keys(ctx), apigw::usage_plans(ctx))?;
        let ours: Vec<_> = keys.iter().filter(|k| ctx.owns(self.id.name(), tag_pairs(k.tags()))).collect();
        let Some(key) = at_most_one(ours, "API key", self.id.name())? else { return Ok(None) };
        let id = key.id().unwrap_or_default().to_string();
        // Its plan, if ours exists: does a usage-plan key bind them?
        let plans: Vec<_> = plans.iter().filter(|p| ctx.owns(self.plan.name(), tag_pairs(p.tags()))).collect();
        let plan_id = match at_most_one(plans, "usage plan", self.plan.name())?.and_then(|p| p.id()) {
            Some(plan_id) if self.plan_keys(ctx, plan_id).await?.contains(&id) => Some(plan_id.to_string()),
            _ => None,
        };
        Ok(Some(LiveKey { id, name: key.name().unwrap_or_default().to_string(), enabled: key.enabled(), plan_id }))
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveKey) -> Result<Vec<KeyDrift>> {
        Ok(diff(self, live).into_iter().map(|change| KeyDrift { shown: self.show(&change), change }).collect())
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveKey> {
        let plan_id = inputs.get(self.plan)?.id.clone();
        // The answer carries the generated value: only the id is kept.
        let id = call(ctx, self.id, "CreateApiKey", || async {
            ctx.aws
                .apigateway
                .create_api_key()
                .name(&self.name)
                .description(format!("{} tier key of movies-stack stack {}", self.tier, ctx.stack))
                .enabled(true)
                .set_tags(Some(ctx.tag_map(self.id.name())))
                .send()
                .await
                .aws(SERVICE, "CreateApiKey")
                .map(|out| out.id().unwrap_or_default().to_string())
        })
        .await?;
        // A run killed here leaves a key outside its plan: `diff` shows `usage_plan_key` and
        // the next run's `update` joins it.
        self.join_plan(ctx, &plan_id, &id).await?;
        Ok(LiveKey { id, name: self.name.clone(), enabled: true, plan_id: Some(plan_id) })
    }

    async fn update(&self, ctx: &Ctx, inputs: &LiveStates, live: &LiveKey, changes: &[KeyDrift]) -> Result<LiveKey> {
        let mut live = live.clone();
        for drift in changes {
            match &drift.change {
                KeyChange::Name { .. } => self.patch_key(ctx, &live.id, "/name", &self.name).await?,
                KeyChange::Enable => self.patch_key(ctx, &live.id, "/enabled", "true").await?,
                KeyChange::JoinPlan => {
                    let plan_id = inputs.get(self.plan)?.id.clone();
                    self.join_plan(ctx, &plan_id, &live.id).await?;
                    live.plan_id = Some(plan_id);
                }
            }
        }
        Ok(LiveKey { name: self.name.clone(), enabled: true, ..live })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveKey) -> Result<()> {
        if let Some(plan_id) = &live.plan_id {
            gone_is_ok(
                call(ctx, self.id, "DeleteUsagePlanKey", || async {
                    ctx.aws
                        .apigateway
                        .delete_usage_plan_key()
                        .usage_plan_id(plan_id)
                        .key_id(&live.id)
                        .send()
                        .await
                        .aws(SERVICE, "DeleteUsagePlanKey")
                })
                .await,
            )?;
        }
        gone_is_ok(
            call(ctx, self.id, "DeleteApiKey", || async {
                ctx.aws.apigateway.delete_api_key().api_key(&live.id).send().await.aws(SERVICE, "DeleteApiKey")
            })
            .await,
        )
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveKey) -> Vec<(&'static str, String)> {
        vec![(output_name(self.id), live.id.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    fn key() -> ApiKey {
        ApiKey::new("premium", "movies-premium")
    }

    fn in_sync() -> LiveKey {
        LiveKey { id: "k1".into(), name: "movies-premium".into(), enabled: true, plan_id: Some("p1".into()) }
    }

    #[test]
    fn ids_follow_the_tier() {
        assert_eq!(Resource::id(&key()), PREMIUM);
        assert_eq!(Resource::deps(&key()), vec![Dep::on(usage_plan::PREMIUM)]);
    }

    #[test]
    fn in_sync_key_has_no_changes() {
        assert!(diff(&key(), &in_sync()).is_empty());
    }

    #[test]
    fn each_drift_is_one_change() {
        let cases: [(&str, Edit<LiveKey>); 3] = [
            ("enabled", |l| l.enabled = false),
            ("usage_plan_key", |l| l.plan_id = None),
            ("name", |l| l.name = "renamed".into()),
        ];
        for (field, mutate) in cases {
            let mut live = in_sync();
            mutate(&mut live);
            let changes = diff(&key(), &live);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(key().show(&changes[0]).field, field);
        }
    }
}
