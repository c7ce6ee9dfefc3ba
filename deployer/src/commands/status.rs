//! `movies-stack status`: one row per resource (present / missing / drifted, with the fields
//! that differ), health, and the outputs. Never an API key value.
//! Exit 0: in sync; 2: something missing or drifted; 1: errors.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use crate::cli::Output;
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Result, exit};
use crate::graph::Compared;
use crate::package::Artifact;
use crate::resources::FieldChange;
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

#[derive(Debug, Serialize)]
struct Row {
    id: String,
    kind: &'static str,
    /// present | missing | drifted | off (turned off in the config, absent) | unwanted (turned
    /// off, but present: `up` deletes it) | error
    state: &'static str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    drift: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    // The code is not compared (status builds nothing): only configuration drift.
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let (found, _) = session.sweep(&graph, None).await?;
    let mut rows = Vec::new();
    // Health: what each resource reports about itself (`Resource::health`).
    let mut health: BTreeMap<String, BTreeMap<&str, String>> = BTreeMap::new();
    for (name, compared) in graph.compare(&ctx, &found) {
        let kind = graph.node(name).map(|n| n.kind().label()).unwrap_or("?");
        let (state, drift, error) = match compared {
            Compared::Missing => ("missing", vec![], None),
            Compared::Present { live, changes } => {
                let h: BTreeMap<&str, String> =
                    graph.node(name).map(|n| n.health(&live)).unwrap_or_default().into_iter().collect();
                if !h.is_empty() {
                    health.insert(name.to_string(), h);
                }
                (if changes.is_empty() { "present" } else { "drifted" }, changes, None)
            }
            Compared::Off => ("off", vec![], None),
            Compared::Unwanted => ("unwanted", vec![], None),
            Compared::Error(e) => ("error", vec![], Some(e)),
        };
        rows.push(Row { id: name.to_string(), kind, state, drift, error });
    }
    let outputs = graph.outputs(&ctx, &graph.present(&found));
    let plans: BTreeMap<&str, String> = config
        .usage_plans
        .tiers()
        .iter()
        .map(|(tier, p)| {
            (*tier, format!("{} rps, burst {}, {} per {}", p.rate_limit, p.burst_limit, p.quota_limit, p.quota_period))
        })
        .collect();
    let count = |s: &str| rows.iter().filter(|r| r.state == s).count();
    let (missing, drifted, unwanted, errors) = (count("missing"), count("drifted"), count("unwanted"), count("error"));
    let in_sync = missing + drifted + unwanted + errors == 0;
    match output {
        Output::Json => printer.out(
            &serde_json::json!({
                "stack": config.stack,
                "in_sync": in_sync,
                "resources": rows,
                "health": health,
                "usage_plans": plans,
                "outputs": outputs,
            })
            .to_string(),
        ),
        Output::Human => {
            let mut text = format!("Stack {} ({}):", config.stack, graph.size_text());
            let width = rows.iter().map(|r| r.id.len()).max().unwrap_or(0);
            for r in &rows {
                let extra =
                    health.get(&r.id).map(|h| h.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" "));
                let line = format!("  {:<8} {:<width$} {}", r.state, r.id, extra.unwrap_or_default());
                text.push('\n');
                text.push_str(line.trim_end());
                for c in &r.drift {
                    text.push_str(&format!("\n           {}: live {}, desired {}", c.field, c.live, c.desired));
                }
                if let Some(e) = &r.error {
                    text.push_str(&format!("\n           {e}"));
                }
            }
            text.push_str(&format!(
                "\nUsage plans (desired): standard {}; premium {}",
                plans["standard"], plans["premium"]
            ));
            text.push_str(&format!("\n{}", crate::ui::outputs_text("Outputs:", &outputs)));
            text.push_str(&format!(
                "\n{}",
                if in_sync {
                    "In sync.".to_string()
                } else {
                    format!(
                        "{missing} missing, {drifted} drifted, {unwanted} turned off but present, {errors} errors: run `movies-stack plan` / `up`."
                    )
                }
            ));
            printer.out(&text);
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
