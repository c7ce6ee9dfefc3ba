//! Issue 21: `export` hands the live stack to CloudFormation. Two stacks in one moto, one like
//! `dev` (the base config) and one like `prod` (alarms, stage throttling, the web ACL), each
//! deployed, then exported. Checked:
//! - every live resource of the stack (the inventory scanned from moto) appears exactly once, with
//!   the CloudFormation type of its kind, and the identifier its import needs is its live id;
//! - the property values the stack sets match the live ones, read from moto (CIDRs, retention,
//!   PITR, the stream view, the plans' throttles and quotas, the stage's throttle, the alarms'
//!   thresholds, the web ACL's rule);
//! - every resource is retained on delete and on replacement; the import template has no outputs;
//! - no key value appears anywhere in the folder;
//! - `cfn-lint` (PyPI) finds no error in either template (its warnings are printed, and
//!   explained in docs/commands.md);
//! - moto's CloudFormation validates both templates, and a `CreateStack` of the complete one
//!   into an empty moto account creates every resource of a type moto's CloudFormation supports:
//!   the same inventory, tagged as the stack's (counted by kind where moto drops the tags);
//! - once CloudFormation owns the table, `down` refuses the stack and changes nothing.
//! - a stack that is not in sync is refused, and nothing is written.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use aws_sdk_cloudformation::types::Parameter;
use e2e::inventory::{Inventory, ItemKind};
use e2e::proxy::Rule;
use e2e::{Account, Aws, Checks, Moto, Stack};
use movies_stack_kinds::Kind;
use serde_json::Value;

use crate::cloudformation::describe_stack_resources_xml;

/// The CloudFormation type of each kind's resource (the test's own table, not the deployer's).
fn cfn_type(kind: Kind) -> &'static str {
    match kind {
        Kind::Vpc => "AWS::EC2::VPC",
        Kind::Subnet => "AWS::EC2::Subnet",
        Kind::RouteTable => "AWS::EC2::RouteTable",
        Kind::VpcEndpoint => "AWS::EC2::VPCEndpoint",
        Kind::SecurityGroup => "AWS::EC2::SecurityGroup",
        Kind::FlowLog => "AWS::EC2::FlowLog",
        Kind::LogGroup => "AWS::Logs::LogGroup",
        Kind::IamRole => "AWS::IAM::Role",
        Kind::Table => "AWS::DynamoDB::Table",
        Kind::Function => "AWS::Lambda::Function",
        // With its AWS::Lambda::Version.
        Kind::FunctionAlias => "AWS::Lambda::Alias",
        Kind::ApiGatewayAccount => "AWS::ApiGateway::Account",
        Kind::RestApi => "AWS::ApiGateway::RestApi",
        Kind::LambdaPermission => "AWS::Lambda::Permission",
        Kind::Stage => "AWS::ApiGateway::Stage",
        // A property of the stage (`AccessLogSetting`).
        Kind::StageAccessLogs => "AWS::ApiGateway::Stage",
        Kind::UsagePlan => "AWS::ApiGateway::UsagePlan",
        Kind::ApiKey => "AWS::ApiGateway::ApiKey",
        Kind::Alarm => "AWS::CloudWatch::Alarm",
        Kind::WebAcl => "AWS::WAFv2::WebACL",
        Kind::WebAclAssociation => "AWS::WAFv2::WebACLAssociation",
    }
}

/// The types moto 5.2's CloudFormation creates (moto/*/models.py `cloudformation_type`); it
/// skips the others with a warning.
const MOTO_CFN_TYPES: &[&str] = &[
    "AWS::EC2::VPC",
    "AWS::EC2::Subnet",
    "AWS::EC2::RouteTable",
    "AWS::EC2::SubnetRouteTableAssociation",
    "AWS::EC2::VPCEndpoint",
    "AWS::EC2::SecurityGroup",
    "AWS::EC2::FlowLog",
    "AWS::Logs::LogGroup",
    "AWS::IAM::Role",
    "AWS::DynamoDB::Table",
    "AWS::Lambda::Function",
    "AWS::Lambda::Permission",
    "AWS::ApiGateway::RestApi",
    "AWS::ApiGateway::Resource",
    "AWS::ApiGateway::Method",
    "AWS::ApiGateway::Deployment",
];

