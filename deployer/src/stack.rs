//! The registry: Config -> the stack's resources (DESIGN.md section 1 as data). Everything that
//! lists the stack's resources derives from here: the graph, `status` and `plan` rows, the
//! counts in messages, the tests' expected inventory. Adding a resource = one module in
//! `resources/` + one line here.

use std::sync::Arc;

use crate::config::{Config, subnet_cidr};
use crate::error::Result;
use crate::graph::{Graph, Node};
use crate::package::Artifact;
use crate::resources::iam_role::{Role, RolePurpose};
use crate::resources::*;

pub fn resources(c: &Config, artifact: Arc<Artifact>) -> Vec<Arc<dyn Node>> {
    let azs = u8::try_from(c.network.az_count()).expect("the config allows at most 6 zones");
    let retention = c.logs.retention_days;
    let mut r: Vec<Arc<dyn Node>> = Vec::new();

    // Network
    r.push(Arc::new(vpc::Vpc { cidr: c.network.vpc_cidr.clone() }));
    let zones = Arc::new(zones::Zones::new(c.network.availability_zones.clone(), usize::from(azs)));
    for i in 0..azs {
        let cidr = subnet_cidr(&c.network.vpc_cidr, c.network.subnet_prefix, usize::from(i));
        r.push(Arc::new(subnet::Subnet { index: i, cidr, zones: zones.clone() }));
        r.push(Arc::new(route_table::RouteTable { index: i }));
    }
    r.push(Arc::new(vpc_endpoint::DynamoDbEndpoint { route_tables: azs, table_name: c.table.name.clone() }));
    r.push(Arc::new(security_group::FunctionSecurityGroup));

    // Logs
    for (id, name) in [
        (log_group::FLOW, log_group::flow_log_group_name(c)),
        (log_group::FUNCTION, log_group::function_log_group_name(c)),
        (log_group::ACCESS, log_group::access_log_group_name(c)),
    ] {
        r.push(Arc::new(log_group::LogGroup { id, name, retention_days: retention }));
    }

    // IAM
    r.push(Arc::new(Role {
        id: iam_role::FLOW_LOGS,
        name: iam_role::flow_log_role_name(c),
        purpose: RolePurpose::FlowLogs { log_group: log_group::flow_log_group_name(c) },
        boundary: iam_role::permissions_boundary_name(c),
    }));
    r.push(Arc::new(Role {
        id: iam_role::FUNCTION,
        name: iam_role::function_role_name(c),
        purpose: RolePurpose::Function {
            table: c.table.name.clone(),
            log_group: log_group::function_log_group_name(c),
        },
        boundary: iam_role::permissions_boundary_name(c),
    }));
    r.push(Arc::new(flow_log::FlowLog { log_group: log_group::flow_log_group_name(c) }));

    // Data and compute
    r.push(Arc::new(table::Table { name: c.table.name.clone() }));
    let function = function(c, artifact);
    r.push(Arc::new(function.clone()));
    r.push(Arc::new(function_alias(c, function)));

    // API
    r.push(Arc::new(account_role::ApiGatewayAccount {
        role_name: account_role::ROLE_NAME.into(),
        boundary: iam_role::permissions_boundary_name(c),
    }));
    r.push(Arc::new(rest_api::RestApi { name: rest_api::api_name(c), function_name: c.function.name.clone() }));
    r.push(Arc::new(permission::ApiPermission { function_name: c.function.name.clone(), stage: c.api.stage.clone() }));
    r.push(Arc::new(stage::Stage { stage_name: c.api.stage.clone(), throttle: c.api.throttle() }));
    r.push(Arc::new(stage_access_logs::StageAccessLogs {
        stage_name: c.api.stage.clone(),
        log_group: log_group::access_log_group_name(c),
    }));
    for (tier, plan) in c.usage_plans.tiers() {
        r.push(Arc::new(usage_plan::UsagePlan::new(
            tier,
            format!("{}-{}", c.stack, plan.name),
            plan.rate_limit,
            plan.burst_limit,
            plan.quota_limit,
            &plan.quota_period,
        )));
        r.push(Arc::new(api_key::ApiKey::new(tier, format!("{}-{tier}", c.stack))));
    }

    // Monitoring
    let watched = alarm::Watched { function: &c.function.name, api: &rest_api::api_name(c), stage: &c.api.stage };
    r.extend(alarm::alarms(&c.stack, &watched, &c.alarms).into_iter().map(|a| Arc::new(a) as Arc<dyn Node>));

    // WAF (`[waf] enabled`; off, they stay in the graph so that `up` removes what was made).
    let waf = c.waf.enabled;
    r.push(Arc::new(web_acl::WebAcl {
        name: web_acl::web_acl_name(c),
        rate_limit: c.waf.rate_limit_per_5min,
        enabled: waf,
    }));
    r.push(Arc::new(web_acl::WebAclAssociation {
        acl_name: web_acl::web_acl_name(c),
        stage_name: c.api.stage.clone(),
        enabled: waf,
    }));
    r
}

