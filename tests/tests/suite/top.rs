//! Issue 22 (part 2), `movies-stack top`: the dashboard against moto through the strict model.
//!
//! One stack is deployed (the shared fixture), then known values are put into CloudWatch
//! THROUGH the proxy (PutMetricData with the stack's own namespaces, metric names and
//! dimensions, several values per minute for the percentiles, plus a decoy without the alias'
//! dimension), and one alarm is set to ALARM (SetAlarmState, straight into moto, as CloudWatch
//! would). The strict model answers GetMetricData from those values (`cloudwatch-metrics`:
//! moto computes no percentile).
//!
//! - `top --once --output json` reports exactly those values, the alarms' states, the keys' quotas
//!   and the reservation; the proxy's recording shows that the refresh made exactly ONE
//!   GetMetricData and ONE DescribeAlarms.
//! - `top --once` and `top` with a stdout that is not a terminal print the same snapshot as text.
//! - The live dashboard in tmux at 100×30: after a refresh the screen shows the boxes' labels, the
//!   numbers, the alarm's state and sparkline bars; `q` ends it with exit 0 and the terminal back
//!   as it was (the alternate screen left, raw mode off).

use std::path::Path;
use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{Dimension, MetricDatum, StateValue};
use e2e::proxy::{count_by_name, rest_operation};
use e2e::{Account, Aws, Behaviour, Checks, Rule, Stack};
use serde_json::{Value, json};

fn dim(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// `values` for one metric at `t` (seconds since the epoch), through `aws`.
async fn put(aws: &Aws, namespace: &str, metric: &str, dims: &[Dimension], t: i64, values: &[f64]) {
    let datum = MetricDatum::builder()
        .metric_name(metric)
        .set_dimensions(Some(dims.to_vec()))
        .timestamp(aws_smithy_types::DateTime::from_secs(t))
        .set_values(Some(values.to_vec()))
        .build();
    aws.cloudwatch
        .put_metric_data()
        .namespace(namespace)
        .metric_data(datum)
        .send()
        .await
        .unwrap_or_else(|e| panic!("PutMetricData {namespace} {metric}: {e:?}"));
}

/// The stack's metrics, two minutes ago, as API Gateway, Lambda and DynamoDB would publish them.
async fn put_the_stacks_metrics(aws: &Aws, stack: &Stack) {
    let n = &stack.names;
    let t = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64 / 60 - 2)
        * 60
        + 10;
    let api = [dim("ApiName", &n.stack), dim("Stage", "prod")];
    let alias = [dim("FunctionName", &n.function), dim("Resource", &format!("{}:live", n.function))];
    let function = [dim("FunctionName", &n.function)];
    let table = [dim("TableName", &n.table)];
    let latency: Vec<f64> = (1..=100).map(f64::from).collect();
    let duration: Vec<f64> = (10..=19).map(f64::from).collect();
    put(aws, "AWS/ApiGateway", "Count", &api, t, &[1.0; 5]).await;
    put(aws, "AWS/ApiGateway", "4XXError", &api, t, &[1.0, 1.0, 0.0, 0.0, 0.0]).await;
    put(aws, "AWS/ApiGateway", "5XXError", &api, t, &[1.0, 0.0, 0.0, 0.0, 0.0]).await;
    put(aws, "AWS/ApiGateway", "Latency", &api, t, &latency).await;
    put(aws, "AWS/Lambda", "Invocations", &alias, t, &[1.0, 1.0, 1.0]).await;
    // The function's invocations of every version: not what the API invokes.
    put(aws, "AWS/Lambda", "Invocations", &function, t, &[100.0]).await;
    put(aws, "AWS/Lambda", "Errors", &alias, t, &[1.0]).await;
    put(aws, "AWS/Lambda", "Throttles", &alias, t, &[2.0]).await;
    put(aws, "AWS/Lambda", "Duration", &alias, t, &duration).await;
    put(aws, "AWS/Lambda", "ConcurrentExecutions", &function, t, &[1.0, 3.0, 2.0]).await;
    put(aws, "AWS/DynamoDB", "ConsumedWriteCapacityUnits", &table, t, &[1.0, 1.0, 1.0]).await;
    put(aws, "AWS/DynamoDB", "ConsumedReadCapacityUnits", &table, t, &[2.0]).await;
    put(aws, "AWS/DynamoDB", "WriteThrottleEvents", &table, t, &[1.0]).await;
}

