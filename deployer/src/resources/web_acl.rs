//! The WAF web ACL on the API stage (config `[waf]`, off by default: it costs money every
//! month): a REGIONAL web ACL `{stack}-web-acl` that allows by default, with one rate-based rule
//! blocking an IP past `rate_limit_per_5min` requests in 5 minutes, CloudWatch metrics and sampled
//! requests on for the ACL and the rule; and its association with the stage.
//!
//! Two resources in one file. The ACL and its association are separate AWS objects
//! (Create/Update/DeleteWebACL; Associate/DisassociateWebACL), only the association needs the
//! stage, and the association must go first: "Before deleting any web ACL, first disassociate it
//! from all resources" (WAFV2 API reference, DeleteWebACL). As two nodes, the graph orders that
//! (dependents first) for `down` and for `up` after the config turned the ACL off.

use std::future::Future;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use aws_sdk_wafv2::types::{
    AllowAction, BlockAction, DefaultAction, RateBasedStatement, RateBasedStatementAggregateKeyType, Rule, RuleAction,
    Scope, Statement, Tag, VisibilityConfig, WebAclSummary,
};

use super::apigw::{self, tag_pairs};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, at_most_one, compare, rest_api, stage};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::config::Config;
use serde_json::{Value, json};
// WAF has a `Scope` of its own (REGIONAL or CLOUDFRONT).
use crate::error::{Codes, Error, ErrorKind, Result, gone_is_ok};
use crate::grant::Scope as PolicyScope;
use crate::wait::{backoff, retry};

pub const ACL: Id<LiveWebAcl> = Id::new("web-acl");
pub const ASSOCIATION: Id<LiveAssociation> = Id::new("web-acl-association");

/// Any web ACL of this name: WAF adds the id to the ARN.
fn acl_arn_pattern(s: &PolicyScope, name: &str) -> String {
    s.arn("wafv2", &format!("regional/webacl/{name}/*"))
}

/// The web ACL's name.
pub fn web_acl_name(c: &Config) -> String {
    format!("{}-web-acl", c.stack)
}

const SERVICE: &str = "WAFV2";

/// Codes only WAF's calls meet (WAFV2 API reference, Errors). "If you've just created a resource
/// that you're using in this operation, you might just need to wait a few minutes"
/// (WAFUnavailableEntityException): AssociateWebACL right after CreateWebACL is the documented
/// case. The web ACL changed since its lock token was read, or it is still associated with a
/// resource (WAFOptimisticLockException, WAFAssociatedItemException). WAF names "not found",
/// "already exists" and its quotas its own way.
const CODES: &Codes = &[
    ("WAFUnavailableEntityException", ErrorKind::Propagating),
    ("WAFOptimisticLockException", ErrorKind::Conflict),
    ("WAFAssociatedItemException", ErrorKind::Conflict),
    ("WAFNonexistentItemException", ErrorKind::NotFound),
    ("WAFDuplicateItemException", ErrorKind::AlreadyExists),
    ("WAFLimitsExceededException", ErrorKind::Quota),
];
/// The one rule of the ACL.
pub const RULE_NAME: &str = "rate-limit-per-ip";
/// The rate-based rule counts requests over the last 5 minutes (`EvaluationWindowSec`: 60, 120,
/// 300 or 600; WAFV2 API reference, RateBasedStatement).
pub const WINDOW_SECONDS: i64 = 300;

/// The metric names (VisibilityConfig `MetricName`) of the ACL and of its rule.
fn metric_names(acl_name: &str) -> (String, String) {
    (acl_name.to_string(), format!("{acl_name}-{RULE_NAME}"))
}

/// The ARN WAF knows an API Gateway stage by (AssociateWebACL `ResourceArn`):
/// `arn:partition:apigateway:region::/restapis/api-id/stages/stage-name`.
pub fn stage_arn(region: &str, api_id: &str, stage: &str) -> String {
    format!("arn:{}:apigateway:{region}::/restapis/{api_id}/stages/{stage}", crate::aws::partition(region))
}

/// CloudWatch metrics and sampled requests, both on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility {
    pub sampled_requests: bool,
    pub cloudwatch_metrics: bool,
    pub metric_name: String,
}

impl Visibility {
    fn on(metric_name: &str) -> Visibility {
        Visibility { sampled_requests: true, cloudwatch_metrics: true, metric_name: metric_name.to_string() }
    }

    fn of(v: Option<&VisibilityConfig>) -> Visibility {
        Visibility {
            sampled_requests: v.is_some_and(|v| v.sampled_requests_enabled()),
            cloudwatch_metrics: v.is_some_and(|v| v.cloud_watch_metrics_enabled()),
            metric_name: v.map(|v| v.metric_name().to_string()).unwrap_or_default(),
        }
    }

