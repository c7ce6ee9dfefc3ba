//! The rules `serve` enforces, read from the deployed stack: the REST API and its stage (routes,
//! access log format), the usage plans bound to that stage with their throttle and quota, the API
//! keys in those plans (value, enabled) and the table.
//!
//! One function, [`load`], reads them all: the same discovery sweep as `status` (`stack::graph`,
//! `Graph::observe`: the API with its resources, the stage with its access log format, the
//! table), then what the sweep does not keep: the plans bound to the stage, whoever made them,
//! and their keys (GetUsagePlanKeys, GetApiKey with `includeValue`).
//!
//! Key values are secrets: they are only the lookup keys of [`Rules::key`], never printed.

use std::collections::HashMap;
use std::sync::Arc;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::graph::Compared;
use crate::ids::Name;
use crate::package::Artifact;
use crate::resources::Ctx;
use crate::resources::apigw::{self, dns_suffix};
use crate::resources::rest_api::{self, LiveApi};
use crate::resources::stage::{self, LiveStage};
use crate::resources::stage_access_logs;
use crate::resources::table::{self, LiveTable};
use crate::resources::usage_plan::{LivePlan, live_plan};

/// What `serve`'s reads of the stack are about, in progress lines.
const SERVE: Name = Name::of("serve");

/// A usage plan's quota period. Periods start at 00:00 UTC: every day; on Sundays (the API
/// reference of `QuotaSettings.offset`: "with a time period of WEEK, an offset of 0 starts on
/// Sunday"); on the 1st of the month.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    Month,
}

impl Period {
    pub fn parse(s: &str) -> Option<Period> {
        match s {
            "DAY" => Some(Period::Day),
            "WEEK" => Some(Period::Week),
            "MONTH" => Some(Period::Month),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "DAY",
            Period::Week => "WEEK",
            Period::Month => "MONTH",
        }
    }

    /// The start (Unix seconds) of the period holding `now` (Unix seconds), in UTC.
    pub fn start(self, now: i64) -> i64 {
        let Ok(at) = time::OffsetDateTime::from_unix_timestamp(now) else {
            return now;
        };
        let day = at.date();
        let first = match self {
            Period::Day => day,
            Period::Week => day - time::Duration::days(i64::from(day.weekday().number_days_from_sunday())),
            Period::Month => day.replace_day(1).unwrap_or(day),
        };
        first.midnight().assume_utc().unix_timestamp()
    }
}

/// Token bucket parameters: `rate` requests per second refill a bucket of `burst` tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct Throttle {
    pub rate: f64,
    pub burst: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

/// A usage plan bound to the stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub id: String,
    pub name: String,
    /// None: the plan does not throttle.
    pub throttle: Option<Throttle>,
    /// None: the plan has no quota.
    pub quota: Option<Quota>,
}

impl Plan {
    /// "50 rps, burst 100, 10000 per DAY", for people.
    pub fn limits(&self) -> String {
        let throttle = match &self.throttle {
            Some(t) => format!("{} rps, burst {}", t.rate, t.burst),
            None => "no throttle".to_string(),
        };
        let quota = match &self.quota {
            Some(q) => format!("{} per {}", q.limit, q.period.as_str()),
            None => "no quota".to_string(),
        };
        format!("{throttle}, {quota}")
    }
}

/// An API key of a plan bound to the stage. No `Debug`: nothing here holds its value, but keep it
/// that way.
#[derive(Clone, PartialEq)]
pub struct Key {
    pub id: String,
    pub name: String,
    pub enabled: bool,
    pub plan: Arc<Plan>,
}

/// An API key as read from API Gateway, value included (for [`assemble`]).
pub struct LiveKey {
    pub id: String,
    pub name: String,
    /// None: GetApiKey returned no value (or an empty one); such a key matches no request.
    pub value: Option<String>,
    pub enabled: bool,
}

/// Everything `serve` enforces. No `Debug`: it holds the key values.
pub struct Rules {
    pub stack: String,
    pub account_id: String,
    pub region: String,
    pub api_id: String,
    pub stage: String,
    pub table: String,
    /// `requestContext.resourceId` of `/` and of `/{proxy+}` (None: the API has no such resource,
    /// and paths below the root are answered as API Gateway answers an unknown resource).
    pub root_resource_id: String,
    pub proxy_resource_id: Option<String>,
    /// The stage's access log format (`up` sets [`stage_access_logs::ACCESS_LOG_FORMAT`]).
    pub access_log_format: String,
    pub plans: Vec<Arc<Plan>>,
    /// By key value.
    keys: HashMap<String, Key>,
}

