//! Issue 10, part A: the stack's CloudWatch alarms, the function's reserved concurrency and the
//! stage's method throttling, against moto through the strict model.
//!
//! Everything is read back through the SDK straight from moto (CloudWatch through the RPC v2
//! CBOR <-> JSON bridge, `e2e::cbor`: the SDK speaks CBOR, moto JSON). Changes "behind our back"
//! are made the same way, as someone with the console would.

use aws_sdk_apigateway::types::{Op, PatchOperation};
use aws_sdk_cloudwatch::types::MetricAlarm;
use aws_sdk_lambda::error::ProvideErrorMetadata;
use e2e::inventory::{Inventory, Shape};
use e2e::proxy::count_by_name;
use e2e::{
    Account, Aws, Behaviour, Checks, Deployer, Moto, Output, Proxy, REMOVE, Rule, Stack, StackNames, TempDir,
    write_config_file,
};
use serde_json::Value;

const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:ops-alerts";
/// The stack's config beyond the base one: a topic, a latency bound, the seed's stage throttle.
const CONFIG: &[(&str, &str)] = &[
    ("alarms.sns_topic_arn", "\"arn:aws:sns:us-east-1:123456789012:ops-alerts\""),
    ("alarms.latency_p99_ms", "1800"),
    ("api.throttle_rate", "100.0"),
    ("api.throttle_burst", "200"),
];

/// The five alarms this test specifies (docs/config.md, "The alarms"): resource `alarm-{what}`, named
/// `{stack}-{what}`.
const ALARMS: [&str; 5] = ["function-errors", "function-throttles", "concurrent-executions", "api-5xx", "api-latency"];

/// The stack's alarms on the server, by name.
async fn stack_alarms(aws: &Aws, stack: &str) -> Vec<MetricAlarm> {
    let pages: Vec<_> = aws
        .cloudwatch
        .describe_alarms()
        .alarm_name_prefix(format!("{stack}-"))
        .into_paginator()
        .send()
        .try_collect()
        .await
        .expect("DescribeAlarms");
    pages.iter().flat_map(|p| p.metric_alarms().to_vec()).collect()
}

fn find<'a>(alarms: &'a [MetricAlarm], name: &str) -> Option<&'a MetricAlarm> {
    alarms.iter().find(|a| a.alarm_name() == Some(name))
}

/// The same alarm with another threshold, put straight into moto (PutMetricAlarm overwrites
/// the whole configuration, so everything else is sent as it is).
async fn put_with_threshold(aws: &Aws, a: &MetricAlarm, threshold: f64) {
    aws.cloudwatch
        .put_metric_alarm()
        .alarm_name(a.alarm_name().unwrap_or_default())
        .namespace(a.namespace().unwrap_or_default())
        .metric_name(a.metric_name().unwrap_or_default())
        .set_dimensions(Some(a.dimensions().to_vec()))
        .set_statistic(a.statistic().cloned())
        .set_extended_statistic(a.extended_statistic().map(str::to_string))
        .set_period(a.period())
        .set_evaluation_periods(a.evaluation_periods())
        .threshold(threshold)
        .set_comparison_operator(a.comparison_operator().cloned())
        .set_treat_missing_data(a.treat_missing_data().map(str::to_string))
        .set_alarm_actions(Some(a.alarm_actions().to_vec()))
        .set_ok_actions(Some(a.ok_actions().to_vec()))
        .send()
        .await
        .expect("PutMetricAlarm behind the stack's back");
}

/// The id of the REST API named `name`.
async fn api_id(aws: &Aws, name: &str) -> String {
    let apis = aws.apigateway.get_rest_apis().send().await.expect("GetRestApis");
    apis.items().iter().find(|a| a.name() == Some(name)).and_then(|a| a.id()).unwrap_or_default().to_string()
}

/// The stage's `*/*` (rate, burst).
async fn stage_throttle(aws: &Aws, api: &str) -> Option<(f64, i32)> {
    let stage = aws.apigateway.get_stage().rest_api_id(api).stage_name("prod").send().await.expect("GetStage");
    stage.method_settings().and_then(|m| m.get("*/*")).map(|s| (s.throttling_rate_limit(), s.throttling_burst_limit()))
}

