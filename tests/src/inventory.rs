//! Everything on a moto server that a stack could have created, read through the SDK (straight
//! to moto, never through our deployer), grouped by the `movies-stack:stack` tag; and what a
//! converged stack must consist of ([`expected`]).
//!
//! The tests use one moto server each, so the inventory is the whole account: anything without
//! our tag that is not one of AWS's own defaults (the default VPC and its contents, the main
//! route table and `default` security group of a VPC) was left behind by someone, i.e. by us.
//!
//! MOTO GAP: the Resource Groups Tagging API misses VPC endpoints, IAM roles and API Gateway
//! (moto-emulator.md §10), so every kind is listed with its own service's calls. API Gateway
//! tags are read from the listed items' `tags` (moto cannot read restapi / usageplan / apikey
//! tags any other way).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use aws_sdk_ec2::types::Tag;

use crate::{Aws, Checks, StackNames};

pub const TAG_STACK: &str = "movies-stack:stack";
pub const TAG_RESOURCE: &str = "movies-stack:resource";
pub const TAG_SHARED: &str = "movies-stack:shared";

/// The shared, account-level API Gateway CloudWatch role: `down` must never delete it.
pub const ACCOUNT_ROLE: &str = "movies-stack-apigateway-cloudwatch";

/// One resource of the stack that is an inventory item of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Its logical id: the value of its `movies-stack:resource` tag.
    pub resource: String,
    /// Its kind (an [`Item`] of it is `ItemKind::Of(kind)`).
    pub kind: Kind,
    /// The name the stack gives it, for the kinds whose name is fixed by the config (a leftover
    /// that lost its tags is still found by it); `None` for EC2 kinds.
    pub name: Option<String>,
    /// False when the config turns it off: a converged stack does not have it, but one made by an
    /// earlier config may, and `down` removes it.
    pub wanted: bool,
}

pub use movies_stack_kinds::Kind;

/// Whether the inventory lists a resource of this kind as an item of its own ([`Inventory::scan`]);
/// false: no item of its own (the shared account setting, the function's alias `live` and its
/// versions, which go with the function, a permission inside the alias' policy, the stage, its access logs and the web ACL association, counted per API by
/// [`Inventory::check_converged`]). Exhaustive: a new kind does not compile until the inventory
/// says how it lists it.
fn is_item(kind: Kind) -> bool {
    match kind {
        Kind::Vpc
        | Kind::Subnet
        | Kind::RouteTable
        | Kind::SecurityGroup
        | Kind::VpcEndpoint
        | Kind::FlowLog
        | Kind::IamRole
        | Kind::LogGroup
        | Kind::Function
        | Kind::Table
        | Kind::RestApi
        | Kind::UsagePlan
        | Kind::ApiKey
        | Kind::Alarm
        | Kind::WebAcl => true,
        Kind::ApiGatewayAccount
        | Kind::FunctionAlias
        | Kind::LambdaPermission
        | Kind::Stage
        | Kind::StageAccessLogs
        | Kind::WebAclAssociation => false,
    }
}

/// What an inventory item is: a resource of one of the stack's kinds, or one AWS makes by itself
/// in every VPC (the stack never creates those).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ItemKind {
    Of(Kind),
    /// A VPC's implicit main route table.
    MainRouteTable,
    /// A VPC's `default` security group.
    DefaultSecurityGroup,
}

impl From<Kind> for ItemKind {
    fn from(kind: Kind) -> Self {
        ItemKind::Of(kind)
    }
}

impl PartialEq<Kind> for ItemKind {
    fn eq(&self, kind: &Kind) -> bool {
        *self == ItemKind::Of(*kind)
    }
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ItemKind::Of(kind) => kind.fmt(f),
            ItemKind::MainRouteTable => f.write_str("main route table"),
            ItemKind::DefaultSecurityGroup => f.write_str("default security group"),
        }
    }
}

/// What a stack is made of, as the deployer's one registry (`stack.rs`) builds it from the
/// stack's config: `movies-stack graph --output json` (no AWS call). The tests keep no list of
/// their own: a resource added to the registry is expected here as it is; a resource of a new
/// kind does not compile until the inventory says how it lists that kind ([`is_item`] and
/// [`Inventory::scan`]).
#[derive(Debug, Clone)]
pub struct Shape {
    pub names: StackNames,
    /// Every resource that is an inventory item, the ones the config turns off included.
    pub resources: Vec<Expected>,
    /// The id of every resource of the graph, items or not, in dependency order.
    pub ids: Vec<String>,
    /// The ids of those the config turns off.
    pub off: Vec<String>,
}

