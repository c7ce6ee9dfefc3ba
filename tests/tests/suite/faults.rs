//! Faults injected by the proxy between the real binary and moto (issue 5, part 1): throttling
//! and 5xx with latency, the IAM-propagation and PITR windows, a quota error that must not be
//! retried, and `DependencyViolation` during `down`. Every figure (faults injected, attempts,
//! time) is printed.
//!
//! The SDK itself retries throttling and 5xx (4 attempts in the deployer, 8 for EC2 and 10 for
//! API Gateway, aws.rs); the
//! deployer's own waits (wait.rs) must outlast longer windows. Windows here open at the first
//! matching call (`chaos::Window`) so they always cover it, whatever the machine's speed.

use std::time::{Duration, Instant};

use aws_sdk_apigateway::types::{Op, PatchOperation};
use e2e::chaos::{FaultKind, Rng, Running, Window, seed, sprinkle};
use e2e::inventory::{Inventory, Shape};
use e2e::proxy::count_by_name;
use e2e::{Account, Aws, Behaviour, Call, Checks, Rule, Stack};

/// Fixed latency on every call in the throttling test.
const LATENCY: Duration = Duration::from_millis(20);
/// Fraction of API Gateway / EC2 calls answered with a throttling or 5xx error.
const APIGW_FAULT_RATE: f64 = 0.30;
const EC2_FAULT_RATE: f64 = 0.20;
/// How long the propagation / dependency windows stay open after the first matching call.
const WINDOW: Duration = Duration::from_secs(4);
/// A throttling window on CreateDeployment spanning several attempts (API Gateway's client
/// retries up to 10 times with jittered backoff, then `apigw::call` retries on its own).
const DEPLOY_WINDOW: Duration = Duration::from_secs(8);

/// A fresh account with one stack in it.
async fn env(prefix: &str) -> (Account, Stack) {
    env_without(prefix, &[]).await
}

/// The same, with behaviours of the strict model turned off, each with the reason
/// ([`Account::start_without`]).
async fn env_without(prefix: &str, without: &[(Behaviour, &str)]) -> (Account, Stack) {
    let account = Account::start_without(without).await;
    let stack = account.stack(prefix);
    (account, stack)
}

fn of(calls: &[Call], service: &str, operation: &str) -> Vec<Call> {
    calls.iter().filter(|c| c.service == service && c.operation == operation).cloned().collect()
}

fn injected(calls: &[Call], service: &str) -> (usize, usize) {
    let all: Vec<&Call> = calls.iter().filter(|c| c.service == service).collect();
    (all.iter().filter(|c| c.injected).count(), all.len())
}

fn pct(part: usize, whole: usize) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

/// What `up` did with a fault window on one operation: `status`/`code`/`message` answered from
/// the operation's first call on, for `window`.
struct ThroughWindow {
    opened: bool,
    out: e2e::Output,
    after_window: Duration,
    calls: Vec<Call>,
    faulted: usize,
}

async fn up_through_window(
    account: &Account,
    e: &Stack,
    (service, operation): (&str, &str),
    (status, code, message): (u16, &str, &str),
    window: Duration,
) -> ThroughWindow {
    let rule = Rule::new().service(service).operation(operation).fail(status, code, message);
    let armed = Window::arm(&account.proxy, rule, window);
    let run = Running::spawn(&e.deployer, &["up", "--artifact", &e.artifact]);
    let opened = armed.open_when_hit(&account.proxy, &run).await;
    let opened_at = Instant::now();
    let out = run.wait().await;
    let after_window = opened_at.elapsed();
    let calls = of(&account.proxy.calls(), service, operation);
    let faulted = calls.iter().filter(|c| c.injected).count();
    println!(
        "{operation}: {} attempts, {faulted} answered {code} ({window:?} window); up exit {} in {:.1}s ({:.1}s after the window opened)",
        calls.len(),
        out.code,
        out.elapsed.as_secs_f64(),
        after_window.as_secs_f64()
    );
    ThroughWindow { opened, out, after_window, calls, faulted }
}

