//! Issue 8, "first deploy in a fresh account", with the strict AWS model on (IAM propagation,
//! Lambda Pending, table CREATING, API Gateway quotas, request validation):
//!
//! - `first_deploy_in_a_fresh_account`: on an empty account, `plan` and `status` exit 2 (all
//!   missing, no error, no mutating call); one cold `up` converges; a second `up` makes no
//!   mutating call; `down` succeeds after the function was deleted behind our back; and again
//!   after an `up` that failed halfway (CreateUsagePlan refused).
//! - `down_once_after_up_killed_or_failed_at_random_points`: `up` is SIGKILLed at a random moment,
//!   or one of its mutating calls (chosen at random) is refused; then ONE `down` leaves nothing
//!   tagged with the stack but the table, if `up` got to create it. The seed is printed
//!   (`MOVIES_STACK_SEED` replays it).
//! - `a_zone_ec2_refuses_subnets_in_is_left_for_the_next_one`: an older account where CreateSubnet
//!   refuses a zone the deployer chose: the subnet goes to the next free zone.

use std::time::Duration;

use e2e::chaos::{Rng, Running, seed};
use e2e::inventory::{Inventory, Kind, Shape, TAG_STACK};
use e2e::{Account, Aws, Behaviour, Checks, Output, Stack, ec2_filter};
use serde_json::Value;

/// `--output json ARGS`: the run and its parsed stdout (Null when it printed none).
async fn json_run(stack: &Stack, args: &[&str]) -> (Output, Value) {
    let mut all = vec!["--output", "json"];
    all.extend_from_slice(args);
    let out = stack.deployer.run(&all).await;
    let json = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    (out, json)
}

/// (id, `field`) of every row of a `plan` / `status` answer, by id.
fn by_id(json: &Value, field: &str) -> Vec<(String, &'static str)> {
    let rows = json["resources"].as_array().into_iter().flatten();
    let mut rows: Vec<(String, &'static str)> = rows
        .map(|r| {
            let value = match r[field].as_str() {
                Some("create") => "create",
                Some("missing") => "missing",
                Some("off") => "off",
                _ => "something else",
            };
            (r["id"].as_str().unwrap_or_default().to_string(), value)
        })
        .collect();
    rows.sort();
    rows
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_deploy_in_a_fresh_account() {
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let stack = account.stack("fresh");
    let names = &stack.names;
    let up = ["up", "--artifact", stack.artifact.as_str()];
    let mut c = Checks::new();

    // ------------------------------------------------------------------ plan and status: exit 2
    // What the config wants is created / missing; what it turns off (the web ACL) is off.
    let shape = Shape::of(&stack).await;
    let wanted: Vec<&str> = shape.wanted_ids().collect();
    let expect = |yes: &'static str| -> Vec<(String, &'static str)> {
        let mut rows: Vec<_> =
            shape.ids.iter().map(|id| (id.clone(), if wanted.contains(&id.as_str()) { yes } else { "off" })).collect();
        rows.sort();
        rows
    };
    let (plan, json) = json_run(&stack, &["plan", "--artifact", stack.artifact.as_str()]).await;
    c.eq("plan on an empty account: exit code", plan.code, 2);
    c.eq("plan: every resource to create (or off), no error", by_id(&json, "action"), expect("create"));
    let (status, json) = json_run(&stack, &["status"]).await;
    c.eq("status on an empty account: exit code", status.code, 2);
    c.eq("status: every resource missing (or off), no error", by_id(&json, "state"), expect("missing"));
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    c.check(mutating.is_empty(), format!("plan and status make no mutating call: {mutating:?}"));

    // ------------------------------------------------------------------ one cold up converges
    proxy.reset();
    let cold = stack.deployer.run(&up).await;
    c.eq("cold up: exit code", cold.code, 0);
    let hits: Vec<String> =
        proxy.model_hits().into_iter().filter(|(_, n)| *n > 0).map(|(b, n)| format!("{}={n}", b.name())).collect();
    println!(
        "cold up: {:.1}s, {} calls; the model acted: {}",
        cold.elapsed.as_secs_f64(),
        proxy.calls().len(),
        hits.join(" ")
    );
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "after one cold up");

    // ------------------------------------------------------------------ the second up: no-op
    proxy.reset();
    let again = stack.deployer.run(&up).await;
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    c.check(again.code == 0 && mutating.is_empty(), format!("second up: 0 mutating calls: {mutating:?}\n{again}"));

    // ------------------------------------------------------------------ down, function gone
    // Through the proxy, as AWS would see it: the model then releases the function's ENIs after
    // their lingering, as Lambda does (straight to moto, they would stay in use for ever).
    let someone = e2e::Aws::new(proxy.url()).await;
    someone
        .lambda
        .delete_function()
        .function_name(&names.function)
        .send()
        .await
        .expect("DeleteFunction behind our back");
    let down = stack.deployer.run(&["down", "--yes"]).await;
    c.eq("down after the function was deleted behind our back: exit code", down.code, 0);
    Inventory::scan(aws).await.check_gone(&mut c, names, "down without the function");

    // ------------------------------------------------------------------ down after a failed up
    proxy.add_rule(e2e::Rule::new().service("apigateway").operation("CreateUsagePlan").fail(
        400,
        "BadRequestException",
        "injected: the up fails halfway",
    ));
    let failed = stack.deployer.run(&up).await;
    proxy.clear_rules();
    c.check(
        failed.code != 0 && failed.stderr.contains("injected"),
        format!("the up fails at the usage plans, saying why\n{failed}"),
    );
    let half = Inventory::scan(aws).await;
    c.check(half.find(&names.stack, "function").is_some(), "the failed up got as far as the function");
    let down = stack.deployer.run(&["down", "--yes"]).await;
    c.eq("down after an up that failed halfway: exit code", down.code, 0);
    Inventory::scan(aws).await.check_gone(&mut c, names, "down after the failed up");
    c.finish("first deploy in a fresh account");
}