impl Shape {
    /// The shape of `stack` under its config file as it is now.
    pub async fn of(stack: &crate::Stack) -> Shape {
        // `graph` makes no AWS call, and reading the shape changes nothing in the account: not
        // even the administrator's bootstrap a deployer does before its first run (a test of
        // `up` without the permissions boundary reads the stack's names first).
        let mut deployer = stack.deployer.clone();
        deployer.bootstrap = false;
        let out = deployer.run(&["--output", "json", "graph"]).await;
        assert!(out.code == 0, "movies-stack graph on {} failed:\n{out}", stack.config.display());
        let graph = serde_json::from_str(out.stdout.trim())
            .unwrap_or_else(|e| panic!("graph --output json is not JSON: {e}\n{out}"));
        Shape::from_graph(stack.names.clone(), &graph)
    }

    /// From `graph --output json`'s answer.
    pub fn from_graph(names: StackNames, graph: &serde_json::Value) -> Shape {
        let nodes =
            graph["resources"].as_array().unwrap_or_else(|| panic!("graph --output json has no resources: {graph}"));
        let resources = nodes
            .iter()
            .filter_map(|n| {
                let kind: Kind = serde_json::from_value(n["kind"].clone()).unwrap_or_else(|e| {
                    panic!("the deployer has a new kind of resource, {}: {e} (a movies-stack binary newer than the tests?)", n["kind"])
                });
                is_item(kind).then(|| Expected {
                    resource: n["resource"].as_str().expect("a resource has an id").to_string(),
                    kind,
                    name: n["name"].as_str().map(str::to_string),
                    wanted: n["wanted"].as_bool().expect("a resource says whether it is wanted"),
                })
            })
            .collect();
        let id = |n: &serde_json::Value| n["resource"].as_str().map(str::to_string);
        let ids = nodes.iter().filter_map(id).collect();
        let off = nodes.iter().filter(|n| n["wanted"] == false).filter_map(id).collect();
        Shape { names, resources, ids, off }
    }

    /// What a converged stack has.
    pub fn wanted(&self) -> impl Iterator<Item = &Expected> {
        self.resources.iter().filter(|e| e.wanted)
    }

    /// The ids of the resources the config wants, items or not.
    pub fn wanted_ids(&self) -> impl Iterator<Item = &str> {
        self.ids.iter().filter(|id| !self.off.contains(id)).map(String::as_str)
    }

    /// Whether a converged stack has a resource of this kind.
    pub fn has(&self, kind: Kind) -> bool {
        self.wanted().any(|e| e.kind == kind)
    }

    /// The AWS name the deployer gives resource `id` (the graph's `name`), whether the config
    /// wants it or not. Tests take the stack's names from here instead of spelling them again,
    /// so that a name changed in the deployer cannot leave a test reading the old one; the one
    /// place that spells them out is `up`'s check against docs/config.md. Panics on an id the
    /// graph does not have, and on one without a name (EC2 kinds, named by their ids).
    pub fn name_of(&self, id: &str) -> &str {
        let e = self.resources.iter().find(|e| e.resource == id).unwrap_or_else(|| {
            panic!("the graph of {} has no resource {id:?} that is an item; its ids: {:?}", self.names.stack, self.ids)
        });
        e.name.as_deref().unwrap_or_else(|| panic!("the graph of {} gives {id} no name", self.names.stack))
    }
}

/// One resource on the server.
#[derive(Debug, Clone)]
pub struct Item {
    /// One of the stack's kinds, or a VPC's implicit main route table or default security group.
    pub kind: ItemKind,
    pub id: String,
    pub name: String,
    /// The `movies-stack:stack` tag.
    pub stack: Option<String>,
    /// The `movies-stack:resource` tag.
    pub resource: Option<String>,
    /// Tagged `movies-stack:shared` (the account's API Gateway role, the lock table).
    pub shared: bool,
    /// The VPC it lives in (EC2 kinds).
    pub vpc: Option<String>,
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.id)?;
        if self.name != self.id && !self.name.is_empty() {
            write!(f, " ({})", self.name)?;
        }
        if let Some(r) = &self.resource {
            write!(f, " [{r}]")?;
        }
        Ok(())
    }
}

/// The parts of a REST API that cannot be tagged, counted per API.
#[derive(Debug, Clone, Default)]
pub struct ApiParts {
    pub deployments: usize,
    pub stages: usize,
    pub resources: usize,
}

