//! `up` from nothing, then every resource read back through the SDK (straight to moto, not
//! through the proxy) and checked against the deployer's contract.
//!
//! Non-default config values (CIDR, memory, timeout, retention, the Standard plan) prove that
//! the config reaches AWS. Every check is counted; all failures are reported together.
//! Places where a moto gap forces a weaker check are marked `MOTO GAP`.
//!
//! MOTO GAP (whole suite): moto_server serves no execute-api data plane, so API-key enforcement
//! (403 without a key), usage-plan throttling/quotas and the AWS_PROXY call into the function
//! cannot be exercised here; only their control-plane configuration is checked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_ec2::types::VpcAttributeName;
use e2e::artifact::code_sha256;
use e2e::inventory::{Shape, TAG_RESOURCE, TAG_STACK, ec2_tags};
use e2e::proxy::{count_by_service, percent_decode};
use e2e::{Account, Behaviour, Checks, StackNames, ec2_filter};

const REGION: &str = "us-east-1";

const VPC_CIDR: &str = "10.42.0.0/16";
const MEMORY_MB: i32 = 512;
const TIMEOUT_S: i32 = 15;
const RETENTION_DAYS: i32 = 90;

/// Pieces of the stage's access-log format (DESIGN §1 item 13: request id, source IP, user
/// agent, status, latency, API key id). Adjust here if the format changes.
const ACCESS_LOG_FIELDS: [&str; 6] = [
    "$context.requestId",
    "$context.identity.sourceIp",
    "$context.identity.userAgent",
    "$context.status",
    "Latency",
    "$context.identity.apiKeyId",
];

/// Our two tags (and `Name = S-<id>` for EC2 resources).
fn check_tags(c: &mut Checks, what: &str, tags: &HashMap<String, String>, stack: &str, id: &str, ec2: bool) {
    c.eq(&format!("{what}: tag {TAG_STACK}"), tags.get(TAG_STACK).map(String::as_str), Some(stack));
    c.eq(&format!("{what}: tag {TAG_RESOURCE}"), tags.get(TAG_RESOURCE).map(String::as_str), Some(id));
    if ec2 {
        c.eq(&format!("{what}: tag Name"), tags.get("Name").cloned(), Some(format!("{stack}-{id}")));
    }
}

/// The names docs/config.md ("Derived names") gives the resources of stack `S`, and those the
/// config sets (table, function): the one place the suite spells them out. The other tests take
/// them from the graph ([`Shape::name_of`]); this holds the graph to the documented names.
fn documented_names(n: &StackNames) -> BTreeMap<&'static str, String> {
    let s = &n.stack;
    BTreeMap::from([
        ("function-role", format!("{s}-function")),
        ("flow-log-role", format!("{s}-flow-logs")),
        ("function-log-group", format!("/aws/lambda/{}", n.function)),
        ("access-log-group", format!("/movies-stack/{s}/api-access")),
        ("flow-log-group", format!("/movies-stack/{s}/vpc-flow-logs")),
        ("api", s.clone()),
        ("usage-plan-standard", format!("{s}-Standard")),
        ("usage-plan-premium", format!("{s}-Premium")),
        ("api-key-standard", format!("{s}-standard")),
        ("api-key-premium", format!("{s}-premium")),
        ("web-acl", format!("{s}-web-acl")),
        ("table", n.table.clone()),
        ("function", n.function.clone()),
        ("alarm-function-errors", format!("{s}-function-errors")),
        ("alarm-function-throttles", format!("{s}-function-throttles")),
        ("alarm-concurrent-executions", format!("{s}-concurrent-executions")),
        ("alarm-api-5xx", format!("{s}-api-5xx")),
        ("alarm-api-latency", format!("{s}-api-latency")),
    ])
}

