//! [`crate::strict::Behaviour::Authorization`]: every request the movies-stack binary sends is
//! authorized as AWS would authorize it for a user who holds only the policy that
//! `movies-stack iam-policy` prints for the stack being deployed.
//!
//! For each request this computes what AWS checks ("Policy evaluation logic", IAM User Guide):
//! - the **actions**: the operation's own (`ec2:CreateSubnet`; API Gateway's HTTP method,
//!   `apigateway:POST`), plus what the request implies: `iam:PassRole` for a role handed to a
//!   service (with `iam:PassedToService`), the tagging action of a create that carries tags
//!   (`ec2:CreateTags` with `ec2:CreateAction`, `lambda:TagResource`, ..., and for API Gateway
//!   `apigateway:PUT` on `/tags/<URL-encoded ARN of the new resource>`, mattclay/aws-terminator#284),
//!   and `apigateway:SetWebACL` on a stage that a web ACL is associated with;
//! - the **resources**: each resource type the Service Authorization Reference ([`super::sar`])
//!   lists for the action, its ARN template filled from the request (`*` for the id of the
//!   resource a create makes, as EC2's `subnet/*`), or `*` for an action with none; API
//!   Gateway's resource is the request's path;
//! - the **condition keys**: `aws:RequestTag/*`, `aws:TagKeys`, `aws:ResourceTag/*` (EC2 and API
//!   Gateway read from moto; API Gateway's children inherit their REST API's or usage plan's
//!   tags), `iam:PassedToService`, `iam:PermissionsBoundary`, `iam:PolicyARN`, `ec2:CreateAction`,
//!   `dynamodb:LeadingKeys` (the partition key of an item request, by the table's schema).
//!
//! The policies are registered per proxy by [`crate::Deployer`] before each run
//! ([`register_policy`]); a request is allowed when one of them allows it. A request is refused
//! with the service's AccessDenied answer naming the action and resource, and recorded.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Exchange;
use super::direct::{MotoEc2, xml_all, xml_first};
use super::policy::{self, Decision, Request};
use super::sar::Sar;
use crate::proxy::Fault;

/// moto's account (every test's) and the partition of its regions.
pub const ACCOUNT: &str = "123456789012";

/// The IAM action that authorizes an operation of the service with this signing name; `None` for
/// operations that need none. API Gateway's actions are the HTTP method of the operation
/// (`apigateway:GET` ...), from its service model.
pub fn action_of(service: &str, operation: &str) -> Option<String> {
    if (service, operation) == ("sts", "GetCallerIdentity") {
        return None;
    }
    // The one Lambda operation whose action is not its name (Service Authorization Reference:
    // Invoke is authorized as lambda:InvokeFunction).
    if (service, operation) == ("lambda", "Invoke") {
        return Some("lambda:InvokeFunction".to_string());
    }
    if service == "apigateway" {
        let method = super::botocore::service("apigateway")
            .ok()
            .and_then(|m| m.operation(operation).and_then(|o| o["http"]["method"].as_str()).map(str::to_string))
            // Not in the model (the proxy named it "<METHOD> <path>"): the method is its first word.
            .unwrap_or_else(|| operation.split(' ').next().unwrap_or(operation).to_string());
        return Some(format!("apigateway:{method}"));
    }
    Some(format!("{}:{operation}", prefix_of(service)))
}

/// The IAM prefix of a signing name, where they differ.
fn prefix_of(service: &str) -> &str {
    match service {
        "monitoring" => "cloudwatch",
        other => other,
    }
}

/// Where a request is made: the ARNs' partition, region and account.
#[derive(Debug, Clone)]
pub struct Env {
    pub partition: String,
    pub region: String,
    pub account: String,
}

impl Env {
    pub fn of_region(region: &str) -> Env {
        let partition = if region.starts_with("cn-") {
            "aws-cn"
        } else if region.starts_with("us-gov-") {
            "aws-us-gov"
        } else {
            "aws"
        };
        Env { partition: partition.into(), region: region.into(), account: ACCOUNT.into() }
    }
}

/// The region a SigV4-signed request was signed for (its credential scope).
pub fn signed_region(headers: &hyper::HeaderMap) -> Option<String> {
    let auth = headers.get("authorization")?.to_str().ok()?;
    let scope = auth.split("Credential=").nth(1)?.split([',', ' ']).next()?;
    scope.split('/').nth(2).map(str::to_string)
}

// ---- the policies each proxy enforces ----

