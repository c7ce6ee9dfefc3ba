//! The alias `live`: what the API invokes. Each change of the function's code or configuration is
//! published as a version (never for a no-op), and the alias moves to it the way `[deploy]` says:
//!
//! - `all-at-once`: one UpdateAlias;
//! - `canary`: a pre-traffic check of the new version (one Invoke of `GET /`, answered without
//!   touching the table), then `canary_percent` of the traffic through the alias' routing weights
//!   for `interval_seconds`, watched (the stack's function-errors and api-5xx alarms, and the
//!   new version's own `Errors`), then all of it; the first alarm rolls back;
//! - `linear`: `canary_percent` more at each step of `interval_seconds`, watched the same way.
//!
//! No CodeDeploy: the weights are the alias' `RoutingConfig` (at most one additional version,
//! weight 0.0-1.0: Lambda's AliasRoutingConfiguration), moved by this process. Ctrl-C during a
//! canary rolls back before stopping; a run killed during one leaves the weights, and the next
//! `up` starts the deployment again from the live version.
//!
//! What a deploy was is written in its version's description ([`Record`]): the code's SHA-256,
//! the configuration's hash, the git commit, the caller and the time. The versions a canary
//! rolled back are listed in the alias' description. `history` and `rollback` read both, so the
//! record lives in AWS, not on this machine. Versions beyond `keep_versions` that no alias points
//! at are deleted, so that the account's code storage (75 GB, Lambda quotas) never fills.
//!
//! PublishVersion fails while the function is Pending or an update is in progress (Lambda
//! developer guide, "Lambda function states"): the alias waits for the function ready, and a
//! conflict is retried.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use serde_json::json;

use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, function};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::config::{DeploySection, Strategy};
use crate::error::{Error, Result};
use crate::events::{DeployStep, Event};
use crate::resources::function::LiveFunction;

pub const ID: Id<LiveAlias> = Id::new("function-alias");
/// The alias the API invokes.
pub const ALIAS: &str = "live";
/// The first word of a version description this tool wrote.
const RECORD_MARK: &str = "movies-stack";
/// The alias description's list of versions a canary rolled back.
const ROLLED_BACK: &str = "rolled-back=";
/// Lambda's limit on a description (PublishVersion, CreateAlias).
const DESCRIPTION_MAX: usize = 256;

#[derive(Debug, Clone)]
pub struct FunctionAlias {
    /// The function as the config wants it: what the alias' version must run.
    pub function: function::Function,
    pub function_name: String,
    pub deploy: DeploySection,
    /// The alarms a canary watches (the stack's function-errors and api-5xx); none when the
    /// config turns alarms off.
    pub alarms: Vec<String>,
}

/// One published version of the function.
#[derive(Debug, Clone, PartialEq)]
pub struct Version {
    pub number: u64,
    /// What it runs (its code and configuration), as GetFunction reports `$LATEST`.
    pub function: LiveFunction,
    pub description: String,
    /// The code storage it takes, in bytes.
    pub code_size: i64,
}

impl Version {
    pub fn record(&self) -> Option<Record> {
        Record::parse(&self.description)
    }
}

/// The alias `live` and the function's versions.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveAlias {
    pub function_name: String,
    pub arn: String,
    /// The version that takes the traffic the routing weights leave.
    pub version: String,
    /// A canary left in place: (version, weight 0.0-1.0).
    pub canary: Option<(String, f64)>,
    pub description: String,
    /// Published versions, oldest first (not `$LATEST`).
    pub versions: Vec<Version>,
}

impl LiveAlias {
    /// The versions a canary rolled back, from the alias' description.
    pub fn rolled_back(&self) -> BTreeSet<u64> {
        rolled_back(&self.description)
    }

    pub fn version(&self, number: &str) -> Option<&Version> {
        self.versions.iter().find(|v| v.number.to_string() == number)
    }
}

fn rolled_back(description: &str) -> BTreeSet<u64> {
    description
        .split_whitespace()
        .find_map(|w| w.strip_prefix(ROLLED_BACK))
        .map(|list| list.split(',').filter_map(|n| n.parse().ok()).collect())
        .unwrap_or_default()
}

fn alias_description(rolled_back: &BTreeSet<u64>, existing: &[Version]) -> String {
    let kept: Vec<String> =
        rolled_back.iter().filter(|n| existing.iter().any(|v| v.number == **n)).map(u64::to_string).collect();
    let mut text = format!("{RECORD_MARK} alias");
    if !kept.is_empty() {
        text.push_str(&format!(" {ROLLED_BACK}{}", kept.join(",")));
    }
    text.chars().take(DESCRIPTION_MAX).collect()
}

/// What a deploy was: written in its version's description, read by `history`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub code_sha256: String,
    pub config_hash: String,
    pub commit: Option<String>,
    /// Unix seconds.
    pub at: u64,
    pub by: String,
}

impl Record {
    pub fn text(&self) -> String {
        let text = format!(
            "{RECORD_MARK} code={} config={} commit={} at={} by={}",
            self.code_sha256,
            self.config_hash,
            self.commit.as_deref().unwrap_or("-"),
            self.at,
            self.by
        );
        text.chars().take(DESCRIPTION_MAX).collect()
    }

