//! The strict AWS model: an independent model of AWS's documented behaviour, in the proxy
//! between the deployer and moto, ON for every [`crate::Proxy`].
//!
//! moto is lenient: it accepts what AWS refuses and never makes us wait where AWS does. The
//! model refuses and delays as AWS does, each way a named [`Behaviour`] that a test can turn off
//! only with a reason ([`crate::proxy::ProxyBuilder::without`]):
//!
//! 1. [`Behaviour::Validation`]: every request is read back into its operation's input shape
//!    from AWS's own service model (botocore's) and validated; an operation the model does not
//!    know answers HTTP 500, so no call passes unvalidated.
//! 2. [`Behaviour::TagRules`]: each service's tag character set and lengths.
//! 3. [`Behaviour::IamPropagation`]: a role changed a moment ago cannot be used yet.
//! 4. [`Behaviour::Ec2Propagation`]: a security group or subnet created a moment ago is not found.
//! 5. [`Behaviour::LambdaStates`] (Pending, update InProgress, 409s) and
//!    [`Behaviour::LambdaEnis`] (Hyperplane ENIs that outlive the function).
//! 6. [`Behaviour::TableStates`] (CREATING) and [`Behaviour::PitrWindow`].
//! 7. [`Behaviour::ApiGatewayQuotas`]: control-plane token buckets.
//! 8. [`Behaviour::LambdaZones`] and [`Behaviour::ZoneStates`].
//! 9. [`Behaviour::LambdaConcurrency`]: the account's concurrency limit (GetAccountSettings,
//!    which moto lacks) and the unreserved minimum PutFunctionConcurrency must leave.
//! 10. [`Behaviour::WafUnavailable`] and [`Behaviour::WafAssociated`]: a web ACL just created
//!     cannot be associated yet, and an associated one cannot be deleted.
//! 11. [`Behaviour::Authorization`]: each request of the movies-stack binary is authorized
//!     against the policy `movies-stack iam-policy` prints, by action, resource and condition
//!     keys, as AWS does ([`authz`]); [`Behaviour::IamBoundary`]: a role's boundary must exist.
//! 12. [`Behaviour::ApiGatewayConcurrentModification`]: one write at a time to a REST API's
//!     resources, methods and integrations.
//! 13. [`Behaviour::WafUnreadableAcl`]: a web ACL the caller may not read (another team's),
//!     met through GetWebACLForResource.
//! 14. [`Behaviour::SubnetZones`]: a zone where the account cannot create subnets.
//! 15. [`Behaviour::UsagePlanStages`]: a usage plan with a stage cannot be deleted, and deleting
//!     a stage (or its API) takes it off every usage plan.
//! 16. [`Behaviour::AccessLogsAccountRole`]: a stage's access logs need the account's CloudWatch
//!     role.
//! 17. [`Behaviour::LambdaVersions`]: an alias' routing (one other published version, weight
//!     0-1), versions an alias holds, PublishVersion's code check, and the code storage quota.
//! 18. [`Behaviour::XRayTraces`]: X-Ray's GetTraceSummaries (with its filter expression) and
//!     GetServiceGraph answered from the segment documents PutTraceSegments sent ([`xray`]).
//! 19. [`Behaviour::CloudWatchMetrics`]: GetMetricData answered from the data points PutMetricData
//!     put through the proxy (statistics and percentiles per period, which moto lacks), with its
//!     limits ([`metrics`]).
//!
//! Windows and rates are in [`Timings`]. Time is evaluated lazily: each request sees the state
//! as of its arrival (ENIs are released by the first request after their window).

mod access_logs;
pub mod authz;
pub mod botocore;
mod concurrency;
mod direct;
mod dynamodb;
mod ec2;
mod iam;
mod lambda;
mod metrics;
pub mod policy;
mod quotas;
pub mod report;
pub mod request;
mod rest_api;
pub mod sar;
mod tags;
mod timings;
mod usage_plans;
pub mod validate;
mod versions;
mod waf;
mod xray;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;