type Registry = Mutex<HashMap<u16, Vec<Arc<Value>>>>;

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The deployer about to run through the proxy on `port` holds this policy.
pub fn register_policy(port: u16, policy: Value) {
    let mut r = registry().lock().unwrap();
    let list = r.entry(port).or_default();
    if !list.iter().any(|p| **p == policy) {
        list.push(Arc::new(policy));
    }
}

/// Where each proxy of this process forwards to (moto), by port.
fn upstreams() -> &'static Mutex<HashMap<u16, String>> {
    static UPSTREAMS: OnceLock<Mutex<HashMap<u16, String>>> = OnceLock::new();
    UPSTREAMS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The proxy on `port` forwards to `upstream`.
pub fn register_upstream(port: u16, upstream: &str) {
    upstreams().lock().unwrap().insert(port, upstream.to_string());
}

/// The moto behind the proxy on `port`, if that is a proxy of this process.
pub fn upstream_of(port: u16) -> Option<String> {
    upstreams().lock().unwrap().get(&port).cloned()
}

/// The policies registered for the proxy on `port`.
pub fn policies(port: u16) -> Vec<Arc<Value>> {
    registry().lock().unwrap().get(&port).cloned().unwrap_or_default()
}

// ---- what the suite report gets ----

/// One request the policy did not allow.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Denied {
    /// `service Operation` as sent.
    pub operation: String,
    pub action: String,
    pub resource: String,
    /// The request's context keys, `key=value` each.
    pub context: Vec<String>,
    /// `implicit` (no statement allows it) or the Sid of the explicit deny.
    pub why: String,
}

/// What authorization saw in one proxy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthzRecord {
    /// Deployer requests evaluated against a registered policy.
    pub evaluated: usize,
    /// Deployer requests sent through a proxy no policy was registered for.
    pub unevaluated: usize,
    pub denied: Vec<Denied>,
    /// `service Operation: why` for requests whose resources could not all be computed.
    pub unresolved: Vec<String>,
    /// Authorization requests evaluated and allowed, by action.
    pub allowed: BTreeMap<String, usize>,
}

// ---- the requests of one exchange ----

/// The authorization requests one exchange needs.
#[derive(Debug, Default)]
pub struct Derived {
    pub requests: Vec<Request>,
    /// Resources that could not be computed, and why.
    pub unresolved: Vec<String>,
}

/// `[(key, value)]` of the tags the request carries, whatever the service's shape.
pub fn request_tags(ex: &Exchange) -> Vec<(String, String)> {
    let pairs = |v: &Value| -> Vec<(String, String)> {
        match v {
            Value::Object(m) => {
                m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string())).collect()
            }
            Value::Array(a) => a
                .iter()
                .filter_map(|t| {
                    let k = t.get("Key").or_else(|| t.get("key"))?.as_str()?;
                    let v = t.get("Value").or_else(|| t.get("value")).and_then(Value::as_str).unwrap_or_default();
                    Some((k.to_string(), v.to_string()))
                })
                .collect(),
            _ => Vec::new(),
        }
    };
    let mut out = Vec::new();
    for member in ["Tags", "tags"] {
        if let Some(v) = ex.input.get(member) {
            out.extend(pairs(v));
        }
    }
    for spec in ex.input.get("TagSpecifications").and_then(Value::as_array).into_iter().flatten() {
        if let Some(v) = spec.get("Tags") {
            out.extend(pairs(v));
        }
    }
    out
}

fn with_request_tags(mut req: Request, tags: &[(String, String)]) -> Request {
    if tags.is_empty() {
        return req;
    }
    for (k, v) in tags {
        req = req.with(&format!("aws:RequestTag/{k}"), [v.clone()]);
    }
    req.with("aws:TagKeys", tags.iter().map(|(k, _)| k.clone()))
}

/// Strings found at a path of member names, through lists (`IpPermissions.PrefixListIds.PrefixListId`).
fn strings_at(v: &Value, path: &[&str]) -> Vec<String> {
    match (v, path.split_first()) {
        (Value::Array(a), _) => a.iter().flat_map(|x| strings_at(x, path)).collect(),
        (Value::String(s), None) => vec![s.clone()],
        (_, None) => Vec::new(),
        (Value::Object(m), Some((k, rest))) => m.get(*k).map(|x| strings_at(x, rest)).unwrap_or_default(),
        _ => Vec::new(),
    }
}