/// moto 5.2.5 does not implement GetUsage (a 404 page): the proxy answers it as AWS documents it
/// (as the `usage` test does), the standard key with 57 requests today. One answer for both plans'
/// calls (a rule matches the operation, not the plan in the path): it lists the standard key
/// alone, so the premium key's call finds no use recorded, as for a key not used yet.
async fn answer_get_usage(account: &Account, stack: &Stack, standard_key: &str) {
    let today =
        String::from_utf8_lossy(&std::process::Command::new("date").args(["-u", "+%F"]).output().expect("date").stdout)
            .trim()
            .to_string();
    let plans = account.aws.apigateway.get_usage_plans().send().await.expect("GetUsagePlans");
    let standard = plans
        .items()
        .iter()
        .find(|p| p.name().is_some_and(|n| n.starts_with(&stack.names.stack) && n.ends_with("Standard")))
        .and_then(|p| p.id())
        .expect("the stack's Standard plan")
        .to_string();
    let path = format!("/usageplans/{standard}/usage");
    let name = rest_operation("apigateway", "GET", &path, "startDate=2026-01-01&endDate=2026-01-02")
        .unwrap_or(format!("GET {path}"));
    let values = json!({ standard_key: [[57, 9943]] });
    let body = json!({"usagePlanId": standard, "startDate": today, "endDate": today, "values": values}).to_string();
    account.proxy.add_rule(Rule::new().service("apigateway").operation(&name).reply(200, "application/json", &body));
}

