//! Issue 4, lifecycle on one stack: `status` / `plan` / `up` around five drifts made behind the
//! deployer's back, then a code-only `up` (hotswap).
//!
//! One stack, one moto. After a cold `up`, `status` is in sync. Then, one after another, each
//! drift is made through the SDK straight against moto (not through the proxy):
//!   (a) the function's log group retention set to 7 days (PutRetentionPolicy),
//!   (b) the Standard usage plan's rateLimit set to 10 (UpdateUsagePlan),
//!   (c) the VPC flow log deleted (DeleteFlowLogs),
//!   (d) an extra security-group egress rule, tcp/80 to 0.0.0.0/0 (AuthorizeSecurityGroupEgress),
//!   (e) the function's memory set to 1024 MB (UpdateFunctionConfiguration).
//! For each: `status` exits 2 and names exactly that resource (drifted with the field, or
//! missing); `plan` exits 2, names it with action update/create and makes no mutating call;
//! `up` fixes exactly that: its mutating calls are exactly the expected operations; the fix is
//! read back through the SDK; `status` is in sync again.
//!
//! Finally a new artifact: `plan` shows a code update, `up` makes exactly one mutating call
//! (UpdateFunctionCode) and says `hotswap` on stderr.

use aws_sdk_apigateway::types::{Op, PatchOperation};
use std::path::Path;

use aws_sdk_ec2::types::{IpPermission, IpRange};
use e2e::artifact::{code_sha256, write_modified};
use e2e::inventory::{Inventory, TAG_STACK};
use e2e::{Account, Aws, Checks, Output, Proxy, StackNames, ec2_filter};
use serde_json::Value;

const RETENTION_DAYS: i32 = 365;
const MEMORY_MB: i32 = 256;
const STANDARD_RATE: f64 = 50.0;

/// The row of resource `id` in `status` / `plan` JSON.
fn row<'a>(json: &'a Value, id: &str) -> Option<&'a Value> {
    json["resources"].as_array()?.iter().find(|r| r["id"] == id)
}

/// The sorted `"service Operation"` names of the mutating calls the proxy saw.
fn mutating(proxy: &Proxy) -> Vec<String> {
    let mut v: Vec<String> = proxy.mutating_calls().iter().map(|c| c.name()).collect();
    v.sort();
    v
}

/// A `status` row as the config wants it: present, or turned off and absent (the web ACL of
/// the base config).
fn in_sync_state(row: &Value) -> bool {
    row["state"] == "present" || row["state"] == "off"
}

/// A `plan` row that `up` leaves alone: no change, or turned off and absent.
fn no_action(row: &Value) -> bool {
    row["action"] == "none" || row["action"] == "off"
}