    pub fn parse(text: &str) -> Option<Record> {
        let mut words = text.split_whitespace();
        if words.next()? != RECORD_MARK {
            return None;
        }
        let (mut code, mut config, mut commit, mut at, mut by) = (None, None, None, None, None);
        for w in words {
            let (k, v) = w.split_once('=')?;
            match k {
                "code" => code = Some(v.to_string()),
                "config" => config = Some(v.to_string()),
                "commit" => commit = Some((v != "-").then(|| v.to_string())),
                "at" => at = v.parse().ok(),
                "by" => by = Some(v.to_string()),
                _ => {}
            }
        }
        Some(Record { code_sha256: code?, config_hash: config?, commit: commit?, at: at?, by: by? })
    }
}

/// One difference of the alias, by what fixes it.
#[derive(Debug, Clone, PartialEq)]
pub enum AliasChange {
    /// The alias' version does not run what `$LATEST` (or the artifact) is: publish, then shift.
    Deploy(FieldChange),
    /// Routing weights left by a canary that did not finish: the deployment starts again.
    Unfinished(FieldChange),
    /// Versions beyond `keep_versions` that no alias points at.
    Prune(Vec<u64>),
}

impl KindChange for AliasChange {
    fn show(&self) -> FieldChange {
        match self {
            AliasChange::Deploy(c) | AliasChange::Unfinished(c) => c.clone(),
            AliasChange::Prune(v) => FieldChange::update(
                "versions",
                "keep_versions",
                format!("{} extra: {}", v.len(), v.iter().map(u64::to_string).collect::<Vec<_>>().join(", ")),
            ),
        }
    }
}

/// The versions to delete: the oldest beyond `keep`, never the alias' own nor its canary's, nor
/// one another alias points at (`held`).
pub fn prunable(versions: &[Version], keep: u16, held: &BTreeSet<String>) -> Vec<u64> {
    let free: Vec<u64> =
        versions.iter().map(|v| v.number).filter(|n| !held.contains(&n.to_string())).collect::<Vec<_>>();
    let keep_free = usize::from(keep).saturating_sub(held.len());
    let extra = free.len().saturating_sub(keep_free);
    free.into_iter().take(extra).collect()
}

/// `desired`: the function as the config wants it (its code empty when no artifact was built:
/// then `$LATEST`'s code is the one wanted).
pub fn diff(desired: &function::FunctionSpec, latest: &LiveFunction, live: &LiveAlias, keep: u16) -> Vec<AliasChange> {
    let mut changes = Vec::new();
    let desired_code = if desired.code_sha256.is_empty() { latest.code_sha256.as_str() } else { &desired.code_sha256 };
    let current = live.version(&live.version);
    let runs_latest = current.is_some_and(|v| function::runs(&v.function, desired, desired_code));
    if !runs_latest {
        let code = |sha: &str| sha.chars().take(12).collect::<String>();
        changes.push(AliasChange::Deploy(FieldChange::update(
            "version",
            format!("a new version (code {})", code(desired_code)),
            format!(
                "version {}{}",
                live.version,
                current.map(|v| format!(" (code {})", code(&v.function.code_sha256))).unwrap_or_default()
            ),
        )));
    } else if let Some((v, w)) = &live.canary {
        changes.push(AliasChange::Unfinished(FieldChange::update(
            "routing",
            "none",
            format!("version {v} at {:.0}% (a canary that did not finish)", w * 100.0),
        )));
    }
    let held = held(live);
    let extra = prunable(&live.versions, keep, &held);
    if !extra.is_empty() {
        changes.push(AliasChange::Prune(extra));
    }
    changes
}

fn held(live: &LiveAlias) -> BTreeSet<String> {
    let mut held = BTreeSet::from([live.version.clone()]);
    held.extend(live.canary.iter().map(|(v, _)| v.clone()));
    held
}

/// How a shift ended.
enum Shift {
    Promoted,
    RolledBack(String),
}

impl FunctionAlias {
    fn alias_arn(&self, ctx: &Ctx) -> String {
        ctx.arn("lambda", &format!("function:{}:{ALIAS}", self.function_name))
    }

    fn step(&self, ctx: &Ctx, step: DeployStep) {
        ctx.printer.event(Event::Deploy { id: ID.name(), step });
    }

