//! CloudWatch alarms on the function and the API (issue 10), one resource per alarm, each named
//! `{stack}-{what}`:
//!
//! | id                            | metric                               | fires when                  |
//! |-------------------------------|--------------------------------------|-----------------------------|
//! | `alarm-function-errors`       | AWS/Lambda `Errors`, Sum             | > 0 over 5 min              |
//! | `alarm-function-throttles`    | AWS/Lambda `Throttles`, Sum          | > 0 over 5 min              |
//! | `alarm-concurrent-executions` | AWS/Lambda `ConcurrentExecutions`, Maximum | >= N for 2 periods of 5 min |
//! | `alarm-api-5xx`               | AWS/ApiGateway `5XXError`, Sum       | > 0 over 5 min              |
//! | `alarm-api-latency`           | AWS/ApiGateway `Latency`, p99        | > N ms over 5 min           |
//!
//! Lambda's errors and throttles are those of what the API invokes, the alias `live` (dimensions
//! `FunctionName` and `Resource` = `name:live`), so that they follow each deployed version;
//! concurrency is per function (dimension `FunctionName`), as its reservation is. A REST API's per stage
//! (dimensions `ApiName` and `Stage`: API Gateway developer guide, "Amazon API Gateway
//! dimensions and metrics"). A period without data points (no traffic) is not breaching
//! (`TreatMissingData = notBreaching`): an idle API is not an incident.
//!
//! The alarms need only names (the function's, the API's, the stage's), known from the config:
//! no dependency, they are made in the first round. AWS accepts an alarm on a metric that has no
//! data point yet: PutMetricAlarm checks no metric's existence (its API reference lists no such
//! error), and a new alarm simply starts in `INSUFFICIENT_DATA` until data arrives.
//!
//! The Rust SDK speaks CloudWatch's RPC v2 CBOR protocol. An endpoint that answers
//! DescribeAlarms with a bare 404 does not serve it (AWS answers 200, with an empty list when no
//! alarm matches): moto 5.2.5, which reads CloudWatch's JSON and query protocols only, is one.
//! There, alarms turned off are simply absent, and alarms turned on fail with a message saying
//! so.
//!
//! PutMetricAlarm is an upsert that "completely overwrites the previous configuration of the
//! alarm" (PutMetricAlarm API reference): create and every fix are the same one call with the
//! whole desired configuration. Its `Tags` are applied only when it creates the alarm ("If you
//! are using this operation to update an existing alarm, any tags you specify in this parameter
//! are ignored").

use std::sync::Arc;

use async_trait::async_trait;
use aws_sdk_cloudwatch::types::{AlarmType, ComparisonOperator, Dimension, MetricAlarm, Statistic, Tag};

use super::{Ctx, FieldChange, Grant, Id, Kind, LiveStates, Name, Resource, Scope, compare};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::dashboard::{AlarmState, AlarmValue};
use crate::error::{Error, Result};
use serde_json::{Value, json};

pub const FUNCTION_ERRORS: Id<LiveAlarm> = Id::new("alarm-function-errors");
pub const FUNCTION_THROTTLES: Id<LiveAlarm> = Id::new("alarm-function-throttles");
pub const CONCURRENT_EXECUTIONS: Id<LiveAlarm> = Id::new("alarm-concurrent-executions");
pub const API_5XX: Id<LiveAlarm> = Id::new("alarm-api-5xx");
pub const API_LATENCY: Id<LiveAlarm> = Id::new("alarm-api-latency");

const SERVICE: &str = "CloudWatch";
/// Five minutes: CloudWatch's standard resolution for AWS service metrics is one minute, and a
/// 5-minute period smooths single spikes out of the latency and concurrency alarms.
const PERIOD_SECONDS: i32 = 300;
const NOT_BREACHING: &str = "notBreaching";
const GREATER: &str = "GreaterThanThreshold";
const GREATER_OR_EQUAL: &str = "GreaterThanOrEqualToThreshold";

/// How an alarm aggregates its metric over a period: a statistic (`Sum`, `Maximum`) or a
/// percentile (`p99`, CloudWatch's `ExtendedStatistic`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stat {
    Statistic(String),
    Percentile(String),
}

