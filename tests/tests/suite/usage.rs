//! Issue 10, `movies-stack usage`: per API key, the requests per day (API Gateway GetUsage), what
//! remains of the current quota period, and the plan's throttle and quota, for a stack deployed
//! in moto.
//!
//! moto gap: moto 5.2.5 does not implement GetUsage (`GET /usageplans/{id}/usage` is a 404 HTML
//! page), so the proxy answers it with the response AWS documents (API Gateway REST API
//! reference, "GetUsage" / "Usage": `usagePlanId`, `startDate`, `endDate`, and `values` (the
//! SDK's `items`) mapping each key id to one `[used, remaining]` pair per day). Everything else
//! is moto.

use e2e::inventory::Shape;
use e2e::proxy::{Rule, rest_operation};
use e2e::{Account, Checks};
use serde_json::{Value, json};

/// AWS's GetUsage answer for one plan: `rows` for `key` over `start..=end`.
fn get_usage_json(plan: &str, key: &str, start: &str, end: &str, rows: &[[i64; 2]]) -> String {
    let values = if rows.is_empty() { json!({}) } else { json!({ key: rows }) };
    json!({"usagePlanId": plan, "startDate": start, "endDate": end, "values": values}).to_string()
}

/// Today and the days before it, `YYYY-MM-DD` (UTC), oldest first, from `date -u`.
fn last_days(n: u32) -> Vec<String> {
    (0..n)
        .rev()
        .map(|back| {
            let out = std::process::Command::new("date")
                .args(["-u", "+%F", "-d", &format!("{back} days ago")])
                .output()
                .expect("run date");
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .collect()
}

/// A rule for GetUsage on one plan. The proxy names the operation from its REST table when that
/// knows GetUsage, else by method and path (which holds the plan id).
fn get_usage(plan: &str) -> Rule {
    let path = format!("/usageplans/{plan}/usage");
    let name = rest_operation("apigateway", "GET", &path, "startDate=2026-01-01&endDate=2026-01-02")
        .unwrap_or(format!("GET {path}"));
    Rule::new().service("apigateway").operation(&name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_shows_requests_per_day_and_the_quota_left() {
    let account = Account::start().await;
    let e = account.stack("usage");
    let (n, deployer, aws, proxy) = (&e.names, &e.deployer, &account.aws, &account.proxy);
    let (_, up) = deployer.up_json(&["--artifact", &e.artifact]).await;
    let standard_key = up["outputs"]["StandardApiKeyId"].as_str().unwrap_or_default().to_string();
    let premium_key = up["outputs"]["PremiumApiKeyId"].as_str().unwrap_or_default().to_string();
    let plans = aws.apigateway.get_usage_plans().send().await.expect("GetUsagePlans");
    let plan_id = |name: &str| {
        plans.items().iter().find(|p| p.name() == Some(name)).and_then(|p| p.id()).unwrap_or_default().to_string()
    };
    let shape = Shape::of(&e).await;
    let standard_plan_name = shape.name_of("usage-plan-standard");
    let standard_key_name = shape.name_of("api-key-standard");
    let (standard_plan, premium_plan) = (plan_id(standard_plan_name), plan_id(shape.name_of("usage-plan-premium")));
    let mut c = Checks::new();

    let days = last_days(3);
    let rows = [[120, 9880], [0, 10_000], [57, 9943]];
    proxy.add_rule(get_usage(&standard_plan).reply(
        200,
        "application/json",
        &get_usage_json(&standard_plan, &standard_key, &days[0], &days[2], &rows),
    ));
    // The premium key has made no request: AWS answers with empty items.
    proxy.add_rule(get_usage(&premium_plan).reply(
        200,
        "application/json",
        &get_usage_json(&premium_plan, &premium_key, &days[0], &days[2], &[]),
    ));

    // ------------------------------------------------------------------ --output json
    let run = deployer.run(&["--output", "json", "usage", "--days", "3"]).await;
    c.eq("json: exit code", run.code, 0);
    let json: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    c.eq("json: stack", json["stack"].as_str(), Some(n.stack.as_str()));
    c.eq("json: start_date", json["start_date"].as_str(), Some(days[0].as_str()));
    c.eq("json: end_date (today)", json["end_date"].as_str(), Some(days[2].as_str()));
    let keys = json["keys"].as_array().cloned().unwrap_or_default();
    c.eq(
        "json: two keys",
        keys.iter().map(|k| k["tier"].as_str().unwrap_or("")).collect::<Vec<_>>(),
        ["standard", "premium"],
    );
    if let [standard, premium] = keys.as_slice() {
        c.eq("standard: id", standard["id"].as_str(), Some(standard_key.as_str()));
        c.eq("standard: name", standard["name"].as_str(), Some(standard_key_name));
        c.eq(
            "standard: plan",
            standard["plan"].clone(),
            json!({"id": standard_plan, "name": standard_plan_name, "rate_limit": 50.0,
                   "burst_limit": 100, "quota_limit": 10000, "quota_period": "DAY"}),
        );
        c.eq(
            "standard: days",
            standard["days"].clone(),
            json!([
                {"date": days[0], "used": 120, "remaining": 9880},
                {"date": days[1], "used": 0, "remaining": 10000},
                {"date": days[2], "used": 57, "remaining": 9943},
            ]),
        );
        c.eq("standard: total", standard["total"].as_i64(), Some(177));
        c.eq("standard: remaining today", standard["remaining_today"].as_i64(), Some(9943));
        c.eq("premium: id", premium["id"].as_str(), Some(premium_key.as_str()));
        c.eq("premium: plan quota", premium["plan"]["quota_limit"].as_i64(), Some(50_000));
        c.eq("premium: rate", premium["plan"]["rate_limit"].as_f64(), Some(100.0));
        c.eq("premium: no days recorded", premium["days"].clone(), json!([]));
        c.eq("premium: total", premium["total"].as_i64(), Some(0));
        c.check(premium.get("remaining_today").is_none(), "premium: no remaining_today without data");
    }
    let usage_calls: Vec<String> = proxy
        .calls()
        .iter()
        .filter(|call| call.operation.ends_with("/usage") || call.operation == "GetUsage")
        .map(|call| call.operation.clone())
        .collect();
    c.eq("one GetUsage per key", usage_calls.len(), 2);

    // ------------------------------------------------------------------ human, and --tier
    let run = deployer.run(&["usage", "--days", "3"]).await;
    c.eq("human: exit code", run.code, 0);
    for expected in [
        format!("Usage of stack {}, {} to {} (UTC days):", n.stack, days[0], days[2]),
        format!("standard key {standard_key} ({standard_key_name})"),
        format!("plan {standard_plan_name} ({standard_plan}): 50 rps, burst 100, quota 10000 per DAY"),
        format!("{}        57       9943", days[2]),
        "total 177; 9943 of 10000 requests left in the current day".to_string(),
        "no requests recorded in these 3 days".to_string(),
    ] {
        c.check(run.stdout.contains(&expected), format!("human: {expected:?} in:\n{run}"));
    }
    let run = deployer.run(&["--output", "json", "usage", "--days", "3", "--tier", "premium"]).await;
    let json: Value = serde_json::from_str(run.stdout.trim()).unwrap_or(Value::Null);
    c.eq(
        "--tier premium: only the premium key",
        json["keys"].as_array().map(|k| k.iter().map(|x| x["id"].clone()).collect::<Vec<_>>()),
        Some(vec![json!(premium_key)]),
    );

    // ------------------------------------------------------------------ errors
    let run = deployer.run(&["usage", "--days", "0"]).await;
    c.eq("--days 0: exit code", run.code, 3);
    proxy.clear_rules();
    proxy.add_rule(get_usage(&standard_plan).fail(404, "NotFoundException", "Invalid Usage Plan ID specified"));
    let run = deployer.run(&["usage", "--tier", "standard"]).await;
    c.eq("GetUsage fails: exit code", run.code, 1);
    c.check(
        run.stderr.contains(
            "api-key-standard: API Gateway GetUsage failed: NotFoundException: Invalid Usage Plan ID specified",
        ),
        format!("GetUsage fails: names the call, code and message:\n{run}"),
    );
    c.finish("usage");
}