/// The kinds whose `Tags` moto 5.2's CloudFormation does not apply (its models ignore them).
const MOTO_CFN_DROPS_TAGS: &[Kind] = &[Kind::RouteTable, Kind::VpcEndpoint, Kind::Function, Kind::RestApi];

fn read(dir: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
}

/// The template's resources of `resource` (the stack resource), by logical id.
fn of_resource<'a>(export: &'a Value, resource: &str) -> Vec<&'a Value> {
    export["imported"].as_array().unwrap().iter().filter(|r| r["resource"] == resource).collect()
}

fn props<'a>(template: &'a Value, logical_id: &str) -> &'a Value {
    &template["Resources"][logical_id]["Properties"]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_writes_an_importable_template_of_the_live_stack() {
    let account = Account::start().await;
    let dev = account.stack("exdev");
    let prod = account.stack_with(
        "exprod",
        &[
            ("alarms.enabled", "true"),
            ("waf.enabled", "true"),
            ("api.throttle_rate", "100.0"),
            ("api.throttle_burst", "200"),
        ],
    );
    let mut c = Checks::new();

    // Not deployed yet: refused, nothing written.
    let early = account.dir.path().join("early");
    let refused = dev.deployer.run(&["export", "--out", early.to_str().unwrap()]).await;
    c.eq("export before up: exit code", refused.code, 1);
    c.check(refused.stderr.contains("run `movies-stack up` first"), format!("says to run up first:\n{refused}"));
    c.check(!early.exists(), "export before up writes nothing");

    let (dev_up, prod_up) = (["up", "--artifact", &dev.artifact], ["up", "--artifact", &prod.artifact]);
    let (a, b) = tokio::join!(dev.deployer.run(&dev_up), prod.deployer.run(&prod_up));
    a.assert_ok();
    b.assert_ok();
    let inventory = Inventory::scan(&account.aws).await;
    for stack in [&dev, &prod] {
        check_stack(&mut c, &account, stack, &inventory).await;
    }

    // Once CloudFormation owns the stack (as after the import: its DescribeStackResources names
    // the table; moto's does not answer by physical id, so the proxy does), `down` refuses it.
    let xml = describe_stack_resources_xml(&dev.names.stack, "Table", "AWS::DynamoDB::Table", &dev.names.table);
    let rule = Rule::new().service("cloudformation").operation("DescribeStackResources");
    account.proxy.add_rule(rule.reply(200, "text/xml", &xml));
    let before = account.proxy.mutating_calls().len();
    let down = dev.deployer.run(&["down", "--yes"]).await;
    c.eq("down of a stack CloudFormation owns: exit code", down.code, 1);
    c.check(
        down.stderr.contains(&format!("owned by CloudFormation stack `{}`", dev.names.stack))
            && down.stderr.contains("movies-stack export"),
        format!("down names the owning stack and the handover:\n{down}"),
    );
    let after: Vec<String> = account.proxy.mutating_calls()[before..].iter().map(|call| call.name()).collect();
    c.check(after.is_empty(), format!("down changed nothing (its lock aside): {after:?}"));
    c.finish("export");
}