/// The values of an ARN template's variable, from the request.
fn variable(ex: &Exchange, name: &str) -> Vec<String> {
    let input = &ex.input;
    let at = |paths: &[&[&str]]| -> Vec<String> { paths.iter().flat_map(|p| strings_at(input, p)).collect() };
    match name {
        "VpcId" => {
            let mut v = at(&[&["VpcId"]]);
            if ex.operation == "CreateFlowLogs" && ex.str_at(&["ResourceType"]) == Some("VPC") {
                v.extend(at(&[&["ResourceIds"]]));
            }
            v
        }
        "SubnetId" => at(&[&["SubnetId"], &["SubnetIds"]]),
        "RouteTableId" => at(&[&["RouteTableId"], &["RouteTableIds"], &["AddRouteTableIds"], &["RemoveRouteTableIds"]]),
        "SecurityGroupId" => {
            at(&[&["GroupId"], &["SecurityGroupIds"], &["AddSecurityGroupIds"], &["RemoveSecurityGroupIds"]])
        }
        "SecurityGroupRuleId" => at(&[&["SecurityGroupRuleIds"]]),
        "VpcEndpointId" => at(&[&["VpcEndpointId"], &["VpcEndpointIds"]]),
        "VpcFlowLogId" => at(&[&["FlowLogIds"]]),
        "NetworkInterfaceId" => at(&[&["NetworkInterfaceId"]]),
        "PrefixListId" => at(&[&["IpPermissions", "PrefixListIds", "PrefixListId"], &["PrefixListId"]]),
        "FunctionName" => at(&[&["FunctionName"]])
            .into_iter()
            .map(|f| {
                // A name, a partial or a full ARN, maybe with a qualifier: the name.
                let after = f.rsplit_once(":function:").map(|(_, n)| n.to_string()).unwrap_or(f);
                after.split(':').next().unwrap_or_default().to_string()
            })
            .collect(),
        "TableName" => at(&[&["TableName"]]),
        "RoleNameWithPath" => at(&[&["RoleName"]]),
        "LogGroupName" => at(&[&["logGroupName"], &["logGroupIdentifier"]]),
        "AlarmName" => at(&[&["AlarmName"], &["AlarmNames"]]),
        "Name" if ex.service == "wafv2" => at(&[&["Name"]]),
        "Id" if ex.service == "wafv2" => at(&[&["Id"]]),
        "Scope" if ex.service == "wafv2" => at(&[&["Scope"]]).into_iter().map(|s| s.to_ascii_lowercase()).collect(),
        "TrailName" => at(&[&["Name"], &["TrailName"], &["trailNameList"]]),
        _ => Vec::new(),
    }
}

/// Resources AWS authorizes an action on that its reference's template does not give.
fn fixed_resource(env: &Env, action: &str) -> Option<String> {
    match action {
        // Listing groups is authorized on this pseudo-resource, whatever the prefix asked
        // (terraform-provider-aws#8804: "not authorized to perform: logs:DescribeLogGroups on
        // resource: arn:aws:logs:REGION:ACCOUNT:log-group::log-stream:").
        "logs:DescribeLogGroups" => {
            Some(format!("arn:{}:logs:{}:{}:log-group::log-stream:", env.partition, env.region, env.account))
        }
        _ => None,
    }
}

/// Resource types the answer names, not the request: AWS authorizes them after looking the
/// resource up, with another action (GetWebACLForResource "uses GetWebACL to verify that your
/// account has permission to access the retrieved web ACL", WAFv2 API reference).
const NAMED_BY_THE_ANSWER: [(&str, &str); 1] = [("wafv2:GetWebACLForResource", "webacl")];

/// Every top-level string (or list of strings) of the request that is an ARN.
fn arns_in(input: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for v in input.as_object().into_iter().flat_map(|m| m.values()) {
        match v {
            Value::String(a) if a.starts_with("arn:") => out.push(a.clone()),
            Value::Array(list) => {
                out.extend(list.iter().filter_map(Value::as_str).filter(|a| a.starts_with("arn:")).map(str::to_string))
            }
            _ => {}
        }
    }
    out
}

/// An operation that only reads (its unknown resource is authorized on `*`).
fn reads(operation: &str) -> bool {
    ["Describe", "Get", "List"].iter().any(|p| operation.starts_with(p))
}

fn arn_service(arn: &str) -> Option<&str> {
    arn.strip_prefix("arn:")?.split(':').nth(1)
}

/// Does an ARN fit a template (variables match anything)?
fn fits(template: &str, arn: &str) -> bool {
    let mut pattern = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        pattern.push_str(&rest[..i]);
        pattern.push('*');
        rest = rest[i..].split_once('}').map(|(_, r)| r).unwrap_or("");
    }
    pattern.push_str(rest);
    policy::wildcard(&pattern, arn)
}