impl ThroughWindow {
    /// The window opened, `up` retried inside it, outlasted it and succeeded.
    fn check_waited_out(&self, c: &mut Checks, operation: &str, window: Duration) {
        c.check(self.opened, format!("the window opened ({operation} was called)"));
        c.check(self.out.code == 0, format!("up succeeds after the window\n{}", self.out));
        c.check(
            self.faulted >= 2,
            format!("{operation} was retried inside the window: {} faulted attempts", self.faulted),
        );
        c.check(self.after_window >= window, format!("up outlasted the {window:?} window: {:?}", self.after_window));
    }
}

/// 1(a) Latency on every call, 30% of API Gateway calls answered 429 TooManyRequestsException,
/// 20% of EC2 calls RequestLimitExceeded / 503: `up` converges, and the next `up` (same faults)
/// changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_5xx_with_latency_still_converge() {
    let t0 = std::time::Instant::now();
    let (account, e) = env("flt-throttle").await;
    let mut rng = Rng::new(seed("1a throttling"));
    let mut c = Checks::new();
    account.proxy.add_rule(Rule::new().delay(LATENCY));
    // At most 3 faults in a row per service: a run of 4 would exhaust the SDK's 4 attempts of one
    // call by itself, which is a window (the window tests below), not a rate. (Interleaved
    // concurrent calls can still put every attempt of one call on a fault: EC2's 8 attempts make
    // that as rare as AWS's own throttled stretches are long.)
    let apigw = sprinkle(
        &account.proxy,
        &mut rng,
        "apigateway",
        APIGW_FAULT_RATE,
        600,
        3,
        &[FaultKind { status: 429, code: "TooManyRequestsException", message: "Too Many Requests" }],
    );
    let ec2 = sprinkle(
        &account.proxy,
        &mut rng,
        "ec2",
        EC2_FAULT_RATE,
        600,
        3,
        &[
            FaultKind { status: 503, code: "RequestLimitExceeded", message: "Request limit exceeded." },
            FaultKind {
                status: 503,
                code: "Unavailable",
                message: "The service is unavailable. Please try again shortly.",
            },
        ],
    );
    // And one throttling window on a paced write: CreateDeployment (1 per 5 s) throttled for 8 s
    // from its first attempt, over several attempts.
    let deploy_window = Window::arm(
        &account.proxy,
        Rule::new().service("apigateway").operation("CreateDeployment").fail(
            429,
            "TooManyRequestsException",
            "Too Many Requests",
        ),
        DEPLOY_WINDOW,
    );
    println!(
        "schedule: latency {LATENCY:?} on every call; API Gateway {} of its first 600 calls faulted, EC2 {} of 600",
        apigw.len(),
        ec2.len()
    );

    let run = Running::spawn(&e.deployer, &["--output", "json", "up", "--artifact", &e.artifact]);
    let opened = deploy_window.open_when_hit(&account.proxy, &run).await;
    let up = run.wait().await;
    let calls = account.proxy.calls();
    let deployments = of(&calls, "apigateway", "CreateDeployment");
    println!(
        "  CreateDeployment: {} attempts, {} throttled ({DEPLOY_WINDOW:?} window from the first)",
        deployments.len(),
        deployments.iter().filter(|c| c.injected).count()
    );
    c.check(opened, "the CreateDeployment window opened");
    c.check(
        deployments.iter().filter(|c| c.injected).count() >= 2,
        "CreateDeployment throttled on several attempts in its window",
    );
    c.check(
        deployments.last().is_some_and(|d| !d.injected && d.status.is_some_and(|s| s < 300)),
        format!("then an attempt after the window succeeded: {deployments:?}"),
    );
    let (ai, at) = injected(&calls, "apigateway");
    let (ei, et) = injected(&calls, "ec2");
    for (svc, sched) in [("apigateway", &apigw), ("ec2", &ec2)] {
        let got: Vec<usize> = calls
            .iter()
            .filter(|c| c.service == svc)
            .enumerate()
            .filter(|(_, c)| c.injected)
            .map(|(i, _)| i + 1)
            .collect();
        let n = calls.iter().filter(|c| c.service == svc).count();
        let want: Vec<usize> = sched.iter().copied().filter(|p| *p <= n).collect();
        println!("  {svc}: scheduled {want:?}, injected {got:?}");
    }
    println!(
        "up under faults: exit {} in {:.1}s; {} calls; injected: API Gateway {ai}/{at} ({:.0}%), EC2 {ei}/{et} ({:.0}%)",
        up.code,
        up.elapsed.as_secs_f64(),
        calls.len(),
        pct(ai, at),
        pct(ei, et)
    );
    // The 8 s window is waited out either by the SDK's own retries of API Gateway calls (10
    // attempts with backoff up to 20 s, each announced) or by the deployer's longer retry of
    // API Gateway writes; either way the wait must show on the progress output.
    // With `--output json` every progress line is a JSON event: the deployer's own wait is a
    // `retrying` event ("API Gateway throttling of <operation>"), the SDK's a `sdk_retry` event
    // ("<the SDK's service name> <operation>").
    let events: Vec<serde_json::Value> = up.stderr.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let waits: Vec<String> = events
        .iter()
        .filter_map(|e| match e["event"].as_str() {
            Some("retrying") => e["what"].as_str().filter(|w| w.starts_with("API Gateway throttling of ")),
            Some("sdk_retry") => {
                e["operation"].as_str().filter(|o| o.starts_with("APIGateway ") || o.starts_with("API Gateway "))
            }
            _ => None,
        })
        .map(str::to_string)
        .collect();
    println!("  visible throttling waits (SDK retries announced + deployer-level waits): {}", waits.len());
    c.check(
        waits.iter().any(|w| w.ends_with("CreateDeployment")),
        format!("the CreateDeployment window was waited out, visibly: {waits:?}\n{}", up.stderr),
    );
    c.check(up.code == 0, format!("up converges under throttling (exit 0)\n{up}"));
    c.check(ai > 0 && ei > 0, format!("faults were injected: API Gateway {ai}, EC2 {ei}"));
    c.check(
        calls.iter().filter(|c| !c.injected).all(|c| c.status.is_some_and(|s| s < 500)),
        "every call moto answered succeeded or failed cleanly (no 5xx from moto)",
    );
    if up.code == 0 {
        c.check(up.json()["changes"].as_u64().is_some_and(|n| n > 0), "the first up reports changes");
    }

    // The same faults (the schedule goes on) and a no-op.
    account.proxy.reset();
    let again = e.deployer.run(&["--output", "json", "up", "--artifact", &e.artifact]).await;
    let calls = account.proxy.calls();
    let (ai2, at2) = injected(&calls, "apigateway");
    let (ei2, et2) = injected(&calls, "ec2");
    let mutating: Vec<String> = account.proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    println!(
        "second up under faults: exit {} in {:.1}s; {} calls, {} mutating; injected: API Gateway {ai2}/{at2}, EC2 {ei2}/{et2}",
        again.code,
        again.elapsed.as_secs_f64(),
        calls.len(),
        mutating.len()
    );
    println!("faults injected in total: {}", ai + ei + ai2 + ei2);
    c.check(again.code == 0, format!("second up exits 0\n{again}"));
    c.check(mutating.is_empty(), format!("second up is a no-op: mutating calls {mutating:?}"));
    if again.code == 0 {
        c.eq("second up: changes", again.json()["changes"].as_u64(), Some(0));
    }

    let aws = &account.aws;
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&e).await, "after throttled ups");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1a throttling + 5xx + latency");
}

