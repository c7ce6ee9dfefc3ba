//! `movies-stack up`: make the stack match the config. One sweep finds what exists (with the
//! lock and the CloudTrail check at the same time), then only what differs changes, in
//! dependency order, independent resources in parallel. A second run makes no mutating call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use crate::cli::{Output, UpArgs};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::events::{Event, Outcome, Phase};
use crate::graph::Report;
use crate::session::{CtrlC, LockRequest, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UpArgs,
    output: Output,
    verbose: u8,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    if !args.watch {
        return once(config, settings, args, output, verbose, printer).await;
    }
    // `--watch`: refused before any AWS call where it cannot do what it says.
    if args.artifact.is_some() {
        return Err(Error::input(
            "--watch --artifact: --watch rebuilds the handler on each save; a prebuilt zip cannot be rebuilt",
        ));
    }
    if config.deploy.strategy != crate::config::Strategy::AllAtOnce {
        return Err(Error::input(format!(
            "--watch: {}: key `deploy.strategy` is {}: up --watch deploys each save at once, only to an environment \
             whose strategy is all-at-once (a canary is not skipped)",
            config.path.display(),
            config.deploy.strategy.as_str()
        )));
    }
    let root = crate::package::repo_root().ok_or_else(|| {
        Error::input("--watch: cannot find the handler crate (handler/Cargo.toml) above the current directory")
    })?;
    // Watching from before the first build: a save during it is seen.
    let mut watcher = crate::watch::Watcher::start(&root)?;
    let first = once(config, settings, args, output, verbose, printer.clone()).await;
    if let Err(e) = &first {
        if e.is_interrupted() {
            return first;
        }
        printer.event(Event::Warning(format!("up --watch: {e}")));
    }
    let failed = {
        let printer = printer.clone();
        move |error: String| printer.event(Event::Warning(format!("up --watch: the watch failed: {error}")))
    };
    loop {
        printer.event(Event::Notice(format!(
            "up --watch: watching {} for changes (Ctrl-C to stop)",
            crate::watch::WATCHED.join(", ")
        )));
        let changed = tokio::select! {
            changed = watcher.next_change(&failed) => changed,
            _ = tokio::signal::ctrl_c() => return Ok(exit::OK),
        };
        let Some(changed) = changed else { return Ok(exit::OK) };
        let names: Vec<String> = changed.iter().map(|p| p.display().to_string()).collect();
        printer.event(Event::Notice(format!("up --watch: {} changed: deploying", names.join(", "))));
        match once(config, settings, args, output, verbose, printer.clone()).await {
            Ok(_) => {}
            Err(e) if e.is_interrupted() => return Err(e),
            // A failed build or deploy ends nothing: the next save tries again.
            Err(e) => printer.event(Event::Warning(format!("up --watch: {e}"))),
        }
    }
}