/// `text` parses as this number (the JSON carries numbers as strings: "7", "10", "1024").
fn is_number(text: &Value, want: f64) -> bool {
    text.as_str().and_then(|s| s.trim().parse::<f64>().ok()).is_some_and(|v| (v - want).abs() < 1e-9)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Drift {
    Retention,
    RateLimit,
    FlowLogDeleted,
    EgressRule,
    Memory,
}

/// What the deployer must say and do about one drift.
struct Expect {
    /// The deployer's resource id.
    resource: &'static str,
    /// `status` state: drifted | missing.
    state: &'static str,
    /// `plan` action: update | create.
    action: &'static str,
    /// The drifted field (prefix), with its live and desired values as numbers when numeric.
    field: Option<(&'static str, Option<f64>, Option<f64>)>,
    /// Exactly the mutating calls `up` may make to fix it.
    calls: &'static [&'static str],
}

impl Drift {
    fn expect(self) -> Expect {
        match self {
            Drift::Retention => Expect {
                resource: "function-log-group",
                state: "drifted",
                action: "update",
                field: Some(("retention_days", Some(7.0), Some(f64::from(RETENTION_DAYS)))),
                calls: &["logs PutRetentionPolicy"],
            },
            Drift::RateLimit => Expect {
                resource: "usage-plan-standard",
                state: "drifted",
                action: "update",
                field: Some(("throttle.rate_limit", Some(10.0), Some(STANDARD_RATE))),
                calls: &["apigateway UpdateUsagePlan"],
            },
            Drift::FlowLogDeleted => Expect {
                resource: "flow-log",
                state: "missing",
                action: "create",
                field: None,
                calls: &["ec2 CreateFlowLogs"],
            },
            Drift::EgressRule => Expect {
                resource: "function-sg",
                state: "drifted",
                action: "update",
                field: Some(("egress rule", None, None)),
                calls: &["ec2 RevokeSecurityGroupEgress"],
            },
            Drift::Memory => Expect {
                resource: "function",
                state: "drifted",
                action: "update",
                field: Some(("memory_mb", Some(1024.0), Some(f64::from(MEMORY_MB)))),
                calls: &["lambda UpdateFunctionConfiguration"],
            },
        }
    }
}

/// Ids the drifts need, looked up once after the cold `up`.
struct Live {
    vpc_id: String,
    sg_id: String,
    standard_plan_id: String,
}

async fn live_ids(aws: &Aws, n: &StackNames) -> Live {
    let inv = Inventory::scan(aws).await;
    let id = |resource: &str| {
        inv.find(&n.stack, resource).map(|i| i.id.clone()).unwrap_or_else(|| panic!("the stack's {resource}"))
    };
    Live { vpc_id: id("vpc"), sg_id: id("function-sg"), standard_plan_id: id("usage-plan-standard") }
}

/// Make the drift through the SDK, straight against moto.
async fn make(drift: Drift, aws: &Aws, n: &StackNames, live: &Live) {
    match drift {
        Drift::Retention => {
            aws.logs
                .put_retention_policy()
                .log_group_name(format!("/aws/lambda/{}", n.function))
                .retention_in_days(7)
                .send()
                .await
                .expect("PutRetentionPolicy");
        }
        Drift::RateLimit => {
            // An integer: moto parses rateLimit with int(). (Never /quota/limit: moto then breaks
            // GetUsagePlans.)
            aws.apigateway
                .update_usage_plan()
                .usage_plan_id(&live.standard_plan_id)
                .patch_operations(
                    PatchOperation::builder().op(Op::Replace).path("/throttle/rateLimit").value("10").build(),
                )
                .send()
                .await
                .expect("UpdateUsagePlan");
        }
        Drift::FlowLogDeleted => {
            let fls = aws
                .ec2
                .describe_flow_logs()
                .filter(ec2_filter("resource-id", &live.vpc_id))
                .send()
                .await
                .expect("DescribeFlowLogs");
            let ids: Vec<String> = fls.flow_logs().iter().filter_map(|f| f.flow_log_id()).map(str::to_string).collect();
            assert_eq!(ids.len(), 1, "one flow log on the VPC before deleting it: {ids:?}");
            aws.ec2.delete_flow_logs().set_flow_log_ids(Some(ids)).send().await.expect("DeleteFlowLogs");
        }
        Drift::EgressRule => {
            let permission = IpPermission::builder()
                .ip_protocol("tcp")
                .from_port(80)
                .to_port(80)
                .ip_ranges(IpRange::builder().cidr_ip("0.0.0.0/0").build())
                .build();
            aws.ec2
                .authorize_security_group_egress()
                .group_id(&live.sg_id)
                .ip_permissions(permission)
                .send()
                .await
                .expect("AuthorizeSecurityGroupEgress");
        }
        Drift::Memory => {
            aws.lambda
                .update_function_configuration()
                .function_name(&n.function)
                .memory_size(1024)
                .send()
                .await
                .expect("UpdateFunctionConfiguration");
        }
    }
}

/// After `up`: the drift is gone, read back through the SDK.
async fn check_fixed(c: &mut Checks, drift: Drift, aws: &Aws, n: &StackNames, live: &Live) {
    let what = format!("{drift:?} fixed");
    match drift {
        Drift::Retention => {
            let name = format!("/aws/lambda/{}", n.function);
            let got =
                aws.logs.describe_log_groups().log_group_name_prefix(&name).send().await.expect("DescribeLogGroups");
            let retention = got
                .log_groups()
                .iter()
                .find(|g| g.log_group_name() == Some(name.as_str()))
                .and_then(|g| g.retention_in_days());
            c.eq(&format!("{what}: {name} retention"), retention, Some(RETENTION_DAYS));
        }
        Drift::RateLimit => {
            let p = aws.apigateway.get_usage_plan().usage_plan_id(&live.standard_plan_id).send().await;
            let rate = p.ok().and_then(|p| p.throttle().map(|t| t.rate_limit()));
            c.eq(&format!("{what}: Standard rate limit"), rate, Some(STANDARD_RATE));
        }
        Drift::FlowLogDeleted => {
            let fls = aws
                .ec2
                .describe_flow_logs()
                .filter(ec2_filter("resource-id", &live.vpc_id))
                .send()
                .await
                .expect("DescribeFlowLogs");
            let tagged = fls
                .flow_logs()
                .iter()
                .filter(|f| f.tags().iter().any(|t| t.key() == Some(TAG_STACK) && t.value() == Some(n.stack.as_str())))
                .count();
            c.eq(&format!("{what}: flow logs on the VPC"), fls.flow_logs().len(), 1);
            c.eq(&format!("{what}: flow logs tagged with the stack"), tagged, 1);
            if let Some(f) = fls.flow_logs().first() {
                c.eq(&format!("{what}: traffic type"), f.traffic_type().map(|t| t.as_str()), Some("ALL"));
            }
        }
        Drift::EgressRule => {
            let sgs =
                aws.ec2.describe_security_groups().group_ids(&live.sg_id).send().await.expect("DescribeSecurityGroups");
            let egress: Vec<(Option<String>, Option<i32>)> = sgs
                .security_groups()
                .first()
                .map(|g| {
                    g.ip_permissions_egress()
                        .iter()
                        .map(|p| (p.ip_protocol().map(str::to_string), p.from_port()))
                        .collect()
                })
                .unwrap_or_default();
            c.eq(&format!("{what}: egress rules (protocol, port)"), egress, vec![(Some("tcp".to_string()), Some(443))]);
        }
        Drift::Memory => {
            let f = aws.lambda.get_function_configuration().function_name(&n.function).send().await;
            c.eq(&format!("{what}: memory"), f.ok().and_then(|f| f.memory_size()), Some(MEMORY_MB));
        }
    }
}

/// `status` (JSON and human) reports exactly this drift, with exit 2.
fn check_status(c: &mut Checks, drift: Drift, json_run: &Output, human_run: &Output) {
    let e = drift.expect();
    let what = format!("{drift:?}: status");
    c.eq(&format!("{what} --output json exit code"), json_run.code, 2);
    let Ok(json) = serde_json::from_str::<Value>(json_run.stdout.trim()) else {
        c.check(false, format!("{what}: stdout is JSON:\n{json_run}"));
        return;
    };
    c.eq(&format!("{what}: in_sync"), json["in_sync"].as_bool(), Some(false));
    match row(&json, e.resource) {
        None => {
            c.check(false, format!("{what}: has a row for {}: {json}", e.resource));
        }
        Some(r) => {
            c.eq(&format!("{what}: {} state", e.resource), r["state"].as_str(), Some(e.state));
            if let Some((field, live, desired)) = e.field {
                let drift_rows = r["drift"].as_array().cloned().unwrap_or_default();
                let found = drift_rows.iter().find(|d| d["field"].as_str().is_some_and(|f| f.starts_with(field)));
                if c.check(found.is_some(), format!("{what}: {} drift names field {field}: {r}", e.resource)) {
                    let d = found.unwrap();
                    if let Some(live) = live {
                        c.check(is_number(&d["live"], live), format!("{what}: {field} live value is {live}: {d}"));
                    }
                    if let Some(desired) = desired {
                        c.check(
                            is_number(&d["desired"], desired),
                            format!("{what}: {field} desired value is {desired}: {d}"),
                        );
                    }
                    if drift == Drift::EgressRule {
                        let live = d["live"].as_str().unwrap_or_default();
                        c.check(
                            live.contains("80") && live.contains("0.0.0.0/0"),
                            format!("{what}: the extra rule is shown as tcp/80 to 0.0.0.0/0: {d}"),
                        );
                    }
                }
                c.eq(&format!("{what}: number of drifted fields of {}", e.resource), drift_rows.len(), 1);
            }
        }
    }
    // Exactly this resource is out of sync.
    let others: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["id"] != e.resource && !in_sync_state(r))
                .map(|r| format!("{} {}", r["id"], r["state"]))
                .collect()
        })
        .unwrap_or_default();
    c.eq(&format!("{what}: other resources not present/in sync"), others, Vec::<String>::new());

    c.eq(&format!("{what} (human) exit code"), human_run.code, 2);
    let line = human_run.stdout.lines().find(|l| l.split_whitespace().nth(1) == Some(e.resource));
    c.check(
        line.is_some_and(|l| l.split_whitespace().next() == Some(e.state)),
        format!("{what} (human): a line `{} {}`:\n{human_run}", e.state, e.resource),
    );
    if let Some((field, _, _)) = e.field {
        c.check(human_run.stdout.contains(field), format!("{what} (human) names the field {field}:\n{human_run}"));
    }
}