/// 1(b) For ~4 s from the first attempt, CreateFunction answers "The role defined for the
/// function cannot be assumed by Lambda.": `up` waits (saying it waits for IAM) and succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn iam_propagation_window_is_waited_out() {
    let t0 = std::time::Instant::now();
    // This test opens its own IAM window at the first CreateFunction, to count the attempts
    // inside it; the model's window would answer those attempts first.
    let (account, e) = env_without(
        "flt-iam",
        &[(Behaviour::IamPropagation, "the test opens its own IAM window and counts the attempts in it")],
    )
    .await;
    let r = up_through_window(
        &account,
        &e,
        ("lambda", "CreateFunction"),
        (400, "InvalidParameterValueException", "The role defined for the function cannot be assumed by Lambda."),
        WINDOW,
    )
    .await;
    let mut c = Checks::new();
    r.check_waited_out(&mut c, "CreateFunction", WINDOW);
    c.eq("successful CreateFunction calls", r.calls.iter().filter(|c| !c.injected && c.status == Some(201)).count(), 1);
    let out = r.out;
    let iam_lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("IAM")).collect();
    println!("  progress: {iam_lines:?}");
    c.check(!iam_lines.is_empty(), format!("stderr says it waits for IAM\n{}", out.stderr));
    let aws = &account.aws;
    let f = aws.lambda.get_function().function_name(&e.names.function).send().await;
    c.check(f.is_ok(), format!("the function exists: {f:?}"));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1b IAM propagation window");
}