pub use direct::MotoEc2;
pub use report::{OperationStats, Record};
pub use timings::{ApiGatewayQuotas, FAST_QUOTA_SPEEDUP, Rate, Timings};
pub use validate::NotCheckable;

use crate::proxy::{Fault, Reply};
use request::HttpRequest;

/// One behaviour of the model; each is counted and can be turned off with a reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Behaviour {
    /// Requests validated against AWS's service models; unknown operations answer 500.
    Validation,
    /// Tag keys and values: each service's character set and lengths.
    TagRules,
    /// IAM eventual consistency: a role changed a moment ago cannot be used yet.
    IamPropagation,
    /// EC2 eventual consistency: a security group or subnet created a moment ago is not found.
    Ec2Propagation,
    /// Lambda `Pending` after create, `LastUpdateStatus: InProgress` after an update, 409s.
    LambdaStates,
    /// Lambda's VPC ENIs: created with the function, in use for a while after it is gone, and
    /// blocking their security group and subnet meanwhile.
    LambdaEnis,
    /// DynamoDB `CREATING` after CreateTable: item calls not found, UpdateTable in use.
    TableStates,
    /// DynamoDB UpdateContinuousBackups: "Backups are being enabled" for a while after create.
    PitrWindow,
    /// API Gateway control-plane quotas (429 TooManyRequestsException).
    ApiGatewayQuotas,
    /// A zone where Lambda refuses subnets.
    LambdaZones,
    /// A zone in a state other than `available`.
    ZoneStates,
    /// Lambda's account concurrency: GetAccountSettings answered from the account's limit, and
    /// PutFunctionConcurrency refused below the unreserved minimum.
    LambdaConcurrency,
    /// WAF AssociateWebACL: a web ACL created a moment ago is unavailable.
    WafUnavailable,
    /// WAF DeleteWebACL: refused while the web ACL is associated with a resource.
    WafAssociated,
    /// IAM: the request is authorized against the printed policy (action, resource, conditions).
    Authorization,
    /// IAM CreateRole / PutRolePermissionsBoundary: a boundary policy that does not exist is
    /// refused (NoSuchEntity).
    IamBoundary,
    /// API Gateway: a write to a REST API's resources, methods or integrations while another
    /// write to the same API is in flight answers 409 ConflictException.
    ApiGatewayConcurrentModification,
    /// WAF GetWebACLForResource / GetWebACL: AccessDeniedException for a web ACL the caller may
    /// not `wafv2:GetWebACL` ([`Config::waf_unreadable_acls`]).
    WafUnreadableAcl,
    /// EC2 CreateSubnet refused in a zone ([`Config::subnet_refused_zone`]), as in older accounts.
    SubnetZones,
    /// API Gateway DeleteUsagePlan: refused while a stage is bound to the plan; DeleteStage and
    /// DeleteRestApi take what they delete off every plan.
    UsagePlanStages,
    /// API Gateway UpdateStage: access log settings are refused while the account has no
    /// CloudWatch role.
    AccessLogsAccountRole,
    /// Lambda CreateAlias / UpdateAlias routing, DeleteFunction of a version an alias holds,
    /// PublishVersion's CodeSha256, and the account's code storage.
    LambdaVersions,
    /// X-Ray GetTraceSummaries (filter expressions, real durations) and GetServiceGraph, which
    /// moto does not serve, answered from the segment documents sent with PutTraceSegments.
    XRayTraces,
    /// CloudWatch GetMetricData: statistics and percentiles per period of the data put through
    /// the proxy, and the call's limits (queries, ids, statistics, periods, data points).
    CloudWatchMetrics,
}

impl Behaviour {
    pub const ALL: [Behaviour; 24] = [
        Behaviour::Validation,
        Behaviour::TagRules,
        Behaviour::IamPropagation,
        Behaviour::Ec2Propagation,
        Behaviour::LambdaStates,
        Behaviour::LambdaEnis,
        Behaviour::TableStates,
        Behaviour::PitrWindow,
        Behaviour::ApiGatewayQuotas,
        Behaviour::LambdaZones,
        Behaviour::ZoneStates,
        Behaviour::LambdaConcurrency,
        Behaviour::WafUnavailable,
        Behaviour::WafAssociated,
        Behaviour::Authorization,
        Behaviour::IamBoundary,
        Behaviour::ApiGatewayConcurrentModification,
        Behaviour::WafUnreadableAcl,
        Behaviour::SubnetZones,
        Behaviour::UsagePlanStages,
        Behaviour::AccessLogsAccountRole,
        Behaviour::LambdaVersions,
        Behaviour::XRayTraces,
        Behaviour::CloudWatchMetrics,
    ];