/// Fill a template; `None` names the first variable with no value.
fn fill(template: &str, env: &Env, ex: &Exchange, new_resource: bool) -> Result<Vec<String>, String> {
    let mut outs = vec![String::new()];
    let mut rest = template;
    while let Some(i) = rest.find("${") {
        let lit = &rest[..i];
        outs.iter_mut().for_each(|o| o.push_str(lit));
        let (name, after) = rest[i + 2..].split_once('}').ok_or_else(|| format!("bad template {template}"))?;
        let values = match name {
            "Partition" => vec![env.partition.clone()],
            "Region" => vec![env.region.clone()],
            "Account" => vec![env.account.clone()],
            other => {
                let v = variable(ex, other);
                if v.is_empty() {
                    if new_resource {
                        vec!["*".to_string()]
                    } else {
                        return Err(other.to_string());
                    }
                } else {
                    v
                }
            }
        };
        outs = outs.iter().flat_map(|o| values.iter().map(move |v| format!("{o}{v}"))).collect();
        rest = after;
    }
    outs.iter_mut().for_each(|o| o.push_str(rest));
    Ok(outs)
}

/// The ARNs of one action's resources, per the reference: `Ok(vec!["*"])` for an action without
/// resource types.
fn resources_of(sar: &Sar, env: &Env, ex: &Exchange, action: &str) -> Result<Vec<(String, String)>, String> {
    let (prefix, _) = action.split_once(':').unwrap_or((action, ""));
    let privilege =
        sar.privilege(action).ok_or_else(|| format!("{action} is not in the Service Authorization Reference"))?;
    if let Some(fixed) = fixed_resource(env, action) {
        return Ok(vec![("*".into(), fixed)]);
    }
    let types: Vec<_> = privilege
        .resource_types()
        .filter(|rt| !NAMED_BY_THE_ANSWER.contains(&(action, rt.resource_type.as_str())))
        .collect();
    if types.is_empty() {
        return Ok(vec![("*".into(), "*".into())]);
    }
    let given = arns_in(&ex.input);
    let creates = ex.operation.starts_with("Create") || ex.operation == "PutMetricAlarm";
    let mut out = Vec::new();
    let mut missing = Vec::new();
    for rt in &types {
        // WAF's optional types (IP sets, rule groups...) share the template variables `Name` and
        // `Id` with the web ACL a *WebACL call names: only the web ACL is that resource.
        if prefix == "wafv2" && !rt.required && rt.resource_type != "webacl" && given.is_empty() {
            continue;
        }
        let Some(template) = sar.arn_template(prefix, &rt.resource_type) else { continue };
        // A resource named by its whole ARN in the request.
        let whole: Vec<&String> = given.iter().filter(|a| fits(template, a)).collect();
        if !whole.is_empty() {
            out.extend(whole.into_iter().map(|a| (rt.resource_type.clone(), a.clone())));
            continue;
        }
        if given.iter().any(|a| arn_service(a) == arn_service(template)) && !rt.required {
            continue;
        }
        match fill(template, env, ex, false) {
            Ok(arns) => out.extend(arns.into_iter().map(|a| (rt.resource_type.clone(), a))),
            // The resource this create makes: its id is not known yet, as AWS's `subnet/*`.
            Err(_) if rt.required && creates => {
                let arns = fill(template, env, ex, true)?;
                out.extend(arns.into_iter().map(|a| (rt.resource_type.clone(), a)));
            }
            // A read by another key (DescribeStackResources by PhysicalResourceId): on `*`.
            Err(_) if rt.required && reads(&ex.operation) => out.push((rt.resource_type.clone(), "*".into())),
            Err(var) if rt.required => missing.push(format!("{} (${{{var}}})", rt.resource_type)),
            Err(_) => {}
        }
    }
    if !missing.is_empty() {
        return Err(format!("{action}: no value in the request for the required resource {}", missing.join(", ")));
    }
    if out.is_empty() {
        // Only optional resource types, none present: AWS authorizes on `*`.
        out.push(("*".into(), "*".into()));
    }
    Ok(out)
}

/// The tagging action a create that carries tags also needs, and on which resource types.
fn tag_on_create(ex: &Exchange) -> Option<&'static str> {
    Some(match (ex.service.as_str(), ex.operation.as_str()) {
        ("ec2", op) if op.starts_with("Create") => "ec2:CreateTags",
        ("lambda", "CreateFunction") => "lambda:TagResource",
        ("dynamodb", "CreateTable") => "dynamodb:TagResource",
        ("iam", "CreateRole") => "iam:TagRole",
        ("logs", "CreateLogGroup") => "logs:TagResource",
        ("monitoring", "PutMetricAlarm") => "cloudwatch:TagResource",
        ("wafv2", "CreateWebACL") => "wafv2:TagResource",
        _ => return None,
    })
}

