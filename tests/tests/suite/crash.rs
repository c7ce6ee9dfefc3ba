//! Crash safety (issue 5, part 2): `up` and `down` killed with SIGKILL at random moments, then
//! one more run converges without waiting for the dead run's lock, and the cloud holds exactly
//! one of everything (or, after `down`, nothing but the kept table). And Ctrl-C: exit 130, a
//! truthful account of what was done and what remains, nothing new started after the signal,
//! and the next `up` finishes exactly the remaining part.
//!
//! Kill delays are stratified over the measured duration of a cold `up` (resp. `down`) of a
//! warm server, so early, middle and late moments are all hit; the seed is printed
//! (`MOVIES_STACK_SEED` replays it). Kills are cumulative on each stack: kill, kill, kill, ...,
//! then converge. One stack whose `down` was killed is brought back with `up` before its final
//! `down` (a user changing their mind half-way through a teardown).

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::{Rng, Running, pid_alive, seed};
use e2e::inventory::{Inventory, Shape};
use e2e::proxy::LOCK_TABLE;
use e2e::{Account, Aws, Checks, Deployer, Output, Proxy, Rule, Stack};

/// Kill points for `up` and for `down`, and at most this many kills in a row on one stack
/// before it is converged and checked (a run that beats its kill converges the stack too).
const UP_KILLS: usize = 8;
const DOWN_KILLS: usize = 6;
const MAX_KILLS_PER_STACK: usize = 3;
/// Latency on every call during the kill test: it stretches a cold `up` from ~1.5 s to a few
/// seconds, so the kill moments spread over more distinct states.
const LATENCY: Duration = Duration::from_millis(30);

/// The lock item of `stack` as (host, pid, command), if any.
async fn lock_holder(aws: &Aws, stack: &str) -> Option<(String, u32, String)> {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(LOCK_TABLE)
        .key("stack", AttributeValue::S(stack.to_string()))
        .consistent_read(true)
        .send()
        .await
        .ok()?;
    let item = out.item()?;
    // A released lock keeps its item, with its lease ended (`expires_at` 0, `released_at`).
    let expires: u64 = item.get("expires_at").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
    if expires == 0 || item.contains_key("released_at") {
        return None;
    }
    let s = |k: &str| item.get(k).and_then(|v| v.as_s().ok()).cloned().unwrap_or_default();
    let pid = item.get("pid").and_then(|v| v.as_n().ok()).and_then(|n| n.parse().ok()).unwrap_or(0);
    Some((s("host"), pid, s("command")))
}

/// What one kill attempt did.
#[derive(Debug)]
struct Kill {
    delay: Duration,
    /// The process was still running when the signal was sent.
    landed: bool,
    code: i32,
    calls: usize,
    mutating: usize,
    /// Calls the proxy never answered because the client died waiting.
    cut: usize,
}

