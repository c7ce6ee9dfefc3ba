//! Secrets and least privilege (issue 5, parts 5 and 6).
//!
//! 5. The API key values (read with `keys --output json`) appear in no other command's output:
//!    `up` / `status` / `plan` / `down`, human and JSON, at `-v` and `-vv`, and on error paths
//!    (an `up` that fails mid-way right after the keys were created, one that fails on a read).
//! 6. Every IAM policy the stack created, read back through the SDK: no wildcard action, no `*`
//!    resource except where AWS allows nothing else (explicit allowlist below), trust policies
//!    that name exactly one service; the DynamoDB endpoint policy allows only the table; the
//!    function's security group has no ingress and exactly one egress rule (tcp 443 to the
//!    DynamoDB prefix list).

use std::collections::BTreeSet;

use aws_sdk_ec2::types::Filter;
use e2e::inventory::Shape;
use e2e::proxy::percent_decode;
use e2e::{Account, Checks, Output, Rule};
use serde_json::Value;

// =============================================================================================
// 5. Secrets

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_key_values_never_leave_the_keys_command() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let stack = account.stack("secrets");
    let (aws, proxy, d, art) = (&account.aws, &account.proxy, &stack.deployer, stack.artifact.as_str());
    let mut runs: Vec<(String, Output)> = Vec::new();
    let mut c = Checks::new();

    // A cold `up -vv` that fails right after the keys were created: the CreateApiKey answers
    // (which carry the values) went through, then one key cannot join its plan.
    proxy.add_rule(Rule::new().service("apigateway").operation("CreateUsagePlanKey").times(1).fail(
        400,
        "BadRequestException",
        "Invalid usage plan key",
    ));
    let failed = d.run(&["-vv", "up", "--artifact", art]).await;
    c.check(failed.code == 1, format!("the cold up fails mid-way (exit 1)\n{failed}"));
    runs.push(("-vv up (fails after CreateApiKey)".into(), failed));
    proxy.clear_rules();
    let export_dir = account.dir.path().join("export");
    let export_dir = export_dir.to_str().unwrap();
    for args in [
        vec!["-vv", "--output", "json", "up", "--artifact", art],
        vec!["up", "--artifact", art],
        vec!["-v", "up", "--artifact", art],
        vec!["--output", "json", "up", "--artifact", art],
        vec!["status"],
        vec!["-v", "status"],
        vec!["-vv", "--output", "json", "status"],
        vec!["plan", "--artifact", art],
        vec!["-vv", "plan", "--artifact", art],
        vec!["--output", "json", "plan", "--artifact", art],
        vec!["-vv", "--output", "json", "export", "--out", export_dir],
    ] {
        let out = d.run(&args).await;
        c.check(out.code == 0, format!("{args:?} succeeds\n{out}"));
        runs.push((args.join(" "), out));
    }

    let keys = d.run(&["--output", "json", "keys"]).await;
    keys.assert_ok();
    let json = keys.json();
    let mut secrets: Vec<String> = Vec::new();
    for tier in ["standard", "premium"] {
        let v = json["keys"][tier]["value"].as_str().unwrap_or_default().to_string();
        c.check(v.len() >= 20, format!("keys: the {tier} value is a real key ({} chars)", v.len()));
        secrets.push(v);
    }
    // Positive control: the search below finds the values where they are meant to be.
    let human = d.run(&["keys"]).await;
    c.check(
        secrets.iter().all(|v| human.stdout.contains(v.as_str())),
        format!("keys (human) prints both values (the search works)\n{human}"),
    );
    // `keys --tier premium` shows only that one.
    let premium = d.run(&["keys", "--tier", "premium"]).await;
    c.check(
        premium.stdout.contains(&secrets[1]) && !premium.stdout.contains(&secrets[0]),
        format!("keys --tier premium prints the premium value only\n{premium}"),
    );

    // Error paths with the keys in place: a key out of its plan and CreateUsagePlanKey failing;
    // the key listing failing (500) while observing.
    let plans = aws.apigateway.get_usage_plans().limit(500).send().await.expect("GetUsagePlans");
    let standard = Shape::of(&stack).await;
    let standard = standard.name_of("usage-plan-standard");
    let plan = plans.items().iter().find(|p| p.name() == Some(standard)).expect("plan");
    let members = aws.apigateway.get_usage_plan_keys().usage_plan_id(plan.id().unwrap()).send().await.expect("keys");
    for k in members.items() {
        aws.apigateway
            .delete_usage_plan_key()
            .usage_plan_id(plan.id().unwrap())
            .key_id(k.id().unwrap())
            .send()
            .await
            .expect("DeleteUsagePlanKey");
    }
    proxy.add_rule(Rule::new().service("apigateway").operation("CreateUsagePlanKey").fail(
        400,
        "BadRequestException",
        "Invalid usage plan key",
    ));
    let out = d.run(&["-vv", "up", "--artifact", art]).await;
    c.check(out.code == 1, format!("up fails joining the key to its plan (exit 1)\n{out}"));
    runs.push(("-vv up (CreateUsagePlanKey fails)".into(), out));
    let out = d.run(&["-vv", "--output", "json", "status"]).await;
    runs.push(("-vv --output json status (key out of its plan)".into(), out));
    proxy.clear_rules();
    // Two 500s (the SDK's retries, logged at -vv), then a refusal that is not retried: a 500 for
    // ever would keep the run in the SDK's and our retries for minutes, with nothing more to show.
    proxy.add_rule(
        Rule::new().service("apigateway").operation("GetApiKeys").fail(500, "InternalFailure", "boom").times(2),
    );
    proxy.add_rule(Rule::new().service("apigateway").operation("GetApiKeys").fail(
        400,
        "BadRequestException",
        "injected: the keys cannot be listed",
    ));
    let out = d.run(&["-vv", "up", "--artifact", art]).await;
    c.check(out.code == 1, format!("up fails reading the keys (exit 1)\n{out}"));
    runs.push(("-vv up (GetApiKeys fails)".into(), out));
    proxy.clear_rules();
    let out = d.run(&["-vv", "up", "--artifact", art]).await;
    c.check(out.code == 0, format!("up repairs the plan membership\n{out}"));
    runs.push(("-vv up (repair)".into(), out));

    // And the teardown, verbose, JSON.
    let out = d.run(&["-vv", "--output", "json", "down", "--yes"]).await;
    c.check(out.code == 0, format!("down succeeds\n{out}"));
    runs.push(("-vv --output json down --yes".into(), out));

    // What `export` wrote names the keys, never their values.
    for entry in std::fs::read_dir(export_dir).expect("export wrote its folder").flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap_or_default();
        c.check(!text.is_empty(), format!("export wrote {}", entry.path().display()));
        c.check(
            secrets.iter().all(|s| !text.contains(s.as_str())),
            format!("{} holds no key value", entry.path().display()),
        );
    }
    let mut bytes = 0;
    for (label, out) in &runs {
        println!("  {:>5.1}s  {label}", out.elapsed.as_secs_f64());
        bytes += out.stdout.len() + out.stderr.len();
        for (i, s) in secrets.iter().enumerate() {
            let tier = ["standard", "premium"][i];
            c.check(!out.stdout.contains(s.as_str()), format!("`{label}`: stdout shows the {tier} key value"));
            c.check(!out.stderr.contains(s.as_str()), format!("`{label}`: stderr shows the {tier} key value"));
        }
    }
    println!(
        "secrets: {} key values searched in {} runs other than `keys` ({} bytes of stdout+stderr, -v/-vv, human/json, 3 failing runs)",
        secrets.len(),
        runs.len(),
        bytes
    );
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("5 secrets");
}

