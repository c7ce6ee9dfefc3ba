//! CloudWatch Logs log groups: the function's own group (created before the function, so Lambda
//! never auto-creates it untagged and without retention), the API access-log group and the VPC
//! flow-log group. Each has a fixed name and a retention.

use async_trait::async_trait;

use super::{Ctx, FieldChange, Grant, Id, Kind, LiveStates, Name, Resource, Scope};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use serde_json::json;

/// The function's own group: Lambda may have created a group of that name.
pub const FUNCTION: Id<LiveLogGroup> = Id::new("function-log-group");
pub const ACCESS: Id<LiveLogGroup> = Id::new("access-log-group");
pub const FLOW: Id<LiveLogGroup> = Id::new("flow-log-group");

/// The API's access logs.
pub fn access_log_group_name(c: &Config) -> String {
    format!("/movies-stack/{}/api-access", c.stack)
}

/// The VPC's flow logs.
pub fn flow_log_group_name(c: &Config) -> String {
    format!("/movies-stack/{}/vpc-flow-logs", c.stack)
}

/// The function's logs: the group Lambda writes to by default, named after the function.
pub fn function_log_group_name(c: &Config) -> String {
    format!("/aws/lambda/{}", c.function.name)
}

/// One log event as `logs` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEvent {
    /// Milliseconds since the epoch.
    pub timestamp: i64,
    pub event_id: String,
    pub log_stream: String,
    pub message: String,
}

/// Every event of `group` from `start_ms` on (inclusive) that matches `pattern`, in time order,
/// through all of FilterLogEvents' pages. A missing group is a [`ErrorKind::NotFound`] error.
pub async fn filter_events(ctx: &Ctx, group: &str, start_ms: i64, pattern: Option<&str>) -> Result<Vec<LogEvent>> {
    let mut pages = ctx
        .aws
        .logs
        .filter_log_events()
        .log_group_name(group)
        .start_time(start_ms)
        .set_filter_pattern(pattern.map(str::to_string))
        .into_paginator()
        .send();
    let mut events = Vec::new();
    while let Some(page) = pages.next().await {
        let page = page.aws("CloudWatch Logs", "FilterLogEvents")?;
        events.extend(page.events().iter().map(|e| LogEvent {
            timestamp: e.timestamp().unwrap_or_default(),
            event_id: e.event_id().unwrap_or_default().to_string(),
            log_stream: e.log_stream_name().unwrap_or_default().to_string(),
            message: e.message().unwrap_or_default().trim_end().to_string(),
        }));
    }
    // Pages come stream by stream: sort by time, the order `logs` prints in.
    events.sort_by(|a, b| (a.timestamp, &a.event_id).cmp(&(b.timestamp, &b.event_id)));
    Ok(events)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogGroup {
    /// One of [`FUNCTION`], [`ACCESS`], [`FLOW`].
    pub id: Id<LiveLogGroup>,
    pub name: String,
    pub retention_days: i32,
}

/// The live log group, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveLogGroup {
    pub name: String,
    /// Without the trailing `:*` (see [`arn_without_wildcard`]).
    pub arn: String,
    /// `None`: never expire (no retention policy).
    pub retention_days: Option<i32>,
}

/// The one thing of a log group that can drift: its retention.
pub fn diff(desired: &LogGroup, live: &LiveLogGroup) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    if live.retention_days != Some(desired.retention_days) {
        let live_retention = match live.retention_days {
            Some(days) => days.to_string(),
            None => "never expire".to_string(),
        };
        changes.push(FieldChange::update("retention_days", desired.retention_days, live_retention));
    }
    changes
}

/// `DescribeLogGroups` gives `arn` as `arn:...:log-group:NAME:*`. Consumers (API Gateway access
/// logs, IAM policies, `ListTagsForResource`) want the ARN without `:*`; moto even answers `{}`
/// to `ListTagsForResource` with the `:*` form.
pub fn arn_without_wildcard(arn: &str) -> &str {
    arn.strip_suffix(":*").unwrap_or(arn)
}