    fn sdk(&self) -> Result<VisibilityConfig> {
        VisibilityConfig::builder()
            .sampled_requests_enabled(self.sampled_requests)
            .cloud_watch_metrics_enabled(self.cloudwatch_metrics)
            .metric_name(&self.metric_name)
            .build()
            .map_err(|e| Error::other(format!("internal: visibility config: {e}")))
    }
}

/// The rate-based statement of a rule, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateStatement {
    pub limit: i64,
    pub window_seconds: i64,
    pub aggregate_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRule {
    pub name: String,
    pub priority: i32,
    /// `block`, `allow`, `count`, `captcha`, `challenge`, or `none`.
    pub action: String,
    /// None: another kind of statement.
    pub rate: Option<RateStatement>,
    pub visibility: Visibility,
}

/// The live web ACL, with the lock token its next update or delete must carry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveWebAcl {
    pub name: String,
    pub id: String,
    pub arn: String,
    pub lock_token: String,
    /// `allow`, `block` or `none`.
    pub default_action: String,
    pub visibility: Visibility,
    pub rules: Vec<LiveRule>,
}

impl LiveWebAcl {
    fn rule(&self) -> Option<&LiveRule> {
        self.rules.iter().find(|r| r.name == RULE_NAME)
    }
}

/// What the ACL must be (everything but its name and tags can change in place).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredAcl {
    pub rate_limit: i64,
    pub visibility: Visibility,
    pub rule_visibility: Visibility,
}

/// Every difference. UpdateWebACL replaces the whole mutable specification (WAFV2 API
/// reference), so each one is fixed by the same call. Pure.
pub fn diff(desired: &DesiredAcl, live: &LiveWebAcl) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    compare(&mut changes, "default_action", "allow", live.default_action.as_str());
    visibility_changes(&mut changes, "visibility", &desired.visibility, &live.visibility);
    match live.rule() {
        None => changes.push(FieldChange::update(format!("rule {RULE_NAME}"), "present", "missing")),
        Some(rule) => {
            match &rule.rate {
                None => changes.push(FieldChange::update("rule.statement", "rate-based", "another statement")),
                Some(rate) => {
                    if rate.limit != desired.rate_limit {
                        changes.push(FieldChange::update("rate_limit_per_5min", desired.rate_limit, rate.limit));
                    }
                    compare(&mut changes, "rule.evaluation_window_sec", WINDOW_SECONDS, rate.window_seconds);
                    compare(&mut changes, "rule.aggregate_key", "IP", rate.aggregate_key.as_str());
                }
            }
            compare(&mut changes, "rule.action", "block", rule.action.as_str());
            compare(&mut changes, "rule.priority", 0, rule.priority);
            visibility_changes(&mut changes, "rule.visibility", &desired.rule_visibility, &rule.visibility);
        }
    }
    for other in live.rules.iter().filter(|r| r.name != RULE_NAME) {
        changes.push(FieldChange::update(format!("rule {}", other.name), "absent", "present"));
    }
    changes
}

fn visibility_changes(changes: &mut Vec<FieldChange>, prefix: &str, desired: &Visibility, live: &Visibility) {
    compare(changes, &format!("{prefix}.sampled_requests"), desired.sampled_requests, live.sampled_requests);
    compare(changes, &format!("{prefix}.cloudwatch_metrics"), desired.cloudwatch_metrics, live.cloudwatch_metrics);
    compare(changes, &format!("{prefix}.metric_name"), desired.metric_name.as_str(), live.metric_name.as_str());
}

fn rule_action(a: Option<&RuleAction>) -> &'static str {
    match a {
        Some(a) if a.block().is_some() => "block",
        Some(a) if a.allow().is_some() => "allow",
        Some(a) if a.count().is_some() => "count",
        Some(a) if a.captcha().is_some() => "captcha",
        Some(a) if a.challenge().is_some() => "challenge",
        _ => "none",
    }
}

pub fn live_acl(acl: &aws_sdk_wafv2::types::WebAcl, lock_token: &str) -> LiveWebAcl {
    let default_action = match acl.default_action() {
        Some(d) if d.allow().is_some() => "allow",
        Some(d) if d.block().is_some() => "block",
        _ => "none",
    };
    LiveWebAcl {
        name: acl.name().to_string(),
        id: acl.id().to_string(),
        arn: acl.arn().to_string(),
        lock_token: lock_token.to_string(),
        default_action: default_action.to_string(),
        visibility: Visibility::of(acl.visibility_config()),
        rules: acl
            .rules()
            .iter()
            .map(|r| LiveRule {
                name: r.name().to_string(),
                priority: r.priority(),
                action: rule_action(r.action()).to_string(),
                rate: r.statement().and_then(|s| s.rate_based_statement()).map(|rate| RateStatement {
                    limit: rate.limit(),
                    window_seconds: rate.evaluation_window_sec(),
                    aggregate_key: rate.aggregate_key_type().as_str().to_string(),
                }),
                visibility: Visibility::of(r.visibility_config()),
            })
            .collect(),
    }
}