/// API Gateway: the path of the resource a create makes (`/restapis/NEW`), with a stand-in id
/// (the policy cannot name an id that does not exist yet, so any id is equivalent).
fn apigateway_created(operation: &str, path: &str, input: &Value) -> Option<String> {
    const NEW: &str = "a1b2c3d4e5";
    Some(match operation {
        "CreateRestApi" => format!("/restapis/{NEW}"),
        "CreateUsagePlan" => format!("/usageplans/{NEW}"),
        "CreateApiKey" => format!("/apikeys/{NEW}"),
        "CreateStage" => format!("{}/{}", path.trim_end_matches('/'), input.get("stageName")?.as_str()?),
        _ => return None,
    })
}

/// The roles a request hands to a service, and the service.
fn passed_roles(ex: &Exchange) -> Vec<(String, &'static str)> {
    let mut out = Vec::new();
    match (ex.service.as_str(), ex.operation.as_str()) {
        ("lambda", "CreateFunction" | "UpdateFunctionConfiguration") => {
            if let Some(r) = ex.str_at(&["Role"]) {
                out.push((r.to_string(), "lambda.amazonaws.com"));
            }
        }
        ("ec2", "CreateFlowLogs") => {
            if let Some(r) = ex.str_at(&["DeliverLogsPermissionArn"]) {
                out.push((r.to_string(), "vpc-flow-logs.amazonaws.com"));
            }
        }
        ("apigateway", "UpdateAccount") => {
            for op in ex.input.get("patchOperations").and_then(Value::as_array).into_iter().flatten() {
                if op.get("path").and_then(Value::as_str) == Some("/cloudwatchRoleArn")
                    && let Some(v) = op.get("value").and_then(Value::as_str)
                {
                    out.push((v.to_string(), "apigateway.amazonaws.com"));
                }
            }
        }
        _ => {}
    }
    out
}

/// Every authorization request of one exchange (before the resources' own tags are known).
/// `path`: the HTTP request's path, which is API Gateway's resource.
pub fn derive(sar: &Sar, env: &Env, ex: &Exchange, path: &str) -> Derived {
    let mut d = Derived::default();
    let Some(action) = action_of(&ex.service, &ex.operation) else { return d };
    let tags = request_tags(ex);
    let base = |action: &str, resource: &str| with_request_tags(Request::new(action, resource), &tags);
    if ex.service == "apigateway" {
        let arn = |p: &str| format!("arn:{}:apigateway:{}::{p}", env.partition, env.region);
        d.requests.push(base(&action, &arn(path)));
        if !tags.is_empty()
            && let Some(created) = apigateway_created(&ex.operation, path, &ex.input)
        {
            d.requests.push(base(
                "apigateway:PUT",
                &arn(&format!("/tags/{}", super::direct::percent_encode(&arn(&created)))),
            ));
        }
    } else {
        match resources_of(sar, env, ex, &action) {
            Ok(rs) => d.requests.extend(rs.iter().map(|(_, r)| base(&action, r))),
            Err(why) => d.unresolved.push(why),
        }
        if !tags.is_empty()
            && let Some(tagging) = tag_on_create(ex)
        {
            // On the resource the create makes: the first resource type of its own action.
            match resources_of(sar, env, ex, &action) {
                Ok(rs) => {
                    let made: Vec<&(String, String)> =
                        rs.iter().filter(|(_, a)| a.ends_with('*') || !a.contains('/')).collect();
                    let on = if made.is_empty() { rs.iter().take(1).collect() } else { made };
                    for (_, r) in on {
                        let mut req = base(tagging, r);
                        if ex.service == "ec2" {
                            req = req.with("ec2:CreateAction", [ex.operation.clone()]);
                        }
                        d.requests.push(req);
                    }
                }
                Err(why) => d.unresolved.push(why),
            }
        }
        if ex.service == "wafv2"
            && matches!(ex.operation.as_str(), "AssociateWebACL" | "DisassociateWebACL")
            && let Some(stage) = ex.str_at(&["ResourceArn"]).filter(|a| a.contains(":apigateway:"))
        {
            // "Permissions for AssociateWebACL": the stage's own apigateway:SetWebACL.
            d.requests.push(base("apigateway:SetWebACL", stage));
        }
    }
    for (role, service) in passed_roles(ex) {
        d.requests.push(Request::new("iam:PassRole", role).with("iam:PassedToService", [service]));
    }
    if ex.service == "iam" {
        let boundary = ex.str_at(&["PermissionsBoundary"]).map(str::to_string);
        let policy_arn = ex.str_at(&["PolicyArn"]).map(str::to_string);
        for r in d.requests.iter_mut().filter(|r| r.action.starts_with("iam:") && r.action != "iam:PassRole") {
            if let Some(b) = &boundary {
                *r = r.clone().with("iam:PermissionsBoundary", [b.clone()]);
            }
            if let Some(p) = &policy_arn {
                *r = r.clone().with("iam:PolicyARN", [p.clone()]);
            }
        }
    }
    d
}

