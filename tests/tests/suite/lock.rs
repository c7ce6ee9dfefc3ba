//! Concurrent runs and the stack lock (issue 5, part 3). Each concurrent process talks to moto
//! through its own proxy, so every call is attributed to the process that made it.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use e2e::chaos::Running;
use e2e::inventory::{Inventory, Shape};
use e2e::proxy::LOCK_TABLE;
use e2e::{Account, Aws, Checks, Output, Rule};

/// libfaketime (Debian's `faketime`, which scripts/setup.sh installs): a process whose wall clock
/// runs ahead of this machine's.
fn libfaketime() -> String {
    let found = std::fs::read_dir("/usr/lib")
        .into_iter()
        .flatten()
        .flatten()
        .map(|d| d.path().join("faketime/libfaketime.so.1"))
        .find(|p| p.exists());
    found
        .unwrap_or_else(|| {
            panic!("libfaketime not found under /usr/lib/*/faketime: run scripts/setup.sh (apt-get install faketime)")
        })
        .display()
        .to_string()
}

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

#[derive(Clone)]
/// A lock holder the test makes up: on another machine (`identity` None, as an older version
/// or a machine without `/proc` writes it), or a process of this one (its boot, PID namespace
/// and start time).
struct FakeHolder<'a> {
    host: &'a str,
    pid: u32,
    command: &'a str,
    started: u64,
    lease: Duration,
    identity: Option<(String, String, u64)>,
}

impl FakeHolder<'_> {
    fn run_id(&self) -> String {
        format!("{}-{}-{}-fake", self.host, self.pid, self.started)
    }
}

/// This process's boot id, PID namespace, and the start time of `pid` (0 if it is gone).
fn identity_of(pid: u32) -> (String, String, u64) {
    let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").expect("boot_id").trim().to_string();
    let ns = std::fs::read_link("/proc/self/ns/pid").expect("pid namespace").to_string_lossy().into_owned();
    let start = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat[stat.rfind(')')? + 1..].split_whitespace().nth(19)?.parse().ok())
        .unwrap_or(0);
    (boot, ns, start)
}

async fn put_lock(aws: &Aws, stack: &str, h: &FakeHolder<'_>) {
    let mut put = aws
        .dynamodb
        .put_item()
        .table_name(LOCK_TABLE)
        .item("stack", AttributeValue::S(stack.into()))
        .item("run_id", AttributeValue::S(h.run_id()))
        .item("who", AttributeValue::S(format!("alice@{}", h.host)))
        .item("host", AttributeValue::S(h.host.into()))
        .item("pid", AttributeValue::N(h.pid.to_string()))
        .item("command", AttributeValue::S(h.command.into()))
        .item("started_at", AttributeValue::N(h.started.to_string()))
        .item("expires_at", AttributeValue::N((h.started + h.lease.as_secs()).to_string()))
        .item("version", AttributeValue::N("1".into()))
        .item("lease_ms", AttributeValue::N(h.lease.as_millis().to_string()));
    if let Some((boot, ns, start)) = &h.identity {
        put = put
            .item("boot_id", AttributeValue::S(boot.clone()))
            .item("pid_ns", AttributeValue::S(ns.clone()))
            .item("proc_start", AttributeValue::N(start.to_string()));
    }
    put.send().await.expect("PutItem (fake lock holder)");
}

