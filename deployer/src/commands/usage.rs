//! `movies-stack usage`: per API key (id, name, plan), the requests used per day (API Gateway
//! GetUsage) and what remains of the current quota period, next to the plan's throttle and quota.
//! Never a key value.

use std::sync::Arc;

use serde::Serialize;

use crate::cli::{Output, Tier, UsageArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Result, exit};
use crate::resources::usage_plan::{self, DayUsage, LivePlan};
use crate::resources::{Name, api_key};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

#[derive(Debug, Serialize)]
struct Plan {
    id: String,
    name: String,
    /// Requests per second (steady state); absent when the plan has no throttle.
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_limit: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst_limit: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_limit: Option<i64>,
    /// `DAY` | `WEEK` | `MONTH`.
    #[serde(skip_serializing_if = "Option::is_none")]
    quota_period: Option<String>,
}

impl Plan {
    /// The plan's live limits.
    fn of(p: &LivePlan) -> Plan {
        Plan {
            id: p.id.clone(),
            name: p.name.clone(),
            rate_limit: p.throttle.map(|(rate, _)| rate),
            burst_limit: p.throttle.map(|(_, burst)| i64::from(burst)),
            quota_limit: p.quota.as_ref().map(|(limit, _)| i64::from(*limit)),
            quota_period: p.quota.as_ref().map(|(_, period)| period.clone()),
        }
    }

    fn limits(&self) -> String {
        let throttle = match (self.rate_limit, self.burst_limit) {
            (Some(r), Some(b)) => format!("{r} rps, burst {b}"),
            _ => "no throttle".to_string(),
        };
        let quota = match (self.quota_limit, &self.quota_period) {
            (Some(l), Some(p)) => format!("quota {l} per {p}"),
            _ => "no quota".to_string(),
        };
        format!("{throttle}, {quota}")
    }
}

#[derive(Debug, Serialize)]
struct Day {
    date: String,
    used: i64,
    remaining: i64,
}

#[derive(Debug, Serialize)]
struct KeyUsage {
    tier: &'static str,
    id: String,
    name: String,
    plan: Plan,
    /// One row per day, oldest first; empty when API Gateway recorded nothing for the key.
    days: Vec<Day>,
    total: i64,
    /// What remains of the current quota period after today's requests (the last day's
    /// `remaining`); absent when nothing was recorded.
    #[serde(skip_serializing_if = "Option::is_none")]
    remaining_today: Option<i64>,
}

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UsageArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let tiers: Vec<&'static str> = match args.tier {
        Some(Tier::Standard) => vec!["standard"],
        Some(Tier::Premium) => vec!["premium"],
        None => vec!["standard", "premium"],
    };
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let names: Vec<Name> = tiers.iter().flat_map(|t| [api_key::id(t).name(), usage_plan::id(t).name()]).collect();
    let live = session.observe_live(config, &names).await?;
    // GetUsage counts UTC days; today is the last one.
    let today = crate::clock::now_ms().div_euclid(86_400_000);
    let first = today - i64::from(args.days) + 1;
    let (start, end) = (crate::clock::date(first), crate::clock::date(today));

    let mut keys = Vec::new();
    for tier in tiers {
        let key = live.require(api_key::id(tier))?;
        let plan = live.require(usage_plan::id(tier))?;
        let rows = usage_plan::usage(&ctx, &plan.id, &key.id, &start, &end)
            .await
            .map_err(|e| e.for_resource(api_key::id(tier)))?;
        keys.push(key_usage(tier, key.id.clone(), key.name.clone(), Plan::of(plan), first, &rows));
    }

    match output {
        Output::Json => printer.out(
            &serde_json::json!({"stack": config.stack, "start_date": start, "end_date": end, "keys": keys}).to_string(),
        ),
        Output::Human => {
            let mut lines = vec![format!("Usage of stack {}, {start} to {end} (UTC days):", config.stack)];
            for k in &keys {
                lines.push(String::new());
                lines.push(format!("{} key {} ({})", k.tier, k.id, k.name));
                lines.push(format!("  plan {} ({}): {}", k.plan.name, k.plan.id, k.plan.limits()));
                if k.days.is_empty() {
                    lines.push(format!("  no requests recorded in these {} days", args.days));
                    continue;
                }
                lines.push(format!("  {:<10} {:>9} {:>10}", "date", "requests", "remaining"));
                for d in &k.days {
                    lines.push(format!("  {:<10} {:>9} {:>10}", d.date, d.used, d.remaining));
                }
                let period = k.plan.quota_period.as_deref().unwrap_or("quota period").to_lowercase();
                lines.push(match (k.remaining_today, k.plan.quota_limit) {
                    (Some(r), Some(limit)) => {
                        format!("  total {}; {r} of {limit} requests left in the current {period}", k.total)
                    }
                    (Some(r), None) => format!("  total {}; {r} requests left", k.total),
                    (None, _) => format!("  total {}", k.total),
                });
            }
            printer.out(&lines.join("\n"));
        }
    }
    Ok(exit::OK)
}

/// One key's report from GetUsage's rows (one per day from `first_day`, days since the epoch).
fn key_usage(tier: &'static str, id: String, name: String, plan: Plan, first_day: i64, rows: &[DayUsage]) -> KeyUsage {
    let days: Vec<Day> = rows
        .iter()
        .enumerate()
        .map(|(i, r)| Day { date: crate::clock::date(first_day + i as i64), used: r.used, remaining: r.remaining })
        .collect();
    KeyUsage {
        tier,
        id,
        name,
        plan,
        total: days.iter().map(|d| d.used).sum(),
        remaining_today: days.last().map(|d| d.remaining),
        days,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_dated_from_the_first_and_the_last_one_is_today() {
        let plan = Plan::of(&LivePlan {
            id: "p1".into(),
            name: "Standard".into(),
            throttle: Some((50.0, 100)),
            quota: Some((10_000, "DAY".into())),
            api_stages: vec![],
        });
        assert_eq!(plan.limits(), "50 rps, burst 100, quota 10000 per DAY");
        let rows = [DayUsage { used: 3, remaining: 9997 }, DayUsage { used: 40, remaining: 9960 }];
        let k = key_usage("standard", "k1".into(), "s-standard".into(), plan, 20_781, &rows);
        assert_eq!(k.days.iter().map(|d| d.date.as_str()).collect::<Vec<_>>(), ["2026-11-24", "2026-11-25"]);
        assert_eq!((k.total, k.remaining_today), (43, Some(9960)));
        let none = key_usage("premium", "k2".into(), "p".into(), Plan::of(&LivePlan::default()), 20_781, &[]);
        assert_eq!((none.total, none.remaining_today), (0, None));
        assert_eq!(none.plan.limits(), "no throttle, no quota");
    }
}
