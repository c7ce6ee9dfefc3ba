//! `movies-stack plan`: what `up` would do, resource by resource, without a mutating call.
//! Exit 0: no changes; 2: changes; 1: errors (like `terraform plan -detailed-exitcode`).

use std::sync::Arc;

use serde::Serialize;

use crate::cli::{Output, PlanArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Result, exit};
use crate::graph::{Compared, Graph};
use crate::resources::{FieldChange, Name};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

#[derive(Debug, Serialize)]
pub struct Row {
    pub id: String,
    pub kind: &'static str,
    /// create | update | replace | delete (turned off in the config) | none | off (turned off,
    /// absent) | error
    pub action: &'static str,
    pub changes: Vec<FieldChange>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

pub fn rows(graph: &Graph, compared: Vec<(Name, Compared)>) -> Vec<Row> {
    compared
        .into_iter()
        .map(|(name, c)| {
            let kind = graph.node(name).map(|n| n.kind().label()).unwrap_or("?");
            let replaces_itself = graph.node(name).is_some_and(|n| n.replaces_itself());
            let (action, changes, error) = match c {
                Compared::Missing => ("create", vec![], None),
                Compared::Present { changes, .. } if changes.is_empty() => ("none", vec![], None),
                Compared::Present { changes, .. } if changes.iter().any(|c| c.replace) && !replaces_itself => {
                    ("replace", changes, None)
                }
                Compared::Present { changes, .. } => ("update", changes, None),
                Compared::Off => ("off", vec![], None),
                Compared::Unwanted => ("delete", vec![], None),
                Compared::Error(e) => ("error", vec![], Some(e)),
            };
            Row { id: name.to_string(), kind, action, changes, error }
        })
        .collect()
}

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &PlanArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let artifact = crate::package::artifact(config, args.artifact.as_deref(), &printer).await?;
    let graph = crate::stack::graph(config, Arc::new(artifact))?;
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let (found, _) = session.sweep(&graph, None).await?;
    let rows = rows(&graph, graph.compare(&ctx, &found));
    let count = |a: &str| rows.iter().filter(|r| r.action == a).count();
    let (create, update, replace, delete, errors) =
        (count("create"), count("update"), count("replace"), count("delete"), count("error"));
    match output {
        Output::Json => printer.out(
            &serde_json::json!({
                "stack": config.stack,
                "resources": rows,
                "summary": {"create": create, "update": update, "replace": replace, "delete": delete, "unchanged": count("none"), "off": count("off"), "errors": errors},
            })
            .to_string(),
        ),
        Output::Human => {
            let mut text = format!("Plan for stack {}:", config.stack);
            for r in &rows {
                text.push_str(&row_text(r));
            }
            text.push_str(&format!(
                "\nPlan: {create} to create, {update} to update, {replace} to replace, {delete} to delete, {} unchanged.",
                count("none")
            ));
            printer.out(&text);
        }
    }
    Ok(if errors > 0 {
        exit::FAILURE
    } else if create + update + replace + delete > 0 {
        exit::CHANGES
    } else {
        exit::OK
    })
}

fn row_text(r: &Row) -> String {
    let (mark, what) = match r.action {
        "create" => ("+", format!("create {}", r.kind)),
        "update" => ("~", format!("update {}", r.kind)),
        "replace" => ("!", format!("replace {} (up refuses: run down, then up)", r.kind)),
        "delete" => ("-", format!("delete {} (turned off in the config)", r.kind)),
        "off" => (" ", "off (turned off in the config)".to_string()),
        "error" => ("?", format!("error: {}", r.error.as_deref().unwrap_or(""))),
        _ => (" ", "no change".to_string()),
    };
    let mut text = format!("\n  {mark} {:<27} {what}", r.id);
    for c in &r.changes {
        text.push_str(&format!(
            "\n      {}: {} -> {}{}",
            c.field,
            c.live,
            c.desired,
            if c.replace { " (forces replacement)" } else { "" }
        ));
    }
    text
}
