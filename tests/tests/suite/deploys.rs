//! Issue 20: versions, the alias `live`, canary and linear deploys with alarm rollback, Ctrl-C
//! during a canary, `history` and `rollback`, through the strict model (which refuses an alias'
//! routing AWS refuses, a version an alias holds being deleted, PublishVersion during an update).
//!
//! moto runs no function code: the canary's pre-traffic invocation of the new version gets the
//! answer queued in moto's `lambda-simple` responses (`queue_answers`), as a function would give
//! it. The alarms are set with CloudWatch's SetAlarmState, as CloudWatch would when a metric
//! breaches.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::StateValue;
use e2e::artifact::zip_with_bootstrap;
use e2e::chaos::Running;
use e2e::{Account, Aws, Checks, Deployer, Output, Proxy, Stack, http_request};
use serde_json::Value;

/// A canary of 2 s (fast tests), alarms on (they are what a canary watches).
const CANARY: &[(&str, &str)] = &[
    ("deploy.strategy", "\"canary\""),
    ("deploy.canary_percent", "10"),
    ("deploy.interval_seconds", "2"),
    ("alarms.enabled", "true"),
];

/// A new build of the handler, written next to the stack's config.
fn artifact(stack: &Stack, build: &str) -> String {
    let path = stack.config.with_file_name(format!("handler-{build}.zip"));
    std::fs::write(&path, zip_with_bootstrap(format!("#!/bin/sh\n# build {build}\n").as_bytes())).expect("write zip");
    path.display().to_string()
}

/// What moto's stub function answers to the next `n` invocations: the handler's answer to
/// `GET /` (405), which the pre-traffic check asks for.
async fn queue_answers(account: &Account, n: usize) {
    let answer = serde_json::json!({"statusCode": 405, "body": "{\"message\":\"Method Not Allowed\"}"}).to_string();
    let body = serde_json::json!({ "results": vec![answer; n], "region": "us-east-1" }).to_string();
    let (status, text) =
        http_request(account.moto.url(), "POST", "/moto-api/static/lambda-simple/response", Some(&body))
            .expect("moto answers");
    assert!((200..300).contains(&status), "queue moto's lambda answers: {status} {text}");
}

/// The alias `live`: (version, the canary's (version, weight)).
async fn alias(aws: &Aws, function: &str) -> Option<(String, Option<(String, f64)>)> {
    let a = aws.lambda.get_alias().function_name(function).name("live").send().await.ok()?;
    let canary = a
        .routing_config()
        .and_then(|r| r.additional_version_weights())
        .and_then(|w| w.iter().next().map(|(k, v)| (k.clone(), *v)));
    Some((a.function_version().unwrap_or_default().to_string(), canary))
}

/// The published versions (not `$LATEST`).
async fn versions(aws: &Aws, function: &str) -> Vec<String> {
    let out = aws.lambda.list_versions_by_function().function_name(function).send().await.expect("ListVersions");
    out.versions().iter().filter_map(|v| v.version()).filter(|v| *v != "$LATEST").map(str::to_string).collect()
}

async fn set_alarm(aws: &Aws, name: &str, state: StateValue) {
    aws.cloudwatch
        .set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("threshold crossed in the test")
        .send()
        .await
        .expect("SetAlarmState");
}