/// A snapshot of the server.
#[derive(Debug, Default)]
pub struct Inventory {
    pub items: Vec<Item>,
    pub default_vpcs: BTreeSet<String>,
    /// REST API id -> its untaggable parts.
    pub apis: BTreeMap<String, ApiParts>,
    /// Usage plan id -> key ids.
    pub plan_keys: BTreeMap<String, Vec<String>>,
    /// Security group id -> (ingress permissions, egress permissions).
    pub sg_rules: BTreeMap<String, (usize, usize)>,
    /// Route table id -> associated subnets.
    pub rt_subnets: BTreeMap<String, Vec<String>>,
    /// Function name -> statements in its resource policy.
    pub permissions: BTreeMap<String, usize>,
    /// API Gateway's account setting (GetAccount `cloudwatchRoleArn`).
    pub cloudwatch_role_arn: Option<String>,
    /// Stage ARN -> the name of the web ACL associated with it (GetWebACLForResource), for every
    /// stage that has one.
    pub stage_acls: BTreeMap<String, String>,
}

/// The ARN WAF knows a stage by (the fixtures' region).
pub fn stage_arn(api_id: &str, stage: &str) -> String {
    format!("arn:aws:apigateway:us-east-1::/restapis/{api_id}/stages/{stage}")
}

/// An EC2 resource's tags as a map.
pub fn ec2_tags(tags: &[Tag]) -> HashMap<String, String> {
    tags.iter().filter_map(|t| Some((t.key()?.to_string(), t.value().unwrap_or_default().to_string()))).collect()
}

fn item(kind: impl Into<ItemKind>, id: &str, name: &str, tags: &HashMap<String, String>, vpc: Option<&str>) -> Item {
    Item {
        kind: kind.into(),
        id: id.to_string(),
        name: name.to_string(),
        stack: tags.get(TAG_STACK).cloned(),
        resource: tags.get(TAG_RESOURCE).cloned(),
        shared: tags.contains_key(TAG_SHARED),
        vpc: vpc.map(str::to_string),
    }
}

