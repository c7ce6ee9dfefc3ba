//! `movies-stack plan`: what `up` would do, resource by resource, without a mutating call.
//! Exit 0: no changes; 2: changes; 1: errors (like `terraform plan -detailed-exitcode`).

use std::sync::Arc;

use serde::Serialize;

use crate::cli::{Output, PlanArgs};
use crate::config::Config;
use crate::error::{Result, exit};
use crate::resources::{Change, Observed};
use crate::ui::Reporter;

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub kind: &'static str,
    /// create | update | replace | none | error
    pub action: &'static str,
    pub changes: Vec<Change>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn rows(graph: &crate::graph::Graph, observed: &[(String, Result<Observed>)]) -> Vec<Row> {
    observed
        .iter()
        .map(|(id, res)| {
            let kind = graph.get(id).map(|n| n.kind()).unwrap_or("?");
            let (action, changes, error) = match res {
                Ok(Observed::Missing) => ("create", vec![], None),
                Ok(Observed::Present { changes, .. }) if changes.is_empty() => ("none", vec![], None),
                Ok(Observed::Present { changes, .. }) if changes.iter().any(|c| c.replace) => {
                    ("replace", changes.clone(), None)
                }
                Ok(Observed::Present { changes, .. }) => ("update", changes.clone(), None),
                Err(e) => ("error", vec![], Some(e.to_string())),
            };
            Row { id: id.clone(), kind, action, changes, error }
        })
        .collect()
}

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &PlanArgs,
    output: Output,
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    let artifact = super::artifact(config, args.artifact.as_deref(), &reporter).await?;
    let graph = crate::stack::graph(config, Arc::new(artifact))?;
    let ctx = super::connect(settings, config, reporter.clone(), false).await?;
    let (observed, _) = graph.observe_all(ctx.clone(), 8).await;
    reporter.finish();
    let rows = rows(&graph, &observed);
    let count = |a: &str| rows.iter().filter(|r| r.action == a).count();
    let (create, update, replace, errors) = (count("create"), count("update"), count("replace"), count("error"));
    match output {
        Output::Json => println!(
            "{}",
            serde_json::json!({
                "stack": config.stack,
                "resources": rows,
                "summary": {"create": create, "update": update, "replace": replace, "unchanged": count("none"), "errors": errors},
            })
        ),
        Output::Human => {
            println!("Plan for stack {}:", config.stack);
            for r in &rows {
                print_row(r);
            }
            println!(
                "Plan: {create} to create, {update} to update, {replace} to replace, {} unchanged.",
                count("none")
            );
        }
    }
    Ok(if errors > 0 {
        exit::FAILURE
    } else if create + update + replace > 0 {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn print_row(r: &Row) {
    let (mark, what) = match r.action {
        "create" => ("+", format!("create {}", r.kind)),
        "update" => ("~", format!("update {}", r.kind)),
        "replace" => ("!", format!("replace {} (up refuses: run down, then up)", r.kind)),
        "error" => ("?", format!("error: {}", r.error.as_deref().unwrap_or(""))),
        _ => (" ", "no change".to_string()),
    };
    println!("  {mark} {:<22} {what}", r.id);
    for c in &r.changes {
        println!(
            "      {}: {} -> {}{}",
            c.field,
            c.live,
            c.desired,
            if c.replace { " (forces replacement)" } else { "" }
        );
    }
}