/// How one `up` was cut short.
#[derive(Debug)]
enum Cut {
    /// SIGKILL after this long.
    Kill(Duration),
    /// The n-th mutating call (0-based) refused with a non-retryable error.
    Fail(usize),
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_once_after_up_killed_or_failed_at_random_points() {
    const TRIALS: usize = 6;
    let account = Account::start().await;
    let (aws, proxy) = (&account.aws, &account.proxy);
    let mut rng = Rng::new(seed("down after a cut up"));
    let mut c = Checks::new();

    // A complete cold up, measured: the range of kill moments and of mutating calls.
    let warm = account.stack("cut-warm");
    proxy.reset();
    let cold = warm.deployer.run(&["up", "--artifact", warm.artifact.as_str()]).await;
    cold.assert_ok();
    let (span, calls) = (cold.elapsed, proxy.mutating_calls().len() + proxy.lock_calls().len());
    println!("cold up: {:.2}s, {calls} mutating calls with the lock's", span.as_secs_f64());

    for trial in 0..TRIALS {
        let stack = account.stack(&format!("cut-{trial}"));
        let up = ["up", "--artifact", stack.artifact.as_str()];
        let cut = if trial % 2 == 0 {
            Cut::Kill(rng.between(Duration::from_millis(100), span))
        } else {
            Cut::Fail(rng.below(calls))
        };
        proxy.reset();
        let code = match &cut {
            Cut::Kill(after) => {
                let run = Running::spawn(&stack.deployer, &up);
                while run.started.elapsed() < *after && !run.finished() {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                run.kill().await.code
            }
            Cut::Fail(n) => {
                proxy.add_rule(e2e::Rule::new().mutating(true).skip(*n).times(1).fail(
                    400,
                    "ValidationException",
                    "injected: this call is refused",
                ));
                let out = stack.deployer.run(&up).await;
                proxy.clear_rules();
                out.code
            }
        };
        let before = Inventory::scan(aws).await;
        let tables = before.count(Kind::Table, &stack.names.stack);
        let left = before.of_stack(&stack.names.stack).count();
        let down = stack.deployer.run(&["down", "--yes"]).await;
        println!(
            "  trial {trial}: {cut:?}: up exit {code}, {left} resources left (table: {tables}); down exit {} in {:.1}s",
            down.code,
            down.elapsed.as_secs_f64()
        );
        c.eq(&format!("trial {trial} ({cut:?}): one down succeeds"), down.code, 0);
        if down.code != 0 {
            println!("{down}");
        }
        Inventory::scan(aws).await.check_gone_but_tables(&mut c, &stack.names, tables, &format!("trial {trial}"));
    }
    c.finish("down once after an up cut short");
}

/// Issue 8: "when CreateFunction still refuses a zone, name the subnet and the zone, and say how
/// to choose others". The model refuses Lambda subnets in use1-az2 (one the deployer has no
/// reason to skip, as an account may meet for any zone): `up` fails at the function saying which
/// subnet, which zone and what to set; `down` then removes what was made.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_lambda_refuses_is_named_with_the_way_out() {
    const REFUSED: &str = "use1-az2";
    let account = Account::start().await;
    let proxy = e2e::Proxy::builder(account.moto.url()).lambda_refused_zone(Some(REFUSED)).start();
    let stack = account.stack("zone");
    let deployer = stack.via(&proxy);
    let mut c = Checks::new();

    let up = deployer.run(&["up", "--artifact", stack.artifact.as_str()]).await;
    c.eq("up with a subnet in a refused zone: exit code", up.code, 1);
    let error = up.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
    for needle in ["Lambda doesn't support", REFUSED, "subnet-", "network.availability_zones", "movies-stack down"] {
        c.check(error.contains(needle), format!("the error says {needle:?}: {error}\n{up}"));
    }
    let created: Vec<String> = proxy
        .mutating_calls()
        .iter()
        .filter(|call| call.operation == "CreateFunction")
        .map(|c| c.to_string())
        .collect();
    c.eq("CreateFunction asked once (a refused zone is not waited for)", created.len(), 1);

    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down after the refusal: exit code", down.code, 0);
    Inventory::scan(&account.aws).await.check_gone(&mut c, &stack.names, "down after a refused zone");
    c.finish("a zone Lambda refuses");
}

/// The zone IDs of a stack's subnets, sorted, read straight from moto.
async fn subnet_zones(aws: &Aws, stack: &str) -> Vec<String> {
    let out = aws
        .ec2
        .describe_subnets()
        .filters(ec2_filter(&format!("tag:{TAG_STACK}"), stack))
        .send()
        .await
        .expect("DescribeSubnets");
    let mut zones: Vec<String> =
        out.subnets().iter().filter_map(|s| s.availability_zone_id()).map(str::to_string).collect();
    zones.sort();
    zones
}

/// Older accounts cannot create subnets in some zones that DescribeAvailabilityZones lists as
/// available: "Value (us-east-1b) for parameter availabilityZone is invalid. Subnets can currently
/// only be created in the following availability zones: ..." (widdix/aws-cf-templates#36). The
/// model refuses CreateSubnet in use1-az2 (moto's us-east-1c), the deployer's first choice
/// (use1-az1 is impaired and use1-az3 refused by Lambda in the default model): `up` moves that
/// subnet to the next free zone, saying so, and converges; the next `up` changes nothing. With the
/// zone named in the config, `up` stops naming the zone and the key to change. `down` leaves
/// nothing behind either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zone_ec2_refuses_subnets_in_is_left_for_the_next_one() {
    const REFUSED: &str = "use1-az2";
    let account = Account::start().await;
    let proxy = e2e::Proxy::builder(account.moto.url()).subnet_refused_zone(Some(REFUSED)).start();
    let aws = &account.aws;
    let mut c = Checks::new();

