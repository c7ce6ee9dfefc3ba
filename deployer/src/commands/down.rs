//! `movies-stack down`: delete everything the stack owns, in reverse dependency order. Keeps the
//! DynamoDB table (and its items) unless `--delete-data`; never touches the account's API Gateway
//! CloudWatch role. Idempotent and resumable: what is already gone is skipped.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{DownArgs, Output};
use crate::config::Config;
use crate::error::{Error, Result, exit};
use crate::graph::Outcome;
use crate::package::Artifact;
use crate::resources::Observed;
use crate::ui::Reporter;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &DownArgs,
    output: Output,
    reporter: Arc<dyn Reporter>,
) -> Result<i32> {
    let interactive = std::io::stdin().is_terminal();
    if !args.yes && !interactive {
        return Err(Error::input(
            "down deletes the stack: pass --yes to confirm (stdin is not a terminal, so I cannot ask)",
        ));
    }
    let started = Instant::now();
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let mut ctx = super::connect(settings, config, reporter.clone(), true).await?;
    Arc::get_mut(&mut ctx).expect("ctx not shared yet").timeouts.eni_release =
        Duration::from_secs(args.eni_timeout * 60);

    // Lock before looking: what we observe must not change under us.
    let lock = crate::lock::acquire(ctx.clone(), "down", Duration::from_secs(args.lock_timeout)).await?;
    let (observed, live) = graph.observe_all(ctx.clone(), usize::from(args.concurrency)).await;
    if let Some((id, Err(e))) = observed.iter().find(|(_, r)| r.is_err()) {
        super::release_lock(&ctx, lock).await;
        return Err(Error::other(format!("cannot tell what exists ({id}): {e}")));
    }
    let present: Vec<&str> =
        observed.iter().filter(|(_, r)| matches!(r, Ok(Observed::Present { .. }))).map(|(id, _)| id.as_str()).collect();
    let mut keep: HashSet<String> = HashSet::from(["apigw-account".to_string()]);
    if !args.delete_data {
        keep.insert("table".to_string());
    }
    let to_delete: Vec<&str> = present.iter().copied().filter(|id| !keep.contains(*id)).collect();
    if to_delete.is_empty() {
        super::release_lock(&ctx, lock).await;
        reporter.finish();
        eprintln!("down: nothing to delete in stack {}", config.stack);
        print_result(output, config, &[], args.delete_data);
        return Ok(exit::OK);
    }
    if !args.yes {
        reporter.finish();
        eprintln!(
            "About to delete {} resources of stack {} in account {} ({}): {}.",
            to_delete.len(),
            config.stack,
            ctx.account_id,
            ctx.aws.region,
            to_delete.join(", ")
        );
        if args.delete_data {
            eprintln!("--delete-data: the table {} and ALL its items will be deleted.", config.table.name);
        } else {
            eprintln!("The table {} and its items are kept (--delete-data to delete them).", config.table.name);
        }
        eprint!("Type the stack name ({}) to confirm: ", config.stack);
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::other(format!("stdin: {e}")))?;
        if answer.trim() != config.stack {
            super::release_lock(&ctx, lock).await;
            eprintln!("down: cancelled, nothing was deleted");
            return Ok(exit::FAILURE);
        }
    }

    let report = graph.destroy(ctx.clone(), &live, &keep, usize::from(args.concurrency)).await;
    super::release_lock(&ctx, lock).await;
    reporter.finish();
    let (calls, mutating) = ctx.aws.calls.totals();
    let deleted: Vec<&str> = report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Deleted(true)))
        .map(|(id, _)| id.as_str())
        .collect();
    eprintln!(
        "down: {} deleted, {} kept; {calls} AWS calls ({mutating} mutating), {:.1}s",
        deleted.len(),
        report.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Kept)).count(),
        started.elapsed().as_secs_f32()
    );
    if report.interrupted {
        eprintln!("interrupted: run `movies-stack down` again to finish.");
        return Ok(exit::INTERRUPTED);
    }
    if let Some(first) = report.errors.first() {
        for e in &report.errors[1..] {
            eprintln!("error: {e}");
        }
        return Err(Error::other(format!("{first} (run `movies-stack down` again to retry what is left)")));
    }
    print_result(output, config, &deleted, args.delete_data);
    Ok(exit::OK)
}

fn print_result(output: Output, config: &Config, deleted: &[&str], delete_data: bool) {
    match output {
        Output::Json => {
            println!("{}", serde_json::json!({"stack": config.stack, "deleted": deleted, "table_kept": !delete_data}))
        }
        Output::Human => {
            if !delete_data {
                println!("Kept the table {} and its items (a later `up` adopts it).", config.table.name);
            }
        }
    }
}