// ---- what moto knows of existing resources ----

/// Requests that name a resource by something else than its id: the ids AWS resolves before
/// authorizing, looked up in moto and added to a copy of the input (`RouteTableId`, `SubnetId`
/// of a route-table association).
pub async fn resolve_ids(moto: &MotoEc2, ex: &Exchange) -> Exchange {
    let mut ex = ex.clone();
    if ex.service == "ec2"
        && matches!(ex.operation.as_str(), "DisassociateRouteTable" | "ReplaceRouteTableAssociation")
        && let Some(association) = ex.str_at(&["AssociationId"]).map(str::to_string)
    {
        let params = [
            ("Filter.1.Name".to_string(), "association.route-table-association-id".to_string()),
            ("Filter.1.Value.1".to_string(), association.clone()),
        ];
        if let Ok(xml) = moto.call("DescribeRouteTables", &params).await {
            for assoc in xml_all(&xml, "item") {
                if xml_first(assoc, "routeTableAssociationId") == Some(association.as_str()) {
                    let obj = ex.input.as_object_mut();
                    if let (Some(obj), Some(subnet)) = (obj, xml_first(assoc, "subnetId")) {
                        obj.entry("SubnetId").or_insert_with(|| Value::String(subnet.to_string()));
                    }
                    // Disassociate acts on the table the subnet leaves; Replace names the new one.
                    if ex.operation == "DisassociateRouteTable"
                        && let (Some(obj), Some(table)) = (ex.input.as_object_mut(), xml_first(assoc, "routeTableId"))
                    {
                        obj.entry("RouteTableId").or_insert_with(|| Value::String(table.to_string()));
                    }
                }
            }
        }
    }
    ex
}

fn policies_mention(policies: &[Arc<Value>], needle: &str) -> bool {
    policies.iter().any(|p| p.to_string().to_ascii_lowercase().contains(needle))
}

/// API Gateway's resources whose tags a path's resource has: its own and, by inheritance, its
/// REST API's or usage plan's ("API Gateway resources that can be tagged": child resources
/// inherit their parent's tags for attribute-based access control; the stage's own tags win).
fn apigateway_tag_sources(path: &str) -> Vec<String> {
    let segs: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match segs.as_slice() {
        ["restapis", api, "stages", stage, ..] => {
            vec![format!("/restapis/{api}"), format!("/restapis/{api}/stages/{stage}")]
        }
        ["restapis", api, ..] => vec![format!("/restapis/{api}")],
        ["usageplans", plan, ..] => vec![format!("/usageplans/{plan}")],
        ["apikeys", key, ..] => vec![format!("/apikeys/{key}")],
        _ => Vec::new(),
    }
}

