//! Concurrent runs and the stack lock (issue 5, part 3). Each concurrent process talks to moto
//! through its own proxy, so every call is attributed to the process that made it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::Running;
use e2e::inventory::{Inventory, Shape};
use e2e::proxy::LOCK_TABLE;
use e2e::{Account, Aws, Checks, Output, Rule};

const LATENCY: Duration = Duration::from_millis(40);

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The message of a run refused by the lock names who holds it, which process, which command
/// and since when.
fn check_names_holder(c: &mut Checks, label: &str, out: &Output, who: &str, pid: u32, command: &str) {
    let err = out.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default();
    for want in [who.to_string(), format!("pid {pid}"), format!("`{command}`"), "started ".into(), " UTC".into()] {
        c.check(err.contains(&want), format!("{label}: the error names {want:?}: {err:?}\n{out}"));
    }
}

async fn put_lock(aws: &Aws, stack: &str, host: &str, pid: u32, command: &str, started: u64, expires: u64) {
    aws.dynamodb
        .put_item()
        .table_name(LOCK_TABLE)
        .item("stack", AttributeValue::S(stack.into()))
        .item("run_id", AttributeValue::S(format!("{host}-{pid}-{started}-fake")))
        .item("who", AttributeValue::S(format!("alice@{host}")))
        .item("host", AttributeValue::S(host.into()))
        .item("pid", AttributeValue::N(pid.to_string()))
        .item("command", AttributeValue::S(command.into()))
        .item("started_at", AttributeValue::N(started.to_string()))
        .item("expires_at", AttributeValue::N(expires.to_string()))
        .send()
        .await
        .expect("PutItem (fake lock holder)");
}