/// `plan` (JSON and human) names exactly this change, exit 2.
fn check_plan(c: &mut Checks, drift: Drift, json_run: &Output, human_run: &Output) {
    let e = drift.expect();
    let what = format!("{drift:?}: plan");
    c.eq(&format!("{what} --output json exit code"), json_run.code, 2);
    let Ok(json) = serde_json::from_str::<Value>(json_run.stdout.trim()) else {
        c.check(false, format!("{what}: stdout is JSON:\n{json_run}"));
        return;
    };
    match row(&json, e.resource) {
        None => {
            c.check(false, format!("{what}: has a row for {}: {json}", e.resource));
        }
        Some(r) => {
            c.eq(&format!("{what}: {} action", e.resource), r["action"].as_str(), Some(e.action));
            if let Some((field, _, _)) = e.field {
                let names: Vec<&str> = r["changes"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x["field"].as_str()).collect())
                    .unwrap_or_default();
                c.check(
                    names.len() == 1 && names[0].starts_with(field),
                    format!("{what}: {} changes are exactly [{field}...]: {names:?}", e.resource),
                );
            }
        }
    }
    let others: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter(|r| r["id"] != e.resource && !no_action(r))
                .map(|r| format!("{} {}", r["id"], r["action"]))
                .collect()
        })
        .unwrap_or_default();
    c.eq(&format!("{what}: other resources with an action"), others, Vec::<String>::new());
    let key = if e.action == "create" { "create" } else { "update" };
    c.eq(&format!("{what}: summary.{key}"), json["summary"][key].as_u64(), Some(1));

    c.eq(&format!("{what} (human) exit code"), human_run.code, 2);
    c.check(
        human_run.stdout.lines().any(|l| l.contains(e.resource) && l.contains(e.action)),
        format!("{what} (human): a line naming {} with `{}`:\n{human_run}", e.resource, e.action),
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drift_is_reported_planned_and_fixed_exactly_then_hotswap() {
    let account = Account::start().await;
    let stack = account.stack("life");
    let (aws, proxy, n, deployer, art) =
        (&account.aws, &account.proxy, &stack.names, &stack.deployer, stack.artifact.as_str());
    let mut c = Checks::new();
    let started = std::time::Instant::now();

    let (cold, _) = deployer.up_json(&["--artifact", art]).await;
    println!("cold up: {:.1}s, {} calls", cold.elapsed.as_secs_f64(), proxy.calls().len());

    // ------------------------------------------------------------------ in sync after up
    proxy.reset();
    let st = deployer.run(&["--output", "json", "status"]).await;
    c.eq("status after up: exit code", st.code, 0);
    let json: Value = serde_json::from_str(st.stdout.trim()).unwrap_or(Value::Null);
    c.eq("status after up: in_sync", json["in_sync"].as_bool(), Some(true));
    let not_present: Vec<String> = json["resources"]
        .as_array()
        .map(|rows| rows.iter().filter(|r| !in_sync_state(r)).map(|r| r.to_string()).collect())
        .unwrap_or_default();
    c.eq("status after up: rows not present", not_present, Vec::<String>::new());
    let st_h = deployer.run(&["status"]).await;
    c.eq("status (human) after up: exit code", st_h.code, 0);
    c.check(st_h.stdout.contains("In sync"), format!("status (human) after up says In sync:\n{st_h}"));
    let pl = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
    c.eq("plan after up: exit code", pl.code, 0);
    let json: Value = serde_json::from_str(pl.stdout.trim()).unwrap_or(Value::Null);
    c.eq(
        "plan after up: summary.unchanged + off = all",
        json["summary"]["unchanged"].as_u64().zip(json["summary"]["off"].as_u64()).map(|(u, off)| u + off),
        json["resources"].as_array().map(|a| a.len() as u64),
    );
    c.eq("status + plan after up: mutating calls", mutating(proxy), Vec::<String>::new());

    let live = live_ids(aws, n).await;

    // ------------------------------------------------------------------ the drifts, one by one
    for drift in [Drift::Retention, Drift::RateLimit, Drift::FlowLogDeleted, Drift::EgressRule, Drift::Memory] {
        let e = drift.expect();
        make(drift, aws, n, &live).await;

        proxy.reset();
        let st_json = deployer.run(&["--output", "json", "status"]).await;
        let st_human = deployer.run(&["status"]).await;
        check_status(&mut c, drift, &st_json, &st_human);
        let pl_json = deployer.run(&["--output", "json", "plan", "--artifact", art]).await;
        let pl_human = deployer.run(&["plan", "--artifact", art]).await;
        check_plan(&mut c, drift, &pl_json, &pl_human);
        c.eq(&format!("{drift:?}: status + plan mutating calls"), mutating(proxy), Vec::<String>::new());

        proxy.reset();
        let up = deployer.run(&["--output", "json", "up", "--artifact", art]).await;
        let calls = mutating(proxy);
        println!("{drift:?}: up {:.1}s, {} calls, mutating {:?}", up.elapsed.as_secs_f64(), proxy.calls().len(), calls);
        if c.eq(&format!("{drift:?}: up exit code"), up.code, 0) {
            let json = up.json();
            c.eq(&format!("{drift:?}: up changes"), json["changes"].as_u64(), Some(1));
            let summary = json["resources"][e.resource].as_str().unwrap_or_default();
            let want = if e.action == "create" { "created" } else { "updated" };
            c.check(summary.starts_with(want), format!("{drift:?}: up says {} {want}: {summary:?}", e.resource));
        } else {
            println!("{up}");
        }
        c.eq(
            &format!("{drift:?}: up's mutating calls"),
            calls,
            e.calls.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
        );
        check_fixed(&mut c, drift, aws, n, &live).await;

        let again = deployer.run(&["--output", "json", "status"]).await;
        c.eq(&format!("{drift:?}: status after up: exit code"), again.code, 0);
        let json: Value = serde_json::from_str(again.stdout.trim()).unwrap_or(Value::Null);
        c.eq(&format!("{drift:?}: status after up: in_sync"), json["in_sync"].as_bool(), Some(true));
    }

    // ------------------------------------------------------------------ hotswap
    let modified_path = account.dir.path().join("handler-v2.zip");
    let modified = write_modified(Path::new(art), &modified_path, &n.stack);
    let modified_arg = modified_path.to_str().unwrap();
    proxy.reset();
    let pl = deployer.run(&["--output", "json", "plan", "--artifact", modified_arg]).await;
    c.eq("hotswap: plan exit code", pl.code, 2);
    let json: Value = serde_json::from_str(pl.stdout.trim()).unwrap_or(Value::Null);
    let fields: Vec<String> = row(&json, "function")
        .and_then(|r| {
            r["changes"].as_array().map(|a| a.iter().filter_map(|x| x["field"].as_str().map(str::to_string)).collect())
        })
        .unwrap_or_default();
    c.eq("hotswap: plan's function changes", fields, vec!["code".to_string()]);
    c.eq("hotswap: plan's mutating calls", mutating(proxy), Vec::<String>::new());

    proxy.reset();
    let up = deployer.run(&["up", "--artifact", modified_arg]).await;
    c.eq("hotswap: up exit code", up.code, 0);
    c.eq("hotswap: up's mutating calls", mutating(proxy), vec!["lambda UpdateFunctionCode".to_string()]);
    c.check(up.stderr.contains("hotswap"), format!("hotswap: up's stderr says hotswap:\n{up}"));
    let f = aws.lambda.get_function_configuration().function_name(&n.function).send().await;
    c.eq(
        "hotswap: live CodeSha256 = the new zip's",
        f.ok().and_then(|f| f.code_sha256().map(str::to_string)),
        Some(code_sha256(&modified)),
    );
    proxy.reset();
    let pl = deployer.run(&["plan", "--artifact", modified_arg]).await;
    c.eq("hotswap: plan afterwards: exit code", pl.code, 0);
    let st = deployer.run(&["status"]).await;
    c.eq("hotswap: status afterwards: exit code", st.code, 0);
    // A no-op up is not a hotswap.
    let noop = deployer.run(&["up", "--artifact", modified_arg]).await;
    c.eq("hotswap: up again: exit code", noop.code, 0);
    c.check(!noop.stderr.contains("hotswap"), format!("a no-op up does not say hotswap:\n{noop}"));
    c.eq("hotswap: plan/status/up again: mutating calls", mutating(proxy), Vec::<String>::new());

    println!("lifecycle: {:.1}s in all", started.elapsed().as_secs_f64());
    c.finish("lifecycle (drift + hotswap)");
}