/// A log group's ARN (without `:*`), from its name.
pub fn arn(ctx: &Ctx, name: &str) -> String {
    ctx.arn("logs", &format!("log-group:{name}"))
}

impl LogGroup {
    fn name(&self) -> Name {
        self.id.name()
    }

    async fn find(&self, ctx: &Ctx) -> Result<Option<LiveLogGroup>> {
        // Names are returned in lexicographic order, and a name sorts before every longer name it
        // prefixes, so if the group exists it is on the first page. Other filters
        // (`logGroupIdentifiers`, `logGroupNamePattern`) are ignored by moto: match exactly here.
        let out = ctx
            .aws
            .logs
            .describe_log_groups()
            .log_group_name_prefix(&self.name)
            .send()
            .await
            .aws("CloudWatch Logs", "DescribeLogGroups")?;
        let Some(group) = out.log_groups().iter().find(|g| g.log_group_name() == Some(self.name.as_str())) else {
            return Ok(None);
        };
        // `logGroupArn` is the ARN without `:*`; older responses only carry `arn` (with it).
        let arn = group
            .log_group_arn()
            .or(group.arn())
            .map(arn_without_wildcard)
            .ok_or_else(|| {
                Error::other(format!("DescribeLogGroups returned log group `{}` without an ARN", self.name))
            })?
            .to_string();
        Ok(Some(LiveLogGroup { name: self.name.clone(), arn, retention_days: group.retention_in_days() }))
    }

    async fn check_ours(&self, ctx: &Ctx, arn: &str) -> Result<()> {
        let out = ctx
            .aws
            .logs
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .aws("CloudWatch Logs", "ListTagsForResource")?;
        let tags = out.tags().into_iter().flatten().map(|(k, v)| (k.as_str(), v.as_str()));
        if ctx.owns(self.name(), tags) {
            return Ok(());
        }
        let err = ctx.foreign("log group", &self.name).await;
        if self.id == FUNCTION {
            // Lambda creates `/aws/lambda/<function>` itself, untagged and without retention, the
            // first time the function writes a log line and the group does not exist. Still
            // not adopted: we cannot tell that group from someone else's.
            return Err(Error::other(format!(
                "{err}. Note: Lambda creates this group by itself, untagged, when the function logs before the \
                 group exists (e.g. a function deployed by another tool); if that is what happened and its logs \
                 are not needed, delete the log group and run again"
            )));
        }
        Err(err)
    }

    async fn put_retention(&self, ctx: &Ctx) -> Result<()> {
        ctx.aws
            .logs
            .put_retention_policy()
            .log_group_name(&self.name)
            .retention_in_days(self.retention_days)
            .send()
            .await
            .aws("CloudWatch Logs", "PutRetentionPolicy")?;
        Ok(())
    }
}

