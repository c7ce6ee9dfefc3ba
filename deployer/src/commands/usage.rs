//! `movies-stack usage`: per API key (id, name, plan), the requests used per day (API Gateway
//! GetUsage) and what remains of the current quota period, next to the plan's throttle and quota.
//! Never a key value.

use std::sync::Arc;

use serde::Serialize;

use crate::cli::{Output, Tier, UsageArgs};
use crate::config::Config;
use crate::error::{Result, exit};
use crate::resources::usage_plan::{self, DayUsage};
use crate::resources::{Outputs, api_key};
use crate::ui::Reporter;

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
    fn from_outputs(o: &Outputs) -> Plan {
        let num = |k: &str| o.get(k).and_then(|v| v.parse::<i64>().ok());
        Plan {
            id: o.get("id").cloned().unwrap_or_default(),
            name: o.get("name").cloned().unwrap_or_default(),
            rate_limit: o.get("rate_limit").and_then(|v| v.parse().ok()),
            burst_limit: num("burst_limit"),
            quota_limit: num("quota_limit"),
            quota_period: o.get("quota_period").cloned(),
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
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    let tiers: Vec<&'static str> = match args.tier {
        Some(Tier::Standard) => vec!["standard"],
        Some(Tier::Premium) => vec!["premium"],
        None => vec!["standard", "premium"],
    };
    let ctx = super::connect(settings, config, reporter.clone(), false).await?;
    let live = super::observe_outputs(ctx.clone(), config).await?;
    // GetUsage counts UTC days; today is the last one.
    let today = crate::clock::now_ms().div_euclid(86_400_000);
    let first = today - i64::from(args.days) + 1;
    let (start, end) = (crate::clock::date(first), crate::clock::date(today));

    let mut keys = Vec::new();
    for tier in tiers {
        let key_res = api_key::resource_id(tier);
        let plan_res = usage_plan::resource_id(tier);
        let key_id = live.require(&key_res, "id")?.to_string();
        let plan_id = live.require(&plan_res, "id")?.to_string();
        let plan = Plan::from_outputs(&live.inputs.map[&plan_res]);
        let rows =
            usage_plan::usage(&ctx, &plan_id, &key_id, &start, &end).await.map_err(|e| e.for_resource(&key_res))?;
        keys.push(key_usage(
            tier,
            key_id,
            live.inputs.try_get(&key_res, "name").unwrap_or("").to_string(),
            plan,
            first,
            &rows,
        ));
    }

    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({"stack": config.stack, "start_date": start, "end_date": end, "keys": keys})
        ),
        Output::Human => {
            println!("Usage of stack {}, {start} to {end} (UTC days):", config.stack);
            for k in &keys {
                println!();
                println!("{} key {} ({})", k.tier, k.id, k.name);
                println!("  plan {} ({}): {}", k.plan.name, k.plan.id, k.plan.limits());
                if k.days.is_empty() {
                    println!("  no requests recorded in these {} days", args.days);
                    continue;
                }
                println!("  {:<10} {:>9} {:>10}", "date", "requests", "remaining");
                for d in &k.days {
                    println!("  {:<10} {:>9} {:>10}", d.date, d.used, d.remaining);
                }
                let period = k.plan.quota_period.as_deref().unwrap_or("quota period").to_lowercase();
                match (k.remaining_today, k.plan.quota_limit) {
                    (Some(r), Some(limit)) => {
                        println!("  total {}; {r} of {limit} requests left in the current {period}", k.total)
                    }
                    (Some(r), None) => println!("  total {}; {r} requests left", k.total),
                    (None, _) => println!("  total {}", k.total),
                }
            }
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
        let plan = Plan::from_outputs(&crate::resources::outputs([
            ("id", "p1".to_string()),
            ("name", "Standard".to_string()),
            ("rate_limit", "50".to_string()),
            ("burst_limit", "100".to_string()),
            ("quota_limit", "10000".to_string()),
            ("quota_period", "DAY".to_string()),
        ]));
        assert_eq!(plan.limits(), "50 rps, burst 100, quota 10000 per DAY");
        let rows = [DayUsage { used: 3, remaining: 9997 }, DayUsage { used: 40, remaining: 9960 }];
        let k = key_usage("standard", "k1".into(), "s-standard".into(), plan, 20_781, &rows);
        assert_eq!(k.days.iter().map(|d| d.date.as_str()).collect::<Vec<_>>(), ["2026-11-24", "2026-11-25"]);
        assert_eq!((k.total, k.remaining_today), (43, Some(9960)));
        let none = key_usage("premium", "k2".into(), "p".into(), Plan::from_outputs(&Outputs::new()), 20_781, &[]);
        assert_eq!((none.total, none.remaining_today), (0, None));
        assert_eq!(none.plan.limits(), "no throttle, no quota");
    }
}