/// Every web ACL of the region (REGIONAL scope), one paginated read per run shared by the ACL
/// and the association.
async fn acl_summaries(ctx: &Ctx) -> Result<Arc<Vec<WebAclSummary>>> {
    ctx.once("wafv2:ListWebACLs", || async {
        let mut all = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = ctx
                .aws
                .wafv2
                .list_web_acls()
                .scope(Scope::Regional)
                .limit(100)
                .set_next_marker(marker.take())
                .send()
                .await
                .aws_with(SERVICE, "ListWebACLs", CODES)?;
            let page = out.web_acls();
            all.extend_from_slice(page);
            // A marker may come with the last page; an empty page ends it too.
            match out.next_marker() {
                Some(m) if !page.is_empty() => marker = Some(m.to_string()),
                _ => return Ok(all),
            }
        }
    })
    .await
}

/// The summary of the ACL named `name`, if any (names are unique per scope and region).
async fn summary(ctx: &Ctx, name: &str) -> Result<Option<WebAclSummary>> {
    Ok(acl_summaries(ctx).await?.iter().find(|s| s.name() == Some(name)).cloned())
}

async fn get_acl(ctx: &Ctx, name: &str, id: &str) -> Result<LiveWebAcl> {
    let out = ctx.aws.wafv2.get_web_acl().name(name).scope(Scope::Regional).id(id).send().await.aws_with(
        SERVICE,
        "GetWebACL",
        CODES,
    )?;
    let acl = out.web_acl().ok_or_else(|| Error::other(format!("WAFV2 GetWebACL returned no web ACL for `{name}`")))?;
    Ok(live_acl(acl, out.lock_token().unwrap_or_default()))
}

/// The web ACL itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAcl {
    pub name: String,
    pub rate_limit: i64,
    /// `[waf] enabled`.
    pub enabled: bool,
}

impl WebAcl {
    fn desired(&self) -> DesiredAcl {
        let (acl_metric, rule_metric) = metric_names(&self.name);
        DesiredAcl {
            rate_limit: self.rate_limit,
            visibility: Visibility::on(&acl_metric),
            rule_visibility: Visibility::on(&rule_metric),
        }
    }

    fn description(ctx: &Ctx) -> String {
        format!("Rate limit per IP on the API of movies-stack stack {}", ctx.stack)
    }

    /// The whole mutable specification: default action, the rule, visibility.
    fn spec(&self) -> Result<(DefaultAction, Rule, VisibilityConfig)> {
        let d = self.desired();
        let internal = |e: aws_sdk_wafv2::error::BuildError| Error::other(format!("internal: web ACL rule: {e}"));
        let statement = Statement::builder()
            .rate_based_statement(
                RateBasedStatement::builder()
                    .limit(self.rate_limit)
                    .evaluation_window_sec(WINDOW_SECONDS)
                    .aggregate_key_type(RateBasedStatementAggregateKeyType::Ip)
                    .build()
                    .map_err(internal)?,
            )
            .build();
        let rule = Rule::builder()
            .name(RULE_NAME)
            .priority(0)
            .statement(statement)
            .action(RuleAction::builder().block(BlockAction::builder().build()).build())
            .visibility_config(d.rule_visibility.sdk()?)
            .build()
            .map_err(internal)?;
        let default_action = DefaultAction::builder().allow(AllowAction::builder().build()).build();
        Ok((default_action, rule, d.visibility.sdk()?))
    }

    /// The live ACL after a create or an update that succeeded with `lock_token`.
    fn as_live(&self, id: &str, arn: &str, lock_token: &str) -> LiveWebAcl {
        let d = self.desired();
        LiveWebAcl {
            name: self.name.clone(),
            id: id.to_string(),
            arn: arn.to_string(),
            lock_token: lock_token.to_string(),
            default_action: "allow".into(),
            visibility: d.visibility,
            rules: vec![LiveRule {
                name: RULE_NAME.into(),
                priority: 0,
                action: "block".into(),
                rate: Some(RateStatement {
                    limit: self.rate_limit,
                    window_seconds: WINDOW_SECONDS,
                    aggregate_key: "IP".into(),
                }),
                visibility: d.rule_visibility,
            }],
        }
    }