impl Rules {
    /// The key with this value, enabled or not. An empty value is no key: [`assemble`] never
    /// stores one, and a request without `x-api-key` must not find a key whose value is unknown.
    pub fn key(&self, value: &str) -> Option<&Key> {
        if value.is_empty() {
            return None;
        }
        self.keys.get(value)
    }

    /// The keys, sorted by name (no values).
    pub fn keys(&self) -> Vec<&Key> {
        let mut keys: Vec<&Key> = self.keys.values().collect();
        keys.sort_by(|a, b| a.name.cmp(&b.name));
        keys
    }

    /// The stage's URL in AWS.
    pub fn invoke_url(&self) -> String {
        format!("https://{}.execute-api.{}.{}/{}/", self.api_id, self.region, dns_suffix(&self.region), self.stage)
    }

    /// One line per plan with its keys, for people (no values).
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .plans
            .iter()
            .map(|p| {
                let keys: Vec<String> = self
                    .keys()
                    .into_iter()
                    .filter(|k| k.plan.id == p.id)
                    .map(|k| format!("{} (id {}{})", k.name, k.id, if k.enabled { "" } else { ", disabled" }))
                    .collect();
                let keys = if keys.is_empty() { "no keys".to_string() } else { keys.join(", ") };
                format!("usage plan {} (id {}): {}; keys: {keys}", p.name, p.id, p.limits())
            })
            .collect();
        if lines.is_empty() {
            lines.push(format!(
                "no usage plan is bound to stage {}: every request will be answered 403 (run `movies-stack up`)",
                self.stage
            ));
        }
        lines
    }
}

/// The plans and keys that apply to the stage, from the plans bound to it and their keys. A key
/// in two of them is something AWS refuses ("a given API key can only be associated with one
/// usage plan for each stage"): the first plan wins and a warning says so. A key whose value
/// GetApiKey did not return is left out (a warning says so): it can match no request. Pure.
pub fn assemble(bound: Vec<(LivePlan, Vec<LiveKey>)>) -> (Vec<Arc<Plan>>, HashMap<String, Key>, Vec<String>) {
    let mut plans = Vec::new();
    let mut keys: HashMap<String, Key> = HashMap::new();
    let mut warnings = Vec::new();
    for (live, live_keys) in bound {
        let quota = live.quota.as_ref().and_then(|(limit, period)| match Period::parse(period) {
            Some(period) => Some(Quota { limit: u64::try_from(*limit).unwrap_or(0), period }),
            None => {
                warnings.push(format!("usage plan {}: unknown quota period `{period}`: quota not enforced", live.name));
                None
            }
        });
        let plan = Arc::new(Plan {
            id: live.id.clone(),
            name: live.name.clone(),
            throttle: live.throttle.map(|(rate, burst)| Throttle { rate, burst: f64::from(burst) }),
            quota,
        });
        for k in live_keys {
            let Some(value) = k.value.filter(|v| !v.is_empty()) else {
                warnings.push(format!(
                    "API key {} of usage plan {}: API Gateway returned no value for it; no request will match it",
                    k.id, plan.name
                ));
                continue;
            };
            if let Some(other) = keys.get(&value) {
                warnings.push(format!(
                    "API key {} is in two usage plans of this stage ({} and {}); AWS does not allow that: using {}",
                    k.id, other.plan.name, plan.name, other.plan.name
                ));
                continue;
            }
            keys.insert(value, Key { id: k.id, name: k.name, enabled: k.enabled, plan: plan.clone() });
        }
        plans.push(plan);
    }
    (plans, keys, warnings)
}