    /// A stable name for records and reports.
    pub fn name(self) -> &'static str {
        match self {
            Behaviour::Validation => "validation",
            Behaviour::TagRules => "tag-rules",
            Behaviour::IamPropagation => "iam-propagation",
            Behaviour::Ec2Propagation => "ec2-propagation",
            Behaviour::LambdaStates => "lambda-states",
            Behaviour::LambdaEnis => "lambda-enis",
            Behaviour::TableStates => "table-states",
            Behaviour::PitrWindow => "pitr-window",
            Behaviour::ApiGatewayQuotas => "apigateway-quotas",
            Behaviour::LambdaZones => "lambda-zones",
            Behaviour::ZoneStates => "zone-states",
            Behaviour::LambdaConcurrency => "lambda-concurrency",
            Behaviour::WafUnavailable => "waf-unavailable",
            Behaviour::WafAssociated => "waf-associated",
            Behaviour::Authorization => "authorization",
            Behaviour::IamBoundary => "iam-boundary",
            Behaviour::ApiGatewayConcurrentModification => "apigateway-concurrent-modification",
            Behaviour::WafUnreadableAcl => "waf-unreadable-acl",
            Behaviour::SubnetZones => "subnet-zones",
            Behaviour::UsagePlanStages => "usage-plan-stages",
            Behaviour::AccessLogsAccountRole => "access-logs-account-role",
            Behaviour::LambdaVersions => "lambda-versions",
            Behaviour::XRayTraces => "xray-traces",
            Behaviour::CloudWatchMetrics => "cloudwatch-metrics",
        }
    }

    pub fn from_name(name: &str) -> Option<Behaviour> {
        Behaviour::ALL.into_iter().find(|b| b.name() == name)
    }
}

impl fmt::Display for Behaviour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The zone where Lambda refuses subnets by default: AWS's real case, use1-az3 ("The provided
/// subnets contain availability zone Lambda doesn't support", keboola/developer-portal#81). In
/// moto it is us-east-1e.
pub const LAMBDA_REFUSED_ZONE: &str = "use1-az3";
/// The zone reported `impaired` by default: use1-az1, moto's us-east-1b, which the deployer's
/// sorted-by-name choice (us-east-1a, us-east-1b) picks, so that the choice is exercised.
pub const IMPAIRED_ZONE: &str = "use1-az1";

/// How a proxy's model is set up.
#[derive(Debug, Clone)]
pub struct Config {
    pub timings: Timings,
    /// Behaviours turned off, each with the test's reason.
    pub disabled: BTreeMap<Behaviour, String>,
    /// A zone ID where Lambda refuses subnets.
    pub lambda_refused_zone: Option<String>,
    /// A zone ID where CreateSubnet is refused. None by default: only some older accounts meet
    /// it, each in its own zones (widdix/aws-cf-templates#36), so no zone name or ID is known to
    /// be refused everywhere as use1-az3 is for Lambda.
    pub subnet_refused_zone: Option<String>,
    /// A zone ID and the state DescribeAvailabilityZones reports for it.
    pub zone_state: Option<(String, String)>,
    /// The account's Lambda concurrency limit in the region (AWS's default: 1000).
    pub lambda_concurrency_limit: i64,
    /// The proxy's port: the policies registered for it ([`authz::register_policy`]) are the ones
    /// the deployer holds.
    pub port: Option<u16>,
    /// Names of web ACLs the caller may not `wafv2:GetWebACL` (another team's); none by default.
    pub waf_unreadable_acls: BTreeSet<String>,
    /// The account's Lambda code storage, in bytes (AWS's default: 75 GB).
    pub lambda_code_storage_bytes: u64,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            timings: Timings::fast(),
            disabled: BTreeMap::new(),
            lambda_refused_zone: Some(LAMBDA_REFUSED_ZONE.to_string()),
            subnet_refused_zone: None,
            zone_state: Some((IMPAIRED_ZONE.to_string(), "impaired".to_string())),
            lambda_concurrency_limit: 1000,
            port: None,
            waf_unreadable_acls: BTreeSet::new(),
            lambda_code_storage_bytes: 75 * 1_000_000_000,
        }
    }
}