    /// A call that carries the ACL's lock token, retried on [`ErrorKind::Conflict`] and
    /// [`ErrorKind::Propagating`] until the deadline. A conflict is WAFOptimisticLockException
    /// (the ACL changed since its token was read: "Get the resource again, make any changes you
    /// need to make to the new copy, and retry your operation", WAFV2 API reference) or
    /// WAFAssociatedItemException (a delete while a disassociation is still propagating;
    /// terraform-provider-aws retries both, `resourceWebACLDelete`). Our changes are the whole
    /// desired specification, so reading the ACL's current token again is all a retry needs.
    async fn with_lock<T, F, Fut>(&self, ctx: &Ctx, live: &LiveWebAcl, what: &str, op: F) -> Result<T>
    where
        F: Fn(String) -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let token = Mutex::new(live.lock_token.clone());
        let (token, op) = (&token, &op);
        retry(
            ctx,
            ACL,
            what,
            &[ErrorKind::Conflict, ErrorKind::Propagating],
            ctx.timeouts.resource_ready,
            backoff::WAF_CONFLICT,
            || async move {
                let current = token.lock().expect("lock token").clone();
                let res = op(current).await;
                if res.as_ref().err().and_then(Error::kind) == Some(ErrorKind::Conflict) {
                    let fresh = get_acl(ctx, &live.name, &live.id).await?;
                    *token.lock().expect("lock token") = fresh.lock_token;
                }
                res
            },
        )
        .await
    }
}

#[async_trait]
impl Resource for WebAcl {
    type Live = LiveWebAcl;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveWebAcl> {
        ACL
    }