// =============================================================================================
// 6. Least privilege

/// Actions that AWS only accepts with `"Resource": "*"`, with the reason. Keep this list short
/// and explicit: anything else on `*` fails the test.
const STAR_RESOURCE_ALLOWED: &[(&str, &str)] = &[
    // AWS X-Ray has no resource types: "Resource types: none" for these actions in the Service
    // Authorization Reference ("Actions, resources, and condition keys for AWS X-Ray").
    ("xray:PutTraceSegments", "X-Ray: no resource-level permissions"),
    ("xray:PutTelemetryRecords", "X-Ray: no resource-level permissions"),
    // EC2 Describe* actions support no resource-level permissions (Service Authorization
    // Reference for Amazon EC2: no resource types for DescribeNetworkInterfaces/DescribeSubnets).
    ("ec2:DescribeNetworkInterfaces", "EC2 Describe*: `*` only"),
    ("ec2:DescribeSubnets", "EC2 Describe*: `*` only"),
    // The ENIs Lambda manages for a VPC function do not exist (no ARN to name) before Lambda
    // creates them; AWS's own AWSLambdaVPCAccessExecutionRole grants these on `*` (Lambda
    // developer guide, "Giving Lambda functions access to resources in an Amazon VPC").
    ("ec2:CreateNetworkInterface", "Lambda-managed ENIs: ids unknown in advance"),
    ("ec2:DeleteNetworkInterface", "Lambda-managed ENIs: ids unknown in advance"),
    ("ec2:AssignPrivateIpAddresses", "Lambda-managed ENIs: ids unknown in advance"),
    ("ec2:UnassignPrivateIpAddresses", "Lambda-managed ENIs: ids unknown in advance"),
];