/// A REST API write in flight ([`Behaviour::ApiGatewayConcurrentModification`]): the API takes
/// writes again once this is dropped.
pub struct RestApiWrite<'a> {
    model: &'a Model,
    api: String,
    started: Instant,
}

impl Drop for RestApiWrite<'_> {
    fn drop(&mut self) {
        self.model.state.lock().unwrap().rest_api_writes.end(&self.api, self.started);
    }
}

/// What one request looked like to the model.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub service: String,
    pub operation: String,
    /// The input, keyed by the model's member names (`Value::Null` when it could not be read).
    pub input: Value,
}

impl Exchange {
    /// A string member of the input, at a path of member names.
    pub fn str_at(&self, path: &[&str]) -> Option<&str> {
        path.iter().try_fold(&self.input, |v, k| v.get(k))?.as_str()
    }

    /// A list of strings at a path (`VpcConfig.SubnetIds`).
    pub fn strings_at(&self, path: &[&str]) -> Option<Vec<String>> {
        let v = path.iter().try_fold(&self.input, |v, k| v.get(k))?;
        Some(v.as_array()?.iter().filter_map(Value::as_str).map(str::to_string).collect())
    }

    fn is(&self, service: &str, operation: &str) -> bool {
        self.service == service && self.operation == operation
    }
}

/// What the model decided for a request.
pub enum Verdict {
    /// Forward to moto; the exchange comes back with moto's answer.
    Forward(Option<Exchange>),
    /// Answer with this AWS error instead, as this behaviour of AWS would.
    Refuse(Behaviour, Fault),
    /// Answer this instead, as AWS would (an operation moto lacks).
    Answer(Behaviour, Reply),
    /// The model cannot tell what this is: answer 500 with this text.
    Unknown(String),
}

/// Whether the movies-stack binary sent the request: the SDK puts its app name in the user agent
/// (`app/movies-stack`), which the handler's and the tests' own clients do not have.
fn sent_by_deployer(headers: &hyper::HeaderMap) -> bool {
    ["x-amz-user-agent", "user-agent"].iter().any(|h| {
        headers.get(*h).and_then(|v| v.to_str().ok()).is_some_and(|ua| ua.split(' ').any(|t| t == "app/movies-stack"))
    })
}

/// Outcome counters of one operation.
#[derive(Debug, Default, Clone, Copy)]
struct OpCount {
    calls: usize,
    validated: usize,
    refused: usize,
}

#[derive(Default)]
struct State {
    roles: iam::Roles,
    fresh: ec2::Fresh,
    functions: lambda::Functions,
    tables: dynamodb::Tables,
    buckets: quotas::Buckets,
    reservations: concurrency::Reservations,
    web_acls: waf::WebAcls,
    rest_api_writes: rest_api::Writes,
    xray: xray::Traces,
    metrics: metrics::Metrics,
}

/// One proxy's model: its configuration, the state of the account as AWS would see it, and
/// counters.
pub struct Model {
    config: Config,
    state: Mutex<State>,
    hits: Mutex<BTreeMap<Behaviour, usize>>,
    ops: Mutex<BTreeMap<(String, String), OpCount>>,
    /// `(service, operation)` sent by the movies-stack binary (its user agent's app name), for
    /// the IAM policy's coverage check.
    deployer_ops: Mutex<BTreeSet<(String, String)>>,
    not_checkable: Mutex<BTreeSet<(String, NotCheckable)>>,
    authz: Mutex<authz::AuthzRecord>,
}