async fn check_stack(c: &mut Checks, account: &Account, stack: &Stack, inventory: &Inventory) {
    let s = stack.names.stack.as_str();
    let dir = account.dir.path().join(format!("{s}-cfn"));
    let out = stack.deployer.run(&["--output", "json", "export", "--out", dir.to_str().unwrap()]).await;
    out.assert_ok();
    let export = out.json();
    let template = read(&dir, "template.json");
    let complete = read(&dir, "template-complete.json");
    let to_import = read(&dir, "resources-to-import.json");
    let resources = template["Resources"].as_object().expect("Resources");

    // Every live resource of the stack, once, with its kind's type and its live id.
    let items: Vec<_> = inventory.of_stack(s).collect();
    c.check(items.len() > 20, format!("{s}: the inventory has the stack ({} items)", items.len()));
    for item in &items {
        let (ItemKind::Of(kind), Some(resource)) = (item.kind, item.resource.as_deref()) else { continue };
        let found: Vec<&Value> = of_resource(&export, resource)
            .into_iter()
            .chain(export["not_imported"].as_array().unwrap().iter().filter(|r| r["resource"] == resource))
            .filter(|r| r["type"] == cfn_type(kind))
            .collect();
        c.eq(&format!("{s}: {item}: exported once as {}", cfn_type(kind)), found.len(), 1);
        let Some(entry) = found.first() else { continue };
        if let Some(identifier) = entry["identifier"].as_object() {
            let values: BTreeSet<&str> = identifier.values().filter_map(Value::as_str).collect();
            c.check(
                values.contains(item.id.as_str()),
                format!("{s}: {item}: identified by its live id: {identifier:?}"),
            );
        }
    }
    // The import file is exactly the template's resources, with the identifiers above.
    let listed: BTreeSet<&str> =
        to_import.as_array().unwrap().iter().filter_map(|r| r["LogicalResourceId"].as_str()).collect();
    let in_template: BTreeSet<&str> = resources.keys().map(String::as_str).collect();
    c.eq(&format!("{s}: resources-to-import lists the template's resources"), &listed, &in_template);
    for r in resources.values().chain(complete["Resources"].as_object().unwrap().values()) {
        c.check(r["DeletionPolicy"] == "Retain" && r["UpdateReplacePolicy"] == "Retain", format!("{s}: retained: {r}"));
    }
    c.check(template.get("Outputs").is_none(), format!("{s}: the import template adds no outputs"));
    c.check(complete["Outputs"]["ApiUrl"].is_object(), format!("{s}: the complete template has the outputs"));
    c.check(
        complete["Resources"]["ApiPermission"]["Type"] == "AWS::Lambda::Permission"
            && !resources.contains_key("ApiPermission"),
        format!("{s}: the permission comes in the update after the import"),
    );

    let readme = std::fs::read_to_string(dir.join("README.md")).unwrap();
    for not in export["not_imported"].as_array().unwrap() {
        let (id, why) = (not["logical_id"].as_str().unwrap(), not["why"].as_str().unwrap());
        c.check(readme.contains(id) && readme.contains(why), format!("{s}: the README explains {id}:\n{readme}"));
    }
    c.check(readme.contains("--change-set-type IMPORT"), format!("{s}: the README has the import commands"));
    check_values(c, &account.aws, stack, &template, &export).await;
    check_no_key_value(c, &account.aws, s, &dir).await;
    check_lint(c, s, &dir);
    let live: BTreeSet<(Kind, String)> = items
        .iter()
        .filter_map(|i| match (i.kind, &i.resource) {
            (ItemKind::Of(kind), Some(r)) if MOTO_CFN_TYPES.contains(&cfn_type(kind)) => Some((kind, r.clone())),
            _ => None,
        })
        .collect();
    check_in_moto(c, stack, &dir, &complete, &live).await;
}