fn mutating(proxy: &Proxy) -> Vec<String> {
    let mut names: Vec<String> = proxy.mutating_calls().iter().map(|c| c.name()).collect();
    names.sort();
    names
}

fn json_of(c: &mut Checks, what: &str, out: &Output) -> Value {
    let v: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    c.check(!v.is_null(), format!("{what}: stdout is JSON:\n{out}"));
    v
}

/// A row of `status --output json` / `plan --output json` by resource id.
fn row<'a>(json: &'a Value, id: &str) -> &'a Value {
    json["resources"].as_array().and_then(|rows| rows.iter().find(|r| r["id"] == id)).unwrap_or(&Value::Null)
}

/// One alarm as it must be: (what, namespace, metric, dimensions, statistic, evaluation periods,
/// threshold, comparison).
type Want<'a> = (&'a str, &'a str, &'a str, &'a [(&'a str, &'a str)], &'a str, i32, f64, &'a str);

fn rewrite(stack: &Stack, overrides: &[(&str, &str)]) {
    write_config_file(&stack.config, &stack.names, overrides);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alarms_and_stage_throttling_are_made_read_back_drift_fixed_turned_off_and_removed() {
    let account = Account::start().await;
    let stack = account.stack_with("alarms", CONFIG);
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let s = n.stack.as_str();
    let shape = Shape::of(&stack).await;
    let mut c = Checks::new();

    // ------------------------------------------------------------------ 1. up creates them
    // CloudWatch throttles twice on the way (its code is `Throttling`): the error reaches the SDK
    // in CBOR through the bridge, and the SDK's retries outlast it.
    proxy.add_rule(
        Rule::new().service("monitoring").operation("PutMetricAlarm").fail(400, "Throttling", "Rate exceeded").times(2),
    );
    let (_, up) = deployer.up_json(&["--artifact", art]).await;
    c.eq("up: throttled PutMetricAlarm calls", proxy.rule_hits(), [2]);
    proxy.clear_rules();
    for what in ALARMS {
        c.eq(&format!("up: alarm-{what}"), up["resources"][format!("alarm-{what}")].as_str(), Some("created"));
    }
    let created = count_by_name(&proxy.calls());
    c.eq("up: one PutMetricAlarm per alarm, and 2 retries", created.get("monitoring PutMetricAlarm").copied(), Some(7));
    let alarms = stack_alarms(aws, s).await;
    c.eq("alarms of the stack on the server", alarms.len(), 5);
    let function = [("FunctionName", n.function.as_str())];
    // Errors and throttles of what the API invokes: the alias `live`.
    let alias_name = format!("{}:live", n.function);
    let alias = [("FunctionName", n.function.as_str()), ("Resource", alias_name.as_str())];
    let api = [("ApiName", shape.name_of("api")), ("Stage", "prod")];
    let want: [Want; 5] = [
        ("function-errors", "AWS/Lambda", "Errors", &alias, "Sum", 1, 0.0, "GreaterThanThreshold"),
        ("function-throttles", "AWS/Lambda", "Throttles", &alias, "Sum", 1, 0.0, "GreaterThanThreshold"),
        (
            "concurrent-executions",
            "AWS/Lambda",
            "ConcurrentExecutions",
            &function,
            "Maximum",
            2,
            80.0,
            "GreaterThanOrEqualToThreshold",
        ),
        ("api-5xx", "AWS/ApiGateway", "5XXError", &api, "Sum", 1, 0.0, "GreaterThanThreshold"),
        ("api-latency", "AWS/ApiGateway", "Latency", &api, "p99", 1, 1800.0, "GreaterThanThreshold"),
    ];
    for (what, namespace, metric, dims, stat, periods, threshold, comparison) in want {
        let name = shape.name_of(&format!("alarm-{what}"));
        let Some(a) = find(&alarms, name) else {
            c.check(false, format!("alarm {name} exists"));
            continue;
        };
        c.eq(&format!("{name}: namespace"), a.namespace(), Some(namespace));
        c.eq(&format!("{name}: metric"), a.metric_name(), Some(metric));
        let mut got: Vec<(String, String)> = a
            .dimensions()
            .iter()
            .map(|d| (d.name().unwrap_or_default().to_string(), d.value().unwrap_or_default().to_string()))
            .collect();
        got.sort();
        let dims: Vec<(String, String)> = dims.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        c.eq(&format!("{name}: dimensions"), got, dims);
        let got_stat = a.extended_statistic().map(str::to_string).or(a.statistic().map(|x| x.as_str().to_string()));
        c.eq(&format!("{name}: statistic"), got_stat.as_deref(), Some(stat));
        c.eq(&format!("{name}: period"), a.period(), Some(300));
        c.eq(&format!("{name}: evaluation periods"), a.evaluation_periods(), Some(periods));
        c.eq(&format!("{name}: threshold"), a.threshold(), Some(threshold));
        c.eq(&format!("{name}: comparison"), a.comparison_operator().map(|x| x.as_str()), Some(comparison));
        c.eq(&format!("{name}: missing data"), a.treat_missing_data(), Some("notBreaching"));
        c.eq(&format!("{name}: alarm actions"), a.alarm_actions(), [TOPIC.to_string()]);
        c.eq(&format!("{name}: OK actions"), a.ok_actions(), [TOPIC.to_string()]);
        let tags = aws.cloudwatch.list_tags_for_resource().resource_arn(a.alarm_arn().unwrap_or_default()).send().await;
        let mut tags: Vec<(String, String)> = tags
            .expect("ListTagsForResource")
            .tags()
            .iter()
            .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
            .collect();
        tags.sort();
        c.eq(
            &format!("{name}: tags"),
            tags,
            vec![
                ("movies-stack:resource".to_string(), format!("alarm-{what}")),
                ("movies-stack:stack".to_string(), s.to_string()),
            ],
        );
    }
    let api_id = api_id(aws, shape.name_of("api")).await;
    c.eq("stage throttling read back", stage_throttle(aws, &api_id).await, Some((100.0, 200)));
    Inventory::scan(aws).await.check_converged(&mut c, &shape, "after up");

    // `status` shows each alarm's state (moto starts alarms in OK, AWS in INSUFFICIENT_DATA).
    let st = deployer.run(&["--output", "json", "status"]).await;
    c.eq("status: exit code", st.code, 0);
    let json = json_of(&mut c, "status", &st);
    for what in ALARMS {
        let id = format!("alarm-{what}");
        c.eq(&format!("status json: {id} present"), row(&json, &id)["state"].as_str(), Some("present"));
        c.eq(&format!("status json: {id} state"), json["health"][&id]["state"].as_str(), Some("OK"));
    }
    let st = deployer.run(&["status"]).await;
    let line = st.stdout.lines().find(|l| l.contains("alarm-concurrent-executions")).unwrap_or_default();
    c.check(line.contains("present") && line.ends_with("state=OK"), format!("status: the alarm's line: {line:?}"));
    // The SDK's CBOR, bridged to JSON, is validated against CloudWatch's model like any call.
    for op in ["DescribeAlarms", "ListTagsForResource", "PutMetricAlarm"] {
        let stats = proxy.model_operations().into_iter().find(|o| o.service == "monitoring" && o.operation == op);
        c.check(
            stats.as_ref().is_some_and(|o| o.validated == o.calls && o.calls > 0),
            format!("CloudWatch {op}: every call validated by the strict model: {stats:?}"),
        );
    }

    // ------------------------------------------------------------------ 2. drift, behind our back
    let latency = find(&alarms, shape.name_of("alarm-api-latency")).cloned().expect("latency alarm");
    put_with_threshold(aws, &latency, 9999.0).await;
    aws.apigateway
        .update_stage()
        .rest_api_id(&api_id)
        .stage_name("prod")
        .patch_operations(
            PatchOperation::builder().op(Op::Replace).path("/*/*/throttling/burstLimit").value("50").build(),
        )
        .send()
        .await
        .expect("UpdateStage behind the stack's back");

    proxy.reset();
    let plan = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
    c.eq("plan after drift: exit code (changes)", plan.code, 2);
    let json = json_of(&mut c, "plan", &plan);
    let latency_row = row(&json, "alarm-api-latency");
    c.eq("plan: the latency alarm is updated", latency_row["action"].as_str(), Some("update"));
    c.eq(
        "plan: its change",
        latency_row["changes"].clone(),
        serde_json::json!([{"field": "threshold", "desired": "1800", "live": "9999", "replace": false}]),
    );
    c.eq("plan: the stage is updated", row(&json, "stage")["action"].as_str(), Some("update"));
    c.eq("plan: the stage's change", row(&json, "stage")["changes"][0]["live"].as_str(), Some("100 rps, burst 50"));
    c.eq("plan: nothing else", json["summary"]["update"].as_u64(), Some(2));
    c.eq("plan: no mutating call", mutating(proxy), Vec::<String>::new());
    let st = deployer.run(&["--output", "json", "status"]).await;
    c.eq("status after drift: exit code", st.code, 2);
    let json = json_of(&mut c, "status", &st);
    c.eq("status: the latency alarm drifted", row(&json, "alarm-api-latency")["state"].as_str(), Some("drifted"));
    c.eq("status: its drift", row(&json, "alarm-api-latency")["drift"][0]["field"].as_str(), Some("threshold"));
    c.eq("status: the stage drifted", row(&json, "stage")["state"].as_str(), Some("drifted"));
    c.eq("status: the other alarms", row(&json, "alarm-api-5xx")["state"].as_str(), Some("present"));

    proxy.reset();
    let fix = deployer.run(&["up", "--artifact", art]).await;
    c.eq("up after drift: exit code", fix.code, 0);
    c.eq(
        "up after drift: one PutMetricAlarm and one UpdateStage",
        mutating(proxy),
        ["apigateway UpdateStage", "monitoring PutMetricAlarm"],
    );
    let alarms = stack_alarms(aws, s).await;
    c.eq(
        "after the fix: the threshold",
        find(&alarms, shape.name_of("alarm-api-latency")).and_then(|a| a.threshold()),
        Some(1800.0),
    );
    c.eq("after the fix: the stage's throttle", stage_throttle(aws, &api_id).await, Some((100.0, 200)));
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("second up: exit code", again.code, 0);
    c.eq("second up: mutating calls", mutating(proxy), Vec::<String>::new());

    // ------------------------------------------------------------------ 3. [alarms] enabled = false
    let off: Vec<(&str, &str)> = CONFIG.iter().copied().chain([("alarms.enabled", "false")]).collect();
    rewrite(&stack, &off);
    let plan = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
    c.eq("plan, alarms off: exit code", plan.code, 2);
    let json = json_of(&mut c, "plan, alarms off", &plan);
    c.eq("plan, alarms off: deletes", json["summary"]["delete"].as_u64(), Some(5));
    c.eq("plan, alarms off: the rest unchanged", json["summary"]["update"].as_u64(), Some(0));
    proxy.reset();
    let up_off = deployer.run(&["up", "--artifact", art]).await;
    c.eq("up, alarms off: exit code", up_off.code, 0);
    c.eq("up, alarms off: mutating calls", mutating(proxy), vec!["monitoring DeleteAlarms"; 5]);
    c.eq("up, alarms off: alarms left", stack_alarms(aws, s).await.len(), 0);
    let st = deployer.run(&["--output", "json", "status"]).await;
    c.eq("status, alarms off: in sync", st.code, 0);
    let json = json_of(&mut c, "status, alarms off", &st);
    c.eq("status, alarms off: the alarm rows", row(&json, "alarm-api-5xx")["state"].as_str(), Some("off"));
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("second up, alarms off: exit code", again.code, 0);
    c.eq("second up, alarms off: mutating calls", mutating(proxy), Vec::<String>::new());

    // ------------------------------------------------------------------ 4. back on, then down
    rewrite(&stack, CONFIG);
    proxy.reset();
    let on = deployer.run(&["up", "--artifact", art]).await;
    c.eq("up, alarms on again: exit code", on.code, 0);
    c.eq("up, alarms on again: mutating calls", mutating(proxy), vec!["monitoring PutMetricAlarm"; 5]);
    let down = deployer.run(&["down", "--yes"]).await;
    c.eq("down: exit code", down.code, 0);
    c.eq("down: alarms left", stack_alarms(aws, s).await.len(), 0);
    Inventory::scan(aws).await.check_gone(&mut c, n, "after down");
    if !c.failed().is_empty() {
        println!("{fix}\n{down}");
    }
    c.finish("alarms");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_is_set_and_read_back_and_refused_before_any_change_on_a_small_account() {
    let account = Account::start().await;
    let stack = account.stack_with("concurrency", &[("function.reserved_concurrency", "5")]);
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    let reserved = |aws: &Aws| {
        let (aws, f) = (aws.clone(), n.function.clone());
        async move {
            let out = aws.lambda.get_function_concurrency().function_name(f).send().await;
            out.expect("GetFunctionConcurrency").reserved_concurrent_executions()
        }
    };

    // ------------------------------------------------------------------ 1. a new account: 10
    // The same moto, seen as an account whose concurrency limit is 10 (new accounts start there).
    let small = Proxy::builder(account.moto.url()).lambda_concurrency_limit(10).start();
    let refused = stack.via(&small).run(&["up", "--artifact", art]).await;
    c.eq("limit 10: exit code (input error)", refused.code, 3);
    let file = stack.config.file_name().and_then(|f| f.to_str()).unwrap_or_default().to_string();
    for needle in [
        file.as_str(),
        "key `function.reserved_concurrency`",
        "reserving 5 concurrent executions",
        "leave the account 5 unreserved, below Lambda's minimum of 10",
        "below its minimum value of [10]",
        "Nothing was changed",
    ] {
        c.check(refused.stderr.contains(needle), format!("limit 10: the error says {needle:?}:\n{refused}"));
    }
    c.eq("limit 10: mutating calls", mutating(&small), Vec::<String>::new());
    let asked = small.calls().iter().filter(|call| call.operation == "GetAccountSettings").count();
    c.eq("limit 10: GetAccountSettings asked once", asked, 1);
    c.eq("limit 10: nothing was made", Inventory::scan(aws).await.leftovers(&Shape::of(&stack).await).len(), 0);

    // ------------------------------------------------------------------ 2. a standard account
    let (_, up) = deployer.up_json(&["--artifact", art]).await;
    c.eq("up: the function", up["resources"]["function"].as_str(), Some("created"));
    c.eq("up: reserved concurrency read back", reserved(aws).await, Some(5));
    // Lambda refuses it while the function is Pending (the strict model's lambda-states): sent
    // once, after the function became Active.
    let puts: Vec<String> =
        proxy.calls().iter().filter(|call| call.operation == "PutFunctionConcurrency").map(|c| c.to_string()).collect();
    c.eq("up: PutFunctionConcurrency once, when Active", puts, ["lambda PutFunctionConcurrency (mutating) -> 200"]);
    let st = deployer.run(&["--output", "json", "status"]).await;
    let json = json_of(&mut c, "status", &st);
    c.eq("status: in sync", st.code, 0);
    c.eq("status: the function's reservation", json["health"]["function"]["reserved_concurrency"].as_str(), Some("5"));

    // What Lambda answers that small account without the check: the model, as AWS.
    let through_small = Aws::new(small.url()).await;
    let put =
        through_small.lambda.put_function_concurrency().function_name(&n.function).reserved_concurrent_executions(5);
    match put.send().await {
        Ok(_) => c.check(false, "limit 10: PutFunctionConcurrency(5) was accepted"),
        Err(e) => {
            c.eq("limit 10: Lambda's error code", e.code(), Some("InvalidParameterValueException"));
            c.eq(
                "limit 10: Lambda's message",
                e.message(),
                Some(
                    "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [10].",
                ),
            )
        }
    };
    let settings = through_small.lambda.get_account_settings().send().await.expect("GetAccountSettings");
    let limit = settings.account_limit();
    c.eq(
        "limit 10: GetAccountSettings",
        limit.map(|l| (l.concurrent_executions(), l.unreserved_concurrent_executions())),
        Some((10, Some(10))),
    );
    c.check(
        small.model_hits().get(&Behaviour::LambdaConcurrency).is_some_and(|n| *n >= 3),
        format!("the model answered GetAccountSettings and refused: {:?}", small.model_hits()),
    );

    // ------------------------------------------------------------------ 3. changed, then removed
    rewrite(&stack, &[("function.reserved_concurrency", "8")]);
    proxy.reset();
    let more = deployer.run(&["up", "--artifact", art]).await;
    c.eq("reserve 8: exit code", more.code, 0);
    c.eq("reserve 8: mutating calls", mutating(proxy), ["lambda PutFunctionConcurrency"]);
    c.eq("reserve 8: read back", reserved(aws).await, Some(8));
    proxy.reset();
    let again = deployer.run(&["up", "--artifact", art]).await;
    c.eq("reserve 8 again: exit code", again.code, 0);
    c.eq("reserve 8 again: mutating calls", mutating(proxy), Vec::<String>::new());
    rewrite(&stack, &[("function.reserved_concurrency", REMOVE)]);
    proxy.reset();
    let none = deployer.run(&["up", "--artifact", art]).await;
    c.eq("no reservation: exit code", none.code, 0);
    c.eq("no reservation: mutating calls", mutating(proxy), ["lambda DeleteFunctionConcurrency"]);
    c.eq("no reservation: read back", reserved(aws).await, None);
    c.eq(
        "no reservation: GetAccountSettings no longer asked",
        proxy.calls().iter().filter(|call| call.operation == "GetAccountSettings").count(),
        0,
    );
    c.finish("reserved concurrency");
}

/// moto without the proxy, as `scripts/demo.sh` runs it: it does not speak the SDK's CloudWatch
/// protocol (RPC v2 CBOR) and answers every CloudWatch call with a bare 404. Alarms turned off
/// are then simply absent; turned on, they fail with a message that says why and what to do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_moto_serves_no_cloudwatch_alarms_off_are_absent_and_on_are_explained() {
    let moto = Moto::start();
    let dir = TempDir::new("plainmoto");
    let n = StackNames::unique("plainmoto");
    let mut c = Checks::new();
    let rows = |json: &Value, state: &str| -> Vec<String> {
        json["resources"]
            .as_array()
            .map(|rows| {
                rows.iter().filter(|r| r["state"] == state).filter_map(|r| r["id"].as_str().map(str::to_string))
            })
            .into_iter()
            .flatten()
            .collect()
    };
    let alarm_ids: Vec<String> = ALARMS.iter().map(|what| format!("alarm-{what}")).collect();

    let off = write_config_file(&dir.path().join("off.toml"), &n, &[("alarms.enabled", "false")]);
    let st = Deployer::with(&off, moto.url()).run(&["--output", "json", "status"]).await;
    c.eq("alarms off: exit code (nothing deployed: missing, no error)", st.code, 2);
    let json = json_of(&mut c, "alarms off", &st);
    // The base config turns the web ACL off too.
    let off_alarms: Vec<String> = rows(&json, "off").into_iter().filter(|id| id.starts_with("alarm-")).collect();
    c.eq("alarms off: the alarms are off", off_alarms, alarm_ids.clone());
    c.eq("alarms off: errors", rows(&json, "error"), Vec::<String>::new());

    let on = write_config_file(&dir.path().join("on.toml"), &n, &[]);
    let st = Deployer::with(&on, moto.url()).run(&["--output", "json", "status"]).await;
    c.eq("alarms on: exit code (errors)", st.code, 1);
    let json = json_of(&mut c, "alarms on", &st);
    c.eq("alarms on: the alarms cannot be read", rows(&json, "error"), alarm_ids);
    let error = row(&json, "alarm-api-latency")["error"].as_str().unwrap_or_default().to_string();
    for needle in ["CloudWatch DescribeAlarms failed (HTTP 404)", "RPC v2 CBOR", "`[alarms] enabled = false`"] {
        c.check(error.contains(needle), format!("alarms on: the error says {needle:?}: {error}"));
    }
    c.finish("plain moto");
}