    /// GetAlias; `None` when the alias (or the function) does not exist.
    async fn get_alias(&self, ctx: &Ctx) -> Result<Option<aws_sdk_lambda::operation::get_alias::GetAliasOutput>> {
        match ctx
            .aws
            .lambda
            .get_alias()
            .function_name(&self.function_name)
            .name(ALIAS)
            .send()
            .await
            .aws("Lambda", "GetAlias")
        {
            Ok(out) => Ok(Some(out)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// ListVersionsByFunction, every page; empty when the function does not exist.
    pub async fn versions(&self, ctx: &Ctx) -> Result<Vec<Version>> {
        let mut versions = Vec::new();
        let mut marker: Option<String> = None;
        loop {
            let out = match ctx
                .aws
                .lambda
                .list_versions_by_function()
                .function_name(&self.function_name)
                .set_marker(marker.clone())
                .send()
                .await
                .aws("Lambda", "ListVersionsByFunction")
            {
                Ok(out) => out,
                Err(e) if e.is_not_found() => return Ok(vec![]),
                Err(e) => return Err(e),
            };
            for c in out.versions() {
                let Some(number) = c.version().and_then(|v| v.parse::<u64>().ok()) else { continue };
                versions.push(Version {
                    number,
                    function: function::live_from(c),
                    description: c.description().unwrap_or_default().to_string(),
                    code_size: c.code_size(),
                });
            }
            marker = out.next_marker().map(str::to_string);
            if marker.is_none() {
                break;
            }
        }
        versions.sort_by_key(|v| v.number);
        Ok(versions)
    }

    /// The alias and the versions, read together.
    pub async fn read(&self, ctx: &Ctx) -> Result<(Option<LiveAlias>, Vec<Version>)> {
        let (alias, versions) = tokio::join!(self.get_alias(ctx), self.versions(ctx));
        let versions = versions?;
        let Some(a) = alias? else { return Ok((None, versions)) };
        let canary = a
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.iter().next().map(|(v, w)| (v.clone(), *w)));
        Ok((
            Some(LiveAlias {
                function_name: self.function_name.clone(),
                arn: a.alias_arn().map(str::to_string).unwrap_or_else(|| self.alias_arn(ctx)),
                version: a.function_version().unwrap_or_default().to_string(),
                canary,
                description: a.description().unwrap_or_default().to_string(),
                versions: versions.clone(),
            }),
            versions,
        ))
    }

    /// The version that runs `$LATEST` as it is now: an existing one (a run stopped between
    /// PublishVersion and the alias, or a redeploy of what a version already runs), else a new
    /// one. `Ok((number, published))`.
    async fn release(&self, ctx: &Ctx, latest: &LiveFunction, versions: &[Version]) -> Result<(u64, Option<Version>)> {
        if let Some(v) = versions.iter().rev().find(|v| function::same_release(&v.function, latest)) {
            return Ok((v.number, None));
        }
        let who = ctx.identity().await?.arn.clone();
        let record = Record {
            code_sha256: latest.code_sha256.clone(),
            config_hash: function::config_hash(latest),
            commit: crate::package::git_commit(),
            at: (crate::clock::now_ms() / 1000) as u64,
            by: who,
        };
        let out = function::retry_while_busy(ctx, ID, "the function's update to finish", || async {
            ctx.aws
                .lambda
                .publish_version()
                .function_name(&self.function_name)
                // Published only if $LATEST still runs this code (Lambda checks it).
                .code_sha256(&latest.code_sha256)
                .description(record.text())
                .send()
                .await
                .aws("Lambda", "PublishVersion")
        })
        .await?;
        let number = out
            .version()
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| Error::other("PublishVersion returned no version number"))?;
        let v = Version {
            number,
            function: LiveFunction { name: self.function_name.clone(), ..latest.clone() },
            description: out.description().unwrap_or_default().to_string(),
            code_size: out.code_size(),
        };
        self.step(ctx, DeployStep::Published { version: number, code_sha256: latest.code_sha256.clone() });
        Ok((number, Some(v)))
    }

    async fn update_alias(
        &self,
        ctx: &Ctx,
        version: &str,
        canary: Option<(&str, f64)>,
        description: &str,
    ) -> Result<()> {
        let routing = AliasRoutingConfiguration::builder()
            .set_additional_version_weights(Some(
                canary.map(|(v, w)| [(v.to_string(), w)].into_iter().collect()).unwrap_or_default(),
            ))
            .build();
        ctx.aws
            .lambda
            .update_alias()
            .function_name(&self.function_name)
            .name(ALIAS)
            .function_version(version)
            .routing_config(routing)
            .description(description)
            .send()
            .await
            .aws("Lambda", "UpdateAlias")?;
        Ok(())
    }

    /// Move the alias from `from` to `to` as the strategy says.
    async fn shift(
        &self,
        ctx: &Ctx,
        from: &str,
        to: u64,
        rolled: &mut BTreeSet<u64>,
        versions: &[Version],
    ) -> Result<Shift> {
        let to_s = to.to_string();
        if self.deploy.strategy == Strategy::AllAtOnce {
            self.update_alias(ctx, &to_s, None, &alias_description(rolled, versions)).await?;
            self.step(ctx, DeployStep::Promoted { version: to, from: from.to_string() });
            return Ok(Shift::Promoted);
        }
        if let Err(why) = self.pre_traffic(ctx, to).await? {
            self.step(ctx, DeployStep::RolledBack { version: to, to: from.to_string(), reason: why.clone() });
            rolled.insert(to);
            self.update_alias(ctx, from, None, &alias_description(rolled, versions)).await?;
            return Ok(Shift::RolledBack(why));
        }
        let pct = u32::from(self.deploy.canary_percent);
        let steps: Vec<u32> = match self.deploy.strategy {
            Strategy::Canary => vec![pct],
            _ => (1..).map(|i| i * pct).take_while(|p| *p < 100).collect(),
        };
        let interval = Duration::from_secs(u64::from(self.deploy.interval_seconds));
        let started = Instant::now();
        for percent in steps {
            let weight = f64::from(percent) / 100.0;
            self.update_alias(ctx, from, Some((&to_s, weight)), &alias_description(rolled, versions)).await?;
            self.step(ctx, DeployStep::Shifted { version: to, percent });
            match self.watch(ctx, to, percent, interval, started).await {
                Ok(None) => {}
                Ok(Some(why)) => {
                    rolled.insert(to);
                    self.update_alias(ctx, from, None, &alias_description(rolled, versions)).await?;
                    self.step(ctx, DeployStep::RolledBack { version: to, to: from.to_string(), reason: why.clone() });
                    return Ok(Shift::RolledBack(why));
                }
                Err(e) if e.is_interrupted() => {
                    rolled.insert(to);
                    self.update_alias(ctx, from, None, &alias_description(rolled, versions)).await?;
                    let why = "interrupted (Ctrl-C)".to_string();
                    self.step(ctx, DeployStep::RolledBack { version: to, to: from.to_string(), reason: why });
                    return Err(Error::Interrupted(format!(
                        "the canary of version {to}: rolled back, version {from} takes all the traffic"
                    )));
                }
                Err(e) => {
                    // A watch that cannot see is no reason to keep a half-deployed version: back to `from`.
                    rolled.insert(to);
                    self.update_alias(ctx, from, None, &alias_description(rolled, versions)).await?;
                    let why = format!("the canary could not be watched: {e}");
                    self.step(ctx, DeployStep::RolledBack { version: to, to: from.to_string(), reason: why.clone() });
                    return Err(Error::other(why));
                }
            }
        }
        self.update_alias(ctx, &to_s, None, &alias_description(rolled, versions)).await?;
        self.step(ctx, DeployStep::Promoted { version: to, from: from.to_string() });
        Ok(Shift::Promoted)
    }

    /// The pre-traffic hook: the new version answers `GET /` (405, without touching the table)
    /// when invoked directly. `Ok(Err(why))`: it failed.
    async fn pre_traffic(&self, ctx: &Ctx, version: u64) -> Result<std::result::Result<(), String>> {
        let event = json!({
            "resource": "/", "path": "/", "httpMethod": "GET", "headers": {}, "body": null,
            "requestContext": { "resourcePath": "/", "httpMethod": "GET", "stage": "pre-traffic", "requestId": "movies-stack-pre-traffic" },
            "isBase64Encoded": false
        });
        let out = ctx
            .aws
            .lambda
            .invoke()
            .function_name(&self.function_name)
            .qualifier(version.to_string())
            .payload(aws_smithy_types::Blob::new(event.to_string()))
            .send()
            .await
            .aws("Lambda", "Invoke")?;
        let payload = out.payload().map(|p| String::from_utf8_lossy(p.as_ref()).to_string()).unwrap_or_default();
        let verdict = pre_traffic_verdict(out.function_error(), &payload);
        self.step(ctx, DeployStep::PreTraffic { version, passed: verdict.is_ok() });
        Ok(verdict)
    }

    /// Watch the canary for `interval`: `Ok(Some(why))` at the first alarm.
    async fn watch(
        &self,
        ctx: &Ctx,
        version: u64,
        percent: u32,
        interval: Duration,
        since: Instant,
    ) -> Result<Option<String>> {
        let poll = (interval / 6).clamp(Duration::from_millis(200), Duration::from_secs(10));
        let until = Instant::now() + interval;
        loop {
            if let Some(why) = self.alarm_fired(ctx, version, since).await? {
                return Ok(Some(why));
            }
            let now = Instant::now();
            if now >= until {
                return Ok(None);
            }
            let left = until - now;
            self.step(ctx, DeployStep::Watching { version, percent, remaining_seconds: left.as_secs() });
            crate::wait::pause(ctx, "the canary", poll.min(left)).await?;
        }
    }

    /// The stack's watched alarms in ALARM, or errors of the new version since the canary began.
    async fn alarm_fired(&self, ctx: &Ctx, version: u64, since: Instant) -> Result<Option<String>> {
        let cw = &ctx.aws.cloudwatch;
        let alarms = async {
            if self.alarms.is_empty() {
                return Ok(None);
            }
            let out = cw
                .describe_alarms()
                .set_alarm_names(Some(self.alarms.clone()))
                .send()
                .await
                .aws("CloudWatch", "DescribeAlarms")?;
            Ok::<_, Error>(out.metric_alarms().iter().find_map(|a| {
                (a.state_value() == Some(&aws_sdk_cloudwatch::types::StateValue::Alarm)).then(|| {
                    format!(
                        "alarm {} is in ALARM: {}",
                        a.alarm_name().unwrap_or_default(),
                        a.state_reason().unwrap_or("no reason given")
                    )
                })
            }))
        };
        let errors = self.version_errors(ctx, version, since);
        let (alarms, errors) = tokio::join!(alarms, errors);
        if let Some(why) = alarms? {
            return Ok(Some(why));
        }
        let errors = errors?;
        Ok((errors > 0.0).then(|| format!("version {version} reported {errors} error(s) (AWS/Lambda Errors)")))
    }

    /// The new version's `Errors` through the alias since the canary began (dimensions
    /// FunctionName, Resource `name:live`, ExecutedVersion): one GetMetricData.
    async fn version_errors(&self, ctx: &Ctx, version: u64, since: Instant) -> Result<f64> {
        use aws_sdk_cloudwatch::types::{Dimension, Metric, MetricDataQuery, MetricStat};
        let now_ms = crate::clock::now_ms();
        let start_ms = now_ms - since.elapsed().as_millis() as i64 - 60_000;
        let dims = [
            ("FunctionName", self.function_name.clone()),
            ("Resource", format!("{}:{ALIAS}", self.function_name)),
            ("ExecutedVersion", version.to_string()),
        ];
        let metric = Metric::builder()
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .set_dimensions(Some(dims.iter().map(|(k, v)| Dimension::builder().name(*k).value(v).build()).collect()))
            .build();
        let query = MetricDataQuery::builder()
            .id("errors")
            .metric_stat(MetricStat::builder().metric(metric).period(60).stat("Sum").build())
            .build();
        let out = ctx
            .aws
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query)
            .start_time(aws_smithy_types::DateTime::from_millis(start_ms))
            .end_time(aws_smithy_types::DateTime::from_millis(now_ms + 60_000))
            .send()
            .await
            .aws("CloudWatch", "GetMetricData")?;
        Ok(out.metric_data_results().iter().flat_map(|r| r.values().iter().copied()).sum())
    }

