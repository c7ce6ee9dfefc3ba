//! `movies-stack history`: the function's deploys, newest first, from AWS alone: each version's
//! record (its description) and where the alias `live` points. No local state.

use std::sync::Arc;

use crate::cli::Output;
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Result, exit};
use crate::resources::function_alias::{self, HistoryRow};
use crate::session::{CtrlC, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let session = Session::open(settings, config, printer.clone(), CtrlC::Exits, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    session.who_am_i().await?;
    let alias = crate::stack::deployed_alias(config);
    let (live, versions) = alias.read(&ctx).await.map_err(|e| e.for_resource(function_alias::ID))?;
    let rows = function_alias::history(live.as_ref(), &versions);
    match output {
        Output::Json => printer.out(
            &serde_json::json!({
                "stack": config.stack,
                "function": config.function.name,
                "alias": function_alias::ALIAS,
                "deploys": rows,
            })
            .to_string(),
        ),
        Output::Human => printer.out(&text(&config.function.name, &rows)),
    }
    Ok(exit::OK)
}

fn text(function: &str, rows: &[HistoryRow]) -> String {
    if rows.is_empty() {
        return format!("function {function} has no published version yet: `movies-stack up` publishes one");
    }
    let mut lines = vec![
        format!("Deploys of {function} (alias {}), newest first:", function_alias::ALIAS),
        format!(
            "{:<8} {:<12} {:<20} {:<14} {:<13} {:<14} {}",
            "VERSION", "STATUS", "DEPLOYED (UTC)", "CODE", "CONFIG", "COMMIT", "BY"
        ),
    ];
    for r in rows {
        let status = match r.percent {
            Some(p) => format!("{} {p}%", r.status),
            None => r.status.clone(),
        };
        let code: String = r.code_sha256.chars().take(12).collect();
        lines.push(format!(
            "{:<8} {:<12} {:<20} {:<14} {:<13} {:<14} {}",
            r.version,
            status,
            r.at.map(crate::clock::utc).unwrap_or_else(|| "-".into()),
            code,
            r.config_hash.as_deref().unwrap_or("-"),
            r.commit.as_deref().unwrap_or("-"),
            r.by.as_deref().unwrap_or("(not published by movies-stack)")
        ));
    }
    lines.join("\n")
}