    fn kind(&self) -> Kind {
        Kind::WebAcl
    }
    fn grants(&self, s: &PolicyScope) -> Vec<Grant> {
        let actions = [
            "wafv2:CreateWebACL",
            "wafv2:GetWebACL",
            "wafv2:UpdateWebACL",
            "wafv2:DeleteWebACL",
            "wafv2:TagResource",
            "wafv2:ListTagsForResource",
        ];
        vec![
            // Finds the web ACL by name (every run, `[waf]` on or off: an earlier config may have
            // made one).
            Grant::new("ReadWithoutResourceScope", &["wafv2:ListWebACLs"], ["*".to_string()]),
            Grant::new("TheWebAcl", &actions, [acl_arn_pattern(s, &self.name)]),
        ]
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    fn wanted(&self) -> bool {
        self.enabled
    }

    fn export(&self, ctx: &Ctx, live: &LiveWebAcl) -> Vec<CfnResource> {
        let visibility = |v: &Visibility| {
            json!({
                "SampledRequestsEnabled": v.sampled_requests,
                "CloudWatchMetricsEnabled": v.cloudwatch_metrics,
                "MetricName": v.metric_name,
            })
        };
        let action = |a: &str| {
            let mut name = a.to_string();
            name[..1].make_ascii_uppercase();
            json!({ name: {} })
        };
        let rules: Vec<Value> = live
            .rules
            .iter()
            .filter_map(|r| {
                let rate = r.rate.as_ref()?;
                Some(json!({
                    "Name": r.name,
                    "Priority": r.priority,
                    "Action": action(&r.action),
                    "Statement": { "RateBasedStatement": {
                        "Limit": rate.limit,
                        "EvaluationWindowSec": rate.window_seconds,
                        "AggregateKeyType": rate.aggregate_key,
                    } },
                    "VisibilityConfig": visibility(&r.visibility),
                }))
            })
            .collect();
        let properties = json!({
            "Name": live.name,
            "Scope": "REGIONAL",
            "Description": Self::description(ctx),
            "DefaultAction": action(&live.default_action),
            "Rules": rules,
            "VisibilityConfig": visibility(&live.visibility),
            "Tags": cfn::tags(&ctx.tags(ACL.name())),
        });
        let import = cfn::identifier(&[("Name", &live.name), ("Id", &live.id), ("Scope", "REGIONAL")]);
        vec![CfnResource::new(ACL, "AWS::WAFv2::WebACL", properties, import)]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveWebAcl>> {
        let Some(found) = summary(ctx, &self.name).await? else { return Ok(None) };
        let arn = found.arn().unwrap_or_default();
        let tags = ctx.aws.wafv2.list_tags_for_resource().resource_arn(arn).send().await.aws_with(
            SERVICE,
            "ListTagsForResource",
            CODES,
        )?;
        let tags = tags.tag_info_for_resource().map(|t| t.tag_list()).unwrap_or_default();
        if !ctx.owns(ACL.name(), tags.iter().map(|t| (t.key(), t.value()))) {
            // Someone else's ACL of that name: never adopted. Turned off, it is none of ours.
            if !self.enabled {
                return Ok(None);
            }
            return Err(ctx.foreign("web ACL", &self.name).await);
        }
        Ok(Some(get_acl(ctx, &self.name, found.id().unwrap_or_default()).await?))
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveWebAcl) -> Result<Vec<FieldChange>> {
        Ok(diff(&self.desired(), live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveWebAcl> {
        let (default_action, rule, visibility) = self.spec()?;
        let tags = ctx
            .tags(ACL.name())
            .into_iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| Error::other(format!("internal: web ACL tags: {e}")))?;
        let out = ctx
            .aws
            .wafv2
            .create_web_acl()
            .name(&self.name)
            .scope(Scope::Regional)
            .default_action(default_action)
            .description(Self::description(ctx))
            .rules(rule)
            .visibility_config(visibility)
            .set_tags(Some(tags))
            .send()
            .await
            .aws_with(SERVICE, "CreateWebACL", CODES)?;
        let s = out.summary().ok_or_else(|| Error::other("WAFV2 CreateWebACL returned no summary"))?;
        Ok(self.as_live(s.id().unwrap_or_default(), s.arn().unwrap_or_default(), s.lock_token().unwrap_or_default()))
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveWebAcl,
        _changes: &[FieldChange],
    ) -> Result<LiveWebAcl> {
        let (default_action, rule, visibility) = self.spec()?;
        let description = Self::description(ctx);
        let spec = (&default_action, &rule, &visibility, &description);
        let out = self
            .with_lock(ctx, live, "the web ACL's current lock token", |token| async move {
                let (default_action, rule, visibility, description) = spec;
                ctx.aws
                    .wafv2
                    .update_web_acl()
                    .name(&live.name)
                    .scope(Scope::Regional)
                    .id(&live.id)
                    .lock_token(token)
                    .default_action(default_action.clone())
                    .description(description)
                    .rules(rule.clone())
                    .visibility_config(visibility.clone())
                    .send()
                    .await
                    .aws_with(SERVICE, "UpdateWebACL", CODES)
            })
            .await?;
        Ok(self.as_live(&live.id, &live.arn, out.next_lock_token().unwrap_or_default()))
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveWebAcl) -> Result<()> {
        let res = self
            .with_lock(
                ctx,
                live,
                "the web ACL to be free of associations (and its current lock token)",
                |token| async move {
                    ctx.aws
                        .wafv2
                        .delete_web_acl()
                        .name(&live.name)
                        .scope(Scope::Regional)
                        .id(&live.id)
                        .lock_token(token)
                        .send()
                        .await
                        .aws_with(SERVICE, "DeleteWebACL", CODES)
                },
            )
            .await;
        gone_is_ok(res)
    }

    fn health(&self, live: &LiveWebAcl) -> Vec<(&'static str, String)> {
        match live.rule().and_then(|r| r.rate.as_ref()) {
            Some(rate) => vec![("rate_limit", format!("{}/5min/IP", rate.limit))],
            None => Vec::new(),
        }
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveWebAcl) -> Vec<(&'static str, String)> {
        vec![("WebAclArn", live.arn.clone())]
    }
}

/// The association of the web ACL with the stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebAclAssociation {
    /// The web ACL's name (ours, `{stack}-web-acl`).
    pub acl_name: String,
    pub stage_name: String,
    /// `[waf] enabled`.
    pub enabled: bool,
}

/// The web ACL a stage is associated with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveAssociation {
    /// The stage's ARN.
    pub resource_arn: String,
    pub web_acl_arn: String,
    pub web_acl_name: String,
}

impl WebAclAssociation {
    fn resource_arn(ctx: &Ctx, inputs: &LiveStates) -> Result<String> {
        let stage = inputs.get(stage::ID)?;
        Ok(stage_arn(&ctx.aws.region, &stage.api_id, &stage.name))
    }

    /// AssociateWebACL. Right after CreateWebACL, AWS may answer WAFUnavailableEntityException
    /// ("After you create a web ACL, if you try to associate it with a resource, you might get an
    /// exception indicating that the web ACL is unavailable", WAFV2 API reference,
    /// AssociateWebACL): retried (terraform-provider-aws retries it for 10 minutes,
    /// `resourceWebACLAssociationCreate`). A stage associated with another web ACL moves to
    /// ours: AssociateWebACL replaces the association (pulumi/pulumi-aws#4782).
    async fn associate(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveAssociation> {
        let acl = inputs.get(ACL)?;
        let resource_arn = Self::resource_arn(ctx, inputs)?;
        retry(
            ctx,
            ASSOCIATION,
            "the new web ACL to be associable (WAF propagation)",
            &[ErrorKind::Propagating],
            ctx.timeouts.resource_ready,
            backoff::STATE,
            || async {
                ctx.aws
                    .wafv2
                    .associate_web_acl()
                    .web_acl_arn(&acl.arn)
                    .resource_arn(&resource_arn)
                    .send()
                    .await
                    .aws_with(SERVICE, "AssociateWebACL", CODES)
            },
        )
        .await?;
        Ok(LiveAssociation { resource_arn, web_acl_arn: acl.arn.clone(), web_acl_name: acl.name.clone() })
    }
}

/// The web ACL a GetWebACLForResource refusal is about. The call "uses GetWebACL, to verify that
/// your account has permission to access the retrieved web ACL" (WAFV2 API reference,
/// GetWebACLForResource): a stage on a web ACL the caller may not read (another team's) is
/// refused with IAM's "... is not authorized to perform: wafv2:GetWebACL on resource: ARN ...".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UnreadableAcl {
    /// Not ours: its ARN, from the refusal.
    Foreign(String),
    /// Our own ACL (the policy lacks wafv2:GetWebACL on it).
    Ours,
    /// The refusal names wafv2:GetWebACL but no ARN.
    Unnamed,
}

/// Which ACL an access denial of GetWebACLForResource is about, when it is about reading one.
pub fn unreadable_acl(e: &Error, our_acl: &str) -> Option<UnreadableAcl> {
    let message = &e.aws()?.message;
    if !message.contains("wafv2:GetWebACL ") && !message.ends_with("wafv2:GetWebACL") {
        return None;
    }
    let Some(arn) = message
        .split("on resource: ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .filter(|arn| arn.starts_with("arn:") && arn.contains("/webacl/"))
    else {
        return Some(UnreadableAcl::Unnamed);
    };
    let name = arn.split("/webacl/").nth(1).and_then(|rest| rest.split('/').next());
    Some(if name == Some(our_acl) { UnreadableAcl::Ours } else { UnreadableAcl::Foreign(arn.to_string()) })
}

impl UnreadableAcl {
    /// One line: which stage, which ACL, the permission it takes and the ways out.
    fn explain(&self, stage: &str, stage_arn: &str, our_acl: &str, e: &Error) -> Error {
        let acl = match self {
            UnreadableAcl::Foreign(arn) => {
                format!("web ACL {arn}, which this tool did not make (its own is `{our_acl}`)")
            }
            UnreadableAcl::Unnamed => {
                format!("a web ACL AWS did not name, most likely not this tool's (its own is `{our_acl}`)")
            }
            UnreadableAcl::Ours => {
                return Error::input(format!(
                    "reading the web ACL of stage `{stage}` ({stage_arn}) needs wafv2:GetWebACL on this tool's own web \
                     ACL `{our_acl}`: add it to the deployer's policy (`movies-stack iam-policy` prints it). {e}"
                ));
            }
        };
        Error::input(format!(
            "stage `{stage}` ({stage_arn}) is associated with {acl}; reading that association needs wafv2:GetWebACL \
             on that web ACL: grant it to the deployer, or have its owner disassociate it from the stage. {e}"
        ))
    }
}

#[async_trait]
impl Resource for WebAclAssociation {
    type Live = LiveAssociation;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveAssociation> {
        ASSOCIATION
    }

    fn kind(&self) -> Kind {
        Kind::WebAclAssociation
    }
    fn grants(&self, s: &PolicyScope) -> Vec<Grant> {
        // Associating the web ACL with the stage acts on both; disassociating on the stage; API
        // Gateway's own `SetWebACL` on the stage too (WAF Developer Guide, "Permissions for
        // AssociateWebACL"). The API's id is generated: any API, this stage name.
        let stage = s.apigateway(&format!("/restapis/*/stages/{}", self.stage_name));
        vec![
            Grant::new(
                "TheWebAclOnTheStage",
                &["wafv2:AssociateWebACL", "wafv2:GetWebACLForResource"],
                [acl_arn_pattern(s, &self.acl_name), stage.clone()],
            ),
            Grant::new("TheStageOfTheWebAcl", &["wafv2:DisassociateWebACL", "apigateway:SetWebACL"], [stage]),
        ]
    }

    fn deps(&self) -> Vec<Dep> {
        // Turned off, it is only ever deleted, which needs its own state alone: it waits for
        // nothing (not for the stage) and stays ahead of the ACL in the reverse order.
        if self.enabled { vec![Dep::on(ACL), Dep::on(stage::ID)] } else { vec![Dep::on(ACL)] }
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    fn wanted(&self) -> bool {
        self.enabled
    }

    fn export(&self, _ctx: &Ctx, live: &LiveAssociation) -> Vec<CfnResource> {
        let properties = json!({
            "ResourceArn": cfn::sub(format!(
                "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}::/restapis/${{{}}}/stages/${{{}}}",
                cfn::logical_id(rest_api::ID),
                cfn::logical_id(stage::ID)
            )),
            "WebACLArn": cfn::attribute(ACL, "Arn"),
        });
        let import = cfn::identifier(&[("ResourceArn", &live.resource_arn), ("WebACLArn", &live.web_acl_arn)]);
        vec![CfnResource::new(ASSOCIATION, "AWS::WAFv2::WebACLAssociation", properties, import)]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveAssociation>> {
        // Turned off, only an association with our own ACL is ours to remove: without that ACL
        // there is nothing to look for (and no call to make).
        if !self.enabled && summary(ctx, &self.acl_name).await?.is_none() {
            return Ok(None);
        }
        // The stage lives in our API: no API, no stage, no association.
        let apis = apigw::rest_apis(ctx).await?;
        let ours: Vec<_> = apis.iter().filter(|a| ctx.owns(rest_api::ID.name(), tag_pairs(a.tags()))).collect();
        let Some(api) = at_most_one(ours, "REST API", rest_api::ID.name())? else { return Ok(None) };
        let resource_arn = stage_arn(&ctx.aws.region, api.id().unwrap_or_default(), &self.stage_name);
        let res = ctx.aws.wafv2.get_web_acl_for_resource().resource_arn(&resource_arn).send().await.aws_with(
            SERVICE,
            "GetWebACLForResource",
            CODES,
        );
        let res = match res {
            Err(e) if e.kind() == Some(ErrorKind::Auth) => match unreadable_acl(&e, &self.acl_name) {
                // Turned off, an association with an ACL that is not ours is not ours to remove.
                Some(UnreadableAcl::Foreign(_)) | Some(UnreadableAcl::Unnamed) if !self.enabled => return Ok(None),
                Some(acl) => return Err(acl.explain(&self.stage_name, &resource_arn, &self.acl_name, &e)),
                None => Err(e),
            },
            other => other,
        };
        // WAFNonexistentItemException: no such stage (terraform `findWebACLByResourceARN`).
        let Some(out) = apigw::found(res)? else { return Ok(None) };
        let Some(acl) = out.web_acl() else { return Ok(None) };
        if !self.enabled && acl.name() != self.acl_name {
            return Ok(None);
        }
        Ok(Some(LiveAssociation {
            resource_arn,
            web_acl_arn: acl.arn().to_string(),
            web_acl_name: acl.name().to_string(),
        }))
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveAssociation) -> Result<Vec<FieldChange>> {
        let acl = inputs.get(ACL)?;
        let mut changes = Vec::new();
        if live.web_acl_arn != acl.arn {
            changes.push(FieldChange::update("web_acl", &acl.name, &live.web_acl_name));
        }
        Ok(changes)
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveAssociation> {
        self.associate(ctx, inputs).await
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        _live: &LiveAssociation,
        _changes: &[FieldChange],
    ) -> Result<LiveAssociation> {
        self.associate(ctx, inputs).await
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveAssociation) -> Result<()> {
        let res = ctx.aws.wafv2.disassociate_web_acl().resource_arn(&live.resource_arn).send().await.aws_with(
            SERVICE,
            "DisassociateWebACL",
            CODES,
        );
        gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waf_names_its_errors_its_own_way() {
        let cases: &[(&str, &str, ErrorKind)] = &[
            (
                "WAFUnavailableEntityException",
                "AWS WAF couldn't retrieve the resource that you requested. Retry your request.",
                ErrorKind::Propagating,
            ),
            ("WAFOptimisticLockException", "AWS WAF couldn't save your changes", ErrorKind::Conflict),
            ("WAFAssociatedItemException", "AWS WAF couldn't perform the operation", ErrorKind::Conflict),
            ("WAFNonexistentItemException", "your resource doesn't exist", ErrorKind::NotFound),
            ("WAFDuplicateItemException", "a duplicate of an existing one", ErrorKind::AlreadyExists),
            ("WAFLimitsExceededException", "too many web ACLs", ErrorKind::Quota),
        ];
        for (code, msg, want) in cases {
            assert_eq!(crate::error::classify_with(CODES, Some(code), msg, Some(400)), *want, "{code}: {msg}");
        }
    }
    use crate::resources::test_support::*;

    fn acl() -> WebAcl {
        WebAcl { name: "s-web-acl".into(), rate_limit: 2000, enabled: true }
    }

    fn in_sync() -> LiveWebAcl {
        acl().as_live(
            "0123abcd-0000-0000-0000-000000000000",
            "arn:aws:wafv2:us-east-1:1:regional/webacl/s-web-acl/x",
            "t1",
        )
    }

    #[test]
    fn what_create_makes_is_in_sync() {
        assert_eq!(diff(&acl().desired(), &in_sync()), vec![]);
        let (_, rule, visibility) = acl().spec().unwrap();
        assert_eq!(visibility.metric_name(), "s-web-acl");
        assert_eq!(rule.visibility_config().map(|v| v.metric_name()), Some("s-web-acl-rate-limit-per-ip"));
        let rate = rule.statement().and_then(|s| s.rate_based_statement()).unwrap();
        assert_eq!((rate.limit(), rate.evaluation_window_sec()), (2000, 300));
        assert_eq!(rate.aggregate_key_type(), &RateBasedStatementAggregateKeyType::Ip);
    }

    #[test]
    fn every_drift_is_one_change_fixed_by_the_update() {
        let cases: Vec<(&str, Edit<LiveWebAcl>, &str, &str)> = vec![
            ("rate limit", |l| l.rules[0].rate.as_mut().unwrap().limit = 50, "rate_limit_per_5min", "50"),
            ("default action", |l| l.default_action = "block".into(), "default_action", "\"block\""),
            ("sampling off", |l| l.visibility.sampled_requests = false, "visibility.sampled_requests", "false"),
            ("metrics off", |l| l.visibility.cloudwatch_metrics = false, "visibility.cloudwatch_metrics", "false"),
            (
                "rule metrics off",
                |l| l.rules[0].visibility.cloudwatch_metrics = false,
                "rule.visibility.cloudwatch_metrics",
                "false",
            ),
            ("rule counts only", |l| l.rules[0].action = "count".into(), "rule.action", "\"count\""),
            ("window", |l| l.rules[0].rate.as_mut().unwrap().window_seconds = 60, "rule.evaluation_window_sec", "60"),
            ("rule gone", |l| l.rules.clear(), "rule rate-limit-per-ip", "missing"),
            ("another statement", |l| l.rules[0].rate = None, "rule.statement", "another statement"),
            (
                "an extra rule",
                |l| {
                    let mut extra = l.rules[0].clone();
                    extra.name = "by-hand".into();
                    l.rules.push(extra);
                },
                "rule by-hand",
                "present",
            ),
        ];
        for (what, edit, field, live_text) in cases {
            let mut live = in_sync();
            edit(&mut live);
            let changes = diff(&acl().desired(), &live);
            assert_eq!(changes.len(), 1, "{what}: {changes:?}");
            assert_eq!((changes[0].field.as_str(), changes[0].live.as_str()), (field, live_text), "{what}");
            assert!(!changes[0].replace, "{what}: changed in place");
        }
    }

    #[test]
    fn the_stage_arn_is_wafs_format() {
        assert_eq!(
            stage_arn("us-east-1", "a1b2c3", "prod"),
            "arn:aws:apigateway:us-east-1::/restapis/a1b2c3/stages/prod"
        );
        assert_eq!(stage_arn("cn-north-1", "x", "dev"), "arn:aws-cn:apigateway:cn-north-1::/restapis/x/stages/dev");
    }

    #[test]
    fn an_access_denial_names_the_web_acl_it_could_not_read() {
        const THEIRS: &str = "arn:aws:wafv2:us-east-1:1:regional/webacl/edge-team/9a8b";
        let denied = |message: &str| {
            Error::Aws(crate::error::AwsError {
                service: SERVICE,
                operation: "GetWebACLForResource",
                code: Some("AccessDeniedException".into()),
                message: message.into(),
                kind: ErrorKind::Auth,
                status: Some(400),
            })
        };
        let iam = |arn: &str| {
            denied(&format!(
                "User: arn:aws:iam::1:user/d is not authorized to perform: wafv2:GetWebACL on resource: {arn} because \
                 no identity-based policy allows the wafv2:GetWebACL action"
            ))
        };
        let theirs = iam(THEIRS);
        assert_eq!(unreadable_acl(&theirs, "s-web-acl"), Some(UnreadableAcl::Foreign(THEIRS.into())));
        let ours = "arn:aws:wafv2:us-east-1:1:regional/webacl/s-web-acl/x";
        assert_eq!(unreadable_acl(&iam(ours), "s-web-acl"), Some(UnreadableAcl::Ours));
        assert_eq!(
            unreadable_acl(&denied("You are not authorized to perform: wafv2:GetWebACL"), "s-web-acl"),
            Some(UnreadableAcl::Unnamed)
        );
        assert_eq!(
            unreadable_acl(&denied("not authorized to perform: wafv2:GetWebACLForResource on resource: x"), "s"),
            None,
            "a denial of the call itself is the policy's business"
        );
        let stage = stage_arn("us-east-1", "a1", "prod");
        let text = UnreadableAcl::Foreign(THEIRS.into()).explain("prod", &stage, "s-web-acl", &theirs).to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        for needle in
            [THEIRS, stage.as_str(), "did not make", "wafv2:GetWebACL on that web ACL", "AccessDeniedException"]
        {
            assert!(text.contains(needle), "{needle:?} in {text}");
        }
        assert_eq!(
            UnreadableAcl::Foreign(THEIRS.into()).explain("prod", &stage, "s", &theirs).exit_code(),
            crate::error::exit::INPUT
        );
    }

    #[tokio::test]
    async fn turned_off_without_our_acl_nothing_is_looked_for() {
        // The test context's clients point at a closed port: any call would fail.
        let ctx = Ctx::for_tests(false).await;
        ctx.once("wafv2:ListWebACLs", || async { Ok::<_, Error>(Vec::<WebAclSummary>::new()) }).await.unwrap();
        let assoc = WebAclAssociation { acl_name: "t-web-acl".into(), stage_name: "prod".into(), enabled: false };
        assert_eq!(assoc.observe(&ctx).await.unwrap(), None);
        let off = WebAcl { name: "t-web-acl".into(), rate_limit: 2000, enabled: false };
        assert_eq!(off.observe(&ctx).await.unwrap(), None);
        assert!(!Resource::wanted(&off) && !Resource::wanted(&assoc));
    }
}