    /// Delete the versions beyond `keep_versions` (DeleteFunction with the version as qualifier).
    async fn prune(&self, ctx: &Ctx, extra: &[u64]) -> Result<()> {
        for n in extra {
            let res = function::retry_while_busy(ctx, ID, "the function's update to finish", || async {
                ctx.aws
                    .lambda
                    .delete_function()
                    .function_name(&self.function_name)
                    .qualifier(n.to_string())
                    .send()
                    .await
                    .aws("Lambda", "DeleteFunction")
            })
            .await;
            crate::error::gone_is_ok(res)?;
        }
        if !extra.is_empty() {
            let list: Vec<String> = extra.iter().map(u64::to_string).collect();
            ctx.progress(
                ID,
                format!(
                    "deleted version(s) {} (beyond keep_versions = {})",
                    list.join(", "),
                    self.deploy.keep_versions
                ),
            );
        }
        Ok(())
    }

    /// Deploy `$LATEST` to the alias, then prune. The live state after it.
    async fn deploy(&self, ctx: &Ctx, latest: &LiveFunction, live: &LiveAlias) -> Result<LiveAlias> {
        let mut versions = live.versions.clone();
        let (to, published) = self.release(ctx, latest, &versions).await?;
        versions.extend(published);
        // The version that served before: the primary (a canary left behind is dropped).
        let from = live.version.clone();
        let mut rolled = live.rolled_back();
        rolled.remove(&to);
        let mut now = LiveAlias { versions: versions.clone(), canary: None, ..live.clone() };
        if from == to.to_string() {
            // Only weights were left: clear them.
            self.update_alias(ctx, &from, None, &alias_description(&rolled, &versions)).await?;
        } else {
            match self.shift(ctx, &from, to, &mut rolled, &versions).await? {
                Shift::Promoted => now.version = to.to_string(),
                Shift::RolledBack(why) => {
                    return Err(Error::other(format!(
                        "the deployment of version {to} was rolled back: {why}. Version {from} takes all the traffic; \
                         `movies-stack history` lists the deploys"
                    )));
                }
            }
        }
        now.description = alias_description(&rolled, &versions);
        let extra = prunable(&now.versions, self.deploy.keep_versions, &held(&now));
        self.prune(ctx, &extra).await?;
        now.versions.retain(|v| !extra.contains(&v.number));
        Ok(now)
    }
}