impl Model {
    pub fn new(config: Config) -> Model {
        Model {
            config,
            state: Mutex::new(State::default()),
            hits: Mutex::new(BTreeMap::new()),
            ops: Mutex::new(BTreeMap::new()),
            deployer_ops: Mutex::new(BTreeSet::new()),
            not_checkable: Mutex::new(BTreeSet::new()),
            authz: Mutex::new(authz::AuthzRecord::default()),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn on(&self, b: Behaviour) -> bool {
        !self.config.disabled.contains_key(&b)
    }

    fn hit(&self, b: Behaviour) {
        *self.hits.lock().unwrap().entry(b).or_insert(0) += 1;
    }

    /// How many times each behaviour acted (every behaviour listed, zero included).
    pub fn hits(&self) -> BTreeMap<Behaviour, usize> {
        let hits = self.hits.lock().unwrap();
        Behaviour::ALL.into_iter().map(|b| (b, hits.get(&b).copied().unwrap_or(0))).collect()
    }

    /// Every operation seen, with how many calls were validated and refused.
    pub fn operations(&self) -> Vec<OperationStats> {
        self.ops
            .lock()
            .unwrap()
            .iter()
            .map(|((service, operation), c)| OperationStats {
                service: service.clone(),
                operation: operation.clone(),
                calls: c.calls,
                validated: c.validated,
                refused: c.refused,
            })
            .collect()
    }

    /// Patterns the model states but this engine cannot check, by service.
    pub fn not_checkable(&self) -> Vec<(String, NotCheckable)> {
        self.not_checkable.lock().unwrap().iter().cloned().collect()
    }

    fn count(&self, service: &str, operation: &str, validated: bool, refused: bool) {
        let mut ops = self.ops.lock().unwrap();
        let c = ops.entry((service.to_string(), operation.to_string())).or_default();
        c.calls += 1;
        c.validated += usize::from(validated);
        c.refused += usize::from(refused);
    }

    /// Read, validate and judge one request (`call_operation`: the proxy's name for it).
    pub async fn on_request(
        &self,
        moto: &MotoEc2,
        service: &str,
        call_operation: &str,
        req: &HttpRequest<'_>,
    ) -> Verdict {
        let validating = self.on(Behaviour::Validation);
        let from_deployer = sent_by_deployer(req.headers);
        let parsed = botocore::service(service)
            .map_err(|e| e.to_string())
            .and_then(|m| request::parse(&m, req).map(|p| (m, p)).map_err(|e| e.to_string()));
        let (model, parsed) = match parsed {
            Ok(ok) => ok,
            Err(why) => {
                self.count(service, call_operation, false, false);
                if from_deployer {
                    self.deployer_ops.lock().unwrap().insert((service.to_string(), call_operation.to_string()));
                }
                if validating {
                    self.hit(Behaviour::Validation);
                    return Verdict::Unknown(format!("strict model: {why}"));
                }
                return Verdict::Forward(None);
            }
        };
        let ex = Exchange { service: service.to_string(), operation: parsed.operation, input: parsed.input };
        if from_deployer {
            self.deployer_ops.lock().unwrap().insert((service.to_string(), ex.operation.clone()));
        }
        if validating {
            let outcome = validate::validate(&model, &ex.operation, &ex.input);
            {
                let mut nc = self.not_checkable.lock().unwrap();
                nc.extend(outcome.not_checkable.into_iter().map(|n| (service.to_string(), n)));
            }
            let refused = !outcome.violations.is_empty();
            self.count(service, &ex.operation, true, refused);
            if refused {
                self.hit(Behaviour::Validation);
                return Verdict::Refuse(Behaviour::Validation, validate::refusal(service, &outcome.violations));
            }
        } else {
            self.count(service, &ex.operation, false, false);
        }
        if from_deployer
            && self.on(Behaviour::Authorization)
            && let Some(f) = self.authorize(moto, &ex, req).await
        {
            self.hit(Behaviour::Authorization);
            return Verdict::Refuse(Behaviour::Authorization, f);
        }
        if self.on(Behaviour::LambdaConcurrency) && ex.is("lambda", "GetAccountSettings") {
            self.hit(Behaviour::LambdaConcurrency);
            let limit = self.config.lambda_concurrency_limit;
            return Verdict::Answer(
                Behaviour::LambdaConcurrency,
                self.state.lock().unwrap().reservations.account_settings(limit),
            );
        }
        if self.on(Behaviour::XRayTraces) {
            let answer = self.state.lock().unwrap().xray.answer(&ex);
            match answer {
                Some(Ok(reply)) => {
                    self.hit(Behaviour::XRayTraces);
                    return Verdict::Answer(Behaviour::XRayTraces, reply);
                }
                Some(Err(fault)) => {
                    self.hit(Behaviour::XRayTraces);
                    return Verdict::Refuse(Behaviour::XRayTraces, fault);
                }
                None => {}
            }
        }
        if self.on(Behaviour::CloudWatchMetrics) && ex.is("monitoring", "GetMetricData") {
            self.hit(Behaviour::CloudWatchMetrics);
            let b = Behaviour::CloudWatchMetrics;
            return match self.state.lock().unwrap().metrics.get_metric_data(&ex) {
                Ok(reply) => Verdict::Answer(b, reply),
                Err(fault) => Verdict::Refuse(b, fault),
            };
        }
        match self.judge(moto, &ex).await {
            Some((b, fault)) => {
                self.hit(b);
                Verdict::Refuse(b, fault)
            }
            None => Verdict::Forward(Some(ex)),
        }
    }

    /// [`Behaviour::Authorization`]: the AccessDenied answer AWS would give the holder of the
    /// registered policies, if any; what was evaluated goes to the record.
    async fn authorize(&self, moto: &MotoEc2, ex: &Exchange, req: &HttpRequest<'_>) -> Option<Fault> {
        let policies = self.config.port.map(authz::policies).unwrap_or_default();
        if policies.is_empty() {
            self.authz.lock().unwrap().unevaluated += 1;
            return None;
        }
        let sar = match sar::get() {
            Ok(s) => s,
            Err(why) => return Some(Fault { status: 500, code: "StrictModel".into(), message: why }),
        };
        let region = authz::signed_region(req.headers).unwrap_or_else(|| "us-east-1".into());
        let env = authz::Env::of_region(&region);
        let resolved = authz::resolve_ids(moto, ex).await;
        let mut derived = authz::derive(&sar, &env, &resolved, req.path);
        authz::add_existing(moto, &policies, ex, req.path, &mut derived.requests).await;
        let operation = format!("{} {}", ex.service, ex.operation);
        let verdict = authz::first_denied(&policies, &derived.requests);
        let mut rec = self.authz.lock().unwrap();
        rec.evaluated += 1;
        rec.unresolved.extend(derived.unresolved.iter().map(|why| format!("{operation}: {why}")));
        match verdict {
            Err(why) => {
                rec.unresolved.push(format!("{operation}: {why}"));
                None
            }
            Ok(Some((denied, why))) => {
                let fault = authz::access_denied(&ex.service, &denied);
                rec.denied.push(authz::Denied {
                    operation,
                    action: denied.action.clone(),
                    resource: denied.resource.clone(),
                    context: authz::context_strings(&denied),
                    why,
                });
                Some(fault)
            }
            Ok(None) => {
                for r in &derived.requests {
                    *rec.allowed.entry(r.action.clone()).or_insert(0) += 1;
                }
                None
            }
        }
    }

    /// The stateful behaviours, in the order AWS's front end would meet them.
    async fn judge(&self, moto: &MotoEc2, ex: &Exchange) -> Option<(Behaviour, Fault)> {
        let now = Instant::now();
        let t = &self.config.timings;
        if self.on(Behaviour::LambdaEnis) {
            lambda::release_lingering(self, moto, now).await;
        }
        if self.on(Behaviour::ApiGatewayQuotas)
            && ex.service == "apigateway"
            && let Some(f) = self.state.lock().unwrap().buckets.take(&ex.operation, &t.apigateway, now)
        {
            return Some((Behaviour::ApiGatewayQuotas, f));
        }
        if self.on(Behaviour::TagRules)
            && let Some(f) = tags::check(ex)
        {
            return Some((Behaviour::TagRules, f));
        }
        if self.on(Behaviour::IamBoundary)
            && let Some(f) = iam::missing_boundary(moto, ex).await
        {
            return Some((Behaviour::IamBoundary, f));
        }
        if self.on(Behaviour::LambdaZones)
            && let Some(zone) = &self.config.lambda_refused_zone
            && let Some(f) = lambda::refused_zone(moto, ex, zone).await
        {
            return Some((Behaviour::LambdaZones, f));
        }
        if self.on(Behaviour::SubnetZones)
            && let Some(zone) = &self.config.subnet_refused_zone
            && let Some(f) = ec2::refused_subnet_zone_in(moto, ex, zone).await
        {
            return Some((Behaviour::SubnetZones, f));
        }
        if self.on(Behaviour::UsagePlanStages)
            && let Some(f) = usage_plans::refuse_bound(moto, ex).await
        {
            return Some((Behaviour::UsagePlanStages, f));
        }
        if self.on(Behaviour::AccessLogsAccountRole)
            && let Some(f) = access_logs::refuse_without_role(moto, ex).await
        {
            return Some((Behaviour::AccessLogsAccountRole, f));
        }
        if self.on(Behaviour::LambdaVersions)
            && let Some(f) = versions::refuse(moto, ex, self.config.lambda_code_storage_bytes).await
        {
            return Some((Behaviour::LambdaVersions, f));
        }
        let mut st = self.state.lock().unwrap();
        if self.on(Behaviour::LambdaConcurrency)
            && let Some(f) = st.reservations.refuse(ex, self.config.lambda_concurrency_limit)
        {
            return Some((Behaviour::LambdaConcurrency, f));
        }
        if self.on(Behaviour::LambdaStates)
            && let Some(f) = st.functions.conflict(ex, now, t)
        {
            return Some((Behaviour::LambdaStates, f));
        }
        if self.on(Behaviour::IamPropagation) {
            let function_role = st.functions.role_of(ex);
            if let Some(f) = st.roles.check(ex, function_role.as_deref(), now, t.iam_propagation) {
                return Some((Behaviour::IamPropagation, f));
            }
        }
        if self.on(Behaviour::Ec2Propagation)
            && let Some(f) = st.fresh.check(ex, now, t.ec2_not_found)
        {
            return Some((Behaviour::Ec2Propagation, f));
        }
        if self.on(Behaviour::LambdaEnis)
            && let Some(f) = st.functions.eni_dependency(ex)
        {
            return Some((Behaviour::LambdaEnis, f));
        }
        if self.on(Behaviour::TableStates)
            && let Some(f) = st.tables.not_active(ex, now, t.table_creating)
        {
            return Some((Behaviour::TableStates, f));
        }
        if self.on(Behaviour::PitrWindow)
            && let Some(f) = st.tables.pitr_unavailable(ex, now, t.pitr_unavailable)
        {
            return Some((Behaviour::PitrWindow, f));
        }
        if self.on(Behaviour::WafUnreadableAcl)
            && let Some(f) = st.web_acls.unreadable(ex, &self.config.waf_unreadable_acls)
        {
            return Some((Behaviour::WafUnreadableAcl, f));
        }
        if self.on(Behaviour::WafUnavailable)
            && let Some(f) = st.web_acls.unavailable(ex, now, t.waf_unavailable)
        {
            return Some((Behaviour::WafUnavailable, f));
        }
        if self.on(Behaviour::WafAssociated)
            && let Some(f) = st.web_acls.still_associated(ex)
        {
            return Some((Behaviour::WafAssociated, f));
        }
        // Last: a write let through here is in flight until its answer leaves the proxy
        // ([`Model::rest_api_write`]).
        if self.on(Behaviour::ApiGatewayConcurrentModification)
            && let Err(f) = st.rest_api_writes.begin(ex, now)
        {
            return Some((Behaviour::ApiGatewayConcurrentModification, f));
        }
        None
    }

    /// The REST API write `ex` the model let through, in flight until the guard is dropped
    /// (when the answer has left the proxy, whatever it was); `None` for any other request.
    pub fn rest_api_write(&self, ex: &Exchange) -> Option<RestApiWrite<'_>> {
        let api = rest_api::written_api(ex)?;
        let started = self.state.lock().unwrap().rest_api_writes.hold_until(ex, std::time::Duration::ZERO)?;
        Some(RestApiWrite { model: self, api: api.to_string(), started })
    }

    /// moto answered `status` with `body`: update the model's state, and rewrite the body where
    /// AWS would answer otherwise (`Some(behaviour)` when it was rewritten).
    pub async fn on_response(
        &self,
        moto: &MotoEc2,
        ex: &Exchange,
        status: u16,
        body: &mut Vec<u8>,
    ) -> Option<Behaviour> {
        let t = self.config.timings;
        // AWS takes a while to apply a REST API write; moto, a millisecond.
        let hold = self.state.lock().unwrap().rest_api_writes.hold_until(ex, t.apigateway_write);
        if let Some(until) = hold {
            tokio::time::sleep_until(until.into()).await;
        }
        if !(200..300).contains(&status) {
            return None;
        }
        let now = Instant::now();
        let text = String::from_utf8_lossy(body).into_owned();
        let mut json: Option<Value> = serde_json::from_slice(body).ok();
        let mut rewritten = None;
        let eni_work = {
            let mut st = self.state.lock().unwrap();
            st.roles.record(ex, now);
            st.fresh.record(ex, &text, now);
            st.tables.record(ex, now);
            st.reservations.record(ex);
            let epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
            st.metrics.record(ex, epoch.as_secs_f64());
            st.web_acls.record(ex, json.as_ref(), now);
            st.xray.record(ex);
            let work = st.functions.record(ex, json.as_ref(), now);
            if let Some(j) = json.as_mut() {
                if self.on(Behaviour::LambdaStates) && st.functions.rewrite(ex, j, now, &t) {
                    rewritten = Some(Behaviour::LambdaStates);
                }
                if self.on(Behaviour::TableStates) && st.tables.rewrite(ex, j, now, t.table_creating) {
                    rewritten = Some(Behaviour::TableStates);
                }
            }
            work
        };
        if let (Some(b), Some(j)) = (rewritten, json) {
            self.hit(b);
            *body = serde_json::to_vec(&j).expect("a JSON value serialises");
        }
        if self.on(Behaviour::ZoneStates)
            && let Some((zone, state)) = &self.config.zone_state
            && ex.is("ec2", "DescribeAvailabilityZones")
            && let Some(new) = ec2::rewrite_zones(ex, &text, zone, state)
        {
            self.hit(Behaviour::ZoneStates);
            *body = new.into_bytes();
            rewritten = Some(Behaviour::ZoneStates);
        }
        if self.on(Behaviour::LambdaEnis) && !eni_work.is_empty() {
            lambda::apply(self, moto, eni_work, now).await;
        }
        if self.on(Behaviour::UsagePlanStages) && usage_plans::unbind_deleted(moto, ex).await {
            self.hit(Behaviour::UsagePlanStages);
        }
        rewritten
    }

    /// This model's record for the suite report.
    pub fn record(&self, binary: &str, test: &str) -> Record {
        Record {
            binary: binary.to_string(),
            test: test.to_string(),
            operations: self.operations(),
            deployer_operations: self.deployer_ops.lock().unwrap().iter().cloned().collect(),
            authorization: self.authz.lock().unwrap().clone(),
            behaviours: self.hits().into_iter().map(|(b, n)| (b.name().to_string(), n)).collect(),
            disabled: self.config.disabled.iter().map(|(b, why)| (b.name().to_string(), why.clone())).collect(),
            not_checkable: self
                .not_checkable()
                .into_iter()
                .map(|(service, n)| report::Unchecked { service, shape: n.shape, pattern: n.pattern, reason: n.reason })
                .collect(),
        }
    }
}
