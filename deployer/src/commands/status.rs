//! `movies-stack status`: one row per resource (present / missing / drifted, with the fields
//! that differ), health, and the outputs. Never an API key value.
//! Exit 0: in sync; 2: something missing or drifted; 1: errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cli::Output;
use crate::config::Config;
use crate::error::{Result, exit};
use crate::package::Artifact;
use crate::resources::{Change, Observed};
use crate::ui::Reporter;

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: &'static str,
    /// present | missing | drifted | error
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drift: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

/// Output keys that describe health, shown per resource.
const HEALTH_KEYS: [&str; 6] =
    ["state", "last_update_status", "status", "pitr", "deployment_id", "serves_current_definition"];

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    output: Output,
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    // The code is not compared (status builds nothing): only configuration drift.
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let ctx = super::connect(settings, config, reporter.clone(), false).await?;
    let (observed, inputs) = graph.observe_all(ctx.clone(), 8).await;
    reporter.finish();
    let rows: Vec<Row> = observed
        .iter()
        .map(|(id, res)| {
            let kind = graph.get(id).map(|n| n.kind()).unwrap_or("?");
            let (state, drift, error) = match res {
                Ok(Observed::Missing) => ("missing", vec![], None),
                Ok(Observed::Present { changes, .. }) if changes.is_empty() => ("present", vec![], None),
                Ok(Observed::Present { changes, .. }) => ("drifted", changes.clone(), None),
                Err(e) => ("error", vec![], Some(e.to_string())),
            };
            Row { id: id.clone(), kind, state, drift, error }
        })
        .collect();
    let health: BTreeMap<String, BTreeMap<&str, String>> = rows
        .iter()
        .filter_map(|r| {
            let outs = inputs.map.get(&r.id)?;
            let h: BTreeMap<&str, String> =
                HEALTH_KEYS.iter().filter_map(|k| outs.get(*k).map(|v| (*k, v.clone()))).collect();
            (!h.is_empty()).then(|| (r.id.clone(), h))
        })
        .collect();
    let outputs = super::up::stack_outputs(config, &inputs);
    let plans: BTreeMap<&str, String> = config
        .usage_plans
        .tiers()
        .iter()
        .map(|(tier, p)| {
            (*tier, format!("{} rps, burst {}, {} per {}", p.rate_limit, p.burst_limit, p.quota_limit, p.quota_period))
        })
        .collect();
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let (missing, drifted, errors) = (count("missing"), count("drifted"), count("error"));
    let in_sync = missing + drifted + errors == 0;
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "stack": config.stack,
                "in_sync": in_sync,
                "resources": rows,
                "health": health,
                "usage_plans": plans,
                "outputs": outputs,
            })
        ),
        Output::Human => {
            println!("Stack {} ({} resources):", config.stack, rows.len());
            for r in &rows {
                let extra =
                    health.get(&r.id).map(|h| h.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
                println!("  {:<8} {:<22} {}", r.state, r.id, extra.unwrap_or_default());
                for c in &r.drift {
                    println!("           {}: live {}, desired {}", c.field, c.live, c.desired);
                }
                if let Some(e) = &r.error {
                    println!("           {e}");
                }
            }
            println!("Usage plans (desired): standard {}; premium {}", plans["standard"], plans["premium"]);
            println!("Outputs:");
            for (k, v) in &outputs {
                println!("  {k:<18} {v}");
            }
            println!(
                "{}",
                if in_sync {
                    "In sync.".to_string()
                } else {
                    format!("{missing} missing, {drifted} drifted, {errors} errors: run `movies-stack plan` / `up`.")
                }
            );
        }
    }
    Ok(if errors > 0 {
        exit::FAILURE
    } else if in_sync {
        exit::OK
    } else {
        exit::CHANGES
    })
}