impl FunctionAlias {
    /// `movies-stack rollback`: point `live` at `to` (else the newest version before the live one
    /// that was not rolled back) in one UpdateAlias, a canary in place dropped; the version it
    /// leaves is listed as rolled back. `(from, to)`.
    pub async fn rollback(&self, ctx: &Ctx, live: &LiveAlias, to: Option<u64>) -> Result<(String, u64)> {
        let from = live.version.clone();
        let mut rolled = live.rolled_back();
        let to = match to {
            Some(n) => {
                if live.version(&n.to_string()).is_none() {
                    let list: Vec<String> = live.versions.iter().map(|v| v.number.to_string()).collect();
                    return Err(Error::input(format!(
                        "--to {n}: function {} has no version {n} (it has {})",
                        self.function_name,
                        if list.is_empty() { "none".to_string() } else { list.join(", ") }
                    )));
                }
                n
            }
            None => {
                let current: u64 = from.parse().unwrap_or(u64::MAX);
                live.versions.iter().rev().map(|v| v.number).find(|n| *n < current && !rolled.contains(n)).ok_or_else(
                    || {
                        Error::input(format!(
                            "version {from} is the oldest deployed version of {}: nothing to roll back to (see \
                             `movies-stack history`)",
                            self.function_name
                        ))
                    },
                )?
            }
        };
        if to.to_string() == from && live.canary.is_none() {
            return Err(Error::input(format!("--to {to}: version {to} is already live")));
        }
        if let Ok(n) = from.parse::<u64>()
            && n != to
        {
            rolled.insert(n);
        }
        if let Some((v, _)) = &live.canary
            && let Ok(n) = v.parse::<u64>()
        {
            rolled.insert(n);
        }
        rolled.remove(&to);
        self.update_alias(ctx, &to.to_string(), None, &alias_description(&rolled, &live.versions)).await?;
        Ok((from, to))
    }
}