impl Inventory {
    /// Read the whole server. Panics on an SDK error (the fixture is broken then).
    pub async fn scan(aws: &Aws) -> Inventory {
        let mut inv = Inventory::default();

        // ------------------------------------------------------------ EC2
        let vpcs = aws.ec2.describe_vpcs().send().await.expect("DescribeVpcs");
        for v in vpcs.vpcs() {
            let id = v.vpc_id().unwrap_or_default();
            if v.is_default() == Some(true) {
                inv.default_vpcs.insert(id.to_string());
                continue;
            }
            inv.items.push(item(Kind::Vpc, id, v.cidr_block().unwrap_or_default(), &ec2_tags(v.tags()), Some(id)));
        }
        let in_default = |vpc: Option<&str>, inv: &Inventory| vpc.is_some_and(|v| inv.default_vpcs.contains(v));
        let subnets = aws.ec2.describe_subnets().send().await.expect("DescribeSubnets");
        for s in subnets.subnets() {
            if in_default(s.vpc_id(), &inv) {
                continue;
            }
            let id = s.subnet_id().unwrap_or_default();
            inv.items.push(item(Kind::Subnet, id, s.cidr_block().unwrap_or_default(), &ec2_tags(s.tags()), s.vpc_id()));
        }
        let rts = aws.ec2.describe_route_tables().send().await.expect("DescribeRouteTables");
        for rt in rts.route_tables() {
            if in_default(rt.vpc_id(), &inv) {
                continue;
            }
            let id = rt.route_table_id().unwrap_or_default();
            let main = rt.associations().iter().any(|a| a.main() == Some(true));
            let tags = ec2_tags(rt.tags());
            let kind =
                if main && !tags.contains_key(TAG_STACK) { ItemKind::MainRouteTable } else { Kind::RouteTable.into() };
            inv.items.push(item(kind, id, "", &tags, rt.vpc_id()));
            let subnets: Vec<String> =
                rt.associations().iter().filter_map(|a| a.subnet_id().map(str::to_string)).collect();
            inv.rt_subnets.insert(id.to_string(), subnets);
        }
        let sgs = aws.ec2.describe_security_groups().send().await.expect("DescribeSecurityGroups");
        for g in sgs.security_groups() {
            if in_default(g.vpc_id(), &inv) {
                continue;
            }
            let id = g.group_id().unwrap_or_default();
            let tags = ec2_tags(g.tags());
            let kind = if g.group_name() == Some("default") && !tags.contains_key(TAG_STACK) {
                ItemKind::DefaultSecurityGroup
            } else {
                Kind::SecurityGroup.into()
            };
            inv.items.push(item(kind, id, g.group_name().unwrap_or_default(), &tags, g.vpc_id()));
            inv.sg_rules.insert(id.to_string(), (g.ip_permissions().len(), g.ip_permissions_egress().len()));
        }
        let eps = aws.ec2.describe_vpc_endpoints().send().await.expect("DescribeVpcEndpoints");
        for e in eps.vpc_endpoints() {
            // A deleted endpoint stays visible for a while with state `deleted` (AWS and moto); one
            // still `deleting` is still there.
            if e.state().is_some_and(|st| st.as_str().eq_ignore_ascii_case("deleted")) {
                continue;
            }
            let id = e.vpc_endpoint_id().unwrap_or_default();
            inv.items.push(item(
                Kind::VpcEndpoint,
                id,
                e.service_name().unwrap_or_default(),
                &ec2_tags(e.tags()),
                e.vpc_id(),
            ));
        }
        let fls = aws.ec2.describe_flow_logs().send().await.expect("DescribeFlowLogs");
        for f in fls.flow_logs() {
            let id = f.flow_log_id().unwrap_or_default();
            inv.items.push(item(
                Kind::FlowLog,
                id,
                f.resource_id().unwrap_or_default(),
                &ec2_tags(f.tags()),
                f.resource_id(),
            ));
        }

        // ------------------------------------------------------------ IAM
        let roles: Vec<_> =
            aws.iam.list_roles().into_paginator().items().send().try_collect().await.expect("ListRoles");
        for r in roles {
            let tags = aws.iam.list_role_tags().role_name(r.role_name()).send().await.expect("ListRoleTags");
            let tags: HashMap<String, String> =
                tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
            inv.items.push(item(Kind::IamRole, r.role_name(), r.role_name(), &tags, None));
        }

        // ------------------------------------------------------------ CloudWatch Logs
        let groups: Vec<_> = aws
            .logs
            .describe_log_groups()
            .into_paginator()
            .items()
            .send()
            .try_collect()
            .await
            .expect("DescribeLogGroups");
        for g in groups {
            let name = g.log_group_name().unwrap_or_default();
            let arn = g
                .log_group_arn()
                .map(str::to_string)
                .unwrap_or_else(|| g.arn().unwrap_or_default().trim_end_matches(":*").to_string());
            let tags = aws.logs.list_tags_for_resource().resource_arn(&arn).send().await.expect("ListTagsForResource");
            inv.items.push(item(Kind::LogGroup, name, name, &tags.tags().cloned().unwrap_or_default(), None));
        }

        // ------------------------------------------------------------ Lambda
        let fns = aws.lambda.list_functions().send().await.expect("ListFunctions");
        for f in fns.functions() {
            let name = f.function_name().unwrap_or_default();
            let arn = f.function_arn().unwrap_or_default();
            let tags = aws.lambda.list_tags().resource(arn).send().await.expect("ListTags (lambda)");
            inv.items.push(item(Kind::Function, name, name, &tags.tags().cloned().unwrap_or_default(), None));
            let statements = match aws.lambda.get_policy().function_name(name).send().await {
                Ok(p) => serde_json::from_str::<serde_json::Value>(p.policy().unwrap_or("{}"))
                    .ok()
                    .and_then(|v| v["Statement"].as_array().map(Vec::len))
                    .unwrap_or(0),
                Err(_) => 0,
            };
            inv.permissions.insert(name.to_string(), statements);
        }

        // ------------------------------------------------------------ DynamoDB
        let tables = aws.dynamodb.list_tables().send().await.expect("ListTables");
        for t in tables.table_names() {
            let d = aws.dynamodb.describe_table().table_name(t).send().await.expect("DescribeTable");
            let arn = d.table().and_then(|t| t.table_arn()).unwrap_or_default();
            let tags = aws.dynamodb.list_tags_of_resource().resource_arn(arn).send().await.expect("ListTagsOfResource");
            let tags: HashMap<String, String> =
                tags.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
            inv.items.push(item(Kind::Table, t, t, &tags, None));
        }

        // ------------------------------------------------------------ API Gateway
        let apis = aws.apigateway.get_rest_apis().limit(500).send().await.expect("GetRestApis");
        for a in apis.items() {
            let id = a.id().unwrap_or_default();
            inv.items.push(item(
                Kind::RestApi,
                id,
                a.name().unwrap_or_default(),
                &a.tags().cloned().unwrap_or_default(),
                None,
            ));
            let deployments = aws.apigateway.get_deployments().rest_api_id(id).limit(500).send().await;
            let stages = aws.apigateway.get_stages().rest_api_id(id).send().await.expect("GetStages");
            let resources = aws.apigateway.get_resources().rest_api_id(id).limit(500).send().await;
            inv.apis.insert(
                id.to_string(),
                ApiParts {
                    deployments: deployments.expect("GetDeployments").items().len(),
                    stages: stages.item().len(),
                    resources: resources.expect("GetResources").items().len(),
                },
            );
            for stage in stages.item() {
                let arn = stage_arn(id, stage.stage_name().unwrap_or_default());
                let acl = aws.wafv2.get_web_acl_for_resource().resource_arn(&arn).send().await;
                if let Some(acl) = acl.expect("GetWebACLForResource").web_acl() {
                    inv.stage_acls.insert(arn, acl.name().to_string());
                }
            }
        }
        let plans = aws.apigateway.get_usage_plans().limit(500).send().await.expect("GetUsagePlans");
        for p in plans.items() {
            let id = p.id().unwrap_or_default();
            inv.items.push(item(
                Kind::UsagePlan,
                id,
                p.name().unwrap_or_default(),
                &p.tags().cloned().unwrap_or_default(),
                None,
            ));
            let keys = aws.apigateway.get_usage_plan_keys().usage_plan_id(id).limit(500).send().await;
            let keys =
                keys.expect("GetUsagePlanKeys").items().iter().filter_map(|k| k.id().map(str::to_string)).collect();
            inv.plan_keys.insert(id.to_string(), keys);
        }
        let keys = aws.apigateway.get_api_keys().include_values(false).limit(500).send().await.expect("GetApiKeys");
        for k in keys.items() {
            let id = k.id().unwrap_or_default();
            inv.items.push(item(
                Kind::ApiKey,
                id,
                k.name().unwrap_or_default(),
                &k.tags().cloned().unwrap_or_default(),
                None,
            ));
        }
        let account = aws.apigateway.get_account().send().await.expect("GetAccount");
        inv.cloudwatch_role_arn = account.cloudwatch_role_arn().map(str::to_string);

        // ------------------------------------------------------------ CloudWatch alarms
        let pages: Vec<_> =
            aws.cloudwatch.describe_alarms().into_paginator().send().try_collect().await.expect("DescribeAlarms");
        for a in pages.iter().flat_map(|p| p.metric_alarms()) {
            let name = a.alarm_name().unwrap_or_default();
            let arn = a.alarm_arn().unwrap_or_default();
            let tags = aws.cloudwatch.list_tags_for_resource().resource_arn(arn).send().await;
            let tags: HashMap<String, String> = tags
                .expect("ListTagsForResource (cloudwatch)")
                .tags()
                .iter()
                .map(|t| (t.key().unwrap_or_default().to_string(), t.value().unwrap_or_default().to_string()))
                .collect();
            inv.items.push(item(Kind::Alarm, name, name, &tags, None));
        }

        // ------------------------------------------------------------ WAF (REGIONAL web ACLs)
        let mut marker: Option<String> = None;
        loop {
            let page = aws
                .wafv2
                .list_web_acls()
                .scope(aws_sdk_wafv2::types::Scope::Regional)
                .set_next_marker(marker.take())
                .send()
                .await
                .expect("ListWebACLs");
            for a in page.web_acls() {
                let tags: HashMap<String, String> =
                    aws.waf_tags(a.arn().unwrap_or_default()).await.into_iter().collect();
                inv.items.push(item(
                    Kind::WebAcl,
                    a.id().unwrap_or_default(),
                    a.name().unwrap_or_default(),
                    &tags,
                    None,
                ));
            }
            match page.next_marker() {
                Some(m) if !page.web_acls().is_empty() => marker = Some(m.to_string()),
                _ => break,
            }
        }
        inv
    }