/// The property values the stack sets, against what moto has.
async fn check_values(c: &mut Checks, aws: &Aws, stack: &Stack, t: &Value, export: &Value) {
    let s = stack.names.stack.as_str();
    let vpcs = aws.ec2.describe_vpcs().filters(e2e::ec2_filter("tag:movies-stack:stack", s)).send().await.unwrap();
    let vpc = &vpcs.vpcs()[0];
    c.eq(&format!("{s}: VPC CIDR"), props(t, "Vpc")["CidrBlock"].as_str(), vpc.cidr_block());
    let subnets =
        aws.ec2.describe_subnets().filters(e2e::ec2_filter("tag:movies-stack:stack", s)).send().await.unwrap();
    for subnet in subnets.subnets() {
        let resource = subnet.tags().iter().find(|t| t.key() == Some("movies-stack:resource")).and_then(|t| t.value());
        let logical = pascal(resource.unwrap_or_default());
        c.eq(&format!("{s}: {logical} CIDR"), props(t, &logical)["CidrBlock"].as_str(), subnet.cidr_block());
        c.eq(
            &format!("{s}: {logical} zone"),
            props(t, &logical)["AvailabilityZone"].as_str(),
            subnet.availability_zone(),
        );
    }
    let groups = aws.logs.describe_log_groups().send().await.unwrap();
    for (logical, group) in
        t["Resources"].as_object().unwrap().iter().filter(|(_, r)| r["Type"] == "AWS::Logs::LogGroup")
    {
        let name = group["Properties"]["LogGroupName"].as_str().unwrap();
        let live = groups.log_groups().iter().find(|g| g.log_group_name() == Some(name));
        c.eq(
            &format!("{s}: {logical} retention"),
            group["Properties"]["RetentionInDays"].as_i64(),
            live.and_then(|g| g.retention_in_days()).map(i64::from),
        );
    }
    let table = props(t, "Table");
    c.eq(
        &format!("{s}: PITR"),
        table["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"].as_bool(),
        Some(aws.pitr_status(&stack.names.table).await.as_deref() == Some("ENABLED")),
    );
    let live_table = aws.dynamodb.describe_table().table_name(&stack.names.table).send().await.unwrap();
    let view = live_table.table().and_then(|t| t.stream_specification()).and_then(|s| s.stream_view_type());
    c.eq(
        &format!("{s}: stream view"),
        table["StreamSpecification"]["StreamViewType"].as_str(),
        view.map(|v| v.as_str()),
    );

    let plans = aws.apigateway.get_usage_plans().limit(500).send().await.unwrap();
    for tier in ["standard", "premium"] {
        let p = props(t, &format!("UsagePlan{}", pascal(tier)));
        let live = plans.items().iter().find(|x| x.name() == p["UsagePlanName"].as_str()).expect("the plan is live");
        let throttle = live.throttle().unwrap();
        c.eq(&format!("{s}: {tier} rate"), p["Throttle"]["RateLimit"].as_f64(), Some(throttle.rate_limit()));
        c.eq(
            &format!("{s}: {tier} burst"),
            p["Throttle"]["BurstLimit"].as_i64(),
            Some(i64::from(throttle.burst_limit())),
        );
        let quota = live.quota().unwrap();
        c.eq(&format!("{s}: {tier} quota"), p["Quota"]["Limit"].as_i64(), Some(i64::from(quota.limit())));
        c.eq(&format!("{s}: {tier} period"), p["Quota"]["Period"].as_str(), quota.period().map(|p| p.as_str()));
    }
    let api = of_resource(export, "api")
        .into_iter()
        .find(|r| r["type"] == "AWS::ApiGateway::RestApi")
        .unwrap_or_else(|| panic!("the API in {export:#}"));
    let api_id = api["identifier"]["RestApiId"].as_str().unwrap().to_string();
    let stage = aws.apigateway.get_stage().rest_api_id(api_id).stage_name("prod").send().await.unwrap();
    let all = stage.method_settings().and_then(|m| m.get("*/*"));
    let settings = &props(t, "Stage")["MethodSettings"][0];
    c.eq(
        &format!("{s}: stage rate"),
        settings["ThrottlingRateLimit"].as_f64(),
        all.map(|m| m.throttling_rate_limit()).filter(|r| *r > 0.0),
    );
    c.eq(
        &format!("{s}: stage burst"),
        settings["ThrottlingBurstLimit"].as_i64(),
        all.map(|m| i64::from(m.throttling_burst_limit())).filter(|b| *b > 0),
    );

    let alarms = aws.cloudwatch.describe_alarms().alarm_name_prefix(s).send().await.unwrap();
    let exported: BTreeMap<&str, f64> = t["Resources"]
        .as_object()
        .unwrap()
        .values()
        .filter(|r| r["Type"] == "AWS::CloudWatch::Alarm")
        .map(|r| (r["Properties"]["AlarmName"].as_str().unwrap(), r["Properties"]["Threshold"].as_f64().unwrap()))
        .collect();
    let live: BTreeMap<&str, f64> =
        alarms.metric_alarms().iter().map(|a| (a.alarm_name().unwrap(), a.threshold().unwrap())).collect();
    c.eq(&format!("{s}: alarm thresholds"), &exported, &live);

    let acl = &t["Resources"]["WebAcl"];
    if acl.is_object() {
        let rule = &acl["Properties"]["Rules"][0];
        let acls = aws.wafv2.list_web_acls().scope(aws_sdk_wafv2::types::Scope::Regional).send().await.unwrap();
        let summary =
            acls.web_acls().iter().find(|a| a.name() == acl["Properties"]["Name"].as_str()).expect("live ACL");
        let live = aws
            .wafv2
            .get_web_acl()
            .scope(aws_sdk_wafv2::types::Scope::Regional)
            .name(summary.name().unwrap())
            .id(summary.id().unwrap())
            .send()
            .await
            .unwrap();
        let live_rule = &live.web_acl().unwrap().rules()[0];
        let rate = live_rule.statement().and_then(|s| s.rate_based_statement()).unwrap();
        c.eq(&format!("{s}: WAF rule name"), rule["Name"].as_str(), Some(live_rule.name()));
        c.eq(
            &format!("{s}: WAF rate limit"),
            rule["Statement"]["RateBasedStatement"]["Limit"].as_i64(),
            Some(rate.limit()),
        );
        c.check(
            rule["Action"].get("Block").is_some() && live_rule.action().and_then(|a| a.block()).is_some(),
            "WAF blocks",
        );
    }
}

