//! `movies-stack down`: delete everything the stack owns. One sweep finds it (with the lock),
//! then it goes in reverse dependency order, every independent deletion at once. Keeps the
//! DynamoDB table (and its items) unless `--delete-data`; never touches the account's API
//! Gateway CloudWatch role. Idempotent and resumable: what is already gone is skipped.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::cli::{DownArgs, Output};
use crate::config::Config;
use crate::ctx::Timeouts;
use crate::error::{Error, Result, exit};
use crate::events::{Event, Outcome, Phase};
use crate::package::Artifact;
use crate::resources::{Name, account_role, table};
use crate::session::{CtrlC, LockRequest, Session};
use crate::ui::Printer;

pub async fn run(
    config: &Config,
    settings: &crate::aws::AwsSettings,
    args: &DownArgs,
    output: Output,
    printer: Arc<dyn Printer>,
) -> Result<i32> {
    let interactive = std::io::stdin().is_terminal();
    if !args.yes && !interactive {
        return Err(Error::input(
            "down deletes the stack: pass --yes to confirm (stdin is not a terminal, so I cannot ask)",
        ));
    }
    let started = Instant::now();
    let graph = crate::stack::graph(config, Arc::new(Artifact::unknown()))?;
    let timeouts = Timeouts { eni_release: Duration::from_secs(args.eni_timeout * 60), ..Timeouts::default() };
    let session = Session::open(settings, config, printer.clone(), CtrlC::Graceful, timeouts).await?;
    let ctx = session.ctx.clone();

    // Locked while we look: what we observe must not change under us.
    let lock = LockRequest {
        command: "down",
        wait: Duration::from_secs(args.lock_timeout),
        lease: Duration::from_secs(args.lock_lease),
        // What down wants differs from what any `up` converged to: a sweep right after another
        // run is always looked at again (something created at its end must not be left behind).
        converges_to: None,
    };
    let (found, lock) = session.sweep(&graph, Some(lock)).await?;
    let lock = lock.expect("down takes the lock");
    // `found` is in registry order, not `graph.names()`'s dependency order: each failure names
    // its resource itself.
    if let Some(Err(e)) = found.iter().find(|f| f.is_err()) {
        let _ = session.close(lock).await;
        return Err(Error::other(format!("cannot tell what exists: {e}")));
    }
    let names = graph.names();
    let mut keep = HashSet::from([account_role::ID.name()]);
    if !args.delete_data {
        keep.insert(table::ID.name());
    }
    let present = graph.present(&found);
    let doomed: HashSet<Name> =
        names.iter().filter(|(n, _)| present.contains(*n) && !keep.contains(n)).map(|(n, _)| *n).collect();
    let to_delete: Vec<String> = names.iter().filter(|(n, _)| doomed.contains(n)).map(|(n, _)| n.to_string()).collect();
    if to_delete.is_empty() {
        let _ = session.close(lock).await;
        ctx.info(format!("down: nothing to delete in stack {}", config.stack));
        print_result(&printer, output, config, &[], args.delete_data, serde_json::Map::new());
        return Ok(exit::OK);
    }
    if !args.yes {
        // Shown even with -q: what the answer deletes.
        printer.event(Event::Notice(format!(
            "About to delete {} resources of stack {} in account {} ({}): {}.\n{}",
            to_delete.len(),
            config.stack,
            ctx.account_id(),
            ctx.aws.region,
            to_delete.join(", "),
            if args.delete_data {
                format!("--delete-data: the table {} and ALL its items will be deleted.", config.table.name)
            } else {
                format!("The table {} and its items are kept (--delete-data to delete them).", config.table.name)
            }
        )));
        // The question itself is no event: it waits for the answer on the same line, on the
        // terminal (stdin is one here), whatever --output says.
        eprint!("Type the stack name ({}) to confirm: ", config.stack);
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer).map_err(|e| Error::other(format!("stdin: {e}")))?;
        if answer.trim() != config.stack {
            let _ = session.close(lock).await;
            printer.event(Event::Cancelled);
            return Ok(exit::FAILURE);
        }
    }

    printer.event(Event::Phase(Phase::Destroying));
    let report = graph.destroy(ctx.clone(), &found, &keep, usize::from(args.concurrency)).await;
    let fenced = session.close(lock).await;
    let (calls, mutating) = ctx.aws.calls.totals();
    let deleted: Vec<String> = report
        .outcomes
        .iter()
        .filter(|(_, o)| matches!(o, Outcome::Deleted(true)))
        .map(|(id, _)| id.to_string())
        .collect();
    ctx.info(format!(
        "down: {} deleted, {} kept; {calls} AWS calls ({mutating} mutating), {:.1}s",
        deleted.len(),
        report.outcomes.iter().filter(|(_, o)| matches!(o, Outcome::Kept)).count(),
        started.elapsed().as_secs_f32()
    ));
    if report.interrupted {
        ctx.info("interrupted: run `movies-stack down` again to finish.");
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
        return Err(Error::other(format!("{first} (run `movies-stack down` again to retry what is left)")));
    }
    // The bound of a `down`, mirroring `up`'s: the longest chain of delete calls that must
    // happen one after another.
    let bound = graph.teardown_bound(|name| doomed.contains(&name));
    let shape = graph.run_shape("delete_rounds", &bound, &report.critical_path);
    print_result(&printer, output, config, &deleted, args.delete_data, shape);
    Ok(exit::OK)
}

/// The result; in JSON with `shape` (how the run went against the graph, `Graph::run_shape`).
fn print_result(
    printer: &Arc<dyn Printer>,
    output: Output,
    config: &Config,
    deleted: &[String],
    delete_data: bool,
    shape: serde_json::Map<String, serde_json::Value>,
) {
    match output {
        Output::Json => {
            let mut json = serde_json::json!({"stack": config.stack, "deleted": deleted, "table_kept": !delete_data});
            json.as_object_mut().expect("a JSON object").extend(shape);
            printer.out(&json.to_string())
        }
        Output::Human => {
            if !delete_data {
                printer.out(&format!("Kept the table {} and its items (a later `up` adopts it).", config.table.name));
            }
        }
    }
}