/// One deploy, as `history` shows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryRow {
    pub version: u64,
    /// `live`, `canary`, `rolled back`, `superseded` (older than the live one), `not live` (newer).
    pub status: String,
    /// The canary's share of the traffic, in percent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub percent: Option<u32>,
    /// Unix seconds; absent for a version this tool did not publish.
    pub at: Option<u64>,
    pub by: Option<String>,
    pub code_sha256: String,
    pub config_hash: Option<String>,
    pub commit: Option<String>,
    pub description: String,
}

/// The deploys, newest first, from the versions and the alias alone.
pub fn history(live: Option<&LiveAlias>, versions: &[Version]) -> Vec<HistoryRow> {
    let rolled = live.map(LiveAlias::rolled_back).unwrap_or_default();
    let current: Option<u64> = live.and_then(|l| l.version.parse().ok());
    let canary = live.and_then(|l| l.canary.as_ref()).and_then(|(v, w)| Some((v.parse::<u64>().ok()?, *w)));
    versions
        .iter()
        .rev()
        .map(|v| {
            let record = v.record();
            let (status, percent) = if Some(v.number) == current {
                ("live", canary.map(|(_, w)| 100 - (w * 100.0).round() as u32))
            } else if canary.is_some_and(|(n, _)| n == v.number) {
                ("canary", canary.map(|(_, w)| (w * 100.0).round() as u32))
            } else if rolled.contains(&v.number) {
                ("rolled back", None)
            } else if current.is_some_and(|c| v.number < c) {
                ("superseded", None)
            } else {
                ("not live", None)
            };
            HistoryRow {
                version: v.number,
                status: status.to_string(),
                percent,
                at: record.as_ref().map(|r| r.at),
                by: record.as_ref().map(|r| r.by.clone()),
                code_sha256: v.function.code_sha256.clone(),
                config_hash: record.as_ref().map(|r| r.config_hash.clone()),
                commit: record.and_then(|r| r.commit),
                description: v.description.clone(),
            }
        })
        .collect()
}

/// The verdict on the pre-traffic invocation: no function error, and a proxy response whose
/// status is not a 5XX.
pub fn pre_traffic_verdict(function_error: Option<&str>, payload: &str) -> std::result::Result<(), String> {
    if let Some(e) = function_error {
        return Err(format!(
            "the pre-traffic invocation failed ({e}): {}",
            payload.chars().take(200).collect::<String>()
        ));
    }
    let status = serde_json::from_str::<serde_json::Value>(payload).ok().and_then(|v| v["statusCode"].as_u64());
    match status {
        Some(s) if s < 500 => Ok(()),
        Some(s) => Err(format!("the pre-traffic invocation answered HTTP {s}")),
        None => Err(format!(
            "the pre-traffic invocation answered no API Gateway proxy response: {}",
            payload.chars().take(200).collect::<String>()
        )),
    }
}

#[async_trait]
impl Resource for FunctionAlias {
    type Live = LiveAlias;
    type Change = AliasChange;