impl std::fmt::Display for Stat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stat::Statistic(s) | Stat::Percentile(s) => f.write_str(s),
        }
    }
}

/// An alarm's configuration, desired or live: everything PutMetricAlarm sets that we compare.
#[derive(Debug, Clone, PartialEq)]
pub struct AlarmSpec {
    pub namespace: String,
    pub metric: String,
    /// (name, value), sorted by name.
    pub dimensions: Vec<(String, String)>,
    pub stat: Stat,
    pub period_seconds: i32,
    pub evaluation_periods: i32,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    /// Notified on ALARM and back to OK (the SNS topic, when configured).
    pub alarm_actions: Vec<String>,
    pub ok_actions: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Alarm {
    pub id: Id<LiveAlarm>,
    /// `{stack}-{what}`.
    pub name: String,
    pub description: String,
    pub spec: AlarmSpec,
    /// `[alarms] enabled`.
    pub enabled: bool,
    /// Every alarm name of the stack: the one DescribeAlarms of the sweep asks for all of them.
    pub stack_alarms: Arc<[String]>,
}

/// The live alarm, as far as we compare it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveAlarm {
    pub name: String,
    pub arn: String,
    pub spec: AlarmSpec,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
}

/// What the alarms watch, by name.
#[derive(Debug, Clone)]
pub struct Watched<'a> {
    pub function: &'a str,
    /// The REST API's name (API Gateway's `ApiName` dimension) and its stage.
    pub api: &'a str,
    pub stage: &'a str,
}

/// The alarms a canary watches (`function_alias.rs`): the function's errors and the API's 5XX.
pub fn canary_alarm_names(stack: &str) -> Vec<String> {
    ["function-errors", "api-5xx"].iter().map(|what| format!("{stack}-{what}")).collect()
}

/// The stack's five alarms.
pub fn alarms(stack: &str, watched: &Watched, settings: &crate::config::Alarms) -> Vec<Alarm> {
    let actions: Vec<String> = settings.sns_topic_arn.iter().cloned().collect();
    let spec = |namespace: &str,
                metric: &str,
                dimensions: Vec<(&str, &str)>,
                stat: Stat,
                evaluation_periods,
                threshold,
                comparison: &str| {
        let mut dimensions: Vec<(String, String)> =
            dimensions.into_iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        dimensions.sort();
        AlarmSpec {
            namespace: namespace.to_string(),
            metric: metric.to_string(),
            dimensions,
            stat,
            period_seconds: PERIOD_SECONDS,
            evaluation_periods,
            threshold,
            comparison: comparison.to_string(),
            treat_missing_data: NOT_BREACHING.to_string(),
            alarm_actions: actions.clone(),
            ok_actions: actions.clone(),
        }
    };
    // Errors and throttles of what the API invokes, the alias `live` (dimension `Resource`,
    // `name:alias`: Lambda's per-alias metrics); concurrency is the function's, as its reservation.
    let alias = format!("{}:{}", watched.function, super::function_alias::ALIAS);
    let invoked = vec![("FunctionName", watched.function), ("Resource", alias.as_str())];
    let function = vec![("FunctionName", watched.function)];
    let api = vec![("ApiName", watched.api), ("Stage", watched.stage)];
    let sum = || Stat::Statistic(Statistic::Sum.as_str().to_string());
    let defs = [
        (
            FUNCTION_ERRORS,
            "function-errors",
            format!("Lambda function {} reported errors in the last 5 minutes", watched.function),
            spec("AWS/Lambda", "Errors", invoked.clone(), sum(), 1, 0.0, GREATER),
        ),
        (
            FUNCTION_THROTTLES,
            "function-throttles",
            format!("Lambda function {} throttled invocations in the last 5 minutes", watched.function),
            spec("AWS/Lambda", "Throttles", invoked, sum(), 1, 0.0, GREATER),
        ),
        (
            CONCURRENT_EXECUTIONS,
            "concurrent-executions",
            format!(
                "Lambda function {} ran at least {} concurrent executions for 10 minutes",
                watched.function, settings.concurrent_executions
            ),
            spec(
                "AWS/Lambda",
                "ConcurrentExecutions",
                function,
                Stat::Statistic(Statistic::Maximum.as_str().to_string()),
                2,
                f64::from(settings.concurrent_executions),
                GREATER_OR_EQUAL,
            ),
        ),
        (
            API_5XX,
            "api-5xx",
            format!("API {} stage {} answered 5XX errors in the last 5 minutes", watched.api, watched.stage),
            spec("AWS/ApiGateway", "5XXError", api.clone(), sum(), 1, 0.0, GREATER),
        ),
        (
            API_LATENCY,
            "api-latency",
            format!(
                "API {} stage {}: p99 latency above {} ms over 5 minutes",
                watched.api, watched.stage, settings.latency_p99_ms
            ),
            spec(
                "AWS/ApiGateway",
                "Latency",
                api,
                Stat::Percentile("p99".to_string()),
                1,
                f64::from(settings.latency_p99_ms),
                GREATER,
            ),
        ),
    ];
    let names: Arc<[String]> = defs.iter().map(|(_, what, _, _)| format!("{stack}-{what}")).collect();
    defs.into_iter()
        .map(|(id, what, description, spec)| Alarm {
            id,
            name: format!("{stack}-{what}"),
            description,
            spec,
            enabled: settings.enabled,
            stack_alarms: names.clone(),
        })
        .collect()
}