/// Wait until the alias routes some traffic to a canary (or the run ends).
async fn wait_for_canary(aws: &Aws, function: &str, run: &Running) -> bool {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && !run.finished() {
        if alias(aws, function).await.is_some_and(|(_, c)| c.is_some()) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// The `deploy` events of an `--output json` run: (step, version, percent).
fn deploy_steps(out: &Output) -> Vec<(String, u64, Option<u64>)> {
    out.stderr
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["event"] == "deploy")
        .map(|v| {
            (
                v["step"].as_str().unwrap_or_default().to_string(),
                v["version"].as_u64().unwrap_or(0),
                v["percent"].as_u64(),
            )
        })
        .collect()
}

fn mutating_names(proxy: &Proxy, since: usize) -> Vec<String> {
    proxy.calls()[since..].iter().filter(|c| c.mutating && !c.is_lock()).map(|c| c.name()).collect()
}

fn history(out: &Output) -> Vec<Value> {
    serde_json::from_str::<Value>(out.stdout.trim()).unwrap_or(Value::Null)["deploys"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_is_checked_shifted_watched_and_promoted_and_a_no_op_publishes_nothing() {
    let account = Account::start().await;
    let stack = account.stack_with("canary", CANARY);
    let (aws, proxy, d, f) = (&account.aws, &account.proxy, &stack.deployer, stack.names.function.as_str());
    let mut c = Checks::new();

    // The first deploy has nothing to compare with: version 1 goes live at once.
    d.run(&["up", "--artifact", &stack.artifact]).await.assert_ok();
    c.eq("after the first up: the alias", alias(aws, f).await, Some(("1".to_string(), None)));
    let api = aws.apigateway.get_rest_apis().send().await.expect("GetRestApis");
    let api_id = api
        .items()
        .iter()
        .find(|a| a.name() == Some(stack.names.stack.as_str()))
        .and_then(|a| a.id())
        .unwrap_or_default();
    let resources = aws.apigateway.get_resources().rest_api_id(api_id).send().await.expect("GetResources");
    let root = resources.items().iter().find(|r| r.path() == Some("/")).and_then(|r| r.id()).unwrap_or_default();
    let integration = aws
        .apigateway
        .get_integration()
        .rest_api_id(api_id)
        .resource_id(root)
        .http_method("ANY")
        .send()
        .await
        .expect("GetIntegration");
    c.check(
        integration.uri().is_some_and(|u| u.ends_with(&format!("function:{f}:live/invocations"))),
        format!("the API invokes the alias: {:?}", integration.uri()),
    );
    let policy = aws.lambda.get_policy().function_name(f).qualifier("live").send().await;
    c.check(
        policy.as_ref().is_ok_and(|p| p.policy().is_some_and(|p| p.contains("apigateway.amazonaws.com"))),
        format!("API Gateway may invoke the alias: {policy:?}"),
    );

    // New code: pre-traffic check, 10 % for the interval, watched, then all of it.
    queue_answers(&account, 1).await;
    let v2 = artifact(&stack, "2");
    let out = d.run(&["--output", "json", "up", "--artifact", &v2]).await;
    c.eq(&format!("canary up exits 0:\n{out}"), out.code, 0);
    let steps = deploy_steps(&out);
    let names: Vec<&str> = steps.iter().map(|(s, _, _)| s.as_str()).collect();
    c.check(
        names.first() == Some(&"published")
            && names.contains(&"pre_traffic")
            && names.contains(&"shifted")
            && names.contains(&"watching")
            && names.last() == Some(&"promoted"),
        format!("the canary's steps in order: {names:?}"),
    );
    c.check(
        steps.iter().any(|(s, v, p)| s == "shifted" && *v == 2 && *p == Some(10)),
        format!("10% to version 2: {steps:?}"),
    );
    c.eq("after the canary: the alias", alias(aws, f).await, Some(("2".to_string(), None)));

    // A no-op: no version published, nothing changed.
    let before = proxy.calls().len();
    let again = d.run(&["up", "--artifact", &v2]).await;
    c.eq(&format!("no-op up exits 0:\n{again}"), again.code, 0);
    c.eq("a no-op up's mutating calls", mutating_names(proxy, before), Vec::<String>::new());
    c.eq("versions after the no-op", versions(aws, f).await, vec!["1".to_string(), "2".to_string()]);

    // A linear deploy: 50 % steps of 1 s.
    let linear = [("deploy.strategy", "\"linear\""), ("deploy.canary_percent", "50"), ("deploy.interval_seconds", "1")];
    e2e::write_config_file(&stack.config, &stack.names, &[CANARY, &linear[..]].concat());
    queue_answers(&account, 1).await;
    let v3 = artifact(&stack, "3");
    let out = d.run(&["--output", "json", "up", "--artifact", &v3]).await;
    c.eq(&format!("linear up exits 0:\n{out}"), out.code, 0);
    let shifted: Vec<Option<u64>> =
        deploy_steps(&out).iter().filter(|(s, _, _)| s == "shifted").map(|(_, _, p)| *p).collect();
    c.eq("linear: one 50% step, then promoted", shifted, vec![Some(50)]);
    c.eq("after the linear deploy: the alias", alias(aws, f).await, Some(("3".to_string(), None)));
    c.finish("a_canary_is_checked_shifted_watched_and_promoted_and_a_no_op_publishes_nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_mid_canary_rolls_back_then_rollback_and_history_tell_what_is_live() {
    let account = Account::start().await;
    let long = [("deploy.interval_seconds", "60")];
    let stack = account.stack_with("rollback", &[CANARY, &long[..]].concat());
    let (aws, d, f, s) = (&account.aws, &stack.deployer, stack.names.function.as_str(), stack.names.stack.as_str());
    let mut c = Checks::new();
    d.run(&["up", "--artifact", &stack.artifact]).await.assert_ok();

    // The function's errors alarm fires while 10 % goes to version 2.
    queue_answers(&account, 1).await;
    let v2 = artifact(&stack, "2");
    let run = Running::spawn(d, &["up", "--artifact", &v2]);
    c.check(wait_for_canary(aws, f, &run).await, format!("the canary started:\n{}", run.stderr_now()));
    let started = Instant::now();
    set_alarm(aws, &format!("{s}-function-errors"), StateValue::Alarm).await;
    let out = run.wait().await;
    println!("the canary rolled back by its alarm:\n{}", out.stderr);
    c.check(
        started.elapsed() < Duration::from_secs(30),
        format!("rolled back at the alarm, not after 60 s: {:?}", started.elapsed()),
    );
    c.eq(&format!("a rolled back up fails:\n{out}"), out.code, 1);
    c.check(
        out.stderr.contains(&format!("ROLLED BACK version 2: alarm {s}-function-errors is in ALARM")),
        format!("says why:\n{out}"),
    );
    c.eq("after the rollback: the alias", alias(aws, f).await, Some(("1".to_string(), None)));
    set_alarm(aws, &format!("{s}-function-errors"), StateValue::Ok).await;

    // A bad deploy that went live (its alarm came later): `rollback` points back in one call.
    let quick = [("deploy.interval_seconds", "1")];
    e2e::write_config_file(&stack.config, &stack.names, &[CANARY, &quick[..]].concat());
    queue_answers(&account, 1).await;
    let v3 = artifact(&stack, "3");
    d.run(&["up", "--artifact", &v3]).await.assert_ok();
    c.eq("version 3 is live", alias(aws, f).await.map(|a| a.0), Some("3".to_string()));
    let before = account.proxy.calls().len();
    let back = d.run(&["--output", "json", "rollback"]).await;
    c.eq(&format!("rollback exits 0:\n{back}"), back.code, 0);
    c.eq("rollback: one UpdateAlias", mutating_names(&account.proxy, before), vec!["lambda UpdateAlias".to_string()]);
    let said: Value = serde_json::from_str(back.stdout.trim()).unwrap_or(Value::Null);
    c.eq("rollback says what is live", (said["live"].as_u64(), said["from"].as_str()), (Some(1), Some("3")));
    c.eq("after rollback: the alias", alias(aws, f).await, Some(("1".to_string(), None)));

    let h = d.run(&["--output", "json", "history"]).await;
    let rows: Vec<(u64, String)> = history(&h)
        .iter()
        .map(|r| (r["version"].as_u64().unwrap_or(0), r["status"].as_str().unwrap_or("").to_string()))
        .collect();
    c.eq(
        &format!("history after the rollbacks:\n{h}"),
        rows,
        vec![(3, "rolled back".to_string()), (2, "rolled back".to_string()), (1, "live".to_string())],
    );
    let to_missing = d.run(&["rollback", "--to", "9"]).await;
    c.check(
        to_missing.code == 3 && to_missing.stderr.contains("--to 9"),
        format!("--to an unknown version:\n{to_missing}"),
    );
    c.finish("an_alarm_mid_canary_rolls_back_then_rollback_and_history_tell_what_is_live");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_canary_rolls_back_and_the_next_up_deploys_again() {
    let account = Account::start().await;
    let long = [("deploy.interval_seconds", "60")];
    let stack = account.stack_with("canary-int", &[CANARY, &long[..]].concat());
    let (aws, d, f) = (&account.aws, &stack.deployer, stack.names.function.as_str());
    let mut c = Checks::new();
    d.run(&["up", "--artifact", &stack.artifact]).await.assert_ok();

    queue_answers(&account, 2).await;
    let v2 = artifact(&stack, "2");
    let run = Running::spawn(d, &["up", "--artifact", &v2]);
    c.check(wait_for_canary(aws, f, &run).await, format!("the canary started:\n{}", run.stderr_now()));
    run.signal("INT");
    let out = run.wait().await;
    c.eq(&format!("exit after Ctrl-C:\n{out}"), out.code, 130);
    c.check(out.stderr.contains("ROLLED BACK version 2: interrupted (Ctrl-C)"), format!("says it rolled back:\n{out}"));
    c.eq("after Ctrl-C: the alias", alias(aws, f).await, Some(("1".to_string(), None)));

    // The next up deploys the same version again (no second PublishVersion).
    let short = [("deploy.interval_seconds", "1")];
    e2e::write_config_file(&stack.config, &stack.names, &[CANARY, &short[..]].concat());
    let before = account.proxy.calls().len();
    d.run(&["up", "--artifact", &v2]).await.assert_ok();
    let published = mutating_names(&account.proxy, before).iter().filter(|n| *n == "lambda PublishVersion").count();
    c.eq("the next up reuses version 2", published, 0);
    c.eq("then the alias", alias(aws, f).await, Some(("2".to_string(), None)));
    c.finish("ctrl_c_during_a_canary_rolls_back_and_the_next_up_deploys_again");
}

/// Credentials of another caller: a role assumed through moto's STS.
async fn other_caller(account: &Account) -> Vec<(String, String)> {
    let role = account
        .aws
        .iam
        .create_role()
        .role_name("deployer-b")
        .assume_role_policy_document(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"sts:AssumeRole"}]}"#)
        .send()
        .await
        .expect("CreateRole");
    let arn = role.role().map(|r| r.arn().to_string()).unwrap_or_default();
    let sts = aws_sdk_sts::Client::new(&e2e::sdk_config(account.moto.url(), 3).await);
    let creds = sts.assume_role().role_arn(arn).role_session_name("bob").send().await.expect("AssumeRole");
    let c = creds.credentials().expect("credentials");
    vec![
        ("AWS_ACCESS_KEY_ID".into(), c.access_key_id().to_string()),
        ("AWS_SECRET_ACCESS_KEY".into(), c.secret_access_key().to_string()),
        ("AWS_SESSION_TOKEN".into(), c.session_token().to_string()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_five_deploys_by_two_callers_and_old_versions_are_pruned() {
    let account = Account::start().await;
    // Each caller's own credentials (not the config's dummy ones).
    let own_credentials = ("aws.dummy_credentials", "false");
    let stack = account.stack_with("history", &[("deploy.keep_versions", "5"), own_credentials]);
    let (aws, f) = (&account.aws, stack.names.function.as_str());
    let mut c = Checks::new();
    let alice = stack.deployer.clone();
    let mut bob: Deployer = stack.deployer.clone();
    bob.env.extend(other_caller(&account).await);

    for n in 1..=5 {
        let who = if n % 2 == 1 { &alice } else { &bob };
        let zip = if n == 1 { stack.artifact.clone() } else { artifact(&stack, &n.to_string()) };
        who.run(&["up", "--artifact", &zip]).await.assert_ok();
    }
    let h = alice.run(&["--output", "json", "history"]).await;
    let rows = history(&h);
    let got: Vec<(u64, String, bool)> = rows
        .iter()
        .map(|r| {
            let by = r["by"].as_str().unwrap_or_default();
            (
                r["version"].as_u64().unwrap_or(0),
                r["status"].as_str().unwrap_or("").to_string(),
                by.contains("assumed-role/deployer-b/bob"),
            )
        })
        .collect();
    let want: Vec<(u64, String, bool)> =
        (1..=5).rev().map(|n| (n, if n == 5 { "live" } else { "superseded" }.to_string(), n % 2 == 0)).collect();
    c.eq(&format!("history: newest first, who deployed each:\n{h}"), got, want);
    c.check(
        rows.iter().all(|r| {
            r["code_sha256"].as_str().is_some_and(|s| s.len() == 44)
                && r["at"].as_u64().is_some()
                && r["config_hash"].is_string()
        }),
        format!("each row has its code, time and config hash: {rows:?}"),
    );
    let human = alice.run(&["history"]).await;
    c.check(human.stdout.contains("VERSION") && human.stdout.contains("live"), format!("history as a table:\n{human}"));

    // keep_versions = 2: the three oldest go (the live one is kept).
    e2e::write_config_file(&stack.config, &stack.names, &[("deploy.keep_versions", "2"), own_credentials]);
    let plan = alice.run(&["plan", "--artifact", &artifact(&stack, "5")]).await;
    c.check(plan.stdout.contains("versions"), format!("plan shows the pruning:\n{plan}"));
    alice.run(&["up", "--artifact", &artifact(&stack, "5")]).await.assert_ok();
    c.eq("versions kept", versions(aws, f).await, vec!["4".to_string(), "5".to_string()]);
    c.finish("history_lists_five_deploys_by_two_callers_and_old_versions_are_pruned");
}