/// Read the rules from the deployed stack. A stack whose API, stage or table is missing is not
/// deployed: "run `movies-stack up` first". KindChange elsewhere is a warning: `serve` serves what is
/// deployed. Reads afresh each time (a reload after SIGHUP sees what changed since).
pub async fn load(ctx: &Arc<Ctx>, config: &Config) -> Result<Rules> {
    ctx.forget_shared();
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let (identity, found) = tokio::join!(ctx.identity(), graph.observe(ctx));
    identity?;
    let mut missing = Vec::new();
    let mut differs = Vec::new();
    for (name, compared) in graph.compare(ctx, &found) {
        // Without these there is nothing to serve.
        let needed = [rest_api::ID.name(), stage::ID.name(), table::ID.name()].contains(&name);
        match compared {
            Compared::Error(e) if needed => return Err(Error::other(e)),
            Compared::Error(e) => ctx.warn(format!("{name}: cannot be read ({e}); serving without it")),
            Compared::Missing if needed => missing.push(name.to_string()),
            Compared::Missing => differs.push(format!("{name} missing")),
            Compared::Present { changes, .. } if !changes.is_empty() => differs.push(format!("{name} drifted")),
            Compared::Unwanted => differs.push(format!("{name} turned off but present")),
            Compared::Present { .. } | Compared::Off => {}
        }
    }
    if !missing.is_empty() {
        return Err(Error::other(format!(
            "stack {} is not deployed ({} missing): run `movies-stack up` first",
            config.stack,
            missing.join(", ")
        )));
    }
    if !differs.is_empty() {
        ctx.warn(format!(
            "the deployed stack differs from {}: {}; serving what is deployed (details: movies-stack status)",
            config.path.display(),
            differs.join(", ")
        ));
    }
    let state = graph.present(&found);
    let api: &LiveApi = state.get(rest_api::ID)?;
    let live_stage: &LiveStage = state.get(stage::ID)?;
    let table: &LiveTable = state.get(table::ID)?;
    let (api_id, stage_name) = (api.id.clone(), live_stage.name.clone());
    let access_log_format = match &live_stage.access_log_format {
        Some(f) => f.clone(),
        None => {
            ctx.warn(format!(
                "stage {stage_name} has no access log format (AWS would log nothing): using the one `up` configures"
            ));
            stage_access_logs::ACCESS_LOG_FORMAT.to_string()
        }
    };
    let root_resource_id = api.resources.get("/").map(|r| r.id.clone()).unwrap_or_default();
    let proxy_resource_id = api.resources.get("/{proxy+}").map(|r| r.id.clone());

    // The plans bound to the stage, ours or not (API Gateway enforces them all), and their keys.
    let all_plans = apigw::usage_plans(ctx).await?;
    let mut bound = Vec::new();
    for plan in all_plans.iter().map(live_plan) {
        if !plan.api_stages.iter().any(|(a, s)| *a == api_id && *s == stage_name) {
            continue;
        }
        let members = apigw::usage_plan_keys(ctx.as_ref(), SERVE, &plan.id).await?;
        let mut keys = Vec::new();
        for member in members.iter().filter(|m| m.r#type().is_none_or(|t| t == "API_KEY")) {
            let Some(id) = member.id() else { continue };
            let key = apigw::api_key_with_value(ctx.as_ref(), SERVE, id).await?;
            keys.push(LiveKey {
                id: id.to_string(),
                name: key.name().unwrap_or(id).to_string(),
                value: key.value().map(str::to_string),
                enabled: key.enabled(),
            });
        }
        bound.push((plan, keys));
    }
    let (plans, keys, warnings) = assemble(bound);
    for w in warnings {
        ctx.warn(w);
    }
    Ok(Rules {
        stack: config.stack.clone(),
        account_id: ctx.account_id().to_string(),
        region: ctx.aws.region.clone(),
        api_id,
        stage: stage_name,
        table: table.name.clone(),
        root_resource_id,
        proxy_resource_id,
        access_log_format,
        plans,
        keys,
    })
}

