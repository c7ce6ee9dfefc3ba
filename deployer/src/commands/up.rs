//! `movies-stack up`: make the stack match the config. Observes everything, changes only what
//! differs, in dependency order, independent resources in parallel. A second run makes no
//! mutating call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{Output, UpArgs};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::graph::{Outcome, Report};
use crate::resources::Inputs;
use crate::ui::Reporter;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UpArgs,
    output: Output,
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    let started = Instant::now();
    if let Some(u) = &args.smoke_url
        && !crate::config::valid_url(u)
    {
        return Err(Error::input(format!("--smoke-url {u:?}: expected an http:// or https:// URL")));
    }
    // Inputs first: a bad --artifact or a failed build costs no AWS call.
    let artifact = super::artifact(config, args.artifact.as_deref(), &reporter).await?;
    let build_time = started.elapsed();
    let graph = crate::stack::graph(config, Arc::new(artifact))?;

    let ctx = super::connect(settings, config, reporter.clone(), true).await?;
    super::preflight::check_cloudtrail(&ctx, args.require_cloudtrail).await?;

    let lock = crate::lock::acquire(ctx.clone(), "up", std::time::Duration::from_secs(args.lock_timeout)).await?;
    let report = graph.apply(ctx.clone(), usize::from(args.concurrency)).await;
    super::release_lock(&ctx, lock).await;
    reporter.finish();

    let (calls, mutating) = ctx.aws.calls.totals();
    let changes = report.changes();
    let summary = if report.interrupted {
        "interrupted".to_string()
    } else if !report.errors.is_empty() {
        format!("failed ({} error(s))", report.errors.len())
    } else if changes == 0 {
        "no changes".to_string()
    } else {
        format!("{changes} resource(s) changed")
    };
    eprintln!(
        "up: {summary}; {} resources, {calls} AWS calls ({mutating} mutating) + {} for the stack lock, {:.1}s \
         ({:.1}s of it building/reading the function code)",
        report.outcomes.len(),
        ctx.aws.lock_calls.totals().0,
        started.elapsed().as_secs_f32(),
        build_time.as_secs_f32()
    );
    if is_hotswap(&report) {
        eprintln!(
            "up: hotswap: only the handler's code changed; deployed it with one UpdateFunctionCode, nothing else was touched"
        );
    }
    if report.interrupted {
        print_remaining(&report);
        return Ok(exit::INTERRUPTED);
    }
    if let Some(first) = report.errors.first() {
        for e in &report.errors[1..] {
            eprintln!("error: {e}");
        }
        return Err(Error::other(first.to_string()));
    }
    let outs = stack_outputs(config, &report.outputs);
    // `--smoke`: the deployed API, tested right away with the outputs just applied.
    let smoke = if args.smoke {
        let target = super::smoke::Target::from_outputs(
            config,
            &report.outputs,
            args.smoke_url.as_deref(),
            false,
            std::time::Duration::from_secs(30),
        )?;
        reporter.event(crate::ui::Event::Info(format!("up: smoke test of {}", target.url)));
        Some(super::smoke::smoke(&ctx, &target).await?)
    } else {
        None
    };
    match output {
        Output::Json => {
            let mut json = serde_json::json!({
                "stack": config.stack,
                "outputs": outs,
                "changes": changes,
                "resources": report.outcomes.iter().map(|(id, o)| (id.clone(), o.summary())).collect::<BTreeMap<_, _>>(),
                "calls": {"total": calls, "mutating": mutating},
            });
            if let Some(s) = &smoke {
                json["smoke"] = serde_json::to_value(s).expect("report serializes");
            }
            println!("{json}");
        }
        Output::Human => {
            println!("Outputs of stack {}:", config.stack);
            for (k, v) in &outs {
                println!("  {k:<18} {v}");
            }
            if let Some(s) = &smoke {
                println!();
                s.print_human();
            }
        }
    }
    Ok(smoke.map_or(exit::OK, |s| s.exit_code()))
}

/// The stack's outputs (never an API key value).
pub fn stack_outputs(config: &Config, outputs: &Inputs) -> BTreeMap<&'static str, String> {
    let get = |res: &str, key: &str| outputs.try_get(res, key).unwrap_or_default().to_string();
    BTreeMap::from([
        ("ApiUrl", get("stage", "url")),
        ("StandardApiKeyId", get("api-key-standard", "id")),
        ("PremiumApiKeyId", get("api-key-premium", "id")),
        ("TableName", config.table.name.clone()),
        ("FunctionName", config.function.name.clone()),
        ("RestApiId", get("api", "id")),
        ("VpcId", get("vpc", "id")),
    ])
}

/// Only the function's code changed: the hot path of a developer's loop.
fn is_hotswap(report: &Report) -> bool {
    let changed: Vec<&(String, Outcome)> = report.outcomes.iter().filter(|(_, o)| o.is_change()).collect();
    matches!(changed.as_slice(), [(id, Outcome::Updated(changes))]
        if id == crate::resources::function::ID && changes.iter().all(|c| c.field == "code"))
}

/// After Ctrl-C: what was done and what was not.
fn print_remaining(report: &Report) {
    eprintln!("interrupted: calls in flight were finished, waits were abandoned, nothing new was started.");
    for (id, o) in &report.outcomes {
        let mark = match o {
            Outcome::Skipped(_) => "remaining",
            Outcome::Failed(_) => "failed",
            _ => "done",
        };
        eprintln!("  {mark:<9} {id}: {}", o.summary());
    }
    eprintln!("run `movies-stack up` again to finish.");
}

/// Turns true on the first Ctrl-C (SIGINT) or SIGTERM.
pub fn interrupt_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {},
            _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending::<()>().await } } => {},
        }
        eprintln!("\nstopping: finishing the calls in flight (Ctrl-C again to abort at once)...");
        let _ = tx.send(true);
        // A second Ctrl-C aborts immediately.
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(exit::INTERRUPTED);
        }
    });
    rx
}