fn list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

fn statements(doc: &Value) -> Vec<Value> {
    match &doc["Statement"] {
        Value::Array(a) => a.clone(),
        Value::Object(_) => vec![doc["Statement"].clone()],
        _ => vec![],
    }
}

fn parse(raw: &str) -> Value {
    serde_json::from_str(raw).or_else(|_| serde_json::from_str(&percent_decode(raw))).unwrap_or(Value::Null)
}

/// One permissions policy: every statement Allow-only, explicit actions, resources either the
/// stack's own ARNs (`own`: exact ARNs, or a log group ARN followed by `:*` for its streams) or
/// `*` for allowlisted actions only.
/// Actions granted on every log group of the account and region (`arn:...:log-group:*`) rather
/// than on the stack's own, with the reason.
const ANY_LOG_GROUP_ALLOWED: &[(&str, &str)] = &[
    // AWS's documented flow-log delivery role policy includes it (VPC user guide, "IAM role for
    // publishing flow logs to CloudWatch Logs"); it lists groups, so no one group's ARN fits.
    ("logs:DescribeLogGroups", "lists log groups"),
];

fn check_permissions(c: &mut Checks, label: &str, doc: &Value, own: &BTreeSet<String>) {
    let stmts = statements(doc);
    c.check(!stmts.is_empty(), format!("{label}: has statements: {doc}"));
    for (i, s) in stmts.iter().enumerate() {
        let at = format!("{label} statement {i} ({})", s["Sid"].as_str().unwrap_or("no Sid"));
        c.eq(&format!("{at}: Effect"), s["Effect"].as_str(), Some("Allow"));
        for key in ["NotAction", "NotResource", "NotPrincipal"] {
            c.check(s.get(key).is_none(), format!("{at}: uses {key} (an implicit wildcard): {s}"));
        }
        let actions = list(&s["Action"]);
        c.check(!actions.is_empty(), format!("{at}: names its actions: {s}"));
        for a in &actions {
            c.check(!a.contains('*'), format!("{at}: wildcard action {a:?}"));
        }
        for r in list(&s["Resource"]) {
            if r == "*" {
                let not_allowed: Vec<&String> =
                    actions.iter().filter(|a| !STAR_RESOURCE_ALLOWED.iter().any(|(x, _)| x == a)).collect();
                c.check(not_allowed.is_empty(), format!("{at}: `*` resource for {not_allowed:?}, which AWS can scope"));
            } else if r.ends_with(":log-group:*") {
                let not_allowed: Vec<&String> =
                    actions.iter().filter(|a| !ANY_LOG_GROUP_ALLOWED.iter().any(|(x, _)| x == a)).collect();
                c.check(not_allowed.is_empty(), format!("{at}: every log group ({r}) for {not_allowed:?}"));
                let account_wide = own
                    .iter()
                    .filter_map(|o| o.split_once(":log-group:"))
                    .any(|(p, _)| r == format!("{p}:log-group:*"));
                c.check(account_wide, format!("{at}: {r:?} is not the log groups of the stack's account and region"));
            } else {
                let base = r.strip_suffix(":*").unwrap_or(&r);
                c.check(!base.contains('*'), format!("{at}: wildcard inside resource {r:?}"));
                c.check(own.contains(base), format!("{at}: resource {r:?} is not one of the stack's own {own:?}"));
                if r.ends_with(":*") {
                    c.check(base.contains(":log-group:"), format!("{at}: `:*` suffix only on a log group ARN: {r:?}"));
                }
            }
        }
    }
}