/// `route-table-0` → `RouteTable0`, as the export names logical ids.
fn pascal(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .map(|w| w.chars().take(1).flat_map(char::to_uppercase).chain(w.chars().skip(1)).collect::<String>())
        .collect()
}

async fn check_no_key_value(c: &mut Checks, aws: &Aws, s: &str, dir: &Path) {
    let keys = aws.apigateway.get_api_keys().include_values(true).send().await.unwrap();
    let values: Vec<&str> = keys.items().iter().filter_map(|k| k.value()).collect();
    c.check(!values.is_empty(), "moto has key values to look for");
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let text = std::fs::read_to_string(entry.path()).unwrap();
        c.check(values.iter().all(|v| !text.contains(v)), format!("{s}: no key value in {}", entry.path().display()));
    }
}

/// cfn-lint's exit code is a bit mask: 2 errors, 4 warnings, 8 informational.
fn check_lint(c: &mut Checks, s: &str, dir: &Path) {
    for name in ["template.json", "template-complete.json"] {
        let out = std::process::Command::new("cfn-lint")
            .arg(dir.join(name))
            .output()
            .unwrap_or_else(|e| panic!("run cfn-lint (from the venv, on PATH): {e}"));
        let code = out.status.code().unwrap_or(-1);
        let text = String::from_utf8_lossy(&out.stdout);
        c.check(code >= 0 && code & 2 == 0, format!("{s}: cfn-lint finds no error in {name} (exit {code}):\n{text}"));
        if !text.trim().is_empty() {
            eprintln!("cfn-lint on {s}'s {name} (exit {code}):\n{text}");
        }
    }
}