/// One `up`.
async fn once(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &UpArgs,
    output: Output,
    verbose: u8,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let started = Instant::now();
    if let Some(u) = &args.smoke_url {
        crate::smoke_check::check_url("--smoke-url", u)?;
    }
    // LiveStates first: a bad --artifact or a failed build costs no AWS call.
    let artifact = crate::package::artifact(config, args.artifact.as_deref(), &printer).await?;
    let build_time = started.elapsed();
    let digest = crate::stack::digest(config, &artifact);
    let graph = crate::stack::graph(config, Arc::new(artifact))?;

    let session = Session::open(settings, config, printer.clone(), CtrlC::Graceful, Timeouts::default()).await?;
    let ctx = session.ctx.clone();
    let lock = LockRequest {
        command: "up",
        wait: std::time::Duration::from_secs(args.lock_timeout),
        lease: std::time::Duration::from_secs(args.lock_lease),
        converges_to: Some(digest.clone()),
    };
    let (swept, trail, concurrency) = tokio::join!(
        session.sweep(&graph, Some(lock)),
        super::preflight::check_cloudtrail(&ctx, args.require_cloudtrail),
        super::preflight::account_concurrency(&ctx, config)
    );
    let (found, lock) = swept?;
    let mut lock = lock.expect("up takes the lock");
    // Before any change: what the account refuses is said now, naming the config key.
    let reserved_now =
        graph.present(&found).get(crate::resources::function::ID).ok().and_then(|f| f.reserved_concurrency);
    let preflight = trail.and_then(|()| match concurrency {
        Ok(Some(account)) => super::preflight::check_reserved_concurrency(config, &account, reserved_now),
        Ok(None) => Ok(()),
        // Advisory, like the CloudTrail check: without lambda:GetAccountSettings, Lambda's own
        // refusal (if any) still names the cause.
        Err(e) => {
            ctx.warn(format!(
                "could not check the account's Lambda concurrency for function.reserved_concurrency: {e}"
            ));
            Ok(())
        }
    });
    if let Err(e) = preflight {
        // Nothing was changed yet: the error is the preflight's.
        let _ = session.close(lock).await;
        return Err(e);
    }
    printer.event(Event::Phase(Phase::Applying));
    let report = graph.apply(ctx.clone(), &found, usize::from(args.concurrency)).await;
    if report.errors.is_empty() && !report.interrupted {
        lock.converged(digest);
    }
    let fenced = session.close(lock).await;

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
    ctx.info(format!(
        "up: {summary}; {}, {calls} AWS calls ({mutating} mutating) + {} for the stack lock, {:.1}s \
         ({:.1}s of it building/reading the function code)",
        graph.size_text(),
        ctx.aws.lock_calls.totals().0,
        started.elapsed().as_secs_f32(),
        build_time.as_secs_f32()
    ));
    if report.errors.is_empty() && is_hotswap(&report) {
        ctx.info(
            "up: hotswap: only the handler's code changed; deployed it as a new version of the function \
             (UpdateFunctionCode, PublishVersion, then the alias `live`), nothing else was touched",
        );
    }
    if let Some(state) = function_state(&report).filter(|s| s != "Active") {
        ctx.info(format!(
            "up: the function is {state} (Lambda is setting up its network interfaces, usually under a minute); it \
             serves requests once Active: `movies-stack status` shows it"
        ));
    }
    if report.interrupted {
        print_remaining(&ctx, &report);
        return Ok(exit::INTERRUPTED);
    }
    if let Some(fenced) = fenced {
        for e in &report.errors {
            ctx.warn(format!("error: {e}"));
        }
        return Err(fenced);
    }
    if let Some(first) = report.errors.first() {
        for e in &report.errors[1..] {
            ctx.warn(format!("error: {e}"));
        }
        return Err(Error::other(first.to_string()));
    }
    let outs = graph.outputs(&ctx, &report.state);
    // How the run went against what the graph allows (for `-v` and the benchmark).
    let bound = graph.bound();
    if verbose > 0 {
        let names: Vec<String> = bound.1.iter().map(|n| n.to_string()).collect();
        ctx.info(format!("up: the longest chain of create calls: {} ({})", bound.0, names.join(" -> ")));
        let steps: Vec<String> = report
            .critical_path
            .iter()
            .map(|s| format!("{} ({:.1}s-{:.1}s)", s.name, s.start.as_secs_f32(), s.end.as_secs_f32()))
            .collect();
        ctx.info(format!("up: critical path: {}", steps.join(" -> ")));
    }
    // `--smoke`: the deployed API, tested right away with the state just applied (the function
    // made ready first: a Pending function cannot serve).
    let smoke = if args.smoke {
        let target = crate::smoke_check::Target::from_outputs(
            config,
            &report.state,
            args.smoke_url.as_deref(),
            false,
            std::time::Duration::from_secs(30),
        )?;
        if let Some(function) = graph.node(crate::resources::function::ID.name())
            && let Some(live) = report.state.get_any(crate::resources::function::ID.name())
        {
            function.wait_ready(&ctx, live).await?;
        }
        ctx.info(format!("up: smoke test of {}", target.url));
        Some(crate::smoke_check::smoke(&ctx, &target).await?)
    } else {
        None
    };
    match output {
        Output::Json => {
            let mut json = serde_json::json!({
                "stack": config.stack,
                "outputs": outs,
                "changes": changes,
                "resources": report.outcomes.iter().map(|(id, o)| (id.to_string(), o.summary())).collect::<BTreeMap<_, _>>(),
                "calls": {"total": calls, "mutating": mutating},
            });
            let shape = graph.run_shape("create_rounds", &bound, &report.critical_path);
            json.as_object_mut().expect("a JSON object").extend(shape);
            if let Some(s) = &smoke {
                json["smoke"] = serde_json::to_value(s).expect("report serializes");
            }
            printer.out(&json.to_string());
        }
        Output::Human => {
            let mut text = crate::ui::outputs_text(&format!("Outputs of stack {}:", config.stack), &outs);
            if let Some(s) = &smoke {
                text.push_str("\n\n");
                text.push_str(&s.human());
            }
            printer.out(&text);
        }
    }
    Ok(smoke.map_or(exit::OK, |s| s.exit_code()))
}

/// The function's state at the end of the run, when it was created or changed.
fn function_state(report: &Report) -> Option<String> {
    let live = report.state.get(crate::resources::function::ID).ok()?;
    Some(live.state.clone())
}

/// Only the function's code changed, and the alias took the new version: the hot path of a
/// developer's loop.
fn is_hotswap(report: &Report) -> bool {
    use crate::resources::{function, function_alias};
    let changed: Vec<&(crate::resources::Name, Outcome)> =
        report.outcomes.iter().filter(|(_, o)| o.is_change()).collect();
    let code_only = |id: &crate::resources::Name, changes: &[crate::events::FieldChange]| {
        *id == function::ID.name() && changes.iter().all(|c| c.field == "code")
    };
    match changed.as_slice() {
        [(id, Outcome::Updated(changes))] => code_only(id, changes),
        // In the graph's order: the function, then its alias.
        [(f, Outcome::Updated(changes)), (alias, Outcome::Updated(_))] => {
            code_only(f, changes) && *alias == function_alias::ID.name()
        }
        _ => false,
    }
}

/// After Ctrl-C: what was done and what was not.
fn print_remaining(ctx: &crate::ctx::Ctx, report: &Report) {
    ctx.info("interrupted: calls in flight were finished, waits were abandoned, nothing new was started.");
    for (id, o) in &report.outcomes {
        let mark = match o {
            Outcome::Skipped(_) => "remaining",
            Outcome::Stopped(_) => "stopped",
            Outcome::Failed(_) => "failed",
            _ => "done",
        };
        ctx.info(format!("  {mark:<9} {id}: {}", o.summary()));
    }
    ctx.info("run `movies-stack up` again to finish.");
}
