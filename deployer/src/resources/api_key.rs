//! An API key (one per tier) and its usage-plan key, the membership that lets it call the stage.
//!
//! The key's VALUE is a secret: it is never put in outputs, progress lines, logs or errors.
//! Listing uses `includeValues=false`; only [`key_value`] (for the `keys` command) reads it.

use async_trait::async_trait;

use super::apigw::{SERVICE, at_most_one, found, gone_is_ok, pace, replace, tag_pairs};
use super::usage_plan;
use super::{Change, Ctx, Inputs, Observed, Outputs, Resource, outputs};
use crate::aws::AwsResultExt;
use crate::error::{Error, Result};
use crate::wait::apigw_write;

/// The resource id of the key of a tier: `api-key-{tier}`.
pub fn resource_id(tier: &str) -> String {
    format!("api-key-{tier}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// `standard` | `premium`: the key joins the usage plan of the same tier.
    pub tier: String,
    pub name: String,
    id: String,
    plan: String,
}

impl ApiKey {
    pub fn new(tier: impl Into<String>, name: impl Into<String>) -> Self {
        let tier = tier.into();
        ApiKey { id: resource_id(&tier), plan: usage_plan::resource_id(&tier), tier, name: name.into() }
    }
}

/// The live key, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveKey {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    /// Whether a usage-plan key binds it to its tier's plan.
    pub in_plan: bool,
}

/// Pure. Membership of other plans is not ours to judge and is ignored.
pub fn diff(desired: &ApiKey, live: &LiveKey) -> Vec<Change> {
    let mut changes = Vec::new();
    if live.name != desired.name {
        changes.push(Change::update("name", &desired.name, &live.name));
    }
    if !live.enabled {
        changes.push(Change::update("enabled", true, false));
    }
    if !live.in_plan {
        changes.push(Change::update("usage_plan_key", format!("in {}", desired.plan), "missing"));
    }
    changes
}

/// The key's value, for the `keys` command only. Never log it.
pub async fn key_value(ctx: &Ctx, id: &str) -> Result<String> {
    let out =
        ctx.aws.apigateway.get_api_key().api_key(id).include_value(true).send().await.aws(SERVICE, "GetApiKey")?;
    out.value()
        .map(str::to_string)
        .ok_or_else(|| Error::other(format!("API key {id} has no value in the GetApiKey answer")))
}

impl ApiKey {
    fn outputs(&self, id: &str, plan_id: &str) -> Outputs {
        // `usage_plan_id` lets `delete` remove the usage-plan key from the outputs alone.
        outputs([("id", id.to_string()), ("name", self.name.clone()), ("usage_plan_id", plan_id.to_string())])
    }

    async fn find(&self, ctx: &Ctx) -> Result<Option<aws_sdk_apigateway::types::ApiKey>> {
        let all: Vec<_> = ctx
            .aws
            .apigateway
            .get_api_keys()
            .include_values(false)
            .limit(500)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .aws(SERVICE, "GetApiKeys")?;
        let ours: Vec<_> = all.into_iter().filter(|k| ctx.owns(&self.id, tag_pairs(k.tags()))).collect();
        at_most_one(ours, "API key", &self.id)
    }

    /// Whether the key is in the plan. GetUsagePlanKeys answers ids (and values: not kept).
    /// A plan that does not exist (yet) has no keys.
    async fn in_plan(&self, ctx: &Ctx, plan_id: &str, key_id: &str) -> Result<bool> {
        let keys = ctx
            .aws
            .apigateway
            .get_usage_plan_keys()
            .usage_plan_id(plan_id)
            .limit(500)
            .into_paginator()
            .items()
            .send()
            .collect::<std::result::Result<Vec<_>, _>>()
            .await
            .aws(SERVICE, "GetUsagePlanKeys");
        Ok(found(keys)?.unwrap_or_default().iter().any(|k| k.id() == Some(key_id)))
    }