/// 1(c) For ~4 s from the first attempt, UpdateContinuousBackups answers
/// ContinuousBackupsUnavailableException: `up` waits and PITR ends ENABLED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pitr_window_is_waited_out_and_read_back() {
    let t0 = std::time::Instant::now();
    // This test opens its own PITR window at the first UpdateContinuousBackups, to count the
    // attempts inside it; the model's window would answer those attempts first.
    let (account, e) = env_without(
        "flt-pitr",
        &[(Behaviour::PitrWindow, "the test opens its own PITR window and counts the attempts in it")],
    )
    .await;
    let msg = format!("Backups are being enabled for the table: {}. Please retry later", e.names.table);
    let r = up_through_window(
        &account,
        &e,
        ("dynamodb", "UpdateContinuousBackups"),
        (400, "ContinuousBackupsUnavailableException", &msg),
        WINDOW,
    )
    .await;
    let mut c = Checks::new();
    r.check_waited_out(&mut c, "UpdateContinuousBackups", WINDOW);
    c.eq("successful UpdateContinuousBackups calls", r.calls.iter().filter(|c| !c.injected).count(), 1);
    let out = r.out;
    let lines: Vec<&str> = out.stderr.lines().filter(|l| l.contains("ContinuousBackupsUnavailable")).collect();
    println!("  progress: {lines:?}");
    c.check(!lines.is_empty(), format!("stderr shows the wait\n{}", out.stderr));
    let aws = &account.aws;
    let status = aws.pitr_status(&e.names.table).await;
    c.eq("PITR read back through the SDK", status.as_deref(), Some("ENABLED"));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1c PITR window");
}

/// The usage plan `name` of the stack, deleted through the SDK (its key membership first).
async fn delete_usage_plan(aws: &Aws, name: &str) {
    let plans = aws.apigateway.get_usage_plans().limit(500).send().await.expect("GetUsagePlans");
    let plan = plans.items().iter().find(|p| p.name() == Some(name)).unwrap_or_else(|| panic!("no plan {name}"));
    let id = plan.id().unwrap().to_string();
    let keys = aws.apigateway.get_usage_plan_keys().usage_plan_id(&id).send().await.expect("GetUsagePlanKeys");
    for k in keys.items() {
        aws.apigateway
            .delete_usage_plan_key()
            .usage_plan_id(&id)
            .key_id(k.id().unwrap())
            .send()
            .await
            .expect("DeleteUsagePlanKey");
    }
    for st in plan.api_stages() {
        let value = format!("{}:{}", st.api_id().unwrap_or_default(), st.stage().unwrap_or_default());
        aws.apigateway
            .update_usage_plan()
            .usage_plan_id(&id)
            .patch_operations(PatchOperation::builder().op(Op::Remove).path("/apiStages").value(value).build())
            .send()
            .await
            .expect("UpdateUsagePlan remove /apiStages");
    }
    aws.apigateway.delete_usage_plan().usage_plan_id(&id).send().await.expect("DeleteUsagePlan");
}