/// What differs, field by field: each is fixed by the same one PutMetricAlarm. Pure.
pub fn diff(desired: &AlarmSpec, live: &AlarmSpec) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    compare(&mut changes, "namespace", &desired.namespace, &live.namespace);
    compare(&mut changes, "metric", &desired.metric, &live.metric);
    compare(&mut changes, "dimensions", &desired.dimensions, &live.dimensions);
    if desired.stat != live.stat {
        changes.push(FieldChange::update("statistic", &desired.stat, &live.stat));
    }
    compare(&mut changes, "period_seconds", desired.period_seconds, live.period_seconds);
    compare(&mut changes, "evaluation_periods", desired.evaluation_periods, live.evaluation_periods);
    if desired.threshold != live.threshold {
        changes.push(FieldChange::update("threshold", desired.threshold, live.threshold));
    }
    compare(&mut changes, "comparison", &desired.comparison, &live.comparison);
    compare(&mut changes, "treat_missing_data", &desired.treat_missing_data, &live.treat_missing_data);
    compare(&mut changes, "alarm_actions", &desired.alarm_actions, &live.alarm_actions);
    compare(&mut changes, "ok_actions", &desired.ok_actions, &live.ok_actions);
    changes
}

/// The live alarm from DescribeAlarms.
pub fn live_alarm(a: &MetricAlarm) -> LiveAlarm {
    let mut dimensions: Vec<(String, String)> = a
        .dimensions()
        .iter()
        .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
        .collect();
    dimensions.sort();
    let stat = match (a.extended_statistic(), a.statistic()) {
        (Some(p), _) => Stat::Percentile(p.to_string()),
        (None, Some(s)) => Stat::Statistic(s.as_str().to_string()),
        (None, None) => Stat::Statistic(String::new()),
    };
    LiveAlarm {
        name: a.alarm_name().unwrap_or_default().to_string(),
        arn: a.alarm_arn().unwrap_or_default().to_string(),
        spec: AlarmSpec {
            namespace: a.namespace().unwrap_or_default().to_string(),
            metric: a.metric_name().unwrap_or_default().to_string(),
            dimensions,
            stat,
            period_seconds: a.period().unwrap_or_default(),
            evaluation_periods: a.evaluation_periods().unwrap_or_default(),
            threshold: a.threshold().unwrap_or_default(),
            comparison: a.comparison_operator().map(|c| c.as_str().to_string()).unwrap_or_default(),
            // "missing" is CloudWatch's default when none was set.
            treat_missing_data: a.treat_missing_data().unwrap_or("missing").to_string(),
            alarm_actions: a.alarm_actions().to_vec(),
            ok_actions: a.ok_actions().to_vec(),
        },
        state: a.state_value().map(|s| s.as_str().to_string()).unwrap_or_default(),
    }
}