/// Run `args`, SIGKILL it after `delay` (unless it finished first), and reap it.
async fn kill_after(deployer: &Deployer, proxy: &Proxy, args: &[&str], delay: Duration) -> (Kill, Output) {
    proxy.reset();
    let run = Running::spawn(deployer, args);
    let mut landed = true;
    while run.started.elapsed() < delay {
        if run.finished() {
            landed = false;
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out = run.kill().await;
    // Let the proxy see the dropped connections.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let calls = proxy.calls();
    let kill = Kill {
        delay,
        landed: landed && out.code == -1,
        code: out.code,
        calls: calls.len(),
        mutating: proxy.mutating_calls().len(),
        cut: calls.iter().filter(|c| c.status.is_none()).count(),
    };
    (kill, out)
}

/// `n` delays, one uniform in each of `n` equal slices of [min, max), shuffled.
fn stratified(rng: &mut Rng, n: usize, min: Duration, max: Duration) -> Vec<Duration> {
    let span = max.saturating_sub(min);
    let mut v: Vec<Duration> = (0..n)
        .map(|i| {
            let lo = min + span.mul_f64(i as f64 / n as f64);
            let hi = min + span.mul_f64((i + 1) as f64 / n as f64);
            rng.between(lo, hi)
        })
        .collect();
    for i in (1..v.len()).rev() {
        let j = rng.below(i + 1);
        v.swap(i, j);
    }
    v
}

fn print_kill(label: &str, i: usize, k: &Kill) {
    println!(
        "  {label} kill #{i}: at {:.2}s {}; {} calls ({} mutating), {} cut in flight",
        k.delay.as_secs_f64(),
        if k.landed { "landed mid-run".to_string() } else { format!("too late: it had exited with {}", k.code) },
        k.calls,
        k.mutating,
        k.cut
    );
}

/// The run after the kills: the dead holder's lock (if it held one) is taken over at once
/// (`--lock-timeout` stays 0), and the run succeeds.
async fn converge(c: &mut Checks, aws: &Aws, d: &Deployer, args: &[&str], stack: &str, label: &str) -> Output {
    let holder = lock_holder(aws, stack).await;
    if let Some((_, pid, _)) = &holder {
        c.check(!pid_alive(*pid), format!("{label}: the lock holder pid {pid} is dead"));
    }
    let out = d.run(args).await;
    let took_over = out.stderr.contains("took over the lock of a run that is no longer running");
    println!(
        "  {label}: exit {} in {:.1}s; dead run's lock: {}",
        out.code,
        out.elapsed.as_secs_f64(),
        match (&holder, took_over) {
            (Some((_, pid, cmd)), true) => format!("held by pid {pid} (`{cmd}`), taken over"),
            (Some((_, pid, cmd)), false) => format!("held by pid {pid} (`{cmd}`), NOT taken over"),
            (None, _) => "none left".to_string(),
        }
    );
    c.check(out.code == 0, format!("{label}: converges (exit 0)\n{out}"));
    if holder.is_some() {
        c.check(took_over, format!("{label}: says it took over the dead run's lock\n{}", out.stderr));
    }
    out
}

/// A stack of the kill test and how often it was killed since it last converged.
struct Victim {
    stack: Stack,
    kills: usize,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_then_converge() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let mut rng = Rng::new(seed("2 SIGKILL"));
    let mut c = Checks::new();
    let new_stack = |prefix: &str| Victim { stack: account.stack(prefix), kills: 0 };
    let warm = new_stack("crash-warm");
    let artifact = warm.stack.artifact.clone();
    let up_args = ["up", "--artifact", artifact.as_str()];
    let down_args = ["down", "--yes"];

    // ---------------------------------------------------------------- measure a cold up
    // The first up warms moto (it imports each service on first use); the second is measured.
    proxy.add_rule(Rule::new().delay(LATENCY));
    warm.stack.deployer.run(&up_args).await.assert_ok();
    let measured = new_stack("crash-m");
    proxy.reset();
    let cold = measured.stack.deployer.run(&up_args).await;
    cold.assert_ok();
    let d_up = cold.elapsed;
    println!(
        "cold up measured: {:.2}s, {} calls, latency {LATENCY:?} per call",
        d_up.as_secs_f64(),
        proxy.calls().len()
    );

    // ---------------------------------------------------------------- kill `up`
    // Each delay is used once, on the current stack; after MAX_KILLS_PER_STACK landed kills, or
    // a run that finished before its kill, the stack is converged, checked, and replaced.
    let delays = stratified(&mut rng, UP_KILLS, Duration::from_millis(200), d_up);
    let mut up_kills = Vec::new();
    let mut converged: Vec<Victim> = vec![warm, measured];
    let mut stacks_killed = 0;
    let mut v: Option<Victim> = None;
    for (i, delay) in delays.into_iter().enumerate() {
        let cur = v.get_or_insert_with(|| {
            stacks_killed += 1;
            let s = new_stack(&format!("crash-{stacks_killed}"));
            println!("stack {}:", s.stack.names.stack);
            s
        });
        let (k, out) = kill_after(&cur.stack.deployer, proxy, &up_args, delay).await;
        print_kill("up", i + 1, &k);
        c.check(k.landed || k.code == 0, format!("a run that beat the kill succeeded\n{out}"));
        cur.kills += usize::from(k.landed);
        let done = !k.landed || cur.kills >= MAX_KILLS_PER_STACK || i + 1 == UP_KILLS;
        up_kills.push(k);
        if done {
            let s = v.take().expect("current stack");
            finish_up(&mut c, &account, &s, &up_args).await;
            converged.push(s);
        }
    }

    // ---------------------------------------------------------------- measure a down
    let victim = converged.remove(1);
    proxy.reset();
    let down = victim.stack.deployer.run(&down_args).await;
    c.check(down.code == 0, format!("measured down succeeds\n{down}"));
    let d_down = down.elapsed;
    println!("down measured: {:.2}s, {} calls", d_down.as_secs_f64(), proxy.calls().len());
    let inv = Inventory::scan(aws).await;
    inv.check_gone(&mut c, &victim.stack.names, &format!("{} after down", victim.stack.names.stack));

    // ---------------------------------------------------------------- kill `down`
    let delays = stratified(&mut rng, DOWN_KILLS, Duration::from_millis(200), d_down);
    let mut down_kills = Vec::new();
    let mut up_after_down = true;
    let mut v: Option<Victim> = None;
    for (i, delay) in delays.into_iter().enumerate() {
        let cur = v.get_or_insert_with(|| {
            let mut s = converged.pop().expect("a converged stack left to take down");
            s.kills = 0;
            println!("stack {} (down):", s.stack.names.stack);
            s
        });
        let (k, out) = kill_after(&cur.stack.deployer, proxy, &down_args, delay).await;
        print_kill("down", i + 1, &k);
        c.check(k.landed || k.code == 0, format!("a down that beat the kill succeeded\n{out}"));
        cur.kills += usize::from(k.landed);
        let done = !k.landed || cur.kills >= MAX_KILLS_PER_STACK || i + 1 == DOWN_KILLS;
        down_kills.push(k);
        if done {
            let s = v.take().expect("current stack");
            // The first stack changes its mind: after its downs were killed, `up` must bring
            // every resource back (exactly one of each) before the final down.
            if std::mem::take(&mut up_after_down) {
                println!("  up after the killed downs:");
                finish_up(&mut c, &account, &s, &up_args).await;
            }
            finish_down(&mut c, &account, &s, &down_args).await;
        }
    }
    // The stacks no kill reached are taken down plainly (and checked the same way).
    for s in converged {
        finish_down(&mut c, &account, &s, &down_args).await;
    }

    let landed = |ks: &[Kill]| ks.iter().filter(|k| k.landed).count();
    let cut = |ks: &[Kill]| ks.iter().filter(|k| k.cut > 0).count();
    let mutating = |ks: &[Kill]| ks.iter().filter(|k| k.landed && k.mutating > 0).count();
    println!(
        "figures: up kills tried {}, landed mid-run {} ({} after a mutating call), with a call cut in flight {}, \
         stacks killed {stacks_killed}; down kills tried {}, landed {} ({} after a mutating call), cut {}; \
         every killed stack converged: {}",
        up_kills.len(),
        landed(&up_kills),
        mutating(&up_kills),
        cut(&up_kills),
        down_kills.len(),
        landed(&down_kills),
        mutating(&down_kills),
        cut(&down_kills),
        c.failed().is_empty()
    );
    // A cumulative run has less left to do than the measured cold one, so some kills come
    // after it finished; those still count as checks (the run must have succeeded).
    c.check(landed(&up_kills) * 2 >= up_kills.len(), "at least half of the up kills landed mid-run");
    c.check(landed(&down_kills) * 2 >= down_kills.len(), "at least half of the down kills landed mid-run");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("2 SIGKILL crash safety");
}

/// After kills of `up`: converge (taking the dead run's lock over), then a no-op, then exactly
/// one of everything.
async fn finish_up(c: &mut Checks, account: &Account, v: &Victim, args: &[&str]) {
    let (aws, proxy) = (&account.aws, &account.proxy);
    converge(c, aws, &v.stack.deployer, args, &v.stack.names.stack, "converging up").await;
    proxy.reset();
    let again = v.stack.deployer.run(args).await;
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    println!("  next up: exit {}, {} mutating calls", again.code, mutating.len());
    c.check(again.code == 0 && mutating.is_empty(), format!("next up is a no-op: {mutating:?}\n{again}"));
    let inv = Inventory::scan(aws).await;
    inv.check_converged(c, &Shape::of(&v.stack).await, &format!("{} after kills + up", v.stack.names.stack));
}

/// After kills of `down`: converge, a second down deletes nothing, nothing tagged is left but
/// the table, and the lock is gone.
async fn finish_down(c: &mut Checks, account: &Account, v: &Victim, args: &[&str]) {
    let (aws, proxy) = (&account.aws, &account.proxy);
    converge(c, aws, &v.stack.deployer, args, &v.stack.names.stack, "converging down").await;
    proxy.reset();
    let again = v.stack.deployer.run(args).await;
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    c.check(
        again.code == 0 && mutating.is_empty() && again.stderr.contains("nothing to delete"),
        format!("a second down deletes nothing: {mutating:?}\n{again}"),
    );
    let inv = Inventory::scan(aws).await;
    inv.check_gone(c, &v.stack.names, &format!("{} after kills + down", v.stack.names.stack));
    c.eq(&format!("{}: lock released", v.stack.names.stack), lock_holder(aws, &v.stack.names.stack).await, None);
}

/// `[  12.3s] id: text` lines of the plain reporter (`-v`): (id, text).
fn progress_lines(stderr: &str) -> Vec<(usize, String, String)> {
    stderr
        .lines()
        .enumerate()
        .filter_map(|(i, l)| {
            let rest = l.trim_start().strip_prefix('[')?.split_once("s] ")?.1;
            let (id, text) = rest.split_once(": ")?;
            (!id.contains(' ')).then(|| (i, id.to_string(), text.to_string()))
        })
        .collect()
}

fn is_start(text: &str) -> bool {
    text.starts_with("creating") || text.starts_with("updating")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_finishes_calls_in_flight_and_the_next_up_the_rest() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let stack = account.stack("sigint");
    let (aws, proxy, names, d, artifact) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    // Latency so that several resources are in flight when the signal comes.
    proxy.add_rule(Rule::new().delay(Duration::from_millis(60)));

    let run = Running::spawn(d, &["-v", "up", "--artifact", artifact]);
    // Send it once the stack's resources are being created (the handler is installed by then).
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.mutating_calls().len() < 12 && !run.finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at_signal = proxy.calls().len();
    let elapsed_at_signal = run.started.elapsed();
    run.signal("INT");
    let out = run.wait().await;
    let calls = proxy.calls();
    println!(
        "SIGINT at {:.2}s after {at_signal} calls ({} mutating by then); exit {} after {:.2}s; {} calls after the signal",
        elapsed_at_signal.as_secs_f64(),
        calls[..at_signal].iter().filter(|c| c.mutating && !c.is_lock()).count(),
        out.code,
        out.elapsed.as_secs_f64(),
        calls.len() - at_signal
    );
    c.eq("exit code after Ctrl-C", out.code, 130);
    for want in [
        "stopping: finishing the calls in flight",
        "interrupted: calls in flight were finished, waits were abandoned, nothing new was started",
        "run `movies-stack up` again to finish",
    ] {
        c.check(out.stderr.contains(want), format!("stderr says {want:?}\n{}", out.stderr));
    }
    let after: Vec<String> =
        e2e::proxy::count_by_name(&calls[at_signal..]).into_iter().map(|(name, n)| format!("{n}x {name}")).collect();
    println!("  calls after the signal (the in-flight resources finishing): {after:?}");
    let unanswered: Vec<String> = calls.iter().filter(|c| c.status.is_none()).map(|c| c.to_string()).collect();
    c.check(unanswered.is_empty(), format!("every call was answered (none cut): {unanswered:?}"));

    // Nothing new started after the signal: every resource with a start line after the
    // "stopping" line had one before it.
    let stop_line = out.stderr.lines().position(|l| l.contains("stopping: finishing the calls in flight"));
    let lines = progress_lines(&out.stderr);
    let stop = stop_line.unwrap_or(usize::MAX);
    let before: BTreeSet<&str> =
        lines.iter().filter(|(i, _, t)| *i < stop && is_start(t)).map(|(_, id, _)| id.as_str()).collect();
    let after: BTreeSet<&str> =
        lines.iter().filter(|(i, _, t)| *i > stop && is_start(t)).map(|(_, id, _)| id.as_str()).collect();
    let new: Vec<&&str> = after.difference(&before).collect();
    println!("  in flight at the signal: {before:?}; started after it: {new:?}");
    c.check(new.is_empty(), format!("no resource started after the signal: {new:?}"));

    // The account: "  done      id: ..." / "  remaining id: ...".
    let mut account: BTreeMap<String, String> = BTreeMap::new();
    for l in out.stderr.lines() {
        // Progress lines carry a timestamp: `[   1.2s]   done      id: ...`.
        let l = l.trim_start();
        let l = l.strip_prefix('[').and_then(|r| r.split_once("s] ")).map(|(_, r)| r).unwrap_or(l).trim_start();
        for mark in ["done", "remaining", "stopped", "failed"] {
            if let Some(rest) = l.strip_prefix(mark).filter(|r| r.starts_with(' '))
                && let Some((id, _)) = rest.trim_start().split_once(':')
            {
                account.insert(id.to_string(), mark.to_string());
            }
        }
    }
    let done: BTreeSet<&str> = account.iter().filter(|(_, m)| *m == "done").map(|(id, _)| id.as_str()).collect();
    let remaining: BTreeSet<&str> =
        account.iter().filter(|(_, m)| *m == "remaining").map(|(id, _)| id.as_str()).collect();
    // Started, then stopped in a wait (a table not yet ACTIVE, a role not yet usable): the next
    // up finishes them too.
    let stopped: BTreeSet<&str> = account.iter().filter(|(_, m)| *m == "stopped").map(|(id, _)| id.as_str()).collect();
    println!(
        "  account: {} done, {} remaining, {} stopped: remaining {remaining:?}, stopped {stopped:?}",
        done.len(),
        remaining.len(),
        stopped.len()
    );
    let stopped_unstarted: Vec<&&str> = stopped.iter().filter(|id| !before.contains(**id)).collect();
    c.check(stopped_unstarted.is_empty(), format!("resources reported stopped had started: {stopped_unstarted:?}"));
    // Every resource of the registry, the ones the config turns off included.
    let ids: BTreeSet<&str> = account.keys().map(|id| id.as_str()).collect();
    c.eq("resources accounted for", ids, Shape::of(&stack).await.ids.iter().map(String::as_str).collect());
    c.check(!done.is_empty() && !remaining.is_empty(), "the signal came mid-run (some done, some remaining)");
    let started_but_remaining: Vec<&&str> = remaining.iter().filter(|id| before.contains(**id)).collect();
    c.check(
        started_but_remaining.is_empty(),
        format!("resources reported remaining never started: {started_but_remaining:?}"),
    );
    c.eq("lock released after Ctrl-C", lock_holder(aws, &names.stack).await, None);

    // The next up does exactly the rest.
    proxy.clear_rules();
    proxy.reset();
    let next = d.run(&["--output", "json", "up", "--artifact", artifact]).await;
    c.check(next.code == 0, format!("the next up finishes the job\n{next}"));
    if next.code == 0 {
        let json = next.json();
        let created: BTreeSet<&str> = json["resources"]
            .as_object()
            .map(|m| m.iter().filter(|(_, v)| v.as_str() != Some("no changes")).map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        println!("  next up changed: {created:?}");
        let unfinished: BTreeSet<&str> = remaining.union(&stopped).copied().collect();
        c.eq("what the next up changed = what was reported remaining or stopped", created, unfinished);
    }
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "after Ctrl-C + up");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("2 SIGINT");
}

/// Ctrl-C while a resource sits in a named wait (here: IAM propagation before CreateFunction,
/// a wait of up to 5 minutes): "nothing new was started" must hold for retries too, so no
/// CreateFunction attempt may follow the signal and the run stops promptly with 130.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_wait_starts_no_new_call() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let stack = account.stack("sigint-wait");
    let (proxy, d, artifact) = (&account.proxy, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    // Lambda does not see the role for the first three attempts (the deployer retries after 2, 4,
    // 8 s...): counted in attempts, not seconds, so that a slow machine still meets the wait.
    proxy.add_rule(
        Rule::new()
            .service("lambda")
            .operation("CreateFunction")
            .fail(
                400,
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
            )
            .times(3),
    );
    let run = Running::spawn(d, &["up", "--artifact", artifact]);
    let deadline = Instant::now() + Duration::from_secs(120);
    while proxy.rule_hits()[0] == 0 && !run.finished() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let at = proxy.calls().len();
    let signalled = Instant::now();
    run.signal("INT");
    let out = run.wait().await;
    let to_exit = signalled.elapsed();
    let after: Vec<String> = proxy.calls()[at..].iter().filter(|c| !c.is_lock()).map(|c| c.to_string()).collect();
    println!(
        "SIGINT during the IAM wait: exit {} {:.1}s after the signal; stack calls after it: {after:?}",
        out.code,
        to_exit.as_secs_f64()
    );
    c.eq("exit code", out.code, 130);
    c.check(after.is_empty(), format!("no AWS call after the signal (a retry is a new call): {after:?}\n{out}"));
    c.check(to_exit < Duration::from_secs(5), format!("stopped promptly after Ctrl-C: {to_exit:?}"));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("2 SIGINT during a wait");
}