fn output<'a>(json: &'a serde_json::Value, key: &str) -> Option<&'a str> {
    json["outputs"][key].as_str()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn up_creates_the_whole_stack() {
    let account = Account::start().await;
    let stack = account.stack_with(
        "up",
        &[
            ("network.vpc_cidr", &format!("\"{VPC_CIDR}\"")),
            ("function.memory_mb", &MEMORY_MB.to_string()),
            ("function.timeout_seconds", &TIMEOUT_S.to_string()),
            ("logs.retention_days", &RETENTION_DAYS.to_string()),
            ("usage_plans.standard.rate_limit", "25.0"),
            ("usage_plans.standard.burst_limit", "60"),
            ("usage_plans.standard.quota_limit", "5000"),
            ("usage_plans.standard.quota_period", "\"WEEK\""),
        ],
    );
    let (aws, proxy, n, artifact) = (&account.aws, &account.proxy, &stack.names, stack.artifact.as_str());
    let s = n.stack.as_str();
    let shape = Shape::of(&stack).await;

    let (run, json) = stack.deployer.up_json(&["--artifact", artifact]).await;
    let calls = proxy.calls();
    println!(
        "up: exit {} in {:.1}s, {} AWS calls ({} mutating); by service: {:?}",
        run.code,
        run.elapsed.as_secs_f64(),
        calls.len(),
        proxy.mutating_calls().len(),
        count_by_service(&calls)
    );
    println!("up stdout: {}", run.stdout.trim());

    let mut c = Checks::new();

    // ---------------------------------------------------------------- the names
    let named: BTreeMap<&str, String> =
        shape.resources.iter().filter_map(|e| Some((e.resource.as_str(), e.name.clone()?))).collect();
    c.eq("the graph's names are docs/config.md's derived names", named, documented_names(n));

    // ---------------------------------------------------------------- up's own output
    c.check(
        json["changes"].as_u64().is_some_and(|n| n > 0),
        format!("`changes` is a positive number: {}", json["changes"]),
    );
    for key in ["ApiUrl", "StandardApiKeyId", "PremiumApiKeyId", "TableName", "FunctionName"] {
        c.check(
            output(&json, key).is_some_and(|v| !v.is_empty()),
            format!("outputs.{key} present: {}", json["outputs"]),
        );
    }
    c.eq("outputs.TableName", output(&json, "TableName"), Some(n.table.as_str()));
    c.eq("outputs.FunctionName", output(&json, "FunctionName"), Some(n.function.as_str()));
    c.check(calls.iter().all(|call| call.service != "unknown"), "every call the deployer made was SigV4-signed");
    // The API's `/` and `/{proxy+}` are written at once: API Gateway applies one write to an API
    // at a time and refuses the other as a concurrent modification, which the deployer retries.
    let conflicts: Vec<String> = calls
        .iter()
        .filter(|call| call.model == Some(Behaviour::ApiGatewayConcurrentModification))
        .map(|call| call.to_string())
        .collect();
    println!("up: concurrent modifications refused and retried: {conflicts:?}");
    c.check(
        run.code == 0 && !conflicts.is_empty(),
        format!("up converged through API Gateway's concurrent-modification refusals: {conflicts:?}"),
    );

    // ---------------------------------------------------------------- VPC
    let vpcs =
        aws.ec2.describe_vpcs().filters(ec2_filter(&format!("tag:{TAG_STACK}"), s)).send().await.expect("DescribeVpcs");
    let vpcs = vpcs.vpcs();
    c.eq("VPCs tagged with the stack", vpcs.len(), 1);
    let Some(vpc) = vpcs.first() else {
        return c.finish("up (no VPC: stopping early)");
    };
    let vpc_id = vpc.vpc_id().unwrap_or_default().to_string();
    c.eq("VPC CIDR", vpc.cidr_block(), Some(VPC_CIDR));
    check_tags(&mut c, "VPC", &ec2_tags(vpc.tags()), s, "vpc", true);
    for (attr, name) in
        [(VpcAttributeName::EnableDnsSupport, "DNS support"), (VpcAttributeName::EnableDnsHostnames, "DNS hostnames")]
    {
        let a = aws
            .ec2
            .describe_vpc_attribute()
            .vpc_id(&vpc_id)
            .attribute(attr.clone())
            .send()
            .await
            .expect("DescribeVpcAttribute");
        let on = match attr {
            VpcAttributeName::EnableDnsSupport => a.enable_dns_support().and_then(|v| v.value()),
            _ => a.enable_dns_hostnames().and_then(|v| v.value()),
        };
        c.eq(&format!("VPC {name}"), on, Some(true));
    }

    // ---------------------------------------------------------------- subnets
    let subnets =
        aws.ec2.describe_subnets().filters(ec2_filter("vpc-id", &vpc_id)).send().await.expect("DescribeSubnets");
    let mut subnets: Vec<_> = subnets.subnets().to_vec();
    subnets.sort_by_key(|sn| ec2_tags(sn.tags()).get(TAG_RESOURCE).cloned().unwrap_or_default());
    c.eq("subnets in the VPC", subnets.len(), 2);
    let mut azs = BTreeSet::new();
    let mut subnet_ids = Vec::new();
    for (i, sn) in subnets.iter().enumerate() {
        let id = format!("subnet-{i}");
        let cidr = sn.cidr_block().unwrap_or_default();
        c.check(
            cidr.starts_with("10.42.") && cidr.ends_with("/24"),
            format!("{id}: CIDR {cidr} is a /24 inside {VPC_CIDR}"),
        );
        c.eq(&format!("{id}: no public IPs on launch"), sn.map_public_ip_on_launch(), Some(false));
        check_tags(&mut c, &id, &ec2_tags(sn.tags()), s, &id, true);
        azs.insert(sn.availability_zone().unwrap_or_default().to_string());
        subnet_ids.push(sn.subnet_id().unwrap_or_default().to_string());
    }
    c.eq("distinct AZs of the subnets", azs.len(), 2);
    c.check(azs.iter().all(|az| az.starts_with(REGION)), format!("AZs are in {REGION}: {azs:?}"));
    let cidrs: BTreeSet<_> = subnets.iter().filter_map(|sn| sn.cidr_block()).collect();
    c.eq("distinct subnet CIDRs", cidrs.len(), 2);

    // ---------------------------------------------------------------- route tables
    let rts = aws
        .ec2
        .describe_route_tables()
        .filters(ec2_filter("vpc-id", &vpc_id))
        .send()
        .await
        .expect("DescribeRouteTables");
    let mut ours: Vec<_> = rts
        .route_tables()
        .iter()
        .filter(|rt| ec2_tags(rt.tags()).get(TAG_STACK).map(String::as_str) == Some(s))
        .cloned()
        .collect();
    ours.sort_by_key(|rt| ec2_tags(rt.tags()).get(TAG_RESOURCE).cloned().unwrap_or_default());
    c.eq("route tables tagged with the stack", ours.len(), 2);
    let mut rt_ids = BTreeSet::new();
    for (i, rt) in ours.iter().enumerate() {
        let id = format!("route-table-{i}");
        check_tags(&mut c, &id, &ec2_tags(rt.tags()), s, &id, true);
        rt_ids.insert(rt.route_table_id().unwrap_or_default().to_string());
        let assoc: Vec<&str> = rt.associations().iter().filter_map(|a| a.subnet_id()).collect();
        // Assumption: route-table-i is associated with subnet-i.
        c.eq(&format!("{id}: associated subnets"), assoc, vec![subnet_ids.get(i).map(String::as_str).unwrap_or("?")]);
        for r in rt.routes() {
            let to_internet = r.gateway_id().is_some_and(|g| g.starts_with("igw-"))
                || r.nat_gateway_id().is_some()
                || r.destination_cidr_block() == Some("0.0.0.0/0");
            c.check(!to_internet, format!("{id}: no route to the internet: {r:?}"));
        }
    }

    // ---------------------------------------------------------------- DynamoDB gateway endpoint
    let pl = aws
        .ec2
        .describe_prefix_lists()
        .filters(ec2_filter("prefix-list-name", &format!("com.amazonaws.{REGION}.dynamodb")))
        .send()
        .await
        .expect("DescribePrefixLists");
    // MOTO GAP: prefix-list ids are random per server start, so look it up instead of pl-02cd2c6b.
    let ddb_pl = pl.prefix_lists().first().and_then(|p| p.prefix_list_id()).unwrap_or_default().to_string();
    let eps = aws
        .ec2
        .describe_vpc_endpoints()
        .filters(ec2_filter("vpc-id", &vpc_id))
        .send()
        .await
        .expect("DescribeVpcEndpoints");
    let eps = eps.vpc_endpoints();
    c.eq("VPC endpoints in the VPC", eps.len(), 1);
    if let Some(ep) = eps.first() {
        c.eq("endpoint service", ep.service_name(), Some(format!("com.amazonaws.{REGION}.dynamodb").as_str()));
        c.eq("endpoint type", ep.vpc_endpoint_type().map(|t| t.as_str()), Some("Gateway"));
        let on: BTreeSet<String> = ep.route_table_ids().iter().cloned().collect();
        c.eq("endpoint route tables", on, rt_ids.clone());
        check_tags(&mut c, "endpoint", &ec2_tags(ep.tags()), s, "dynamodb-endpoint", true);
        // Beyond the section-3 contract (DESIGN §1 item 4): the policy is limited to the table.
        let policy = percent_decode(ep.policy_document().unwrap_or_default());
        c.check(policy.contains(&format!(":table/{}", n.table)), format!("endpoint policy names the table: {policy}"));
    }
    for rt in &ours {
        let via_endpoint = rt.routes().iter().any(|r| r.destination_prefix_list_id() == Some(ddb_pl.as_str()));
        c.check(via_endpoint, format!("{:?}: route to the DynamoDB prefix list {ddb_pl}", rt.route_table_id()));
    }

    // ---------------------------------------------------------------- security group
    let sgs = aws
        .ec2
        .describe_security_groups()
        .filters(ec2_filter("vpc-id", &vpc_id))
        .filters(ec2_filter(&format!("tag:{TAG_RESOURCE}"), "function-sg"))
        .send()
        .await
        .expect("DescribeSecurityGroups");
    let sgs = sgs.security_groups();
    c.eq("function security groups", sgs.len(), 1);
    let sg_id = sgs.first().and_then(|g| g.group_id()).unwrap_or_default().to_string();
    if let Some(sg) = sgs.first() {
        check_tags(&mut c, "security group", &ec2_tags(sg.tags()), s, "function-sg", true);
        c.eq("security group ingress rules", sg.ip_permissions().len(), 0);
        let egress = sg.ip_permissions_egress();
        c.eq("security group egress rules", egress.len(), 1);
        if let Some(e) = egress.first() {
            c.eq("egress protocol", e.ip_protocol(), Some("tcp"));
            c.eq("egress ports", (e.from_port(), e.to_port()), (Some(443), Some(443)));
            let pls: Vec<&str> = e.prefix_list_ids().iter().filter_map(|p| p.prefix_list_id()).collect();
            c.eq("egress destination prefix lists", pls, vec![ddb_pl.as_str()]);
            c.check(
                e.ip_ranges().is_empty() && e.ipv6_ranges().is_empty() && e.user_id_group_pairs().is_empty(),
                format!("egress has no other destination: {e:?}"),
            );
        }
    }

    // ---------------------------------------------------------------- IAM roles
    let mut role_arns = HashMap::new();
    for (principal, id) in [("lambda.amazonaws.com", "function-role"), ("vpc-flow-logs.amazonaws.com", "flow-log-role")]
    {
        let name = shape.name_of(id);
        match aws.iam.get_role().role_name(name).send().await {
            Ok(r) => {
                let role = r.role().expect("role");
                role_arns.insert(id, role.arn().to_string());
                let trust = percent_decode(role.assume_role_policy_document().unwrap_or_default());
                c.check(trust.contains(principal), format!("role {name} trusts {principal}: {trust}"));
                let tags = aws.iam.list_role_tags().role_name(name).send().await.expect("ListRoleTags");
                let tags: HashMap<String, String> =
                    tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
                check_tags(&mut c, &format!("role {name}"), &tags, s, id, false);
            }
            Err(e) => {
                c.check(false, format!("role {name} exists: {e:?}"));
            }
        }
    }

    // ---------------------------------------------------------------- log groups
    let mut log_group_arns = HashMap::new();
    for id in ["function-log-group", "access-log-group", "flow-log-group"] {
        let name = shape.name_of(id);
        let groups =
            aws.logs.describe_log_groups().log_group_name_prefix(name).send().await.expect("DescribeLogGroups");
        let group = groups.log_groups().iter().find(|g| g.log_group_name() == Some(name));
        if !c.check(group.is_some(), format!("log group {name} exists")) {
            continue;
        }
        let group = group.unwrap();
        c.eq(&format!("{name}: retention"), group.retention_in_days(), Some(RETENTION_DAYS));
        // The ARN without the trailing `:*` (moto returns no tags for the `:*` form).
        let arn = group
            .log_group_arn()
            .map(str::to_string)
            .or_else(|| group.arn().map(|a| a.trim_end_matches(":*").to_string()))
            .unwrap_or_default();
        let tags = aws.logs.list_tags_for_resource().resource_arn(&arn).send().await.expect("ListTagsForResource");
        check_tags(&mut c, name, &tags.tags().cloned().unwrap_or_default(), s, id, false);
        log_group_arns.insert(id, arn);
    }

    // ---------------------------------------------------------------- flow log
    let fls =
        aws.ec2.describe_flow_logs().filter(ec2_filter("resource-id", &vpc_id)).send().await.expect("DescribeFlowLogs");
    let fls = fls.flow_logs();
    c.eq("flow logs on the VPC", fls.len(), 1);
    if let Some(fl) = fls.first() {
        c.eq("flow log traffic", fl.traffic_type().map(|t| t.as_str()), Some("ALL"));
        c.eq("flow log destination type", fl.log_destination_type().map(|t| t.as_str()), Some("cloud-watch-logs"));
        let group = shape.name_of("flow-log-group");
        let dest_ok = fl.log_group_name() == Some(group)
            || fl.log_destination().is_some_and(|d| d.trim_end_matches(":*").ends_with(&format!(":log-group:{group}")));
        c.check(dest_ok, format!("flow log goes to {group}: {:?} / {:?}", fl.log_group_name(), fl.log_destination()));
        c.eq(
            "flow log delivery role",
            fl.deliver_logs_permission_arn(),
            role_arns.get("flow-log-role").map(String::as_str),
        );
        check_tags(&mut c, "flow log", &ec2_tags(fl.tags()), s, "flow-log", true);
    }

    // ---------------------------------------------------------------- DynamoDB table
    match aws.dynamodb.describe_table().table_name(&n.table).send().await {
        Ok(t) => {
            let t = t.table().expect("table");
            let keys: Vec<(String, String)> = t
                .key_schema()
                .iter()
                .map(|k| (k.attribute_name().to_string(), k.key_type().as_str().to_string()))
                .collect();
            c.eq("table key schema", keys, vec![("id".to_string(), "HASH".to_string())]);
            let id_type = t
                .attribute_definitions()
                .iter()
                .find(|a| a.attribute_name() == "id")
                .map(|a| a.attribute_type().as_str());
            c.eq("table key type", id_type, Some("S"));
            c.eq(
                "table billing",
                t.billing_mode_summary().and_then(|b| b.billing_mode()).map(|b| b.as_str()),
                Some("PAY_PER_REQUEST"),
            );
            let stream = t.stream_specification();
            c.eq("table stream enabled", stream.map(|st| st.stream_enabled()), Some(true));
            c.eq(
                "table stream view",
                stream.and_then(|st| st.stream_view_type()).map(|v| v.as_str()),
                Some("NEW_AND_OLD_IMAGES"),
            );
            // README: the table has deletion protection (kept on `down` unless asked).
            c.eq("table deletion protection", t.deletion_protection_enabled(), Some(true));
            c.eq("table SSE", t.sse_description().and_then(|d| d.status()).map(|st| st.as_str()), Some("ENABLED"));
            let status = aws.pitr_status(&n.table).await;
            c.eq("table PITR", status.as_deref(), Some("ENABLED"));
            let arn = t.table_arn().unwrap_or_default();
            let tags = aws.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.expect("ListTagsOfResource");
            let tags: HashMap<String, String> =
                tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
            check_tags(&mut c, "table", &tags, s, "table", false);
        }
        Err(e) => {
            c.check(false, format!("table {} exists: {e:?}", n.table));
        }
    }

    // ---------------------------------------------------------------- Lambda function
    let mut function_arn = String::new();
    match aws.lambda.get_function().function_name(&n.function).send().await {
        Ok(f) => {
            let conf = f.configuration().expect("configuration");
            function_arn = conf.function_arn().unwrap_or_default().to_string();
            c.eq("function runtime", conf.runtime().map(|r| r.as_str()), Some("provided.al2023"));
            c.eq("function handler", conf.handler(), Some("bootstrap"));
            let arch: Vec<&str> = conf.architectures().iter().map(|a| a.as_str()).collect();
            c.eq("function architectures", arch, vec!["arm64"]);
            c.eq("function memory", conf.memory_size(), Some(MEMORY_MB));
            c.eq("function timeout", conf.timeout(), Some(TIMEOUT_S));
            // On create moto keeps TracingConfig (it only ignores *updates* of it: MOTO GAP).
            c.eq("function tracing", conf.tracing_config().and_then(|t| t.mode()).map(|m| m.as_str()), Some("Active"));
            let env = conf.environment().and_then(|e| e.variables()).cloned().unwrap_or_default();
            c.eq("function env TABLE_NAME", env.get("TABLE_NAME").map(String::as_str), Some(n.table.as_str()));
            c.check(
                conf.role().is_some_and(|r| r.ends_with(&format!(":role/{s}-function"))),
                format!("function role is {s}-function: {:?}", conf.role()),
            );
            let vpc_conf = conf.vpc_config();
            let fn_subnets: BTreeSet<String> =
                vpc_conf.map(|v| v.subnet_ids().iter().cloned().collect()).unwrap_or_default();
            c.eq("function subnets", fn_subnets, subnet_ids.iter().cloned().collect::<BTreeSet<_>>());
            let fn_sgs: Vec<String> = vpc_conf.map(|v| v.security_group_ids().to_vec()).unwrap_or_default();
            c.eq("function security groups", fn_sgs, vec![sg_id.clone()]);
            // MOTO GAP: VpcConfig.VpcId is hard-coded `vpc-123abc`, so it cannot be compared with our VPC.
            // MOTO GAP: LoggingConfig (JSON format, log group) is dropped by moto: not checkable here.
            let bytes = std::fs::read(artifact).expect("read artifact");
            c.eq("function CodeSha256 = the artifact's", conf.code_sha256(), Some(code_sha256(&bytes).as_str()));
            let tags = f.tags().cloned().unwrap_or_default();
            check_tags(&mut c, "function", &tags, s, "function", false);
        }
        Err(e) => {
            c.check(false, format!("function {} exists: {e:?}", n.function));
        }
    }

    // ---------------------------------------------------------------- REST API
    let apis = aws.apigateway.get_rest_apis().limit(500).send().await.expect("GetRestApis");
    let apis: Vec<_> = apis.items().iter().filter(|a| a.name() == Some(s)).cloned().collect();
    c.eq("REST APIs named after the stack", apis.len(), 1);
    let Some(api) = apis.first() else {
        return c.finish("up (no REST API: stopping early)");
    };
    let api_id = api.id().unwrap_or_default().to_string();
    let types: Vec<&str> =
        api.endpoint_configuration().map(|e| e.types().iter().map(|t| t.as_str()).collect()).unwrap_or_default();
    c.eq("API endpoint types", types, vec!["REGIONAL"]);
    c.eq("API key source", api.api_key_source().map(|k| k.as_str()), Some("HEADER"));
    // MOTO GAP: tags on restapi ARNs cannot be read with GetTags (404); the create-time tags in
    // GetRestApis are the only view.
    check_tags(&mut c, "REST API", &api.tags().cloned().unwrap_or_default(), s, "api", false);

    let resources = aws.apigateway.get_resources().rest_api_id(&api_id).limit(500).send().await.expect("GetResources");
    let paths: BTreeMap<String, String> = resources
        .items()
        .iter()
        .map(|r| (r.path().unwrap_or_default().to_string(), r.id().unwrap_or_default().to_string()))
        .collect();
    c.eq(
        "API resource paths",
        paths.keys().cloned().collect::<Vec<_>>(),
        vec!["/".to_string(), "/{proxy+}".to_string()],
    );
    // The API invokes the alias `live`, not the function's $LATEST.
    let invoke_uri =
        format!("arn:aws:apigateway:{REGION}:lambda:path/2015-03-31/functions/{function_arn}:live/invocations");
    for r in resources.items() {
        let path = r.path().unwrap_or_default();
        let methods: Vec<String> = r.resource_methods().map(|m| m.keys().cloned().collect()).unwrap_or_default();
        c.check(methods.iter().any(|m| m == "ANY"), format!("{path}: has ANY (methods {methods:?})"));
        for m in &methods {
            let got = aws
                .apigateway
                .get_method()
                .rest_api_id(&api_id)
                .resource_id(r.id().unwrap_or_default())
                .http_method(m)
                .send()
                .await;
            let Ok(method) = got else {
                c.check(false, format!("{m} {path}: GetMethod: {got:?}"));
                continue;
            };
            c.eq(&format!("{m} {path}: API key required"), method.api_key_required(), Some(true));
            if m != "ANY" {
                continue;
            }
            c.eq(&format!("{m} {path}: authorization"), method.authorization_type(), Some("NONE"));
            let integ = method.method_integration();
            c.eq(
                &format!("{m} {path}: integration type"),
                integ.and_then(|i| i.r#type()).map(|t| t.as_str()),
                Some("AWS_PROXY"),
            );
            c.eq(&format!("{m} {path}: integration method"), integ.and_then(|i| i.http_method()), Some("POST"));
            c.eq(&format!("{m} {path}: integration URI"), integ.and_then(|i| i.uri()), Some(invoke_uri.as_str()));
        }
    }

    // Beyond the section-3 contract (DESIGN §1 item 12): API Gateway may invoke the function,
    // scoped to this API.
    match aws.lambda.get_policy().function_name(&n.function).send().await {
        Ok(p) => {
            let policy = p.policy().unwrap_or_default();
            c.check(
                policy.contains("apigateway.amazonaws.com") && policy.contains(&api_id),
                format!("function policy lets API {api_id} invoke it: {policy}"),
            );
        }
        Err(e) => {
            c.check(false, format!("function has a resource policy for API Gateway: {e:?}"));
        }
    }

    // ---------------------------------------------------------------- stage
    match aws.apigateway.get_stage().rest_api_id(&api_id).stage_name("prod").send().await {
        Ok(stage) => {
            c.check(stage.deployment_id().is_some_and(|d| !d.is_empty()), "stage prod points at a deployment");
            c.eq("stage tracing", stage.tracing_enabled(), true);
            let logs = stage.access_log_settings();
            c.eq(
                "stage access log destination",
                logs.and_then(|l| l.destination_arn()),
                log_group_arns.get("access-log-group").map(String::as_str),
            );
            let format = logs.and_then(|l| l.format()).unwrap_or_default();
            c.check(
                format.trim().starts_with('{') && format.trim().ends_with('}'),
                format!("access log format is JSON: {format}"),
            );
            for field in ACCESS_LOG_FIELDS {
                c.check(format.contains(field), format!("access log format has {field}: {format}"));
            }
            let metrics = stage.method_settings().and_then(|m| m.get("*/*")).map(|m| m.metrics_enabled());
            c.eq("stage */* metrics enabled", metrics, Some(true));
            check_tags(&mut c, "stage", &stage.tags().cloned().unwrap_or_default(), s, "stage", false);
        }
        Err(e) => {
            c.check(false, format!("stage prod exists: {e:?}"));
        }
    }

    // Beyond the section-3 contract (DESIGN §1 item 14, docs/config.md): the account-level API Gateway
    // CloudWatch role is set when the account had none (a fresh moto account has none).
    match aws.apigateway.get_account().send().await {
        Ok(a) => {
            c.check(
                a.cloudwatch_role_arn().is_some_and(|r| r.ends_with(":role/movies-stack-apigateway-cloudwatch")),
                format!("API Gateway account CloudWatch role is set: {:?}", a.cloudwatch_role_arn()),
            );
        }
        Err(e) => {
            c.check(false, format!("GetAccount: {e:?}"));
        }
    }

    // ---------------------------------------------------------------- usage plans and keys
    let plans = aws.apigateway.get_usage_plans().limit(500).send().await.expect("GetUsagePlans");
    let keys = aws.apigateway.get_api_keys().limit(500).include_values(false).send().await.expect("GetApiKeys");
    for (tier, rate, burst, quota, period, output_key) in [
        ("standard", 25.0, 60, 5000, "WEEK", "StandardApiKeyId"),
        ("premium", 100.0, 200, 50000, "DAY", "PremiumApiKeyId"),
    ] {
        let plan_name = shape.name_of(&format!("usage-plan-{tier}"));
        let found: Vec<_> = plans.items().iter().filter(|p| p.name() == Some(plan_name)).collect();
        c.eq(&format!("usage plans named {plan_name}"), found.len(), 1);
        let Some(plan) = found.first() else { continue };
        let stages: Vec<(String, String)> = plan
            .api_stages()
            .iter()
            .map(|st| (st.api_id().unwrap_or_default().to_string(), st.stage().unwrap_or_default().to_string()))
            .collect();
        c.eq(&format!("{plan_name}: API stages"), stages, vec![(api_id.clone(), "prod".to_string())]);
        c.eq(&format!("{plan_name}: rate limit"), plan.throttle().map(|t| t.rate_limit()), Some(rate));
        c.eq(&format!("{plan_name}: burst limit"), plan.throttle().map(|t| t.burst_limit()), Some(burst));
        c.eq(&format!("{plan_name}: quota"), plan.quota().map(|q| q.limit()), Some(quota));
        c.eq(
            &format!("{plan_name}: quota period"),
            plan.quota().and_then(|q| q.period()).map(|p| p.as_str()),
            Some(period),
        );
        // MOTO GAP: usage-plan and API-key tags are readable only through GetUsagePlans/GetApiKeys.
        check_tags(
            &mut c,
            plan_name,
            &plan.tags().cloned().unwrap_or_default(),
            s,
            &format!("usage-plan-{tier}"),
            false,
        );

        let key_name = shape.name_of(&format!("api-key-{tier}"));
        let found: Vec<_> = keys.items().iter().filter(|k| k.name() == Some(key_name)).collect();
        c.eq(&format!("API keys named {key_name}"), found.len(), 1);
        let Some(key) = found.first() else { continue };
        c.eq(&format!("{key_name}: enabled"), key.enabled(), true);
        c.eq(&format!("outputs.{output_key}"), output(&json, output_key), key.id());
        check_tags(&mut c, key_name, &key.tags().cloned().unwrap_or_default(), s, &format!("api-key-{tier}"), false);
        let in_plan = aws
            .apigateway
            .get_usage_plan_keys()
            .usage_plan_id(plan.id().unwrap_or_default())
            .send()
            .await
            .expect("GetUsagePlanKeys");
        let ids: Vec<&str> = in_plan.items().iter().filter_map(|k| k.id()).collect();
        c.eq(&format!("{plan_name}: keys"), ids, vec![key.id().unwrap_or_default()]);
    }

    // ---------------------------------------------------------------- ApiUrl
    let url = output(&json, "ApiUrl").unwrap_or_default();
    c.check(
        url.contains(&api_id) && url.trim_end_matches('/').ends_with("/prod"),
        format!("outputs.ApiUrl names API {api_id} and stage prod: {url}"),
    );

    c.finish("up");
}