/// (series key, latest, total or max) as `top` must report them.
const WANT: &[(&str, f64, &str, f64)] = &[
    ("api_requests", 5.0, "total", 5.0),
    ("api_4xx", 2.0, "total", 2.0),
    ("api_5xx", 1.0, "total", 1.0),
    ("api_latency_p50", 50.0, "max", 50.0),
    ("api_latency_p99", 99.0, "max", 99.0),
    ("function_invocations", 3.0, "total", 3.0),
    ("function_errors", 1.0, "total", 1.0),
    ("function_throttles", 2.0, "total", 2.0),
    ("function_duration_p50", 14.0, "max", 14.0),
    ("function_duration_p99", 19.0, "max", 19.0),
    ("function_concurrency", 3.0, "max", 3.0),
    ("table_read_capacity", 2.0, "total", 2.0),
    ("table_write_capacity", 3.0, "total", 3.0),
    ("table_write_throttles", 1.0, "total", 1.0),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn top_reports_the_metrics_put_and_the_alarms_in_one_get_metric_data_and_draws_them_live() {
    let account = Account::start().await;
    let stack = account.stack_with("top", &[("function.reserved_concurrency", "5")]);
    let (_, up) = stack.deployer.up_json(&["--artifact", &stack.artifact]).await;
    let standard_key = up["outputs"]["StandardApiKeyId"].as_str().unwrap_or_default().to_string();
    answer_get_usage(&account, &stack, &standard_key).await;
    let through_proxy = Aws::new(account.proxy.url()).await;
    put_the_stacks_metrics(&through_proxy, &stack).await;
    let alarm = format!("{}-api-5xx", stack.names.stack);
    account
        .aws
        .cloudwatch
        .set_alarm_state()
        .alarm_name(&alarm)
        .state_value(StateValue::Alarm)
        .state_reason("5XX answers (e2e)")
        .send()
        .await
        .expect("SetAlarmState");
    let mut c = Checks::new();

    // ------------------------------------------------------------------ --once --output json
    account.proxy.reset();
    let out = stack.deployer.run(&["--output", "json", "top", "--once"]).await;
    c.eq("top --once --output json: exit code", out.code, 0);
    let snap: Value = serde_json::from_str(out.stdout.trim()).unwrap_or(Value::Null);
    c.check(!snap.is_null(), format!("stdout is one JSON document:\n{out}"));
    for (key, latest, figure, value) in WANT {
        let s = &snap["series"][key];
        c.eq(&format!("{key}: latest"), s["latest"].as_f64(), Some(*latest));
        c.eq(&format!("{key}: {figure}"), s[figure].as_f64(), Some(*value));
        c.eq(&format!("{key}: one minute with data"), s["points"].as_array().map(Vec::len), Some(1));
    }
    c.eq(
        "no read throttle put: no data point",
        snap["series"]["table_read_throttles"]["points"].as_array().map(Vec::len),
        Some(0),
    );
    c.eq("latency unit", snap["series"]["api_latency_p99"]["unit"].as_str(), Some("milliseconds"));
    c.eq("reserved concurrency (from the config)", snap["reserved_concurrency"].as_u64(), Some(5));
    c.eq("source", snap["source"]["kind"].as_str(), Some("cloudwatch"));
    c.eq(
        "window: an hour by the minute",
        (
            snap["window"]["end"].as_u64().unwrap_or(0) - snap["window"]["start"].as_u64().unwrap_or(0),
            snap["window"]["period_seconds"].as_u64(),
        ),
        (3600, Some(60)),
    );
    c.eq("alarms read", snap["alarms"]["status"].as_str(), Some("read"));
    let alarms = snap["alarms"]["alarms"].as_array().cloned().unwrap_or_default();
    c.eq("the stack's five alarms", alarms.len(), 5);
    let state =
        |name: &str| alarms.iter().find(|a| a["name"] == name).and_then(|a| a["state"].as_str()).map(str::to_string);
    c.eq("the alarm set to ALARM", state(&alarm), Some("ALARM".to_string()));
    c.eq(
        "its reason",
        alarms.iter().find(|a| a["name"] == alarm.as_str()).and_then(|a| a["reason"].as_str()),
        Some("5XX answers (e2e)"),
    );
    c.check(
        alarms.iter().filter(|a| a["name"] != alarm.as_str()).all(|a| a["state"] != "ALARM"),
        format!("only that alarm is in ALARM: {alarms:?}"),
    );
    let keys = snap["keys"]["keys"].as_array().cloned().unwrap_or_default();
    let tiers: Vec<(&str, Option<u64>)> =
        keys.iter().map(|k| (k["tier"].as_str().unwrap_or(""), k["quota_limit"].as_u64())).collect();
    c.eq("the keys and their quotas", tiers, vec![("standard", Some(10_000)), ("premium", Some(50_000))]);
    c.eq("keys read every minute", snap["keys"]["every_seconds"].as_u64(), Some(60));
    if let [standard, premium] = keys.as_slice() {
        c.eq("standard key", standard["id"].as_str(), Some(standard_key.as_str()));
        c.eq(
            "standard: used today, remaining",
            (standard["used_today"].as_u64(), standard["remaining"].as_u64()),
            (Some(57), Some(9943)),
        );
        c.eq(
            "premium: nothing recorded",
            (premium["used_today"].as_u64(), premium["remaining"].as_u64()),
            (Some(0), None),
        );
    }
    let calls = count_by_name(&account.proxy.calls());
    println!("top --once: AWS calls {calls:?}");
    c.eq("one refresh: ONE GetMetricData", calls.get("monitoring GetMetricData").copied(), Some(1));
    c.eq("one refresh: ONE DescribeAlarms", calls.get("monitoring DescribeAlarms").copied(), Some(1));
    c.eq("one GetUsage per key", calls.get("apigateway GetUsage").copied(), Some(2));
    c.check(account.proxy.model_hits()[&Behaviour::CloudWatchMetrics] >= 1, "the strict model answered GetMetricData");
    c.check(
        account.proxy.calls().iter().all(|call| call.status.is_some_and(|s| s < 400)),
        format!("every call succeeded: {:?}", account.proxy.calls()),
    );

    // ------------------------------------------------------------------ text
    let once = stack.deployer.run(&["top", "--once"]).await;
    println!("$ movies-stack top --once\n{}", once.stdout);
    c.eq("top --once: exit code", once.code, 0);
    // A stdout that is not a terminal (the test's pipe): the same snapshot, then exit.
    let piped = stack.deployer.run(&["top"]).await;
    c.eq("top without a terminal: exit code", piped.code, 0);
    for (what, out) in [("--once", &once), ("piped", &piped)] {
        for want in [
            "requests",
            "5/min",
            "latency p99",
            "99 ms",
            "duration p50",
            "14 ms",
            "of 5 reserved",
            "ALARM",
            &alarm,
            "57 used today; 9,943 of 10,000 left this day",
        ] {
            c.check(out.stdout.contains(want), format!("{what}: {want:?} in the text:\n{out}"));
        }
    }

    // ------------------------------------------------------------------ live, in tmux
    live_in_tmux(&mut c, &account, &stack, &alarm).await;
    c.finish("top");
}

/// Run `top --interval 2` in a tmux pane of 100×30, read the screen after a refresh, press `q`.
async fn live_in_tmux(c: &mut Checks, account: &Account, stack: &Stack, alarm: &str) {
    assert!(
        std::process::Command::new("tmux").arg("-V").output().is_ok_and(|o| o.status.success()),
        "the live dashboard test needs tmux: scripts/test.sh installs it (apt-get install tmux)"
    );
    let calls_before = count_by_name(&account.proxy.calls());
    let dir = account.dir.path();
    let socket = format!("ms-top-{}", std::process::id());
    let (exit_file, stty_file) = (dir.join("top.exit"), dir.join("top.stty"));
    let args: Vec<String> = [
        "--config",
        &stack.config.display().to_string(),
        "--endpoint-url",
        account.proxy.url(),
        "top",
        "--interval",
        "2",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    // The proxy authorizes the run against the stack's policy, as for any run of the deployer.
    stack.deployer.hold_policy(&args);
    let quoted: Vec<String> = args.iter().map(|a| format!("'{a}'")).collect();
    let script = dir.join("top.sh");
    std::fs::write(
        &script,
        format!(
            "export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1 \
             AWS_EC2_METADATA_DISABLED=true\nunset AWS_PROFILE AWS_ENDPOINT_URL AWS_SESSION_TOKEN\n\
             '{bin}' {args}\necho $? > '{exit}'\nstty -a > '{stty}'\nsleep 60\n",
            bin = stack.deployer.bin.display(),
            args = quoted.join(" "),
            exit = exit_file.display(),
            stty = stty_file.display(),
        ),
    )
    .expect("write the script");
    let tmux = |args: &[&str]| {
        std::process::Command::new("tmux").args(["-L", &socket, "-f", "/dev/null"]).args(args).output().expect("tmux")
    };
    let started =
        tmux(&["new-session", "-d", "-x", "100", "-y", "30", "-s", "top", &format!("sh '{}'", script.display())]);
    assert!(started.status.success(), "tmux new-session: {}", String::from_utf8_lossy(&started.stderr));
    let screen = || String::from_utf8_lossy(&tmux(&["capture-pane", "-p", "-t", "top"]).stdout).into_owned();
    let header = |s: &str| s.lines().next().unwrap_or_default().to_string();
    // The first frame, then a refresh (the header's time changes).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = String::new();
    while Instant::now() < deadline {
        first = screen();
        if first.contains("Alarms") && first.contains("requests") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut refreshed = first.clone();
    while Instant::now() < deadline && header(&refreshed) == header(&first) {
        tokio::time::sleep(Duration::from_millis(250)).await;
        refreshed = screen();
    }
    println!("top in tmux, 100x30, after a refresh:\n{refreshed}");
    c.check(header(&refreshed) != header(&first), format!("a refresh changed the header:\n{first}\n---\n{refreshed}"));
    c.eq("the pane is 100 columns", refreshed.lines().map(|l| l.chars().count()).max(), Some(100));
    for want in [
        &format!("top {}", stack.names.stack) as &str,
        "every 2 s",
        "API Gateway",
        "Lambda",
        "DynamoDB",
        "requests",
        "5/min",
        "latency p99",
        "99 ms",
        "duration p99",
        "19 ms",
        "of 5 reserved",
        "Keys today (GetUsage every 60 s)",
        "57 used today; 9,943 of 10,000 left this day",
        "q / Esc / Ctrl-C: quit",
    ] {
        c.check(refreshed.contains(want), format!("live: {want:?} on the screen"));
    }
    // The alarm's own part of its name (the stack is in the header), in red's state.
    let own = alarm.strip_prefix(&format!("{}-", stack.names.stack)).unwrap_or(alarm);
    c.check(
        refreshed.lines().any(|l| l.contains(&format!("ALARM            {own}"))),
        format!("live: the alarm {own} in state ALARM"),
    );
    let requests = refreshed.lines().find(|l| l.contains("requests")).unwrap_or_default();
    c.check(
        requests.chars().any(|ch| "▁▂▃▄▅▆▇█".contains(ch)),
        format!("a sparkline bar on the requests row: {requests}"),
    );
    let _ = tmux(&["send-keys", "-t", "top", "q"]);
    let deadline = Instant::now() + Duration::from_secs(15);
    while Instant::now() < deadline && !stty_file.exists() {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let exit = std::fs::read_to_string(&exit_file).unwrap_or_default();
    c.eq("q: exit code", exit.trim(), "0");
    // Every refresh of the live run, the first included: one GetMetricData and one DescribeAlarms;
    // the keys' use once (the run is shorter than the minute between two reads).
    let calls_after = count_by_name(&account.proxy.calls());
    let made = |name: &str| calls_after.get(name).copied().unwrap_or(0) - calls_before.get(name).copied().unwrap_or(0);
    let (metrics, alarms) = (made("monitoring GetMetricData"), made("monitoring DescribeAlarms"));
    println!(
        "top live: {metrics} refreshes: {metrics} GetMetricData, {alarms} DescribeAlarms, {} GetUsage",
        made("apigateway GetUsage")
    );
    c.check(metrics >= 2, format!("live: the first frame and a refresh, each one GetMetricData ({metrics})"));
    c.eq("live: one DescribeAlarms per GetMetricData", alarms, metrics);
    c.eq("live: the keys' use read once (2 keys)", made("apigateway GetUsage"), 2);
    let stty = std::fs::read_to_string(&stty_file).unwrap_or_default();
    c.check(
        stty.split_whitespace().any(|w| w == "icanon") && stty.split_whitespace().any(|w| w == "echo"),
        format!("raw mode off after q (icanon, echo):\n{stty}"),
    );
    let after = screen();
    c.check(
        !after.contains("Alarms") && !after.contains("requests"),
        format!("the alternate screen was left:\n{after}"),
    );
    let _ = tmux(&["kill-server"]);
    let _ = Path::new(&script);
}