    /// Items tagged with `stack`, shared ones excluded.
    pub fn of_stack<'a>(&'a self, stack: &'a str) -> impl Iterator<Item = &'a Item> + 'a {
        self.items.iter().filter(move |i| i.stack.as_deref() == Some(stack) && !i.shared)
    }

    /// What is left of the stack: everything tagged with it (shared resources excluded), and
    /// anything carrying one of the names the stack gives ([`Expected::name`]), tagged or not.
    pub fn leftovers(&self, shape: &Shape) -> Vec<&Item> {
        // The web ACL is left over whether or not the config still enables it.
        let named: BTreeSet<(ItemKind, &str)> =
            shape.resources.iter().filter_map(|e| Some((ItemKind::Of(e.kind), e.name.as_deref()?))).collect();
        let stack = shape.names.stack.as_str();
        self.items
            .iter()
            .filter(|i| (i.stack.as_deref() == Some(stack) && !i.shared) || named.contains(&(i.kind, i.name.as_str())))
            .collect()
    }

    /// The item of `stack` tagged as resource `resource` (`subnet-0`, `function-sg`, ...).
    pub fn find(&self, stack: &str, resource: &str) -> Option<&Item> {
        self.items.iter().find(|i| i.stack.as_deref() == Some(stack) && i.resource.as_deref() == Some(resource))
    }

    /// The shared account-level CloudWatch role ([`ACCOUNT_ROLE`]), if it exists.
    pub fn account_role(&self) -> Option<&Item> {
        self.items.iter().find(|i| i.kind == Kind::IamRole && i.name == ACCOUNT_ROLE)
    }

    pub fn count(&self, kind: Kind, stack: &str) -> usize {
        self.of_stack(stack).filter(|i| i.kind == kind).count()
    }

    /// Resources without a `movies-stack:stack` tag that are not AWS's own defaults, nor shared
    /// by every stack of the account (`movies-stack:shared`: the lock table, the API Gateway
    /// role): something created them and did not tag them. The implicit main route table /
    /// default security group of a VPC count as left behind when their VPC is gone.
    pub fn untagged(&self) -> Vec<&Item> {
        let vpcs: BTreeSet<&str> = self.items.iter().filter(|i| i.kind == Kind::Vpc).map(|i| i.id.as_str()).collect();
        self.items
            .iter()
            .filter(|i| i.stack.is_none() && !i.shared)
            .filter(|i| match i.kind {
                ItemKind::MainRouteTable | ItemKind::DefaultSecurityGroup => {
                    !i.vpc.as_deref().is_some_and(|v| vpcs.contains(v))
                }
                ItemKind::Of(_) => true,
            })
            .collect()
    }

    /// The exact shape of a converged stack (the resources its config wants, [`Shape`]): one of
    /// every resource, no duplicates of the untaggable parts, and nothing untagged anywhere on the
    /// server. One check per count.
    pub fn check_converged(&self, c: &mut Checks, shape: &Shape, label: &str) {
        let names = &shape.names;
        let s = names.stack.as_str();
        let expected: Vec<&Expected> = shape.wanted().collect();
        let waf = shape.has(Kind::WebAcl);
        let mut per_kind: BTreeMap<Kind, usize> = BTreeMap::new();
        for e in &expected {
            *per_kind.entry(e.kind).or_insert(0) += 1;
        }
        for (kind, n) in per_kind {
            let found: Vec<String> = self.of_stack(s).filter(|i| i.kind == kind).map(|i| i.to_string()).collect();
            c.check(
                found.len() == n,
                format!("{label}: {kind}s tagged {s}: {} (expected {n}): {found:?}", found.len()),
            );
        }
        // Tagged items beyond the kinds above would be something new we do not count.
        let other: Vec<String> =
            self.of_stack(s).filter(|i| !expected.iter().any(|e| i.kind == e.kind)).map(|i| i.to_string()).collect();
        c.check(other.is_empty(), format!("{label}: unexpected kinds tagged {s}: {other:?}"));
        // Each expected resource under its own resource tag.
        for e in &expected {
            let found =
                self.of_stack(s).filter(|i| i.kind == e.kind && i.resource.as_deref() == Some(&e.resource)).count();
            c.eq(&format!("{label}: {}s tagged {s} as resource {}", e.kind, e.resource), found, 1);
        }
        // Each logical resource once.
        let mut seen: BTreeMap<(ItemKind, &str), usize> = BTreeMap::new();
        for i in self.of_stack(s) {
            *seen.entry((i.kind, i.resource.as_deref().unwrap_or("<none>"))).or_insert(0) += 1;
        }
        let dup: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
        c.check(dup.is_empty(), format!("{label}: resource tags used twice: {dup:?}"));
        // Names by which a duplicate could hide without our tag (API Gateway allows duplicate names).
        for e in expected.iter().filter(|e| matches!(e.kind, Kind::RestApi | Kind::ApiKey | Kind::UsagePlan)) {
            let name = e.name.as_deref().unwrap_or_default();
            let n = self.items.iter().filter(|i| i.kind == e.kind && i.name == name).count();
            c.eq(&format!("{label}: {}s named {name}", e.kind), n, 1);
        }

        // Untaggable parts.
        for api in self.of_stack(s).filter(|i| i.kind == Kind::RestApi) {
            let parts = self.apis.get(&api.id).cloned().unwrap_or_default();
            c.check(
                (1..=2).contains(&parts.deployments),
                format!("{label}: deployments of API {}: {} (expected 1, at most 2)", api.id, parts.deployments),
            );
            c.eq(&format!("{label}: stages of API {}", api.id), parts.stages, 1);
            c.eq(&format!("{label}: resources (/ and /{{proxy+}}) of API {}", api.id), parts.resources, 2);
            // The stage is associated with the stack's web ACL when the config enables it, and
            // with none otherwise.
            let prefix = stage_arn(&api.id, "");
            let acls: Vec<&String> =
                self.stage_acls.iter().filter(|(arn, _)| arn.starts_with(&prefix)).map(|(_, acl)| acl).collect();
            let want = if waf { vec![shape.name_of("web-acl").to_string()] } else { Vec::new() };
            c.eq(
                &format!("{label}: web ACLs associated with the stages of API {}", api.id),
                acls,
                want.iter().collect::<Vec<_>>(),
            );
        }
        for plan in self.of_stack(s).filter(|i| i.kind == Kind::UsagePlan) {
            let keys = self.plan_keys.get(&plan.id).cloned().unwrap_or_default();
            c.check(
                keys.len() == 1,
                format!("{label}: keys in usage plan {}: {keys:?} (expected exactly 1)", plan.name),
            );
            let key_ids: BTreeSet<&str> =
                self.of_stack(s).filter(|i| i.kind == Kind::ApiKey).map(|i| i.id.as_str()).collect();
            c.check(
                keys.iter().all(|k| key_ids.contains(k.as_str())),
                format!("{label}: usage plan {} holds only the stack's keys: {keys:?}", plan.name),
            );
        }
        c.eq(
            &format!("{label}: statements in the function's resource policy"),
            self.permissions.get(&names.function).copied(),
            Some(1),
        );
        for sg in self.of_stack(s).filter(|i| i.kind == Kind::SecurityGroup) {
            c.eq(
                &format!("{label}: (ingress, egress) rules of {}", sg.id),
                self.sg_rules.get(&sg.id).copied(),
                Some((0, 1)),
            );
        }
        for rt in self.of_stack(s).filter(|i| i.kind == Kind::RouteTable) {
            let n = self.rt_subnets.get(&rt.id).map(Vec::len).unwrap_or(0);
            c.eq(&format!("{label}: subnet associations of {}", rt.id), n, 1);
        }
        // In our VPC: only the implicit main route table and default SG besides our own.
        for vpc in self.of_stack(s).filter(|i| i.kind == Kind::Vpc) {
            for implicit in [ItemKind::MainRouteTable, ItemKind::DefaultSecurityGroup] {
                let n = self.items.iter().filter(|i| i.kind == implicit && i.vpc.as_deref() == Some(&vpc.id)).count();
                c.eq(&format!("{label}: {implicit}s in {}", vpc.id), n, 1);
            }
            let strangers: Vec<String> = self
                .items
                .iter()
                .filter(|i| i.vpc.as_deref() == Some(&vpc.id) && i.kind != Kind::Vpc)
                .filter(|i| {
                    i.stack.as_deref() != Some(s)
                        && !matches!(i.kind, ItemKind::MainRouteTable | ItemKind::DefaultSecurityGroup)
                })
                .map(|i| i.to_string())
                .collect();
            c.check(strangers.is_empty(), format!("{label}: things in VPC {} not tagged {s}: {strangers:?}", vpc.id));
        }
        self.check_nothing_untagged(c, label);
    }

    /// After `down`: nothing tagged with the stack but the kept table (shared resources, the
    /// account's API Gateway role, are never the stack's to delete), nothing untagged.
    pub fn check_gone(&self, c: &mut Checks, names: &StackNames, label: &str) {
        self.check_gone_but_tables(c, names, 1, label);
    }

    /// As [`Inventory::check_gone`], for a stack that had `tables` tables (0: its `up` never got
    /// to create one) before `down`: that many are kept.
    pub fn check_gone_but_tables(&self, c: &mut Checks, names: &StackNames, tables: usize, label: &str) {
        let s = names.stack.as_str();
        let left: Vec<String> = self
            .of_stack(s)
            .filter(|i| !(i.kind == Kind::Table && i.name == names.table))
            .map(|i| i.to_string())
            .collect();
        c.check(left.is_empty(), format!("{label}: still tagged {s} after down: {left:?}"));
        c.eq(&format!("{label}: the kept table {}", names.table), self.count(Kind::Table, s), tables);
        self.check_nothing_untagged(c, label);
    }

    pub fn check_nothing_untagged(&self, c: &mut Checks, label: &str) {
        let untagged: Vec<String> = self.untagged().iter().map(|i| i.to_string()).collect();
        c.check(untagged.is_empty(), format!("{label}: resources without a {TAG_STACK} tag: {untagged:?}"));
        let vpcs = self.items.iter().filter(|i| i.kind == Kind::Vpc).count();
        let tagged_vpcs = self.items.iter().filter(|i| i.kind == Kind::Vpc && i.stack.is_some()).count();
        c.eq(&format!("{label}: VPCs besides the default one that are not ours"), vpcs - tagged_vpcs, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A graph as `movies-stack graph --output json` prints it: (id, kind, name, wanted).
    fn graph(nodes: &[(&str, &str, Option<&str>, bool)]) -> serde_json::Value {
        let nodes: Vec<_> = nodes
            .iter()
            .map(|(id, kind, name, wanted)| serde_json::json!({"resource": id, "kind": kind, "name": name, "wanted": wanted}))
            .collect();
        serde_json::json!({"resources": nodes})
    }

    #[test]
    fn the_shape_is_the_registry_s_graph_in_inventory_kinds() {
        let names = StackNames::unique("inv");
        let shape = Shape::from_graph(
            names,
            &graph(&[
                ("subnet-0", "subnet", None, true),
                ("stage", "stage", None, true),
                ("alarm-api-5xx", "alarm", Some("s-api-5xx"), true),
                ("web-acl", "web-acl", Some("s-web-acl"), false),
            ]),
        );
        let kinds: Vec<(&str, Kind, bool)> =
            shape.resources.iter().map(|e| (e.resource.as_str(), e.kind, e.wanted)).collect();
        assert_eq!(
            kinds,
            [("subnet-0", Kind::Subnet, true), ("alarm-api-5xx", Kind::Alarm, true), ("web-acl", Kind::WebAcl, false)]
        );
        assert!(shape.has(Kind::Alarm) && !shape.has(Kind::WebAcl), "a resource turned off is not expected");
        assert_eq!(shape.name_of("web-acl"), "s-web-acl", "named whether wanted or not");
        assert_eq!(shape.name_of("alarm-api-5xx"), "s-api-5xx");
    }

    #[test]
    #[should_panic(expected = "no resource \"web-acll\"")]
    fn a_name_the_graph_does_not_have_fails_loudly() {
        let shape = Shape::from_graph(StackNames::unique("inv"), &graph(&[("web-acl", "web-acl", Some("s"), true)]));
        shape.name_of("web-acll");
    }

    #[test]
    #[should_panic(expected = "new kind of resource")]
    fn a_kind_the_inventory_cannot_list_fails_loudly() {
        Shape::from_graph(StackNames::unique("inv"), &graph(&[("queue", "sqs-queue", Some("q"), true)]));
    }

    /// Leftovers are what carries the stack's tag or one of its names; shared resources and
    /// other stacks' resources are not.
    #[test]
    fn leftovers_are_tagged_or_named_like_the_stack() {
        let names = StackNames::unique("inv");
        let other = StackNames::unique("other");
        let tagged = |stack: &str, resource: &str| {
            HashMap::from([
                (TAG_STACK.to_string(), stack.to_string()),
                (TAG_RESOURCE.to_string(), resource.to_string()),
            ])
        };
        let shared =
            HashMap::from([(TAG_STACK.to_string(), names.stack.clone()), (TAG_SHARED.to_string(), "true".to_string())]);
        let untagged = HashMap::new();
        let inv = Inventory {
            items: vec![
                item(Kind::Subnet, "subnet-1", "10.1.0.0/24", &tagged(&names.stack, "subnet-0"), Some("vpc-1")),
                item(Kind::Function, &names.function, &names.function, &untagged, None),
                item(Kind::IamRole, ACCOUNT_ROLE, ACCOUNT_ROLE, &shared, None),
                item(Kind::Table, &other.table, &other.table, &tagged(&other.stack, "table"), None),
                item(Kind::LogGroup, "/aws/lambda/someone-else", "/aws/lambda/someone-else", &untagged, None),
            ],
            ..Inventory::default()
        };
        let shape = Shape::from_graph(
            names.clone(),
            &graph(&[("subnet-0", "subnet", None, true), ("function", "function", Some(&names.function), true)]),
        );
        let left: Vec<(ItemKind, &str)> = inv.leftovers(&shape).iter().map(|i| (i.kind, i.id.as_str())).collect();
        assert_eq!(left, [(Kind::Subnet.into(), "subnet-1"), (Kind::Function.into(), names.function.as_str())]);
        assert_eq!(inv.find(&names.stack, "subnet-0").map(|i| i.id.as_str()), Some("subnet-1"));
        assert!(inv.account_role().is_some_and(|r| r.shared));
    }
}