/// 1(d) CreateUsagePlan answers 429 LimitExceededException (API Gateway's quota error): never
/// retried, by the SDK (which would treat the code as throttling) nor by us; `up` exits 1
/// naming the service, operation, code and resource.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_error_is_not_retried() {
    let t0 = std::time::Instant::now();
    let (account, e) = env("flt-quota").await;
    let quota = Rule::new().service("apigateway").operation("CreateUsagePlan").fail(
        429,
        "LimitExceededException",
        "Cannot create more usage plans: the account's limit of 300 usage plans is reached",
    );
    let mut c = Checks::new();

    // A cold up: both plans must be created, each gets exactly one attempt.
    account.proxy.add_rule(quota.clone());
    let t = Instant::now();
    let cold = e.deployer.run(&["up", "--artifact", &e.artifact]).await;
    let attempts = of(&account.proxy.calls(), "apigateway", "CreateUsagePlan");
    println!(
        "cold up with the quota error: exit {} in {:.1}s, CreateUsagePlan attempts {} (2 plans)",
        cold.code,
        t.elapsed().as_secs_f64(),
        attempts.len()
    );
    c.eq("cold up: exit code", cold.code, 1);
    c.eq("cold up: CreateUsagePlan attempts (one per plan, none retried)", attempts.len(), 2);
    for tier in ["usage-plan-standard", "usage-plan-premium"] {
        c.check(cold.stderr.contains(tier), format!("cold up: stderr names {tier}\n{}", cold.stderr));
    }

    // Converge without the fault, then lose one plan: exactly one CreateUsagePlan per run.
    account.proxy.clear_rules();
    let fixed = e.deployer.run(&["up", "--artifact", &e.artifact]).await;
    c.check(fixed.code == 0, format!("up without the fault finishes the job\n{fixed}"));
    let aws = &account.aws;
    delete_usage_plan(aws, Shape::of(&e).await.name_of("usage-plan-premium")).await;

    account.proxy.reset();
    account.proxy.add_rule(quota);
    let t = Instant::now();
    let out = e.deployer.run(&["up", "--artifact", &e.artifact]).await;
    let took = t.elapsed();
    let calls = account.proxy.calls();
    let attempts = of(&calls, "apigateway", "CreateUsagePlan");
    println!(
        "up with one plan missing: exit {} in {:.1}s, CreateUsagePlan attempts {}",
        out.code,
        took.as_secs_f64(),
        attempts.len()
    );
    println!("  stderr: {}", out.stderr.lines().filter(|l| l.contains("error")).collect::<Vec<_>>().join(" | "));
    c.eq("exit code", out.code, 1);
    c.eq("CreateUsagePlan attempts recorded by the proxy", attempts.len(), 1);
    c.check(attempts.iter().all(|a| a.injected && a.status == Some(429)), format!("{attempts:?}"));
    let error_lines: String = out.stderr.lines().filter(|l| l.starts_with("error")).collect::<Vec<_>>().join("\n");
    for want in ["API Gateway", "CreateUsagePlan", "LimitExceededException", "usage-plan-premium"] {
        c.check(error_lines.contains(want), format!("the error names {want:?}:\n{}", out.stderr));
    }
    c.check(
        !out.stderr.contains("waiting for API Gateway throttling of CreateUsagePlan"),
        format!("no throttling wait for a quota error\n{}", out.stderr),
    );
    c.check(took < Duration::from_secs(15), format!("failed fast ({took:?}), no backoff"));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1d quota not retried");
}