    /// CreateUsagePlanKey unless it exists: a second one is a ConflictException in AWS (moto
    /// accepts duplicates silently), so look first.
    async fn join_plan(&self, ctx: &Ctx, plan_id: &str, key_id: &str) -> Result<()> {
        if self.in_plan(ctx, plan_id, key_id).await? {
            return Ok(());
        }
        let res = apigw_write(ctx, &self.id, "CreateUsagePlanKey", pace::WRITE, || async {
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
            Err(e)
                if e.kind() == Some(crate::error::ErrorKind::AlreadyExists)
                    || e.kind() == Some(crate::error::ErrorKind::Conflict) =>
            {
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    async fn patch_key(&self, ctx: &Ctx, key_id: &str, path: &str, value: &str) -> Result<()> {
        apigw_write(ctx, &self.id, "UpdateApiKey", pace::WRITE, || async {
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
    fn id(&self) -> &str {
        &self.id
    }

    fn kind(&self) -> &'static str {
        "API key"
    }

    fn deps(&self) -> Vec<String> {
        vec![self.plan.clone()]
    }

    async fn observe(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Observed> {
        // `None` only while observing a stack whose plan does not exist: then the key is in no
        // plan of ours, and nothing is asked of AWS about it.
        let plan_id = inputs.try_get(&self.plan, "id");
        let Some(key) = self.find(ctx).await? else {
            return Ok(Observed::Missing);
        };
        let id = key.id().unwrap_or_default().to_string();
        let in_plan = match plan_id {
            Some(plan_id) => self.in_plan(ctx, plan_id, &id).await?,
            None => false,
        };
        let live = LiveKey { name: key.name().unwrap_or_default().to_string(), enabled: key.enabled(), in_plan, id };
        Ok(Observed::Present {
            outputs: self.outputs(&live.id, plan_id.unwrap_or_default()),
            changes: diff(self, &live),
        })
    }

    async fn create(&self, ctx: &Ctx, inputs: &Inputs) -> Result<Outputs> {
        let plan_id = inputs.get(&self.plan, "id")?;
        // The answer carries the generated value: only the id is kept.
        let id = apigw_write(ctx, &self.id, "CreateApiKey", pace::WRITE, || async {
            ctx.aws
                .apigateway
                .create_api_key()
                .name(&self.name)
                .description(format!("{} tier key of movies-stack stack {}", self.tier, ctx.stack))
                .enabled(true)
                .set_tags(Some(ctx.tag_map(&self.id)))
                .send()
                .await
                .aws(SERVICE, "CreateApiKey")
                .map(|out| out.id().unwrap_or_default().to_string())
        })
        .await?;
        // A run killed here leaves a key outside its plan: `diff` shows `usage_plan_key` and
        // the next run's `update` joins it.
        self.join_plan(ctx, plan_id, &id).await?;
        Ok(self.outputs(&id, plan_id))
    }

    async fn update(&self, ctx: &Ctx, inputs: &Inputs, live: &Outputs, changes: &[Change]) -> Result<Outputs> {
        let plan_id = inputs.get(&self.plan, "id")?;
        let id = live.get("id").cloned().unwrap_or_default();
        for change in changes {
            match change.field.as_str() {
                "name" => self.patch_key(ctx, &id, "/name", &self.name).await?,
                "enabled" => self.patch_key(ctx, &id, "/enabled", "true").await?,
                "usage_plan_key" => self.join_plan(ctx, plan_id, &id).await?,
                other => {
                    return Err(Error::other(format!("cannot update API key field `{other}` in place")));
                }
            }
        }
        Ok(self.outputs(&id, plan_id))
    }

    async fn delete(&self, ctx: &Ctx, live: &Outputs) -> Result<()> {
        let Some(id) = live.get("id") else {
            return Ok(());
        };
        if let Some(plan_id) = live.get("usage_plan_id").filter(|p| !p.is_empty()) {
            // Look first: moto 5.2.5 fails DeleteUsagePlanKey with a 500 when the plan has no
            // keys at all. GetUsagePlanKey answers NotFound for a missing plan or membership.
            let member = ctx
                .aws
                .apigateway
                .get_usage_plan_key()
                .usage_plan_id(plan_id)
                .key_id(id)
                .send()
                .await
                .aws(SERVICE, "GetUsagePlanKey")
                .map(|_| ());
            if found(member)?.is_some() {
                gone_is_ok(
                    apigw_write(ctx, &self.id, "DeleteUsagePlanKey", pace::WRITE, || async {
                        ctx.aws
                            .apigateway
                            .delete_usage_plan_key()
                            .usage_plan_id(plan_id)
                            .key_id(id)
                            .send()
                            .await
                            .aws(SERVICE, "DeleteUsagePlanKey")
                    })
                    .await,
                )?;
            }
        }
        gone_is_ok(
            apigw_write(ctx, &self.id, "DeleteApiKey", pace::WRITE, || async {
                ctx.aws.apigateway.delete_api_key().api_key(id).send().await.aws(SERVICE, "DeleteApiKey")
            })
            .await,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ApiKey {
        ApiKey::new("premium", "movies-premium")
    }

    fn in_sync() -> LiveKey {
        LiveKey { id: "k1".into(), name: "movies-premium".into(), enabled: true, in_plan: true }
    }

    #[test]
    fn ids_follow_the_tier() {
        assert_eq!(key().id(), "api-key-premium");
        assert_eq!(key().deps(), vec!["usage-plan-premium".to_string()]);
    }

    #[test]
    fn in_sync_key_has_no_changes() {
        assert!(diff(&key(), &in_sync()).is_empty());
    }

    #[test]
    fn each_drift_is_one_change() {
        let cases: [(&str, fn(&mut LiveKey)); 3] = [
            ("enabled", |l| l.enabled = false),
            ("usage_plan_key", |l| l.in_plan = false),
            ("name", |l| l.name = "renamed".into()),
        ];
        for (field, mutate) in cases {
            let mut live = in_sync();
            mutate(&mut live);
            let changes = diff(&key(), &live);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
        }
    }
}