/// Whether the stack's lock is held: an item whose lease has not been released (a released lock
/// keeps its item, with `expires_at` 0 and `released_at`, for the next holder).
async fn lock_item(aws: &Aws, stack: &str) -> bool {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(LOCK_TABLE)
        .key("stack", AttributeValue::S(stack.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem (lock)");
    out.item().is_some_and(|item| {
        !item.contains_key("released_at")
            && item.get("expires_at").and_then(|v| v.as_n().ok()) != Some(&"0".to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_ups_at_once_never_duplicate() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let (pa, pb) = (&account.proxy, &account.another_proxy());
    for p in [pa, pb] {
        p.add_rule(Rule::new().delay(LATENCY));
    }
    let mut c = Checks::new();

    // ------------------------------------------------ both at once, no waiting: one fails with 4
    let stack = account.stack("lock-race");
    let up = ["up", "--artifact", stack.artifact.as_str()];
    let (da, db) = (&stack.deployer, stack.via(pb));
    let (ra, rb) = (Running::spawn(da, &up), Running::spawn(&db, &up));
    let (pid_a, pid_b) = (ra.pid, rb.pid);
    let (oa, ob) = tokio::join!(ra.wait(), rb.wait());
    println!(
        "race: A (pid {pid_a}) exit {} in {:.1}s, {} mutating; B (pid {pid_b}) exit {} in {:.1}s, {} mutating",
        oa.code,
        oa.elapsed.as_secs_f64(),
        pa.mutating_calls().len(),
        ob.code,
        ob.elapsed.as_secs_f64(),
        pb.mutating_calls().len()
    );
    let mut codes = [oa.code, ob.code];
    codes.sort();
    c.eq("exit codes of the two runs", codes, [0, 4]);
    if let Some((winner, loser, loser_proxy)) = match (oa.code, ob.code) {
        (0, 4) => Some((pid_a, &ob, pb)),
        (4, 0) => Some((pid_b, &oa, pa)),
        _ => None,
    } {
        check_names_holder(&mut c, "race loser", loser, &format!("@{}", hostname()), winner, "up");
        let changed: Vec<String> = loser_proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
        c.check(changed.is_empty(), format!("the refused run changed nothing: {changed:?}"));
        println!("  refused with: {}", loser.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default());
    }
    let inv = Inventory::scan(&account.aws).await;
    inv.check_converged(&mut c, &Shape::of(&stack).await, "after the race");

    // ------------------------------------------------ the second waits (--lock-timeout 120), then no-op
    let stack = account.stack("lock-wait");
    let (da, db) = (&stack.deployer, stack.via(pb));
    pa.reset();
    pb.reset();
    let ra = Running::spawn(da, &up);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !pa.lock_calls().iter().any(|c| c.operation == "PutItem" && c.status == Some(200)) {
        assert!(Instant::now() < deadline && !ra.finished(), "A never took the lock:\n{}", ra.stderr_now());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let rb = Running::spawn(
        &db,
        &["--output", "json", "up", "--artifact", stack.artifact.as_str(), "--lock-timeout", "120"],
    );
    let pid_a = ra.pid;
    let (oa, ob) = tokio::join!(ra.wait(), rb.wait());
    let b_mutating: Vec<String> = pb.mutating_calls().iter().map(|c| c.to_string()).collect();
    println!(
        "wait: A exit {} in {:.1}s; B (--lock-timeout 120) exit {} in {:.1}s, {} mutating calls, {} lock calls",
        oa.code,
        oa.elapsed.as_secs_f64(),
        ob.code,
        ob.elapsed.as_secs_f64(),
        b_mutating.len(),
        pb.lock_calls().len()
    );
    c.eq("A exit code", oa.code, 0);
    c.eq("B exit code", ob.code, 0);
    let waiting = ob.stderr.lines().find(|l| l.contains("waiting for the lock held by")).unwrap_or_default();
    println!("  B said: {waiting}");
    c.check(waiting.contains(&format!("pid {pid_a}")), format!("B says it waits for A (pid {pid_a})\n{ob}"));
    c.check(b_mutating.is_empty(), format!("B, after waiting, changed nothing: {b_mutating:?}"));
    if ob.code == 0 {
        c.eq("B reports changes", ob.json()["changes"].as_u64(), Some(0));
    }
    let inv = Inventory::scan(&account.aws).await;
    inv.check_converged(&mut c, &Shape::of(&stack).await, "after waiting");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("3 concurrent ups");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_commands_take_no_lock_and_foreign_locks_need_force() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let stack = account.stack("lock-ro");
    let (aws, proxy, n, d, artifact) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    d.run(&["up", "--artifact", artifact]).await.assert_ok();

    // ------------------------------------------------ read-only commands: no lock calls at all
    for args in [
        vec!["status"],
        vec!["--output", "json", "status"],
        vec!["plan", "--artifact", artifact],
        vec!["--output", "json", "plan", "--artifact", artifact],
        vec!["keys"],
        vec!["--output", "json", "keys", "--tier", "premium"],
    ] {
        proxy.reset();
        let out = d.run(&args).await;
        let locks: Vec<String> = proxy.lock_calls().iter().map(|c| c.to_string()).collect();
        let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
        println!("{args:?}: exit {}, {} calls, lock calls {locks:?}", out.code, proxy.calls().len());
        c.check(out.code == 0, format!("{args:?} succeeds\n{out}"));
        c.check(locks.is_empty(), format!("{args:?} makes no lock call: {locks:?}"));
        c.check(mutating.is_empty(), format!("{args:?} changes nothing: {mutating:?}"));
    }

    // ------------------------------------------------ a holder on another machine
    let started = now() - 30;
    put_lock(aws, &n.stack, "build-agent-7", 4242, "down", started, now() + 3600).await;
    for args in [vec!["up", "--artifact", artifact], vec!["down", "--yes"]] {
        proxy.reset();
        let out = d.run(&args).await;
        println!("{args:?} while locked: exit {}: {}", out.code, out.stderr.lines().last().unwrap_or_default());
        c.eq(&format!("{args:?} while locked: exit code"), out.code, 4);
        check_names_holder(&mut c, &format!("{args:?}"), &out, "alice@build-agent-7", 4242, "down");
        let changed: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
        c.check(changed.is_empty(), format!("{args:?} while locked changed nothing: {changed:?}"));
    }
    let out = d.run(&["unlock"]).await;
    println!("unlock without --force: exit {}: {}", out.code, out.stderr.trim());
    c.check(out.code != 0, format!("unlock without --force fails\n{out}"));
    c.check(
        out.stderr.contains("alice@build-agent-7") && out.stderr.contains("pid 4242") && out.stderr.contains("--force"),
        format!("unlock without --force names the holder and --force\n{out}"),
    );
    c.check(lock_item(aws, &n.stack).await, "the lock is still there after unlock without --force");
    let out = d.run(&["unlock", "--force"]).await;
    println!("unlock --force: exit {}: {}", out.code, out.stderr.lines().last().unwrap_or_default());
    c.eq("unlock --force: exit code", out.code, 0);
    c.check(
        out.stderr.contains("removed the lock") && out.stderr.contains("alice@build-agent-7"),
        format!("unlock --force says whose lock it removed\n{out}"),
    );
    c.check(!lock_item(aws, &n.stack).await, "the lock item is gone after unlock --force (read through the SDK)");
    let out = d.run(&["unlock", "--force"]).await;
    c.check(out.code == 0 && out.stderr.contains("was not locked"), format!("unlock --force again: not locked\n{out}"));
    proxy.reset();
    let out = d.run(&["up", "--artifact", artifact]).await;
    c.check(out.code == 0 && proxy.mutating_calls().is_empty(), format!("up after unlock --force: a no-op\n{out}"));

    // ------------------------------------------------ an expired lease from another machine is taken
    put_lock(aws, &n.stack, "build-agent-7", 4242, "up", now() - 600, now() - 60).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up over an expired lease: exit {}", out.code);
    c.eq("up over an expired foreign lease: exit code", out.code, 0);

    // ------------------------------------------------ this machine: a live holder blocks, a dead one is taken over
    let host = hostname();
    put_lock(aws, &n.stack, &host, std::process::id(), "up", now(), now() + 3600).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up while a live local process holds the lock: exit {}", out.code);
    c.eq("live local holder: exit code", out.code, 4);
    check_names_holder(&mut c, "live local holder", &out, &format!("@{host}"), std::process::id(), "up");
    let mut gone = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("wait true");
    put_lock(aws, &n.stack, &host, dead_pid, "up", now(), now() + 3600).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up while a dead local process (pid {dead_pid}) holds the lock: exit {}", out.code);
    c.eq("dead local holder: exit code", out.code, 0);
    c.check(
        out.stderr.contains("took over the lock of a run that is no longer running"),
        format!("the dead local holder's lock is taken over, and said so\n{out}"),
    );
    c.check(!lock_item(aws, &n.stack).await, "the lock is released after that run");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("3 lock: read-only commands, foreign and stale holders, unlock");
}