/// The stack's lock item as it is now (a consistent read through the SDK), if there is one.
async fn read_lock(aws: &Aws, stack: &str) -> Option<std::collections::HashMap<String, AttributeValue>> {
    let out = aws
        .dynamodb
        .get_item()
        .table_name(LOCK_TABLE)
        .key("stack", AttributeValue::S(stack.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("GetItem (lock)");
    out.item().cloned()
}

/// The lock item's `run_id`, if there is one.
async fn lock_run_id(aws: &Aws, stack: &str) -> Option<String> {
    read_lock(aws, stack).await.and_then(|i| i.get("run_id").and_then(|v| v.as_s().ok()).cloned())
}

/// Wait (a minute at most) until `proxy` has seen a call on the lock table that `seen` accepts,
/// while `run` is still running.
async fn wait_for_lock_call(
    proxy: &e2e::proxy::Proxy,
    run: &Running,
    what: &str,
    seen: impl Fn(&e2e::proxy::Call) -> bool,
) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !proxy.lock_calls().iter().any(&seen) {
        assert!(Instant::now() < deadline && !run.finished(), "{what} never happened:\n{}", run.stderr_now());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Whether the stack's lock is held: an item whose lease has not been released (a released lock
/// keeps its item, with `expires_at` 0 and `released_at`, for the next holder).
async fn lock_item(aws: &Aws, stack: &str) -> bool {
    read_lock(aws, stack).await.is_some_and(|item| {
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
    // A's calls take 250 ms more each: A still holds the lock when B, started after A took it,
    // asks for it, however long B takes to start on a loaded machine (seen with 8 tests at once).
    pa.add_rule(Rule::new().delay(Duration::from_millis(250)));
    let ra = Running::spawn(da, &up);
    wait_for_lock_call(pa, &ra, "A taking the lock", |c| c.operation == "PutItem" && c.status == Some(200)).await;
    let rb = Running::spawn(
        &db,
        &["--output", "json", "up", "--artifact", stack.artifact.as_str(), "--lock-timeout", "120"],
    );
    let pid_a = ra.pid;
    let (oa, ob) = tokio::join!(ra.wait(), rb.wait());
    pa.clear_rules();
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
    let agent = FakeHolder {
        host: "build-agent-7",
        pid: 4242,
        command: "down",
        started,
        lease: Duration::from_secs(3600),
        identity: None,
    };
    put_lock(aws, &n.stack, &agent).await;
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

    // ------------------------------------------------ a lease from another machine that is no longer renewed
    // Its item says it expired ten minutes ago (by its clock): that alone does not free it.
    let stale = FakeHolder { command: "up", started: now() - 600, lease: Duration::from_secs(3), ..agent.clone() };
    put_lock(aws, &n.stack, &stale).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up over a foreign lease without waiting: exit {}", out.code);
    c.eq("a foreign lease is not judged by its clock: exit code", out.code, 4);
    let t = Instant::now();
    let out = d.run(&["up", "--artifact", artifact, "--lock-timeout", "30"]).await;
    let waited = t.elapsed();
    println!(
        "up --lock-timeout 30 over a 3 s lease that stays unchanged: exit {} in {:.1}s",
        out.code,
        waited.as_secs_f64()
    );
    c.eq("a foreign lease unchanged for its whole lease is taken: exit code", out.code, 0);
    c.check(waited >= Duration::from_secs(3), format!("it watched the lease for 3 s first ({waited:?})"));
    c.check(
        out.stderr.contains("took over the lock of a run that stopped renewing its lease"),
        format!("the taker says why it took the lock\n{out}"),
    );

    // ------------------------------------------------ this machine: a live holder blocks, a dead one is taken over
    let host = hostname();
    let me = std::process::id();
    let live = FakeHolder {
        host: &host,
        pid: me,
        started: now(),
        lease: Duration::from_secs(3600),
        identity: Some(identity_of(me)),
        ..stale.clone()
    };
    put_lock(aws, &n.stack, &live).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up while a live local process holds the lock: exit {}", out.code);
    c.eq("live local holder: exit code", out.code, 4);
    check_names_holder(&mut c, "live local holder", &out, &format!("@{host}"), std::process::id(), "up");
    let mut gone = std::process::Command::new("true").spawn().expect("spawn true");
    let dead_pid = gone.id();
    gone.wait().expect("wait true");
    let (boot, ns, _) = identity_of(me);
    let dead = FakeHolder { pid: dead_pid, identity: Some((boot.clone(), ns.clone(), 12345)), ..live.clone() };
    put_lock(aws, &n.stack, &dead).await;
    let out = d.run(&["up", "--artifact", artifact]).await;
    println!("up while a dead local process (pid {dead_pid}) holds the lock: exit {}", out.code);
    c.eq("dead local holder: exit code", out.code, 0);
    c.check(
        out.stderr.contains("took over the lock of a run that is no longer running"),
        format!("the dead local holder's lock is taken over, and said so\n{out}"),
    );
    c.check(!lock_item(aws, &n.stack).await, "the lock is released after that run");
    // A live PID of this machine under another PID namespace, or another boot, is not judged.
    for (label, identity) in [
        ("another PID namespace", (boot.clone(), "pid:[1]".to_string(), 12345)),
        ("another boot", ("another-boot".to_string(), ns.clone(), 12345)),
    ] {
        put_lock(aws, &n.stack, &FakeHolder { identity: Some(identity), ..dead.clone() }).await;
        let out = d.run(&["up", "--artifact", artifact]).await;
        println!("up while a holder of {label} holds the lock: exit {}", out.code);
        c.eq(&format!("{label}: exit code"), out.code, 4);
    }
    let out = d.run(&["unlock", "--force"]).await;
    c.eq("unlock --force: exit code", out.code, 0);

    // ------------------------------------------------ unlock --force removes only the holder it showed
    put_lock(aws, &n.stack, &agent).await;
    proxy.reset();
    proxy.add_rule(Rule::new().service("dynamodb").operation("DeleteItem").delay(Duration::from_secs(3)));
    let unlock = Running::spawn(d, &["unlock", "--force"]);
    wait_for_lock_call(proxy, &unlock, "unlock's DeleteItem", |c| c.operation == "DeleteItem").await;
    // While its DeleteItem is on the way, another run takes the lock.
    let other = FakeHolder { host: "build-agent-8", pid: 777, started: now(), ..agent.clone() };
    put_lock(aws, &n.stack, &other).await;
    let out = unlock.wait().await;
    proxy.clear_rules();
    println!(
        "unlock --force racing a new holder: exit {}: {}",
        out.code,
        out.stderr.lines().last().unwrap_or_default()
    );
    c.eq("unlock --force of a lock that changed hands: exit code", out.code, 4);
    c.check(out.stderr.contains("changed since it was read"), format!("it says the lock changed hands\n{out}"));
    c.eq("the new holder's lock is still there", lock_run_id(aws, &n.stack).await, Some(other.run_id()));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("3 lock: read-only commands, foreign and stale holders, unlock");
}

/// Two deployers whose wall clocks are a minute apart, and the first cannot renew its lease (every
/// renewal fails): it makes no change to the stack once its lease is over and exits 4; the second,
/// whose clock runs ahead (libfaketime), never takes the first's live lease early: it waits until
/// the lock stayed unchanged for the whole lease on its own clock, then finishes the deploy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_renew_stops_and_a_clock_ahead_never_takes_a_live_lease() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let (pa, pb) = (&account.proxy, &account.another_proxy());
    let mut c = Checks::new();
    let stack = account.stack("lock-fence");
    let (da, mut db) = (&stack.deployer, stack.via(pb));
    db.env.extend([
        ("LD_PRELOAD".to_string(), libfaketime()),
        ("FAKETIME".to_string(), "+60s".to_string()),
        ("FAKETIME_DONT_FAKE_MONOTONIC".to_string(), "1".to_string()),
    ]);
    // A: a cold `up` slowed to well past its 6 s lease, whose renewals all fail.
    const LEASE: Duration = Duration::from_secs(6);
    const SAFE_FOR: Duration = Duration::from_secs(5);
    pa.add_rule(Rule::new().delay(Duration::from_millis(150)));
    pa.add_rule(Rule::new().service("dynamodb").operation("UpdateItem").fail(
        500,
        "InternalServerError",
        "the test refuses this renewal",
    ));
    let art = stack.artifact.as_str();
    let ra = Running::spawn(da, &["up", "--artifact", art, "--lock-lease", "6"]);
    wait_for_lock_call(pa, &ra, "A taking the lock", |c| c.operation == "PutItem" && c.status == Some(200)).await;
    let rb = Running::spawn(&db, &["up", "--artifact", art, "--lock-timeout", "120"]);
    let (oa, ob) = tokio::join!(ra.wait(), rb.wait());

    // Both proxies' calls on one clock.
    let on_clock = |p: &e2e::proxy::Proxy| {
        let epoch = p.epoch();
        p.timeline().into_iter().map(move |t| (epoch + t.arrived, t.call)).collect::<Vec<_>>()
    };
    let (a, b) = (on_clock(pa), on_clock(pb));
    let a_took =
        a.iter().find(|(_, c)| c.is_lock() && c.operation == "PutItem" && c.status == Some(200)).map(|(t, _)| *t);
    let b_took =
        b.iter().find(|(_, c)| c.is_lock() && c.operation == "PutItem" && c.status == Some(200)).map(|(t, _)| *t);
    let a_changes: Vec<Instant> = a.iter().filter(|(_, c)| c.mutating && !c.is_lock()).map(|(t, _)| *t).collect();
    let b_changes: Vec<Instant> = b.iter().filter(|(_, c)| c.mutating && !c.is_lock()).map(|(t, _)| *t).collect();
    let (Some(a_took), Some(b_took)) = (a_took, b_took) else {
        panic!("both runs must have taken the lock once: A {a_took:?}, B {b_took:?}\nA: {oa}\nB: {ob}");
    };
    let a_last = a_changes.iter().max().copied();
    let secs = |t: Option<Instant>| {
        t.map(|t| format!("{:.2}s", t.saturating_duration_since(a_took).as_secs_f64())).unwrap_or("-".into())
    };
    println!(
        "A (lease 6 s, renewals refused): exit {} in {:.1}s, {} changes, the last {} after it took the lock",
        oa.code,
        oa.elapsed.as_secs_f64(),
        a_changes.len(),
        secs(a_last)
    );
    println!(
        "B (clock +60 s): exit {} in {:.1}s, took the lock {} after A did, its first change at {}",
        ob.code,
        ob.elapsed.as_secs_f64(),
        secs(Some(b_took)),
        secs(b_changes.iter().min().copied())
    );
    c.eq("A, which could not renew: exit code", oa.code, 4);
    c.check(oa.stderr.contains("this run stopped changing the stack"), format!("A says it stopped\n{oa}"));
    c.check(!a_changes.is_empty(), "A changed the stack while its lease was good");
    // A's fence is timed from before its PutItem was sent: its last change arrives before the
    // fence shut (plus the proxy's own scheduling, well under 0.5 s).
    c.check(
        a_last.is_some_and(|t| t <= a_took + SAFE_FOR + Duration::from_millis(500)),
        format!("A made no change after its lease minus the margin ({SAFE_FOR:?}): last at {}", secs(a_last)),
    );
    c.check(
        b_took >= a_took + LEASE,
        format!("B took the lock no earlier than A's lease ({LEASE:?}) after A: {}", secs(Some(b_took))),
    );
    c.check(b_changes.iter().all(|t| a_last.is_none_or(|a| *t > a)), "every change of B comes after A's last change");
    c.eq("B, whose clock runs ahead: exit code", ob.code, 0);
    c.check(
        // Why depends on when B looks: A still running but fenced, or A already gone (its exit
        // follows its fence within seconds; on a loaded machine B may look after it).
        ob.stderr.contains("took over the lock of a run that stopped renewing its lease")
            || ob.stderr.contains("took over the lock of a run that is no longer running"),
        format!("B says whose lock it took and why\n{ob}"),
    );
    // B's clock really ran a minute ahead: its lock item says so.
    let item = read_lock(&account.aws, &stack.names.stack).await;
    let b_started: u64 = item
        .as_ref()
        .and_then(|i| i.get("started_at"))
        .and_then(|v| v.as_n().ok())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    c.check(
        b_started >= now() + 40,
        format!("B's lock item was written a minute ahead: started_at {b_started}, now {}", now()),
    );
    let inv = Inventory::scan(&account.aws).await;
    inv.check_converged(&mut c, &Shape::of(&stack).await, "after B finished what A could not");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("3 a fenced run and a clock a minute ahead");
}