/// 1(e) During `down --yes`, DeleteSecurityGroup and DeleteSubnet answer DependencyViolation for
/// ~4 s from their first attempt (Lambda's ENIs still releasing): `down` waits and finishes, and
/// nothing tagged is left but the kept table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dependency_violation_window_during_down() {
    let t0 = std::time::Instant::now();
    // This test opens its own DependencyViolation windows on the group and the subnets, to count
    // the attempts inside them; the model's lingering ENIs would block those deletes too.
    let (account, e) = env_without(
        "flt-dep",
        &[(
            Behaviour::LambdaEnis,
            "the test opens its own DependencyViolation windows and counts the attempts in them",
        )],
    )
    .await;
    let up = e.deployer.run(&["up", "--artifact", &e.artifact]).await;
    up.assert_ok();
    account.proxy.reset();
    let sg = Window::arm(
        &account.proxy,
        Rule::new().service("ec2").operation("DeleteSecurityGroup").fail(
            400,
            "DependencyViolation",
            "resource sg has a dependent object",
        ),
        WINDOW,
    );
    let subnet = Window::arm(
        &account.proxy,
        Rule::new().service("ec2").operation("DeleteSubnet").fail(
            400,
            "DependencyViolation",
            "The subnet has dependencies and cannot be deleted.",
        ),
        WINDOW,
    );
    let run = Running::spawn(&e.deployer, &["down", "--yes"]);
    let (a, b) = tokio::join!(sg.open_when_hit(&account.proxy, &run), subnet.open_when_hit(&account.proxy, &run));
    let out = run.wait().await;
    let calls = account.proxy.calls();
    let mut c = Checks::new();
    for (op, opened, ok_expected) in [("DeleteSecurityGroup", a, 1), ("DeleteSubnet", b, 2)] {
        let attempts = of(&calls, "ec2", op);
        let faulted = attempts.iter().filter(|c| c.injected).count();
        println!("{op}: {} attempts, {faulted} answered DependencyViolation", attempts.len());
        c.check(opened, format!("{op} window opened"));
        c.check(faulted >= 1, format!("{op}: DependencyViolation was injected"));
        c.eq(&format!("{op}: successful calls"), attempts.iter().filter(|c| !c.injected).count(), ok_expected);
    }
    println!("down: exit {} in {:.1}s; calls {:?}", out.code, out.elapsed.as_secs_f64(), count_by_name(&calls).len());
    c.check(out.code == 0, format!("down finishes after the window\n{out}"));
    let waits: Vec<&str> = out.stderr.lines().filter(|l| l.contains("waiting for")).collect();
    println!("  progress: {waits:?}");
    c.check(!waits.is_empty(), format!("down says what it waits for\n{}", out.stderr));
    let aws = &account.aws;
    Inventory::scan(aws).await.check_gone(&mut c, &e.names, "after down");
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1e DependencyViolation during down");
}

/// 1(a') A throttling window over several attempts on an API Gateway READ (the
/// control plane's "all other operations" bucket throttles GETs too, aws-behaviours.md §4.4;
/// DESIGN §3 lists TooManyRequestsException among the named waits): `up` should wait it out as
/// it does for writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_window_on_an_api_gateway_read_is_waited_out() {
    let t0 = std::time::Instant::now();
    let (account, e) = env("flt-read").await;
    let r = up_through_window(
        &account,
        &e,
        ("apigateway", "GetRestApis"),
        (429, "TooManyRequestsException", "Too Many Requests"),
        DEPLOY_WINDOW,
    )
    .await;
    println!("  errors: {}", r.out.stderr.lines().filter(|l| l.starts_with("error")).collect::<Vec<_>>().join(" | "));
    let mut c = Checks::new();
    c.check(r.opened, "the GetRestApis window opened");
    c.check(r.out.code == 0, format!("up waits out a throttled API Gateway read (exit 0)\n{}", r.out));
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("1a' throttled API Gateway read");
}