/// moto's CloudFormation validates both templates, and creates the complete one in an empty
/// account: every resource of a type it supports.
async fn check_in_moto(c: &mut Checks, stack: &Stack, dir: &Path, complete: &Value, live: &BTreeSet<(Kind, String)>) {
    let s = stack.names.stack.as_str();
    let moto = Moto::start();
    let aws = Aws::new(moto.url()).await;
    let cfn = aws_sdk_cloudformation::Client::new(&aws.config);
    for name in ["template.json", "template-complete.json"] {
        let body = std::fs::read_to_string(dir.join(name)).unwrap();
        let valid = cfn.validate_template().template_body(&body).send().await;
        c.check(valid.is_ok(), format!("{s}: moto validates {name}: {valid:?}"));
    }
    // The code, where the template's parameters say.
    put_object(moto.url(), "code", "function.zip", std::fs::read(&stack.artifact).unwrap()).await;
    let complete = &without_what_moto_cannot_refer_to(complete);
    let created = cfn
        .create_stack()
        .stack_name(s)
        .template_body(complete.to_string())
        .parameters(Parameter::builder().parameter_key("CodeS3Bucket").parameter_value("code").build())
        .parameters(Parameter::builder().parameter_key("CodeS3Key").parameter_value("function.zip").build())
        .send()
        .await;
    c.check(created.is_ok(), format!("{s}: moto creates the complete template: {created:?}"));
    let listed = cfn.describe_stack_resources().stack_name(s).send().await;
    let made: BTreeSet<String> = listed
        .map(|r| r.stack_resources().iter().filter_map(|r| r.logical_resource_id().map(str::to_string)).collect())
        .unwrap_or_default();
    let supported: BTreeSet<String> = complete["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"].as_str().is_some_and(|t| MOTO_CFN_TYPES.contains(&t)))
        .map(|(k, _)| k.clone())
        .collect();
    let missing: Vec<&String> = supported.difference(&made).collect();
    c.check(missing.is_empty(), format!("{s}: moto made every resource of a type it supports; not made: {missing:?}"));
    // The same inventory, of the kinds moto's CloudFormation makes: with the stack's tags, but for
    // the kinds whose Tags it drops (counted by kind instead).
    let inventory = Inventory::scan(&aws).await;
    let made: BTreeSet<(Kind, String)> = inventory
        .of_stack(s)
        .filter_map(|i| match (i.kind, &i.resource) {
            (ItemKind::Of(kind), Some(r)) => Some((kind, r.clone())),
            _ => None,
        })
        .collect();
    let tagged: BTreeSet<(Kind, String)> =
        live.iter().filter(|(kind, _)| !MOTO_CFN_DROPS_TAGS.contains(kind)).cloned().collect();
    c.eq(&format!("{s}: the new account's tagged inventory"), &made, &tagged);
    for kind in MOTO_CFN_DROPS_TAGS {
        let count = inventory.items.iter().filter(|i| i.kind == *kind).count();
        let wanted = live.iter().filter(|(k, _)| k == kind).count();
        c.eq(&format!("{s}: the new account's {kind}s (untagged by moto)"), count, wanted);
    }
}

/// moto 5.2's CloudFormation has no model of AWS::Lambda::Version nor AWS::Lambda::Alias: it skips
/// them, and a `Ref` to one it skipped leaves the property out, which its Permission model then
/// fails on (HTTP 500, `KeyError: 'FunctionName'`). The template without them and without what
/// refers to them (the permission), for moto to create the rest.
fn without_what_moto_cannot_refer_to(complete: &Value) -> Value {
    const LACKS: [&str; 2] = ["AWS::Lambda::Version", "AWS::Lambda::Alias"];
    let mut out = complete.clone();
    let resources = out["Resources"].as_object_mut().expect("Resources");
    let mut gone: BTreeSet<String> = resources
        .iter()
        .filter(|(_, r)| r["Type"].as_str().is_some_and(|t| LACKS.contains(&t)))
        .map(|(k, _)| k.clone())
        .collect();
    loop {
        let refers = |r: &Value| {
            let text = r.to_string();
            gone.iter().any(|id| text.contains(&format!("\"{id}\"")) || text.contains(&format!("${{{id}")))
        };
        let more: Vec<String> =
            resources.iter().filter(|(k, r)| !gone.contains(*k) && refers(r)).map(|(k, _)| k.clone()).collect();
        if more.is_empty() {
            break;
        }
        gone.extend(more);
    }
    resources.retain(|k, _| !gone.contains(k));
    if let Some(outputs) = out.get_mut("Outputs").and_then(Value::as_object_mut) {
        outputs.retain(|_, o| !gone.iter().any(|id| o.to_string().contains(id.as_str())));
    }
    out
}

/// PUT an object into moto's S3 (moto's server takes unsigned requests).
async fn put_object(endpoint: &str, bucket: &str, key: &str, body: Vec<u8>) {
    use http_body_util::Full;
    use hyper_util::client::legacy::Client;
    use hyper_util::rt::TokioExecutor;
    let client: Client<_, Full<bytes::Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    for (uri, body) in [(format!("{endpoint}/{bucket}"), Vec::new()), (format!("{endpoint}/{bucket}/{key}"), body)] {
        let req = hyper::Request::put(&uri).body(Full::new(bytes::Bytes::from(body))).unwrap();
        let res = client.request(req).await.unwrap_or_else(|e| panic!("PUT {uri}: {e}"));
        assert!(res.status().is_success(), "PUT {uri}: {}", res.status());
    }
}