/// A trust policy: Allow sts:AssumeRole to exactly one service principal.
fn check_trust(c: &mut Checks, label: &str, doc: &Value, service: &str) {
    let stmts = statements(doc);
    c.eq(&format!("{label}: trust statements"), stmts.len(), 1);
    for s in &stmts {
        c.eq(&format!("{label}: trust Effect"), s["Effect"].as_str(), Some("Allow"));
        c.eq(&format!("{label}: trust actions"), list(&s["Action"]), vec!["sts:AssumeRole".to_string()]);
        let p = &s["Principal"];
        c.eq(&format!("{label}: trusted principal"), p.as_object().map(|o| o.len()), Some(1));
        c.eq(&format!("{label}: trusted services"), list(&p["Service"]), vec![service.to_string()]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_are_least_privilege() {
    let t0 = std::time::Instant::now();
    let account = Account::start().await;
    let stack = account.stack("lpriv");
    let (aws, n) = (&account.aws, &stack.names);
    let s = n.stack.as_str();
    stack.deployer.run(&["up", "--artifact", &stack.artifact]).await.assert_ok();
    let mut c = Checks::new();

    // The stack's own ARNs, read back.
    let table = aws.dynamodb.describe_table().table_name(&n.table).send().await.expect("DescribeTable");
    let table_arn = table.table().and_then(|t| t.table_arn()).unwrap_or_default().to_string();
    let shape = Shape::of(&stack).await;
    let (function_role, flow_log_role) = (shape.name_of("function-role"), shape.name_of("flow-log-role"));
    let group_arn = |name: &str| {
        let logs = aws.logs.clone();
        let name = name.to_string();
        async move {
            let out = logs.describe_log_groups().log_group_name_prefix(&name).send().await.expect("DescribeLogGroups");
            let g = out.log_groups().iter().find(|g| g.log_group_name() == Some(name.as_str())).cloned();
            g.and_then(|g| {
                g.log_group_arn().map(str::to_string).or_else(|| g.arn().map(|a| a.trim_end_matches(":*").to_string()))
            })
            .unwrap_or_else(|| panic!("log group {name} missing"))
        }
    };
    let fn_group = group_arn(shape.name_of("function-log-group")).await;
    let flow_group = group_arn(shape.name_of("flow-log-group")).await;

    let mut statements_seen = 0;
    let mut star = Vec::new();
    for (role, service, own) in [
        (function_role, "lambda.amazonaws.com", BTreeSet::from([table_arn.clone(), fn_group.clone()])),
        (flow_log_role, "vpc-flow-logs.amazonaws.com", BTreeSet::from([flow_group.clone()])),
    ] {
        let r = aws.iam.get_role().role_name(role).send().await.expect("GetRole");
        let trust = parse(r.role().and_then(|r| r.assume_role_policy_document()).unwrap_or_default());
        check_trust(&mut c, role, &trust, service);
        let attached = aws.iam.list_attached_role_policies().role_name(role).send().await.expect("ListAttached");
        let attached: Vec<&str> = attached.attached_policies().iter().filter_map(|p| p.policy_arn()).collect();
        c.check(attached.is_empty(), format!("{role}: no managed policy attached: {attached:?}"));
        let names = aws.iam.list_role_policies().role_name(role).send().await.expect("ListRolePolicies");
        c.check(!names.policy_names().is_empty(), format!("{role}: has its inline policy"));
        for p in names.policy_names() {
            let doc = aws.iam.get_role_policy().role_name(role).policy_name(p).send().await.expect("GetRolePolicy");
            let doc = parse(doc.policy_document());
            println!("{role} / {p}: {doc}");
            statements_seen += statements(&doc).len();
            for st in statements(&doc) {
                if list(&st["Resource"]).iter().any(|r| r == "*") {
                    star.extend(list(&st["Action"]));
                }
            }
            check_permissions(&mut c, &format!("{role}/{p}"), &doc, &own);
        }
    }
    // The flow-log role's confused-deputy guard.
    let r = aws.iam.get_role().role_name(flow_log_role).send().await.expect("GetRole");
    let trust = parse(r.role().and_then(|r| r.assume_role_policy_document()).unwrap_or_default());
    c.check(
        statements(&trust).iter().any(|st| st["Condition"]["StringEquals"]["aws:SourceAccount"].is_string()),
        format!("{flow_log_role}: trust limited by aws:SourceAccount: {trust}"),
    );
    c.check(
        statements(&trust).iter().any(|st| {
            st["Condition"]["ArnLike"]["aws:SourceArn"].as_str().is_some_and(|a| a.ends_with(":vpc-flow-log/*"))
        }),
        format!("{flow_log_role}: trust limited by aws:SourceArn to this account's flow logs: {trust}"),
    );
    // The policy does what the function needs: PutItem on its table.
    let r = aws.iam.get_role_policy().role_name(function_role).policy_name("movies-stack").send().await;
    let doc = r.map(|r| parse(r.policy_document())).unwrap_or(Value::Null);
    c.check(
        statements(&doc).iter().any(|st| {
            list(&st["Action"]).contains(&"dynamodb:PutItem".to_string())
                && list(&st["Resource"]) == vec![table_arn.clone()]
        }),
        format!("{function_role}: dynamodb:PutItem on exactly the table: {doc}"),
    );

    // ------------------------------------------------ the DynamoDB gateway endpoint policy
    let vpcs = aws
        .ec2
        .describe_vpcs()
        .filters(Filter::builder().name("tag:movies-stack:stack").values(s).build())
        .send()
        .await
        .expect("DescribeVpcs");
    let vpc_id = vpcs.vpcs().first().and_then(|v| v.vpc_id()).unwrap_or_default().to_string();
    let eps = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(Filter::builder().name("vpc-id").values(&vpc_id).build())
        .send()
        .await
        .expect("DescribeVpcEndpoints");
    c.eq("endpoints in the VPC", eps.vpc_endpoints().len(), 1);
    for ep in eps.vpc_endpoints() {
        let doc = parse(ep.policy_document().unwrap_or_default());
        println!("endpoint {} policy: {doc}", ep.vpc_endpoint_id().unwrap_or_default());
        for (i, st) in statements(&doc).iter().enumerate() {
            c.eq(&format!("endpoint statement {i}: Effect"), st["Effect"].as_str(), Some("Allow"));
            c.eq(&format!("endpoint statement {i}: resources"), list(&st["Resource"]), vec![table_arn.clone()]);
            let actions = list(&st["Action"]);
            c.check(
                !actions.is_empty() && actions.iter().all(|a| a.starts_with("dynamodb:") && !a.contains('*')),
                format!("endpoint statement {i}: explicit DynamoDB actions only: {actions:?}"),
            );
            c.check(st.get("NotResource").is_none() && st.get("NotAction").is_none(), format!("endpoint: {st}"));
            c.eq(
                &format!("endpoint statement {i}: only this account's principals"),
                st["Condition"]["StringEquals"]["aws:PrincipalAccount"].as_str(),
                Some(ACCOUNT),
            );
        }
        c.check(!statements(&doc).is_empty(), format!("endpoint has a policy: {doc}"));
    }

    // ------------------------------------------------ the function's security group
    let pl = aws
        .ec2
        .describe_prefix_lists()
        .filters(Filter::builder().name("prefix-list-name").values("com.amazonaws.us-east-1.dynamodb").build())
        .send()
        .await
        .expect("DescribePrefixLists");
    let ddb_pl = pl.prefix_lists().first().and_then(|p| p.prefix_list_id()).unwrap_or_default().to_string();
    let f = aws.lambda.get_function().function_name(&n.function).send().await.expect("GetFunction");
    let sgs: Vec<String> =
        f.configuration().and_then(|c| c.vpc_config()).map(|v| v.security_group_ids().to_vec()).unwrap_or_default();
    c.eq("security groups of the function", sgs.len(), 1);
    for sg in &sgs {
        let rules = aws
            .ec2
            .describe_security_group_rules()
            .filters(Filter::builder().name("group-id").values(sg).build())
            .send()
            .await
            .expect("DescribeSecurityGroupRules");
        let rules = rules.security_group_rules();
        let ingress: Vec<_> = rules.iter().filter(|r| r.is_egress() == Some(false)).collect();
        let egress: Vec<_> = rules.iter().filter(|r| r.is_egress() == Some(true)).collect();
        println!("security group {sg}: {} ingress, {} egress rules", ingress.len(), egress.len());
        c.eq(&format!("{sg}: ingress rules"), ingress.len(), 0);
        c.eq(&format!("{sg}: egress rules"), egress.len(), 1);
        for r in egress {
            c.eq(&format!("{sg}: egress protocol"), r.ip_protocol(), Some("tcp"));
            c.eq(&format!("{sg}: egress ports"), (r.from_port(), r.to_port()), (Some(443), Some(443)));
            c.eq(&format!("{sg}: egress destination"), r.prefix_list_id(), Some(ddb_pl.as_str()));
            c.check(
                r.cidr_ipv4().is_none() && r.cidr_ipv6().is_none() && r.referenced_group_info().is_none(),
                format!("{sg}: egress goes nowhere else: {r:?}"),
            );
        }
    }
    println!(
        "least privilege: 2 roles, {statements_seen} permission statements; `*` resources only for {star:?} (allowlist of {})",
        STAR_RESOURCE_ALLOWED.len()
    );
    println!("runtime: {:.1}s", t0.elapsed().as_secs_f64());
    c.finish("6 least privilege");
}

// =============================================================================================
// 7. The printed policy: the permissions boundary, no escalation, the linter

const ACCOUNT: &str = e2e::strict::authz::ACCOUNT;

async fn printed(env: &str, command: &str) -> Value {
    let out = e2e::Deployer::new().run(&["--env", env, "--region", "us-east-1", command, "--account", ACCOUNT]).await;
    out.assert_ok();
    out.json()
}

/// Without the boundary an administrator creates once, `up` says what to do and creates no role;
/// `bootstrap --apply` creates it, then says it is up to date; `up` then creates every role with
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_need_the_bootstrapped_boundary() {
    let account = Account::start().await;
    let stack = account.stack("boundary");
    let (aws, n) = (&account.aws, &stack.names);
    let mut c = Checks::new();
    let shape = Shape::of(&stack).await;
    let roles = [shape.name_of("function-role"), shape.name_of("flow-log-role")];
    let mut d = stack.deployer.clone();
    d.bootstrap = false;
    let up = d.run(&["up", "--artifact", &stack.artifact]).await;
    c.eq("up without the boundary fails", up.code, 1);
    c.check(
        up.stderr.contains(&format!("{}-permissions-boundary does not exist", n.stack))
            && up.stderr.contains("bootstrap --apply"),
        format!("up says the boundary is missing and how to create it\n{up}"),
    );
    let hits = account.proxy.model_hits();
    c.check(hits[&e2e::Behaviour::IamBoundary] > 0, "the strict model refused CreateRole (NoSuchEntity)");
    for role in roles {
        let got = aws.iam.get_role().role_name(role).send().await;
        c.check(got.is_err(), format!("{role} was not created without its boundary"));
    }
    // The administrator's step, with the moto account's full rights (not through the proxy).
    let admin = e2e::Deployer::with(&stack.config, account.moto.url());
    let first = admin.run(&["bootstrap", "--apply"]).await;
    c.check(
        first.code == 0 && first.stdout.contains("created the permissions boundary"),
        format!("bootstrap creates it\n{first}"),
    );
    let again = admin.run(&["bootstrap", "--apply"]).await;
    c.check(
        again.code == 0 && again.stdout.contains("is up to date"),
        format!("a second bootstrap changes nothing\n{again}"),
    );
    let up = d.run(&["up", "--artifact", &stack.artifact]).await;
    c.check(up.code == 0, format!("up after bootstrap\n{up}"));
    let boundary = format!("arn:aws:iam::{ACCOUNT}:policy/{}-permissions-boundary", n.stack);
    for role in roles {
        let r = aws.iam.get_role().role_name(role).send().await.expect("GetRole");
        let got = r.role().and_then(|r| r.permissions_boundary()).and_then(|b| b.permissions_boundary_arn());
        c.eq(&format!("{role}: its permissions boundary"), got, Some(boundary.as_str()));
    }
    c.finish("7 the boundary is bootstrapped once and required");
}

/// What the holder of the printed policy could try, evaluated as IAM does: nothing gives a
/// role more than the boundary allows, nothing changes or removes the boundary, no other role
/// or API is reachable; and the boundary itself grants no IAM, STS or Lambda action, so that a
/// role made to trust someone else gives them nothing to climb with.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_printed_policy_cannot_escalate() {
    use e2e::strict::policy::{Request, evaluate, evaluate_bounded};
    let mut c = Checks::new();
    for env in ["dev", "prod"] {
        let tool = printed(env, "iam-policy").await;
        let boundary = printed(env, "bootstrap").await;
        let stack = if env == "dev" { "movies-dev" } else { "movies-prod" };
        let role = |name: &str| format!("arn:aws:iam::{ACCOUNT}:role/{name}");
        let function_role = role(&format!("{stack}-function"));
        let boundary_arn = format!("arn:aws:iam::{ACCOUNT}:policy/{stack}-permissions-boundary");
        let ours = |r: Request| r.with("iam:PermissionsBoundary", [boundary_arn.as_str()]);
        let allowed = |r: &Request| evaluate(&[&tool], r).expect("evaluable").allowed();
        let denied: Vec<(&str, Request)> = vec![
            ("a role without the boundary", Request::new("iam:CreateRole", &function_role)),
            (
                "a role with another boundary",
                Request::new("iam:CreateRole", &function_role)
                    .with("iam:PermissionsBoundary", ["arn:aws:iam::aws:policy/AdministratorAccess"]),
            ),
            ("an inline policy on a role without the boundary", Request::new("iam:PutRolePolicy", &function_role)),
            (
                "a trust policy on a role without the boundary",
                Request::new("iam:UpdateAssumeRolePolicy", &function_role),
            ),
            ("removing the boundary", ours(Request::new("iam:DeleteRolePermissionsBoundary", &function_role))),
            (
                "another boundary",
                Request::new("iam:PutRolePermissionsBoundary", &function_role)
                    .with("iam:PermissionsBoundary", ["arn:aws:iam::aws:policy/AdministratorAccess"]),
            ),
            ("a new version of the boundary", Request::new("iam:CreatePolicyVersion", &boundary_arn)),
            ("another default version of the boundary", Request::new("iam:SetDefaultPolicyVersion", &boundary_arn)),
            ("deleting the boundary", Request::new("iam:DeletePolicy", &boundary_arn)),
            (
                "AdministratorAccess on the function role",
                ours(Request::new("iam:AttachRolePolicy", &function_role))
                    .with("iam:PolicyARN", ["arn:aws:iam::aws:policy/AdministratorAccess"]),
            ),
            ("a role of another name", ours(Request::new("iam:CreateRole", role("admin")))),
            ("an inline policy on a role of another name", ours(Request::new("iam:PutRolePolicy", role("admin")))),
            ("assuming a role", Request::new("sts:AssumeRole", &function_role)),
            (
                "passing the function role to EC2",
                Request::new("iam:PassRole", &function_role).with("iam:PassedToService", ["ec2.amazonaws.com"]),
            ),
            (
                "passing another role to Lambda",
                Request::new("iam:PassRole", role("admin")).with("iam:PassedToService", ["lambda.amazonaws.com"]),
            ),
            (
                "another function's code",
                Request::new("lambda:UpdateFunctionCode", format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:other")),
            ),
            (
                "another API's key value",
                Request::new("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys/other1234"),
            ),
            (
                "deleting another API",
                Request::new("apigateway:DELETE", "arn:aws:apigateway:us-east-1::/restapis/other1234")
                    .with("aws:ResourceTag/team", ["x"]),
            ),
            (
                "another stack's lock",
                Request::new(
                    "dynamodb:UpdateItem",
                    format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/movies-stack-locks"),
                )
                .with("dynamodb:LeadingKeys", ["someone-elses-stack"]),
            ),
            (
                "another stack's key value",
                Request::new("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys/other1234")
                    .with("aws:ResourceTag/movies-stack:stack", ["someone-else"]),
            ),
        ];
        for (what, r) in &denied {
            c.check(!allowed(r), format!("{env}: the printed policy refuses {what}: {} on {}", r.action, r.resource));
        }
        // What it allows, it allows within the boundary: the function role with an inline
        // AdministratorAccess and any trust can still do only what the boundary grants.
        let inline = ours(Request::new("iam:PutRolePolicy", &function_role));
        c.check(
            allowed(&inline),
            format!("{env}: an inline policy on the bounded function role is allowed (the stack needs it)"),
        );
        let lock = Request::new(
            "dynamodb:UpdateItem",
            format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/movies-stack-locks"),
        )
        .with("dynamodb:LeadingKeys", [stack]);
        c.check(allowed(&lock), format!("{env}: the stack's own lock item is allowed"));
        let trust = ours(Request::new("iam:UpdateAssumeRolePolicy", &function_role));
        c.check(
            allowed(&trust),
            format!("{env}: a trust policy on the bounded function role is allowed (drift repair)"),
        );
        let admin = serde_json::json!({ "Version": "2012-10-17", "Statement": [{ "Effect": "Allow", "Action": "*", "Resource": "*" }] });
        let table = format!("arn:aws:dynamodb:us-east-1:{ACCOUNT}:table/demo_table");
        let as_role = |r: &Request| evaluate_bounded(&[&admin], Some(&boundary), r).expect("evaluable").allowed();
        c.check(
            as_role(&Request::new("dynamodb:PutItem", &table)),
            format!("{env}: the bounded role still writes the table"),
        );
        for (action, resource) in [
            ("iam:CreateUser", "*".to_string()),
            ("iam:PutRolePolicy", function_role.clone()),
            ("sts:AssumeRole", role("admin")),
            ("dynamodb:DeleteTable", table.clone()),
            ("dynamodb:Scan", table.clone()),
            ("lambda:UpdateFunctionCode", format!("arn:aws:lambda:us-east-1:{ACCOUNT}:function:apigw_handler")),
            ("s3:GetObject", "arn:aws:s3:::any/thing".to_string()),
            ("apigateway:GET", "arn:aws:apigateway:us-east-1::/apikeys/k".to_string()),
        ] {
            c.check(
                !as_role(&Request::new(action, &resource)),
                format!("{env}: the boundary caps the role: no {action} on {resource}"),
            );
        }
        let granted: BTreeSet<String> = statements(&boundary).iter().flat_map(|st| list(&st["Action"])).collect();
        c.check(
            granted.iter().all(|a| ["dynamodb:PutItem", "logs:", "xray:", "ec2:"].iter().any(|ok| a.starts_with(ok))),
            format!(
                "{env}: the boundary grants only writes to the table, logs, traces and the function's ENIs: {granted:?}"
            ),
        );
        c.check(
            !granted.iter().any(|a| a.starts_with("iam:") || a.starts_with("sts:") || a.starts_with("lambda:")),
            format!("{env}: no IAM, STS or Lambda action in the boundary"),
        );
    }
    c.finish("7 the printed policy cannot escalate");
}

/// The IAM policy linter parliament (PyPI), on the printed policy and boundary of every config:
/// no finding but the listed exceptions, each with its reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parliament_finds_nothing_unexplained() {
    let mut c = Checks::new();
    let parliament = e2e::venv_dir().join("bin/parliament");
    let mut used = BTreeSet::new();
    for env in ["dev", "prod", "local"] {
        for command in ["iam-policy", "bootstrap"] {
            let doc = printed(env, command).await;
            let out = std::process::Command::new(&parliament)
                .args(["--json", "--string", &doc.to_string()])
                .stdin(std::process::Stdio::null())
                .output()
                .unwrap_or_else(|e| panic!("run {}: {e} (scripts/setup.sh installs it)", parliament.display()));
            let text = String::from_utf8_lossy(&out.stdout);
            c.check(
                out.status.success() || !text.trim().is_empty(),
                format!("parliament ran on {env} {command}: {}", String::from_utf8_lossy(&out.stderr)),
            );
            for line in text.lines().filter(|l| !l.trim().is_empty()) {
                let finding: Value =
                    serde_json::from_str(line).expect("parliament --json prints one JSON object a line");
                let issue = finding["issue"].as_str().unwrap_or_default();
                let detail = finding["detail"].to_string();
                match e2e::iam_coverage::PARLIAMENT_EXCEPTIONS
                    .iter()
                    .position(|(i, d, _)| *i == issue && detail.contains(d))
                {
                    Some(k) => {
                        used.insert(k);
                    }
                    None => {
                        c.check(false, format!("parliament on `{env} {command}`: {issue} {detail}"));
                    }
                }
            }
        }
    }
    for (k, (issue, detail, why)) in e2e::iam_coverage::PARLIAMENT_EXCEPTIONS.iter().enumerate() {
        println!("exception {issue} {detail}: {why}");
        c.check(used.contains(&k), format!("the exception {issue} {detail} is still needed"));
    }
    c.finish("7 parliament");
}