/// Rules with one plan (`p1`: 10 rps, burst 5, 100 per DAY) and one enabled key (`k1`, value
/// `VALUE-1`), for the other modules' tests.
#[cfg(test)]
pub fn sample_rules() -> Rules {
    let plan = LivePlan {
        id: "p1".into(),
        name: "Standard".into(),
        throttle: Some((10.0, 5)),
        quota: Some((100, "DAY".into())),
        api_stages: vec![("api1".into(), "prod".into())],
    };
    let key = LiveKey { id: "k1".into(), name: "standard".into(), value: Some("VALUE-1".into()), enabled: true };
    let (plans, keys, _) = assemble(vec![(plan, vec![key])]);
    Rules {
        stack: "movies-test".into(),
        account_id: "123456789012".into(),
        region: "us-east-1".into(),
        api_id: "api1".into(),
        stage: "prod".into(),
        table: "demo_table".into(),
        root_resource_id: "root1".into(),
        proxy_resource_id: Some("proxy1".into()),
        access_log_format: stage_access_logs::ACCESS_LOG_FORMAT.into(),
        plans,
        keys,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-26 (a Thursday) 15:04:05 UTC.
    const THU: i64 = 1_795_705_445;

    #[test]
    fn periods_start_at_midnight_utc_on_the_day_sunday_and_the_first() {
        let day = Period::Day.start(THU);
        assert_eq!(day % 86_400, 0);
        assert_eq!(THU - day, 15 * 3600 + 4 * 60 + 5);
        // Sunday 2026-11-22.
        assert_eq!(Period::Week.start(THU), day - 4 * 86_400);
        // 2026-11-01.
        assert_eq!(Period::Month.start(THU), day - 25 * 86_400);
        // The first second of a period is its own start.
        assert_eq!(Period::Day.start(day), day);
        assert_eq!(Period::Month.start(Period::Month.start(THU)), Period::Month.start(THU));
        assert_eq!(Period::parse("WEEK"), Some(Period::Week));
        assert_eq!(Period::parse("week"), None);
    }

    fn live(id: &str, throttle: Option<(f64, i32)>, quota: Option<(i32, &str)>) -> LivePlan {
        LivePlan {
            id: id.into(),
            name: format!("plan-{id}"),
            throttle,
            quota: quota.map(|(l, p)| (l, p.to_string())),
            api_stages: vec![("api".into(), "prod".into())],
        }
    }

    fn key(id: &str, value: &str, enabled: bool) -> LiveKey {
        LiveKey { id: id.into(), name: format!("key-{id}"), value: Some(value.into()), enabled }
    }

    #[test]
    fn keys_are_found_by_value_with_their_plan() {
        let (plans, keys, warnings) = assemble(vec![
            (live("p1", Some((50.0, 100)), Some((10_000, "DAY"))), vec![key("k1", "v1", true)]),
            (live("p2", None, None), vec![key("k2", "v2", false)]),
        ]);
        assert!(warnings.is_empty(), "{warnings:?}");
        assert_eq!(plans.len(), 2);
        let k1 = &keys["v1"];
        assert_eq!((k1.id.as_str(), k1.enabled), ("k1", true));
        assert_eq!(k1.plan.throttle, Some(Throttle { rate: 50.0, burst: 100.0 }));
        assert_eq!(k1.plan.quota, Some(Quota { limit: 10_000, period: Period::Day }));
        assert_eq!(k1.plan.limits(), "50 rps, burst 100, 10000 per DAY");
        let k2 = &keys["v2"];
        assert!(!k2.enabled);
        assert_eq!(k2.plan.limits(), "no throttle, no quota");
        assert!(!keys.contains_key("k1"), "keys are found by value, not id");
    }

    #[test]
    fn a_key_in_two_plans_of_the_stage_keeps_the_first_and_warns() {
        let (_, keys, warnings) = assemble(vec![
            (live("p1", None, Some((1, "MONTH"))), vec![key("k1", "v1", true)]),
            (live("p2", None, Some((5, "FORTNIGHT"))), vec![key("k1", "v1", true)]),
        ]);
        assert_eq!(keys["v1"].plan.id, "p1");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("FORTNIGHT")), "{warnings:?}");
        assert!(warnings.iter().any(|w| w.contains("two usage plans")), "{warnings:?}");
    }

    #[test]
    fn a_key_without_a_value_matches_nothing() {
        let mut unknown = key("k2", "", true);
        unknown.value = None;
        let (plans, keys, warnings) =
            assemble(vec![(live("p1", None, None), vec![key("k1", "v1", true), unknown, key("k3", "", true)])]);
        assert_eq!(keys.len(), 1, "only the key with a value is kept");
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert!(warnings.iter().all(|w| w.contains("no value")), "{warnings:?}");
        let rules = Rules { plans, keys, ..sample_rules() };
        // A request without `x-api-key` looks up the empty string: it finds nothing.
        assert!(rules.key("").is_none());
        assert_eq!(rules.key("v1").map(|k| k.id.as_str()), Some("k1"));
    }
}