/// Add `aws:ResourceTag/*` (and EC2's `ec2:ResourceTag/*`) of existing resources, and an existing
/// role's `iam:PermissionsBoundary`, read from moto, where a registered policy tests them.
pub async fn add_existing(moto: &MotoEc2, policies: &[Arc<Value>], ex: &Exchange, path: &str, reqs: &mut [Request]) {
    let resource_tags = policies_mention(policies, "resourcetag/");
    if resource_tags && ex.service == "ec2" {
        let ids: Vec<String> = reqs
            .iter()
            .filter_map(|r| r.resource.rsplit_once('/').map(|(_, id)| id.to_string()))
            .filter(|id| id != "*" && id.contains('-'))
            .collect();
        let tags = ec2_tags(moto, &ids).await;
        for r in reqs.iter_mut() {
            let Some((_, id)) = r.resource.rsplit_once('/') else { continue };
            for (k, v) in tags.get(id).into_iter().flatten() {
                *r = r
                    .clone()
                    .with(&format!("aws:ResourceTag/{k}"), [v.clone()])
                    .with(&format!("ec2:ResourceTag/{k}"), [v.clone()]);
            }
        }
    }
    if resource_tags && ex.service == "apigateway" {
        let mut tags: BTreeMap<String, String> = BTreeMap::new();
        for source in apigateway_tag_sources(path) {
            if let Ok(doc) = moto.get_json(&source).await {
                for (k, v) in doc.get("tags").and_then(Value::as_object).into_iter().flatten() {
                    tags.insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
        }
        for r in reqs.iter_mut().filter(|r| r.action.starts_with("apigateway:") && !r.resource.contains("::/tags/")) {
            for (k, v) in &tags {
                *r = r.clone().with(&format!("aws:ResourceTag/{k}"), [v.clone()]);
            }
        }
    }
    if ex.service == "dynamodb"
        && policies_mention(policies, "dynamodb:leadingkeys")
        && matches!(ex.operation.as_str(), "GetItem" | "PutItem" | "UpdateItem" | "DeleteItem")
        && let Some(key) = leading_keys(moto, ex).await
    {
        for r in reqs.iter_mut().filter(|r| r.action.starts_with("dynamodb:")) {
            *r = r.clone().with("dynamodb:LeadingKeys", [key.clone()]);
        }
    }
    if ex.service == "iam"
        && ex.operation != "CreateRole"
        && policies_mention(policies, "iam:permissionsboundary")
        && let Some(role) = ex.str_at(&["RoleName"])
        && let Some(boundary) = role_boundary(moto, role).await
    {
        for r in reqs.iter_mut().filter(|r| r.action.starts_with("iam:") && r.action != "iam:PassRole") {
            if !r.context.contains_key("iam:permissionsboundary") {
                *r = r.clone().with("iam:PermissionsBoundary", [boundary.clone()]);
            }
        }
    }
}

/// `dynamodb:LeadingKeys` of an item request: the value of the table's partition key in its
/// `Key` (or `Item`), the key named by the table's schema (moto's DescribeTable).
async fn leading_keys(moto: &MotoEc2, ex: &Exchange) -> Option<String> {
    let table = ex.str_at(&["TableName"])?;
    let described = moto.dynamodb("DescribeTable", &serde_json::json!({ "TableName": table })).await.ok()?;
    let schema = described.pointer("/Table/KeySchema")?.as_array()?;
    let hash = schema.iter().find(|k| k["KeyType"] == "HASH")?["AttributeName"].as_str()?;
    let key = ex.input.get("Key").or_else(|| ex.input.get("Item"))?;
    let value = key.get(hash)?.as_object()?.values().next()?;
    value.as_str().map(str::to_string)
}

async fn ec2_tags(moto: &MotoEc2, ids: &[String]) -> HashMap<String, Vec<(String, String)>> {
    let mut out: HashMap<String, Vec<(String, String)>> = HashMap::new();
    if ids.is_empty() {
        return out;
    }
    let mut params = vec![("Filter.1.Name".to_string(), "resource-id".to_string())];
    params.extend(ids.iter().enumerate().map(|(i, id)| (format!("Filter.1.Value.{}", i + 1), id.clone())));
    let Ok(xml) = moto.call("DescribeTags", &params).await else { return out };
    for item in xml_all(&xml, "item") {
        if let (Some(id), Some(k)) = (xml_first(item, "resourceId"), xml_first(item, "key")) {
            let v = xml_first(item, "value").unwrap_or_default();
            out.entry(id.to_string()).or_default().push((k.to_string(), v.to_string()));
        }
    }
    out
}

async fn role_boundary(moto: &MotoEc2, role: &str) -> Option<String> {
    let xml = moto.query("iam", "2010-05-08", "GetRole", &[("RoleName".into(), role.into())]).await.ok()?;
    let boundary = xml_first(&xml, "PermissionsBoundary")?;
    xml_first(boundary, "PermissionsBoundaryArn").map(str::to_string)
}

// ---- the verdict ----

/// The service's answer to a denied request, as AWS words it.
pub fn access_denied(service: &str, req: &Request) -> Fault {
    let (status, code) = match service {
        "ec2" => (403, "UnauthorizedOperation"),
        "iam" | "monitoring" | "cloudformation" | "sts" => (403, "AccessDenied"),
        _ => (403, "AccessDeniedException"),
    };
    Fault {
        status,
        code: code.into(),
        message: format!(
            "User: arn:aws:iam::{ACCOUNT}:user/movies-stack-test is not authorized to perform: {} on resource: {} \
             because no identity-based policy allows the {} action (strict model: the policy `movies-stack iam-policy` \
             prints)",
            req.action, req.resource, req.action
        ),
    }
}

/// Evaluate every request; the first denied one.
pub fn first_denied(policies: &[Arc<Value>], reqs: &[Request]) -> Result<Option<(Request, String)>, String> {
    let refs: Vec<&Value> = policies.iter().map(|p| p.as_ref()).collect();
    for r in reqs {
        match policy::evaluate(&refs, r)? {
            Decision::Allow(_) => {}
            Decision::ImplicitDeny => return Ok(Some((r.clone(), "implicit".into()))),
            Decision::ExplicitDeny(sid) => return Ok(Some((r.clone(), sid))),
        }
    }
    Ok(None)
}

/// `key=value` for the record.
pub fn context_strings(req: &Request) -> Vec<String> {
    req.context.iter().map(|(k, v)| format!("{k}={}", v.join("|"))).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn ex(service: &str, operation: &str, input: Value) -> Exchange {
        Exchange { service: service.into(), operation: operation.into(), input }
    }

    fn env() -> Env {
        Env::of_region("us-east-1")
    }

    fn summary(d: &Derived) -> Vec<String> {
        d.requests.iter().map(|r| format!("{} {}", r.action, r.resource)).collect()
    }

    #[test]
    fn an_ec2_create_acts_on_the_new_resource_its_vpc_and_its_tags() {
        let sar = super::super::sar::get().unwrap();
        let e = ex(
            "ec2",
            "CreateSubnet",
            json!({"VpcId": "vpc-1", "CidrBlock": "10.1.0.0/24",
                   "TagSpecifications": [{"ResourceType": "subnet", "Tags": [{"Key": "movies-stack:stack", "Value": "s"}]}]}),
        );
        let d = derive(&sar, &env(), &e, "/");
        assert!(d.unresolved.is_empty(), "{:?}", d.unresolved);
        let s = summary(&d);
        assert!(s.contains(&"ec2:CreateSubnet arn:aws:ec2:us-east-1:123456789012:subnet/*".to_string()), "{s:?}");
        assert!(s.contains(&"ec2:CreateSubnet arn:aws:ec2:us-east-1:123456789012:vpc/vpc-1".to_string()), "{s:?}");
        let tagging = d.requests.iter().find(|r| r.action == "ec2:CreateTags").expect("tags on create");
        assert_eq!(tagging.resource, "arn:aws:ec2:us-east-1:123456789012:subnet/*");
        assert_eq!(tagging.context["ec2:createaction"], ["CreateSubnet"]);
        assert_eq!(tagging.context["aws:requesttag/movies-stack:stack"], ["s"]);
    }

    #[test]
    fn api_gateway_authorizes_the_path_and_the_tags_of_a_create() {
        let sar = super::super::sar::get().unwrap();
        let e = ex("apigateway", "CreateRestApi", json!({"name": "a", "tags": {"movies-stack:stack": "s"}}));
        let d = derive(&sar, &env(), &e, "/restapis");
        assert_eq!(
            summary(&d),
            [
                "apigateway:POST arn:aws:apigateway:us-east-1::/restapis",
                "apigateway:PUT arn:aws:apigateway:us-east-1::/tags/arn%3Aaws%3Aapigateway%3Aus-east-1%3A%3A%2Frestapis%2Fa1b2c3d4e5"
            ]
        );
    }

    #[test]
    fn a_role_handed_to_a_service_is_passed_with_the_service() {
        let sar = super::super::sar::get().unwrap();
        let e = ex(
            "lambda",
            "CreateFunction",
            json!({"FunctionName": "f", "Role": "arn:aws:iam::123456789012:role/r", "Tags": {"k": "v"}}),
        );
        let d = derive(&sar, &env(), &e, "/");
        let s = summary(&d);
        assert!(
            s.contains(&"lambda:CreateFunction arn:aws:lambda:us-east-1:123456789012:function:f".to_string()),
            "{s:?}"
        );
        assert!(
            s.contains(&"lambda:TagResource arn:aws:lambda:us-east-1:123456789012:function:f".to_string()),
            "{s:?}"
        );
        let pass = d.requests.iter().find(|r| r.action == "iam:PassRole").unwrap();
        assert_eq!(pass.resource, "arn:aws:iam::123456789012:role/r");
        assert_eq!(pass.context["iam:passedtoservice"], ["lambda.amazonaws.com"]);
    }

    #[test]
    fn reads_without_resource_types_are_on_star_and_missing_ids_are_reported() {
        let sar = super::super::sar::get().unwrap();
        let d = derive(&sar, &env(), &ex("ec2", "DescribeVpcs", json!({})), "/");
        assert_eq!(summary(&d), ["ec2:DescribeVpcs *"]);
        let d = derive(&sar, &env(), &ex("ec2", "DeleteVpc", json!({})), "/");
        assert!(d.requests.is_empty() && d.unresolved.len() == 1, "{d:?}");
        assert!(apigateway_tag_sources("/restapis/a/stages/prod/x").len() == 2);
    }
}