#[async_trait]
impl Resource for LogGroup {
    type Live = LiveLogGroup;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveLogGroup> {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::LogGroup
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let actions = [
            "logs:CreateLogGroup",
            "logs:TagResource",
            "logs:ListTagsForResource",
            "logs:PutRetentionPolicy",
            "logs:DeleteLogGroup",
        ];
        vec![
            // Lists groups: AWS authorizes it on `log-group::log-stream:`, not on a group
            // (terraform-provider-aws#8804), so no group's ARN can scope it.
            Grant::new("ReadWithoutResourceScope", &["logs:DescribeLogGroups"], ["*".to_string()]),
            Grant::new("TheLogGroups", &actions, s.log_group(&self.name)),
        ]
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    fn create_rounds(&self) -> u32 {
        2 // CreateLogGroup, PutRetentionPolicy
    }

    fn export(&self, ctx: &Ctx, live: &LiveLogGroup) -> Vec<CfnResource> {
        let properties = json!({
            "LogGroupName": live.name,
            "RetentionInDays": live.retention_days,
            "Tags": cfn::tags(&ctx.tags(self.name())),
        });
        vec![CfnResource::new(
            self.id,
            "AWS::Logs::LogGroup",
            properties,
            cfn::identifier(&[("LogGroupName", &live.name)]),
        )]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveLogGroup>> {
        match self.find(ctx).await? {
            Some(live) => {
                self.check_ours(ctx, &live.arn).await?;
                Ok(Some(live))
            }
            None => {
                // A name a CloudFormation (e.g. CDK) stack owns would be fought over: asked in
                // the sweep, so that creating costs no extra round trip.
                ctx.check_cloudformation_owner("log group", &self.name).await?;
                Ok(None)
            }
        }
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveLogGroup) -> Result<Vec<FieldChange>> {
        Ok(diff(self, live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveLogGroup> {
        let res = ctx
            .aws
            .logs
            .create_log_group()
            .log_group_name(&self.name)
            .set_tags(Some(ctx.tag_map(self.name())))
            .send()
            .await
            .aws("CloudWatch Logs", "CreateLogGroup");
        match res {
            Ok(_) => {}
            // Created between our observe and now (typically Lambda auto-creating the function's
            // group): say whose it is rather than a bare "already exists".
            Err(e) if e.kind() == Some(ErrorKind::AlreadyExists) => {
                if let Some(live) = self.find(ctx).await? {
                    self.check_ours(ctx, &live.arn).await?;
                }
                return Err(e);
            }
            Err(e) => return Err(e),
        }
        // A crash here leaves the group without retention: `diff` reports it and `update` sets it.
        self.put_retention(ctx).await?;
        Ok(LiveLogGroup {
            name: self.name.clone(),
            arn: arn(ctx, &self.name),
            retention_days: Some(self.retention_days),
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveLogGroup,
        _changes: &[FieldChange],
    ) -> Result<LiveLogGroup> {
        // Retention is the only change.
        self.put_retention(ctx).await?;
        Ok(LiveLogGroup { retention_days: Some(self.retention_days), ..live.clone() })
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveLogGroup) -> Result<()> {
        let res = ctx
            .aws
            .logs
            .delete_log_group()
            .log_group_name(&live.name)
            .send()
            .await
            .aws("CloudWatch Logs", "DeleteLogGroup");
        crate::error::gone_is_ok(res)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn desired() -> LogGroup {
        LogGroup { id: FLOW, name: "/movies/flow".into(), retention_days: 365 }
    }

    fn live(retention_days: Option<i32>) -> LiveLogGroup {
        LiveLogGroup {
            name: "/movies/flow".into(),
            arn: "arn:aws:logs:us-east-1:123456789012:log-group:/movies/flow".into(),
            retention_days,
        }
    }

    #[test]
    fn retention_is_compared() {
        // (live retention, the change's `live` text when one is expected)
        let cases: &[(Option<i32>, Option<&str>)] =
            &[(Some(365), None), (None, Some("never expire")), (Some(30), Some("30"))];
        for (live_days, want) in cases {
            let changes = diff(&desired(), &live(*live_days));
            match want {
                None => assert!(changes.is_empty(), "{live_days:?}: {changes:?}"),
                Some(l) => {
                    assert_eq!(changes, vec![FieldChange::update("retention_days", 365, l)], "{live_days:?}");
                }
            }
        }
    }

    #[test]
    fn arn_loses_its_wildcard_suffix_only() {
        assert_eq!(
            arn_without_wildcard("arn:aws:logs:us-east-1:1:log-group:/aws/lambda/f:*"),
            "arn:aws:logs:us-east-1:1:log-group:/aws/lambda/f"
        );
        assert_eq!(
            arn_without_wildcard("arn:aws:logs:us-east-1:1:log-group:x"),
            "arn:aws:logs:us-east-1:1:log-group:x"
        );
    }
}