    fn id(&self) -> Id<LiveAlias> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::FunctionAlias
    }

    fn aws_name(&self) -> Option<String> {
        Some(format!("{}:{ALIAS}", self.function_name))
    }

    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let function = s.arn("lambda", &format!("function:{}", self.function_name));
        let qualified = s.arn("lambda", &format!("function:{}:*", self.function_name));
        let mut grants = vec![Grant::new(
            "TheFunctionsVersions",
            &[
                "lambda:GetAlias",
                "lambda:CreateAlias",
                "lambda:UpdateAlias",
                "lambda:DeleteAlias",
                "lambda:ListVersionsByFunction",
                "lambda:PublishVersion",
                "lambda:DeleteFunction",
                "lambda:InvokeFunction",
            ],
            [function, qualified],
        )];
        // GetMetricData supports no resource-level permission.
        grants.push(Grant::new("ReadWithoutResourceScope", &["cloudwatch:GetMetricData"], ["*".to_string()]));
        if !self.alarms.is_empty() {
            let arns: Vec<String> = self.alarms.iter().map(|a| s.arn("cloudwatch", &format!("alarm:{a}"))).collect();
            grants.push(Grant::new("TheAlarms", &["cloudwatch:DescribeAlarms"], arns));
        }
        grants
    }

    /// The function ready (PublishVersion fails while it is Pending), and what the function's
    /// desired configuration is read from (its own dependencies, made before it anyway).
    fn deps(&self) -> Vec<Dep> {
        let mut deps = vec![Dep::ready(function::ID).goes_with()];
        deps.extend(Resource::deps(&self.function));
        deps
    }

    fn create_rounds(&self) -> u32 {
        2 // PublishVersion, CreateAlias
    }

    /// An `AWS::Lambda::Version` (CloudFormation publishes it from the function as the template
    /// has it) and the alias on it. Neither can be imported: CloudFormation makes its own.
    fn export(&self, _ctx: &Ctx, live: &LiveAlias) -> Vec<CfnResource> {
        let description = live.version(&live.version).map(|v| v.description.clone()).unwrap_or_default();
        let not = || crate::cfn::Import::Not {
            why: "CloudFormation publishes an AWS::Lambda::Version itself, and an alias names the version it made"
                .into(),
            instead: "after the import, update the stack with template-complete.json: CloudFormation publishes a \
                      version of the function and points its own alias at it"
                .into(),
            later: true,
        };
        let version_id = format!("{}Version", cfn::logical_id(ID));
        vec![
            CfnResource::part(
                ID.name(),
                "Version",
                "AWS::Lambda::Version",
                json!({ "FunctionName": cfn::reference(function::ID), "Description": description }),
                not(),
            ),
            CfnResource::new(
                ID,
                "AWS::Lambda::Alias",
                json!({
                    "FunctionName": cfn::reference(function::ID),
                    "Name": ALIAS,
                    "FunctionVersion": { "Fn::GetAtt": [version_id, "Version"] },
                }),
                not(),
            ),
        ]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveAlias>> {
        let (alias, versions) = self.read(ctx).await?;
        ctx.once("function-versions", || async { Ok(versions) }).await?;
        Ok(alias)
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveAlias) -> Result<Vec<AliasChange>> {
        let latest = inputs.get(function::ID)?;
        Ok(diff(&self.function.spec(inputs)?, latest, live, self.deploy.keep_versions))
    }

    /// The first version goes live at once: there is nothing to compare a canary with.
    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveAlias> {
        let latest = inputs.get(function::ID)?;
        let versions = ctx.once("function-versions", || self.versions(ctx)).await?;
        let mut versions: Vec<Version> = versions.as_ref().clone();
        let (to, published) = self.release(ctx, latest, &versions).await?;
        versions.extend(published);
        let description = alias_description(&BTreeSet::new(), &versions);
        let out = ctx
            .aws
            .lambda
            .create_alias()
            .function_name(&self.function_name)
            .name(ALIAS)
            .function_version(to.to_string())
            .description(&description)
            .send()
            .await
            .aws("Lambda", "CreateAlias")?;
        self.step(ctx, DeployStep::Promoted { version: to, from: String::new() });
        let mut live = LiveAlias {
            function_name: self.function_name.clone(),
            arn: out.alias_arn().map(str::to_string).unwrap_or_else(|| self.alias_arn(ctx)),
            version: to.to_string(),
            canary: None,
            description,
            versions,
        };
        let extra = prunable(&live.versions, self.deploy.keep_versions, &held(&live));
        self.prune(ctx, &extra).await?;
        live.versions.retain(|v| !extra.contains(&v.number));
        Ok(live)
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveAlias,
        changes: &[AliasChange],
    ) -> Result<LiveAlias> {
        if changes.iter().any(|c| matches!(c, AliasChange::Deploy(_) | AliasChange::Unfinished(_))) {
            return self.deploy(ctx, inputs.get(function::ID)?, live).await;
        }
        let mut now = live.clone();
        for c in changes {
            if let AliasChange::Prune(extra) = c {
                self.prune(ctx, extra).await?;
                now.versions.retain(|v| !extra.contains(&v.number));
            }
        }
        Ok(now)
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveAlias) -> Result<()> {
        let res = ctx
            .aws
            .lambda
            .delete_alias()
            .function_name(&live.function_name)
            .name(ALIAS)
            .send()
            .await
            .aws("Lambda", "DeleteAlias");
        crate::error::gone_is_ok(res)
    }

    fn health(&self, live: &LiveAlias) -> Vec<(&'static str, String)> {
        let mut health = vec![("version", live.version.clone())];
        if let Some((v, w)) = &live.canary {
            health.push(("canary", format!("version {v} at {:.0}%", w * 100.0)));
        }
        health
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveAlias) -> Vec<(&'static str, String)> {
        vec![("LiveVersion", live.version.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latest(code: &str) -> LiveFunction {
        function::tests_support::live_function(code)
    }

    /// The config wants what `latest(code)` runs.
    fn want(code: &str) -> function::FunctionSpec {
        let l = latest(code);
        function::FunctionSpec {
            config: l.config,
            architecture: l.architecture,
            code_sha256: code.into(),
            reserved_concurrency: None,
        }
    }

    fn version(n: u64, code: &str) -> Version {
        Version { number: n, function: latest(code), description: String::new(), code_size: 10 }
    }

    fn alias(version: &str, versions: Vec<Version>) -> LiveAlias {
        LiveAlias {
            function_name: "f".into(),
            arn: "arn:aws:lambda:us-east-1:1:function:f:live".into(),
            version: version.into(),
            canary: None,
            description: String::new(),
            versions,
        }
    }

    #[test]
    fn a_record_reads_back_what_it_wrote_within_lambdas_limit() {
        let r = Record {
            code_sha256: "bCl6MlFDGfbqi0wAuTmbQDjknJKTiOk6pUHidlS/tLA=".into(),
            config_hash: "0123456789ab".into(),
            commit: Some("abcdef012345".into()),
            at: 1_796_000_000,
            by: "arn:aws:sts::123456789012:assumed-role/deployer/alice".into(),
        };
        assert_eq!(Record::parse(&r.text()), Some(r.clone()));
        let none = Record { commit: None, ..r.clone() };
        assert_eq!(Record::parse(&none.text()), Some(none));
        let long = Record { by: "x".repeat(400), ..r };
        assert_eq!(long.text().chars().count(), DESCRIPTION_MAX);
        assert_eq!(Record::parse("deployed by hand"), None);
    }

    #[test]
    fn in_sync_is_no_change_and_new_code_is_a_deploy() {
        let live = alias("2", vec![version(1, "a"), version(2, "b")]);
        assert!(diff(&want("b"), &latest("b"), &live, 10).is_empty());
        assert!(diff(&want(""), &latest("b"), &live, 10).is_empty(), "no artifact: compared with $LATEST");
        let changes = diff(&want("c"), &latest("b"), &live, 10);
        assert!(matches!(changes.as_slice(), [AliasChange::Deploy(_)]), "{changes:?}");
        let changes = diff(&want("c"), &latest("c"), &live, 10);
        assert!(matches!(changes.as_slice(), [AliasChange::Deploy(_)]));
        let mut more_memory = want("b");
        more_memory.config.memory_mb = 1024;
        assert!(matches!(diff(&more_memory, &latest("b"), &live, 10).as_slice(), [AliasChange::Deploy(_)]));
        // $LATEST changed behind the stack's back: the function's drift, not the alias' (its
        // version runs what the config wants).
        let mut drifted = latest("b");
        drifted.config.memory_mb = 128;
        assert!(diff(&want("b"), &drifted, &live, 10).is_empty());
    }

    #[test]
    fn a_canary_left_behind_is_unfinished() {
        let mut live = alias("2", vec![version(1, "a"), version(2, "b"), version(3, "c")]);
        live.canary = Some(("3".into(), 0.1));
        assert!(matches!(diff(&want("b"), &latest("b"), &live, 10).as_slice(), [AliasChange::Unfinished(_)]));
        assert!(matches!(diff(&want("c"), &latest("c"), &live, 10).as_slice(), [AliasChange::Deploy(_)]));
    }

    #[test]
    fn pruning_keeps_the_newest_and_never_a_held_version() {
        let versions: Vec<Version> = (1..=6).map(|n| version(n, "a")).collect();
        let held = BTreeSet::from(["2".to_string()]);
        assert_eq!(prunable(&versions, 3, &held), vec![1, 3, 4]);
        assert_eq!(prunable(&versions, 10, &held), Vec::<u64>::new());
        let held = BTreeSet::from(["6".to_string(), "5".to_string()]);
        assert_eq!(prunable(&versions, 1, &held), vec![1, 2, 3, 4]);
        let live = alias("6", versions);
        assert!(
            matches!(diff(&want("a"), &latest("a"), &live, 2).as_slice(), [AliasChange::Prune(v)] if v == &vec![1, 2, 3, 4])
        );
    }

    #[test]
    fn rolled_back_versions_are_kept_in_the_alias_description() {
        let versions: Vec<Version> = (1..=3).map(|n| version(n, "a")).collect();
        let text = alias_description(&BTreeSet::from([2, 9]), &versions);
        assert_eq!(text, "movies-stack alias rolled-back=2");
        assert_eq!(rolled_back(&text), BTreeSet::from([2]));
        assert_eq!(alias_description(&BTreeSet::new(), &versions), "movies-stack alias");
    }

    #[test]
    fn history_tells_live_canary_rolled_back_and_superseded_apart() {
        let mut versions: Vec<Version> = (1..=4).map(|n| version(n, "a")).collect();
        let record = Record {
            code_sha256: "a".into(),
            config_hash: "h".into(),
            commit: None,
            at: 7,
            by: "arn:aws:iam::1:user/bob".into(),
        };
        versions[1].description = record.text();
        let mut live = alias("2", versions.clone());
        live.canary = Some(("4".into(), 0.1));
        live.description = "movies-stack alias rolled-back=3".into();
        let rows = history(Some(&live), &versions);
        let status: Vec<(u64, &str, Option<u32>)> =
            rows.iter().map(|r| (r.version, r.status.as_str(), r.percent)).collect();
        assert_eq!(
            status,
            vec![(4, "canary", Some(10)), (3, "rolled back", None), (2, "live", Some(90)), (1, "superseded", None)]
        );
        assert_eq!(rows[2].by.as_deref(), Some("arn:aws:iam::1:user/bob"));
        assert_eq!(rows[3].by, None, "published by someone else: no record");
    }

    #[test]
    fn the_pre_traffic_verdict() {
        assert_eq!(pre_traffic_verdict(None, r#"{"statusCode":405,"body":"{}"}"#), Ok(()));
        assert!(pre_traffic_verdict(None, r#"{"statusCode":502}"#).unwrap_err().contains("502"));
        assert!(pre_traffic_verdict(Some("Unhandled"), "{}").unwrap_err().contains("Unhandled"));
        assert!(pre_traffic_verdict(None, r#"{"resource":"/"}"#).is_err(), "an echo is no answer");
    }
}