    // ------------------------------------------------------------------ chosen: moved
    let stack = account.stack("subnet-zone");
    let deployer = stack.via(&proxy);
    let up = deployer.run(&["up", "--artifact", stack.artifact.as_str()]).await;
    c.eq("up with a zone EC2 refuses: exit code", up.code, 0);
    c.check(
        up.stderr.contains(
            "EC2 does not create subnets in us-east-1c (use1-az2) for this account; using us-east-1f (use1-az5)",
        ),
        format!("up says which zone was refused and which it took:\n{up}"),
    );
    let refused: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|call| call.model == Some(Behaviour::SubnetZones))
        .map(|call| call.to_string())
        .collect();
    c.eq("CreateSubnet refused once, in that zone", refused.len(), 1);
    c.eq("the subnets' zones", subnet_zones(aws, &stack.names.stack).await, ["use1-az4", "use1-az5"]);
    Inventory::scan(aws).await.check_converged(&mut c, &Shape::of(&stack).await, "after the up");
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", stack.artifact.as_str()]).await;
    let mutating: Vec<String> = proxy.mutating_calls().iter().map(|c| c.to_string()).collect();
    c.check(again.code == 0 && mutating.is_empty(), format!("second up: 0 mutating calls: {mutating:?}\n{again}"));
    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down: exit code", down.code, 0);
    Inventory::scan(aws).await.check_gone(&mut c, &stack.names, "down after a moved subnet");

    // ------------------------------------------------------------------ named in the config
    let pinned = account.stack_with("subnet-pin", &[("network.availability_zones", "[\"use1-az2\", \"use1-az4\"]")]);
    let deployer = pinned.via(&proxy);
    let up = deployer.run(&["up", "--artifact", pinned.artifact.as_str()]).await;
    c.eq("up with a configured zone EC2 refuses: exit code (a failed resource)", up.code, 1);
    println!("configured zone refused: {}", up.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default());
    let error = up.stderr.lines().find(|l| l.starts_with("error:")).unwrap_or_default().to_string();
    for needle in
        ["subnet-0", "us-east-1c (use1-az2)", "`network.availability_zones`", "us-east-1f", "InvalidParameterValue"]
    {
        c.check(error.contains(needle), format!("the error says {needle:?}: {error}\n{up}"));
    }
    c.eq(
        "no subnet in the refused zone",
        subnet_zones(aws, &pinned.names.stack).await.contains(&REFUSED.to_string()),
        false,
    );
    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down after the refusal: exit code", down.code, 0);
    Inventory::scan(aws).await.check_gone(&mut c, &pinned.names, "down after a refused configured zone");
    c.finish("a zone EC2 refuses subnets in");
}