/// What `top` shows of an alarm from DescribeAlarms: its name and state.
pub fn alarm_state(a: &MetricAlarm) -> AlarmState {
    AlarmState {
        name: a.alarm_name().unwrap_or_default().to_string(),
        // A state CloudWatch adds later reads as not enough data to tell.
        state: a.state_value().and_then(|s| AlarmValue::parse(s.as_str())).unwrap_or(AlarmValue::InsufficientData),
        reason: a.state_reason().unwrap_or_default().to_string(),
        since: a.state_updated_timestamp().and_then(|t| u64::try_from(t.secs()).ok()),
    }
}

/// The alarms named `names` as they are now, for each refresh of `top`: one DescribeAlarms by
/// name (up to 100 names per call), not the sweep's shared read. One that does not exist is
/// absent.
pub async fn states(ctx: &Ctx, names: &[String]) -> Result<Vec<AlarmState>> {
    let pages = ctx
        .aws
        .cloudwatch
        .describe_alarms()
        .set_alarm_names(Some(names.to_vec()))
        .alarm_types(AlarmType::MetricAlarm)
        .into_paginator()
        .send()
        .collect::<std::result::Result<Vec<_>, _>>()
        .await
        .aws(SERVICE, "DescribeAlarms")?;
    let mut found: Vec<AlarmState> = pages.iter().flat_map(|p| p.metric_alarms()).map(alarm_state).collect();
    // In the stack's order.
    found.sort_by_key(|a| names.iter().position(|n| *n == a.name));
    Ok(found)
}

impl Alarm {
    fn resource(&self) -> Name {
        self.id.name()
    }

    /// The stack's alarms, all at once (DescribeAlarms by name: up to 100 names per call), for
    /// the whole sweep.
    async fn stack_alarms(&self, ctx: &Ctx) -> Result<Arc<Vec<MetricAlarm>>> {
        ctx.once("cloudwatch-alarms", || async {
            ctx.aws
                .cloudwatch
                .describe_alarms()
                .set_alarm_names(Some(self.stack_alarms.to_vec()))
                .alarm_types(AlarmType::MetricAlarm)
                .into_paginator()
                .send()
                .collect::<std::result::Result<Vec<_>, _>>()
                .await
                .aws(SERVICE, "DescribeAlarms")
                .map(|pages| pages.iter().flat_map(|p| p.metric_alarms().to_vec()).collect())
        })
        .await
    }

    async fn check_ours(&self, ctx: &Ctx, arn: &str) -> Result<()> {
        let out = ctx
            .aws
            .cloudwatch
            .list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .aws(SERVICE, "ListTagsForResource")?;
        let tags = out.tags().iter().map(|t| (t.key().unwrap_or_default(), t.value().unwrap_or_default()));
        if ctx.owns(self.resource(), tags) { Ok(()) } else { Err(ctx.foreign("CloudWatch alarm", &self.name).await) }
    }

    /// PutMetricAlarm with the whole desired configuration: creates the alarm, or overwrites it.
    async fn put(&self, ctx: &Ctx) -> Result<()> {
        let s = &self.spec;
        let (statistic, percentile) = match &s.stat {
            Stat::Statistic(x) => (Some(Statistic::from(x.as_str())), None),
            Stat::Percentile(p) => (None, Some(p.clone())),
        };
        let tags = ctx.tags(self.resource()).into_iter().map(|(k, v)| Tag::builder().key(k).value(v).build());
        ctx.aws
            .cloudwatch
            .put_metric_alarm()
            .alarm_name(&self.name)
            .alarm_description(&self.description)
            .namespace(&s.namespace)
            .metric_name(&s.metric)
            .set_dimensions(Some(
                s.dimensions.iter().map(|(k, v)| Dimension::builder().name(k).value(v).build()).collect(),
            ))
            .set_statistic(statistic)
            .set_extended_statistic(percentile)
            .period(s.period_seconds)
            .evaluation_periods(s.evaluation_periods)
            .threshold(s.threshold)
            .comparison_operator(ComparisonOperator::from(s.comparison.as_str()))
            .treat_missing_data(&s.treat_missing_data)
            .set_alarm_actions(Some(s.alarm_actions.clone()))
            .set_ok_actions(Some(s.ok_actions.clone()))
            .set_tags(Some(tags.collect()))
            .send()
            .await
            .aws(SERVICE, "PutMetricAlarm")?;
        Ok(())
    }