/// The config's function, with this code.
pub fn function(c: &Config, artifact: Arc<Artifact>) -> function::Function {
    function::Function {
        name: c.function.name.clone(),
        architecture: c.function.architecture.clone(),
        memory_mb: c.function.memory_mb,
        timeout_seconds: c.function.timeout_seconds,
        subnets: u8::try_from(c.network.az_count()).expect("the config allows at most 6 zones"),
        table_name: c.table.name.clone(),
        log_group: log_group::function_log_group_name(c),
        artifact,
        reserved_concurrency: c.function.reserved_concurrency,
    }
}

/// The alias `live` of the config's function (`history` and `rollback` use it alone).
pub fn function_alias(c: &Config, function: function::Function) -> function_alias::FunctionAlias {
    function_alias::FunctionAlias {
        function_name: c.function.name.clone(),
        function,
        deploy: c.deploy.clone(),
        alarms: if c.alarms.enabled { alarm::canary_alarm_names(&c.stack) } else { Vec::new() },
    }
}

/// The alias alone, with no code to deploy: what `history` reads and `rollback` points back.
pub fn deployed_alias(c: &Config) -> function_alias::FunctionAlias {
    function_alias(c, function(c, Arc::new(Artifact::unknown())))
}

pub fn graph(c: &Config, artifact: Arc<Artifact>) -> Result<Graph> {
    Graph::new(resources(c, artifact))
}

/// A digest of the state `up` converges the stack to: this tool's version, the config (every
/// key, and the file it came from) and the code. Two runs with the same digest want the same stack.
pub fn digest(c: &Config, artifact: &Artifact) -> String {
    let text = format!("{}\n{c:?}\n{}", env!("CARGO_PKG_VERSION"), artifact.sha256_b64);
    crate::package::sha256_hex(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stack_graph_is_valid_and_ordered() {
        let c = crate::config::parse("stack = \"t\"").unwrap();
        let g = graph(&c, Arc::new(Artifact::from_zip(vec![], "test".into()))).unwrap();
        let order: Vec<String> = g.names().iter().map(|(n, _)| n.to_string()).collect();
        let at = |id: &str| order.iter().position(|x| x == id).unwrap_or_else(|| panic!("{id} missing"));
        let unique: std::collections::BTreeSet<&String> = order.iter().collect();
        assert_eq!(unique.len(), order.len(), "every id once: {order:?}");
        assert!(at("vpc") < at("subnet-0"));
        assert!(at("subnet-1") < at("function"));
        assert!(at("function-log-group") < at("function"), "the log group exists before the function");
        assert!(at("route-table-1") < at("dynamodb-endpoint"));
        assert!(at("function") < at("api-permission"));
        assert!(at("stage") < at("usage-plan-standard"), "stage before usage plan (Invalid API Stage otherwise)");
        assert!(at("usage-plan-premium") < at("api-key-premium"));
        assert!(at("apigw-account") < at("stage-access-logs"), "access logging needs the account role");
        assert!(at("stage") < at("stage-access-logs"));
    }

    #[test]
    fn the_web_acl_is_off_unless_the_config_turns_it_on() {
        // (wanted, what the association waits for), per config.
        let waf = |text: &str| -> (Vec<bool>, Vec<String>) {
            let c = crate::config::parse(text).unwrap();
            let g = graph(&c, Arc::new(Artifact::unknown())).unwrap();
            let wanted = [web_acl::ACL.name(), web_acl::ASSOCIATION.name()].map(|n| g.node(n).unwrap().wanted());
            let deps = g.node(web_acl::ASSOCIATION.name()).unwrap().deps().iter().map(|d| d.on.to_string()).collect();
            (wanted.to_vec(), deps)
        };
        let (wanted, deps) = waf("stack = \"t\"");
        assert_eq!(wanted, [false, false], "off by default");
        assert_eq!(deps, ["web-acl"], "off, the association is only deleted: before the ACL, waiting for nothing else");
        let (wanted, deps) = waf("stack = \"t\"\n[waf]\nenabled = true");
        assert_eq!(wanted, [true, true]);
        assert_eq!(deps, ["web-acl", "stage"]);
    }

    #[test]
    fn the_api_does_not_wait_for_the_function_nor_the_role_for_the_table() {
        let c = crate::config::parse("stack = \"t\"").unwrap();
        let g = graph(&c, Arc::new(Artifact::unknown())).unwrap();
        let deps = |id: Name| -> Vec<String> { g.node(id).unwrap().deps().iter().map(|d| d.on.to_string()).collect() };
        assert!(deps(rest_api::ID.name()).is_empty(), "the API needs only the function's ARN, known from its name");
        assert!(deps(iam_role::FUNCTION.name()).is_empty(), "the role needs only the table's ARN");
        assert!(!deps(function::ID.name()).contains(&"table".to_string()));
        // The bound of a cold up: the longest chain of create calls.
        let (rounds, chain) = g.bound();
        assert!(rounds > 0 && !chain.is_empty());
    }
}