    /// What PutMetricAlarm leaves: the desired configuration. A new alarm starts in
    /// INSUFFICIENT_DATA; an updated one keeps its state.
    fn live_after_put(&self, ctx: &Ctx, state: &str) -> LiveAlarm {
        LiveAlarm {
            name: self.name.clone(),
            arn: ctx.arn("cloudwatch", &format!("alarm:{}", self.name)),
            spec: self.spec.clone(),
            state: state.to_string(),
        }
    }
}

#[async_trait]
impl Resource for Alarm {
    type Live = LiveAlarm;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveAlarm> {
        self.id
    }

    fn kind(&self) -> Kind {
        Kind::Alarm
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        // By name (each action supports the `alarm` resource type). The tags ride on
        // PutMetricAlarm, which needs cloudwatch:TagResource for them: "To use this field to set
        // tags for an alarm when you create it, you must be signed on with both the
        // cloudwatch:PutMetricAlarm and cloudwatch:TagResource permissions" (PutMetricAlarm API
        // reference, Tags).
        let actions = [
            "cloudwatch:DescribeAlarms",
            "cloudwatch:ListTagsForResource",
            "cloudwatch:PutMetricAlarm",
            "cloudwatch:TagResource",
            "cloudwatch:DeleteAlarms",
        ];
        vec![Grant::new("TheAlarms", &actions, [s.arn("cloudwatch", &format!("alarm:{}", self.name))])]
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

    fn export(&self, ctx: &Ctx, live: &LiveAlarm) -> Vec<CfnResource> {
        let s = &live.spec;
        let dimensions: Vec<Value> = s.dimensions.iter().map(|(k, v)| json!({ "Name": k, "Value": v })).collect();
        let mut properties = json!({
            "AlarmName": live.name,
            "AlarmDescription": self.description,
            "Namespace": s.namespace,
            "MetricName": s.metric,
            "Dimensions": dimensions,
            "Period": s.period_seconds,
            "EvaluationPeriods": s.evaluation_periods,
            "Threshold": s.threshold,
            "ComparisonOperator": s.comparison,
            "TreatMissingData": s.treat_missing_data,
            "Tags": cfn::tags(&ctx.tags(self.id.name())),
        });
        match &s.stat {
            Stat::Statistic(stat) => properties["Statistic"] = json!(stat),
            Stat::Percentile(stat) => properties["ExtendedStatistic"] = json!(stat),
        }
        if !s.alarm_actions.is_empty() {
            properties["AlarmActions"] = json!(s.alarm_actions);
        }
        if !s.ok_actions.is_empty() {
            properties["OKActions"] = json!(s.ok_actions);
        }
        vec![CfnResource::new(
            self.id,
            "AWS::CloudWatch::Alarm",
            properties,
            cfn::identifier(&[("AlarmName", &live.name)]),
        )]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveAlarm>> {
        let all = match self.stack_alarms(ctx).await {
            Ok(all) => all,
            Err(e) if e.is_not_found() && !self.enabled => return Ok(None),
            Err(e) if e.is_not_found() => {
                return Err(Error::other(format!(
                    "{e}: this endpoint does not serve CloudWatch as the AWS SDK speaks it (RPC v2 CBOR; moto 5.2.5 \
                     does not): set `[alarms] enabled = false` in the config for it"
                )));
            }
            Err(e) => return Err(e),
        };
        match all.iter().find(|a| a.alarm_name() == Some(self.name.as_str())) {
            Some(found) => {
                let live = live_alarm(found);
                self.check_ours(ctx, &live.arn).await?;
                Ok(Some(live))
            }
            None => {
                // A name a CloudFormation (e.g. CDK) stack owns would be fought over.
                ctx.check_cloudformation_owner("CloudWatch alarm", &self.name).await?;
                Ok(None)
            }
        }
    }

    fn diff(&self, _ctx: &Ctx, _inputs: &LiveStates, live: &LiveAlarm) -> Result<Vec<FieldChange>> {
        Ok(diff(&self.spec, &live.spec))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveAlarm> {
        self.put(ctx).await?;
        Ok(self.live_after_put(ctx, "INSUFFICIENT_DATA"))
    }

    async fn update(
        &self,
        ctx: &Ctx,
        _inputs: &LiveStates,
        live: &LiveAlarm,
        _changes: &[FieldChange],
    ) -> Result<LiveAlarm> {
        // Whatever differs, one PutMetricAlarm with the whole configuration fixes it.
        self.put(ctx).await?;
        Ok(self.live_after_put(ctx, &live.state))
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveAlarm) -> Result<()> {
        let res = ctx.aws.cloudwatch.delete_alarms().alarm_names(&live.name).send().await.aws(SERVICE, "DeleteAlarms");
        crate::error::gone_is_ok(res)
    }

    fn health(&self, live: &LiveAlarm) -> Vec<(&'static str, String)> {
        vec![("state", live.state.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::Edit;

    fn settings() -> crate::config::Alarms {
        crate::config::Alarms::default()
    }

    fn stack_alarms() -> Vec<Alarm> {
        alarms("s", &Watched { function: "fn", api: "s", stage: "prod" }, &settings())
    }

    fn by_id(id: Id<LiveAlarm>) -> Alarm {
        stack_alarms().into_iter().find(|a| a.id == id).expect("alarm")
    }

    #[test]
    fn five_alarms_named_after_the_stack_watch_the_function_and_the_stage() {
        let all = stack_alarms();
        let rows: Vec<(String, String, String, String, i32, f64, String)> = all
            .iter()
            .map(|a| {
                let s = &a.spec;
                (
                    a.name.clone(),
                    s.metric.clone(),
                    format!("{:?}", s.dimensions),
                    s.stat.to_string(),
                    s.evaluation_periods,
                    s.threshold,
                    s.comparison.clone(),
                )
            })
            .collect();
        let f = r#"[("FunctionName", "fn")]"#.to_string();
        let alias = r#"[("FunctionName", "fn"), ("Resource", "fn:live")]"#.to_string();
        let api = r#"[("ApiName", "s"), ("Stage", "prod")]"#.to_string();
        let row = |n: &str, m: &str, d: &String, st: &str, e, t, c: &str| {
            (n.to_string(), m.to_string(), d.clone(), st.to_string(), e, t, c.to_string())
        };
        assert_eq!(
            rows,
            vec![
                row("s-function-errors", "Errors", &alias, "Sum", 1, 0.0, GREATER),
                row("s-function-throttles", "Throttles", &alias, "Sum", 1, 0.0, GREATER),
                row("s-concurrent-executions", "ConcurrentExecutions", &f, "Maximum", 2, 80.0, GREATER_OR_EQUAL),
                row("s-api-5xx", "5XXError", &api, "Sum", 1, 0.0, GREATER),
                row("s-api-latency", "Latency", &api, "p99", 1, 2500.0, GREATER),
            ]
        );
        assert!(all.iter().all(|a| a.spec.period_seconds == 300 && a.spec.treat_missing_data == "notBreaching"));
        assert!(all.iter().all(|a| a.spec.alarm_actions.is_empty() && a.enabled));
        assert_eq!(all[0].stack_alarms.len(), 5);
        let ids: Vec<String> = all.iter().map(|a| a.id.to_string()).collect();
        assert_eq!(
            ids,
            [
                "alarm-function-errors",
                "alarm-function-throttles",
                "alarm-concurrent-executions",
                "alarm-api-5xx",
                "alarm-api-latency"
            ]
        );
    }

    #[test]
    fn the_topic_is_notified_on_alarm_and_on_recovery_and_off_means_unwanted() {
        let mut s = settings();
        s.sns_topic_arn = Some("arn:aws:sns:us-east-1:123456789012:ops".into());
        s.enabled = false;
        let all = alarms("s", &Watched { function: "fn", api: "s", stage: "prod" }, &s);
        for a in &all {
            assert_eq!(a.spec.alarm_actions, ["arn:aws:sns:us-east-1:123456789012:ops"]);
            assert_eq!(a.spec.ok_actions, a.spec.alarm_actions);
            assert!(!Resource::wanted(a));
        }
    }

    #[test]
    fn drift_is_reported_field_by_field() {
        let desired = by_id(API_LATENCY).spec;
        assert!(diff(&desired, &desired).is_empty());
        let cases: &[(&str, Edit<AlarmSpec>)] = &[
            ("threshold", |l| l.threshold = 9000.0),
            ("period_seconds", |l| l.period_seconds = 60),
            ("evaluation_periods", |l| l.evaluation_periods = 3),
            ("statistic", |l| l.stat = Stat::Statistic("Average".into())),
            ("comparison", |l| l.comparison = "LessThanThreshold".into()),
            ("alarm_actions", |l| l.alarm_actions = vec!["arn:aws:sns:us-east-1:123456789012:x".into()]),
            ("ok_actions", |l| l.ok_actions = vec!["arn:aws:sns:us-east-1:123456789012:x".into()]),
            ("treat_missing_data", |l| l.treat_missing_data = "missing".into()),
            ("dimensions", |l| {
                l.dimensions.pop();
            }),
            ("metric", |l| l.metric = "IntegrationLatency".into()),
        ];
        for (field, edit) in cases {
            let mut live = desired.clone();
            edit(&mut live);
            let changes = diff(&desired, &live);
            assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), [*field]);
            assert!(!changes[0].replace, "{field}: fixed in place");
        }
        let mut live = desired.clone();
        live.threshold = 9000.0;
        assert_eq!(diff(&desired, &live), vec![FieldChange::update("threshold", 2500, 9000)]);
    }

    #[test]
    fn live_alarms_are_read_from_describe_alarms() {
        use aws_sdk_cloudwatch::types::StateValue;
        let a = MetricAlarm::builder()
            .alarm_name("s-api-latency")
            .alarm_arn("arn:aws:cloudwatch:us-east-1:123456789012:alarm:s-api-latency")
            .namespace("AWS/ApiGateway")
            .metric_name("Latency")
            .dimensions(Dimension::builder().name("Stage").value("prod").build())
            .dimensions(Dimension::builder().name("ApiName").value("s").build())
            .extended_statistic("p99")
            .period(300)
            .evaluation_periods(1)
            .threshold(2500.0)
            .comparison_operator(ComparisonOperator::GreaterThanThreshold)
            .treat_missing_data("notBreaching")
            .state_value(StateValue::Alarm)
            .build();
        let live = live_alarm(&a);
        assert_eq!(live.state, "ALARM");
        assert!(diff(&by_id(API_LATENCY).spec, &live.spec).is_empty(), "{:?}", live.spec);
        // No TreatMissingData reported: CloudWatch's default, `missing`.
        let bare = live_alarm(&MetricAlarm::builder().statistic(Statistic::Sum).build());
        assert_eq!((bare.spec.treat_missing_data.as_str(), bare.spec.stat.to_string()), ("missing", "Sum".into()));
    }

    #[test]
    fn top_reads_each_alarm_state_typed() {
        use aws_sdk_cloudwatch::types::StateValue;
        let a = MetricAlarm::builder()
            .alarm_name("s-api-5xx")
            .state_value(StateValue::Alarm)
            .state_reason("Threshold Crossed")
            .state_updated_timestamp(aws_smithy_types::DateTime::from_secs(1_700_000_000))
            .build();
        let s = alarm_state(&a);
        assert_eq!(
            (s.name.as_str(), s.state, s.reason.as_str(), s.since),
            ("s-api-5xx", AlarmValue::Alarm, "Threshold Crossed", Some(1_700_000_000))
        );
        assert_eq!(alarm_state(&MetricAlarm::builder().build()).state, AlarmValue::InsufficientData);
    }
}
