//! The REST API: `ANY /` and `ANY /{proxy+}`, each a Lambda proxy integration with an API key
//! required. Resources, methods and integrations are not taggable, so they are observed through
//! the (tagged) API and reconciled as one definition; the stage redeploys when the definition's
//! hash changes.
//!
//! No request validator / JSON-schema model: both methods are `ANY`, and a body model on `ANY /`
//! would also apply to GET and DELETE. The handler validates the body and answers a precise
//! 4xx, which a gateway-level validator could not do better (it would answer a generic 400
//! "Invalid request body"). This is a deliberate deviation from DESIGN.md §1 row 11.

use std::collections::{BTreeMap, BTreeSet};

use async_trait::async_trait;
use aws_sdk_apigateway::types::{ApiKeySourceType, EndpointConfiguration, EndpointType, IntegrationType};

use super::apigw::{self, SERVICE, call, found, gone_is_ok, replace, tag_pairs};
use super::{Ctx, FieldChange, Grant, Id, Kind, KindChange, LiveStates, Resource, Scope, at_most_one};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::config::Config;
use crate::error::{Error, Result};
use serde_json::json;

pub const ID: Id<LiveApi> = Id::new("api");

/// The REST API's name (the stack's): API Gateway's `ApiName` metric dimension too.
pub fn api_name(c: &Config) -> String {
    c.stack.clone()
}

/// Desired: the API of the stack, named after the stack.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestApi {
    pub name: String,
    /// The function the integrations invoke.
    pub function_name: String,
}

/// The desired API, as data: what `create`/`update` converge to and what the hash covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Definition {
    pub name: String,
    pub api_key_source: String,
    pub endpoint_type: String,
    pub methods: Vec<MethodDef>,
}

/// One method and its integration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MethodDef {
    /// Full resource path: `/`, `/{proxy+}`.
    pub path: String,
    pub http_method: String,
    pub authorization_type: String,
    pub api_key_required: bool,
    pub integration: IntegrationDef,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntegrationDef {
    pub kind: String,
    pub http_method: String,
    pub uri: String,
}

/// REGIONAL, not EDGE (the CDK default): CreateRestApi is limited to 1 request / 3 s for
/// regional APIs against 1 / 30 s for edge-optimized ones, and a regional API has no
/// CloudFront distribution to create (faster deploys). The invoke URL has the same shape.
pub const ENDPOINT_TYPE: &str = "REGIONAL";
/// The key is read from the `x-api-key` header (not from a Lambda authorizer).
pub const API_KEY_SOURCE: &str = "HEADER";

/// `arn:aws:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations`:
/// the integration URI of a Lambda proxy integration.
pub fn lambda_invocation_uri(region: &str, function_arn: &str) -> String {
    let partition = apigw::partition_of(function_arn);
    format!("arn:{partition}:apigateway:{region}:lambda:path/2015-03-31/functions/{function_arn}/invocations")
}

/// The desired definition for the stack's API.
pub fn definition(name: &str, region: &str, function_arn: &str) -> Definition {
    let method = |path: &str| MethodDef {
        path: path.to_string(),
        http_method: "ANY".to_string(),
        authorization_type: "NONE".to_string(),
        api_key_required: true,
        integration: IntegrationDef {
            kind: "AWS_PROXY".to_string(),
            // Lambda is always invoked with POST, whatever the client's method.
            http_method: "POST".to_string(),
            uri: lambda_invocation_uri(region, function_arn),
        },
    };
    Definition {
        name: name.to_string(),
        api_key_source: API_KEY_SOURCE.to_string(),
        endpoint_type: ENDPOINT_TYPE.to_string(),
        methods: vec![method("/"), method("/{proxy+}")],
    }
}

/// The logical-id part of a path, for `export`: `/{proxy+}` → `Proxy`, `/` → `Root`.
fn cfn_part(path: &str) -> String {
    match cfn::pascal_case(path) {
        part if part.is_empty() => "Root".to_string(),
        part => part,
    }
}

/// The logical-id part of a method: `/{proxy+}` `ANY` → `ProxyANY`.
fn method_part(path: &str, http_method: &str) -> String {
    format!("{}{http_method}", cfn_part(path))
}

/// The logical ids of the API's methods in `export`'s template (what a deployment waits for).
pub fn cfn_method_ids() -> Vec<String> {
    // The paths and methods do not depend on the names and ARNs.
    definition("", "", "")
        .methods
        .iter()
        .map(|m| format!("{}{}", cfn::logical_id(ID), method_part(&m.path, &m.http_method)))
        .collect()
}
/// The canonical text of what a deployment snapshots (paths, methods, authorization, key
/// requirement, integrations), one sorted line per method.
pub fn canonical(def: &Definition) -> String {
    let mut lines: Vec<String> = def
        .methods
        .iter()
        .map(|m| {
            format!(
                "{} {} authorization={} apiKeyRequired={} integration={} {} {}\n",
                m.path,
                m.http_method,
                m.authorization_type,
                m.api_key_required,
                m.integration.kind,
                m.integration.http_method,
                m.integration.uri
            )
        })
        .collect();
    lines.sort();
    lines.concat()
}

/// Hex SHA-256 of [`canonical`]: the stage redeploys when it changes, and only then.
pub fn definition_hash(def: &Definition) -> String {
    crate::package::sha256_hex(canonical(def).as_bytes())
}

/// The live API as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveApi {
    pub id: String,
    /// The hash of the definition the API is reconciled to: the stage redeploys when it is not
    /// the one its deployment was made from.
    pub definition_hash: String,
    pub name: String,
    pub root_id: String,
    pub api_key_source: Option<String>,
    pub endpoint_types: Vec<String>,
    /// By full path.
    pub resources: BTreeMap<String, LiveResource>,
    /// Created by this run: it has no deployment yet, so the stage does not look for one.
    pub created_in_this_run: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveResource {
    pub id: String,
    /// By HTTP method.
    pub methods: BTreeMap<String, LiveMethod>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveMethod {
    pub authorization_type: Option<String>,
    pub api_key_required: bool,
    pub integration: Option<LiveIntegration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LiveIntegration {
    pub kind: Option<String>,
    pub http_method: Option<String>,
    pub uri: Option<String>,
}

/// One step that brings the live API to the definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fix {
    /// UpdateRestApi `replace {path}` = `{value}`.
    PatchApi {
        path: String,
        value: String,
    },
    /// CreateResource, then its methods come as [`Fix::PutMethod`].
    CreateResource {
        path: String,
    },
    /// PutMethod + PutIntegration on a method that does not exist.
    PutMethod {
        path: String,
        http_method: String,
    },
    /// DeleteMethod + PutMethod + PutIntegration. UpdateMethod would do in AWS, but moto 5.2.5
    /// does not implement it (500 NotImplementedError), and a method is cheap to recreate.
    ReplaceMethod {
        path: String,
        http_method: String,
    },
    /// PutIntegration alone: it replaces an existing integration.
    PutIntegration {
        path: String,
        http_method: String,
    },
    DeleteMethod {
        path: String,
        http_method: String,
    },
    DeleteResource {
        path: String,
    },
}

/// `/a/b` → (`/a`, `b`); `/a` → (`/`, `a`).
fn split_path(path: &str) -> (&str, &str) {
    match path.rsplit_once('/') {
        Some(("", last)) => ("/", last),
        Some((parent, last)) => (parent, last),
        None => ("/", path),
    }
}

fn depth(path: &str) -> usize {
    path.split('/').filter(|s| !s.is_empty()).count()
}

fn describe_method(m: &MethodDef) -> String {
    format!(
        "authorization {}, API key required {}, {} {} {}",
        m.authorization_type, m.api_key_required, m.integration.kind, m.integration.http_method, m.integration.uri
    )
}

fn describe_live_method(m: &LiveMethod) -> String {
    let i = m.integration.clone().unwrap_or_default();
    format!(
        "authorization {}, API key required {}, {} {} {}",
        m.authorization_type.as_deref().unwrap_or("?"),
        m.api_key_required,
        i.kind.as_deref().unwrap_or("no integration"),
        i.http_method.as_deref().unwrap_or(""),
        i.uri.as_deref().unwrap_or("")
    )
}

fn integration_matches(want: &IntegrationDef, live: Option<&LiveIntegration>) -> bool {
    live.is_some_and(|l| {
        l.kind.as_deref() == Some(want.kind.as_str())
            && l.http_method.as_deref() == Some(want.http_method.as_str())
            && l.uri.as_deref() == Some(want.uri.as_str())
    })
}

/// Everything that differs, each with the step that fixes it, in the order to apply them:
/// API settings, extra resources (deepest first), missing resources (shallowest first),
/// methods, extra methods. Pure.
pub fn plan(def: &Definition, live: &LiveApi) -> Vec<(FieldChange, Fix)> {
    let mut steps = Vec::new();
    if live.name != def.name {
        steps.push((
            FieldChange::update("name", &def.name, &live.name),
            Fix::PatchApi { path: "/name".into(), value: def.name.clone() },
        ));
    }
    if live.api_key_source.as_deref() != Some(def.api_key_source.as_str()) {
        steps.push((
            FieldChange::update(
                "api_key_source",
                &def.api_key_source,
                live.api_key_source.as_deref().unwrap_or("none"),
            ),
            Fix::PatchApi { path: "/apiKeySource".into(), value: def.api_key_source.clone() },
        ));
    }
    // An endpoint type is changed in place with `replace /endpointConfiguration/types/{OLD}`
    // (UpdateRestApi docs). An API without any reported type is left alone.
    if let [only] = live.endpoint_types.as_slice()
        && *only != def.endpoint_type
    {
        steps.push((
            FieldChange::update("endpoint_type", &def.endpoint_type, only),
            Fix::PatchApi { path: format!("/endpointConfiguration/types/{only}"), value: def.endpoint_type.clone() },
        ));
    }

    // Every path of the definition and its ancestors.
    let mut wanted_paths: BTreeSet<String> = BTreeSet::from(["/".to_string()]);
    for m in &def.methods {
        let mut p = m.path.as_str();
        while p != "/" {
            wanted_paths.insert(p.to_string());
            p = split_path(p).0;
        }
    }

    // Extra resources, deepest first: AWS deletes children with their parent, but moto 5.2.5
    // leaves orphans behind that break its GetResources, so children go first.
    let mut extra: Vec<&String> = live.resources.keys().filter(|p| !wanted_paths.contains(*p)).collect();
    extra.sort_by_key(|p| std::cmp::Reverse(depth(p)));
    for path in extra {
        steps.push((
            FieldChange::update(format!("resource {path}"), "absent", "present"),
            Fix::DeleteResource { path: path.clone() },
        ));
    }

    // The root always exists (created with the API).
    let mut missing: Vec<&String> =
        wanted_paths.iter().filter(|p| *p != "/" && !live.resources.contains_key(*p)).collect();
    missing.sort_by_key(|p| depth(p));
    for path in missing {
        steps.push((
            FieldChange::update(format!("resource {path}"), "present", "missing"),
            Fix::CreateResource { path: path.clone() },
        ));
    }

    let empty = BTreeMap::new();
    for m in &def.methods {
        let methods = live.resources.get(&m.path).map(|r| &r.methods).unwrap_or(&empty);
        let field = format!("method {} {}", m.http_method, m.path);
        let (path, http_method) = (m.path.clone(), m.http_method.clone());
        match methods.get(&m.http_method) {
            None => steps.push((
                FieldChange::update(field, describe_method(m), "missing"),
                Fix::PutMethod { path, http_method },
            )),
            Some(l)
                if l.authorization_type.as_deref() != Some(m.authorization_type.as_str())
                    || l.api_key_required != m.api_key_required =>
            {
                steps.push((
                    FieldChange::update(field, describe_method(m), describe_live_method(l)),
                    Fix::ReplaceMethod { path, http_method },
                ))
            }
            Some(l) if !integration_matches(&m.integration, l.integration.as_ref()) => steps.push((
                FieldChange::update(
                    format!("integration {} {}", m.http_method, m.path),
                    describe_method(m),
                    describe_live_method(l),
                ),
                Fix::PutIntegration { path, http_method },
            )),
            Some(_) => {}
        }
    }

    for (path, resource) in &live.resources {
        if !wanted_paths.contains(path) {
            continue; // deleted with its resource
        }
        for http_method in resource.methods.keys() {
            if !def.methods.iter().any(|m| &m.path == path && &m.http_method == http_method) {
                steps.push((
                    FieldChange::update(format!("method {http_method} {path}"), "absent", "present"),
                    Fix::DeleteMethod { path: path.clone(), http_method: http_method.clone() },
                ));
            }
        }
    }
    steps
}

/// One difference, with the step that fixes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiChange {
    pub change: FieldChange,
    pub fix: Fix,
}

impl KindChange for ApiChange {
    fn show(&self) -> FieldChange {
        self.change.clone()
    }
}

/// The changes between the definition and the live API. Pure.
pub fn diff(def: &Definition, live: &LiveApi) -> Vec<ApiChange> {
    plan(def, live).into_iter().map(|(change, fix)| ApiChange { change, fix }).collect()
}

impl RestApi {
    /// The API invokes the function's alias `live`, whose ARN follows from the function's name
    /// (Lambda's ARN format), so the API's definition is known whether or not either exists yet.
    fn definition(&self, ctx: &Ctx) -> Definition {
        let function_arn =
            ctx.arn("lambda", &format!("function:{}:{}", self.function_name, super::function_alias::ALIAS));
        definition(&self.name, &ctx.aws.region, &function_arn)
    }

    /// Read the API's resources, methods and integrations: `embed=methods` returns each method
    /// with its integration in the one paginated call; GetMethod / GetIntegration are only
    /// called where the embedding lacks them.
    async fn read(&self, ctx: &Ctx, api: &aws_sdk_apigateway::types::RestApi) -> Result<LiveApi> {
        let id = api.id().unwrap_or_default().to_string();
        let items: Vec<_> = apigw::list(ctx, ID, "GetResources", || {
            ctx.aws
                .apigateway
                .get_resources()
                .rest_api_id(&id)
                .embed("methods")
                .limit(500)
                .into_paginator()
                .items()
                .send()
        })
        .await?;
        let mut resources = BTreeMap::new();
        for r in items {
            let rid = r.id().unwrap_or_default().to_string();
            let mut methods = BTreeMap::new();
            for (verb, m) in r.resource_methods().into_iter().flatten() {
                let method = if m.http_method().is_some() {
                    m.clone()
                } else {
                    let out = call(ctx, ID, "GetMethod", || async {
                        ctx.aws
                            .apigateway
                            .get_method()
                            .rest_api_id(&id)
                            .resource_id(&rid)
                            .http_method(verb)
                            .send()
                            .await
                            .aws(SERVICE, "GetMethod")
                    })
                    .await?;
                    let mut b = aws_sdk_apigateway::types::Method::builder()
                        .set_authorization_type(out.authorization_type().map(str::to_string))
                        .set_api_key_required(out.api_key_required());
                    if let Some(i) = out.method_integration() {
                        b = b.method_integration(i.clone());
                    }
                    b.build()
                };
                let integration = match method.method_integration() {
                    Some(i) => Some(LiveIntegration {
                        kind: i.r#type().map(|t| t.as_str().to_string()),
                        http_method: i.http_method().map(str::to_string),
                        uri: i.uri().map(str::to_string),
                    }),
                    None => {
                        let res = call(ctx, ID, "GetIntegration", || async {
                            ctx.aws
                                .apigateway
                                .get_integration()
                                .rest_api_id(&id)
                                .resource_id(&rid)
                                .http_method(verb)
                                .send()
                                .await
                                .aws(SERVICE, "GetIntegration")
                        })
                        .await;
                        // AWS answers NotFoundException; moto answers `{}`.
                        found(res)?.filter(|i| i.r#type().is_some()).map(|i| LiveIntegration {
                            kind: i.r#type().map(|t| t.as_str().to_string()),
                            http_method: i.http_method().map(str::to_string),
                            uri: i.uri().map(str::to_string),
                        })
                    }
                };
                methods.insert(
                    verb.clone(),
                    LiveMethod {
                        authorization_type: method.authorization_type().map(str::to_string),
                        api_key_required: method.api_key_required().unwrap_or(false),
                        integration,
                    },
                );
            }
            resources.insert(r.path().unwrap_or_default().to_string(), LiveResource { id: rid, methods });
        }
        let root_id = match api.root_resource_id() {
            Some(r) => r.to_string(),
            None => resources.get("/").map(|r| r.id.clone()).unwrap_or_default(),
        };
        Ok(LiveApi {
            id,
            definition_hash: String::new(),
            name: api.name().unwrap_or_default().to_string(),
            root_id,
            api_key_source: api.api_key_source().map(|s| s.as_str().to_string()),
            endpoint_types: api
                .endpoint_configuration()
                .map(|e| e.types().iter().map(|t| t.as_str().to_string()).collect())
                .unwrap_or_default(),
            resources,
            created_in_this_run: false,
        })
    }

    /// Apply the fixes: the API's settings, what must go, then each path (its resource, then its
    /// methods with their integrations) at once.
    async fn reconcile(&self, ctx: &Ctx, def: &Definition, mut live: LiveApi, steps: &[ApiChange]) -> Result<LiveApi> {
        let api_id = live.id.clone();
        let patches: Vec<_> = steps
            .iter()
            .filter_map(|s| match &s.fix {
                Fix::PatchApi { path, value } => Some(replace(path, value)),
                _ => None,
            })
            .collect();
        if !patches.is_empty() {
            ctx.progress(ID, "updating the API's settings");
            call(ctx, ID, "UpdateRestApi", || async {
                ctx.aws
                    .apigateway
                    .update_rest_api()
                    .rest_api_id(&api_id)
                    .set_patch_operations(Some(patches.clone()))
                    .send()
                    .await
                    .aws(SERVICE, "UpdateRestApi")
            })
            .await?;
        }
        // Removals first (an extra method or resource), all at once.
        let removals = steps.iter().filter_map(|s| match &s.fix {
            Fix::DeleteResource { path } => {
                let rid = live.resources.get(path).map(|r| r.id.clone()).unwrap_or_default();
                Some((format!("deleting extra resource {path}"), rid, None))
            }
            Fix::DeleteMethod { path, http_method } => {
                let rid = live.resources.get(path).map(|r| r.id.clone()).unwrap_or_default();
                Some((format!("deleting extra method {http_method} {path}"), rid, Some(http_method.clone())))
            }
            _ => None,
        });
        crate::wait::settle_all(removals.map(|(what, rid, verb)| {
            let api_id = &api_id;
            async move {
                ctx.progress(ID, what);
                match verb {
                    Some(verb) => self.delete_method(ctx, api_id, &rid, &verb).await,
                    None => gone_is_ok(
                        call(ctx, ID, "DeleteResource", || async {
                            ctx.aws
                                .apigateway
                                .delete_resource()
                                .rest_api_id(api_id)
                                .resource_id(&rid)
                                .send()
                                .await
                                .aws(SERVICE, "DeleteResource")
                        })
                        .await,
                    ),
                }
            }
        }))
        .await?;
        for s in steps {
            if let Fix::DeleteResource { path } = &s.fix {
                live.resources.remove(path);
            }
        }
        // Then every path at once: its resource if missing, then its methods.
        let paths: BTreeSet<&str> = steps
            .iter()
            .filter_map(|s| match &s.fix {
                Fix::CreateResource { path }
                | Fix::PutMethod { path, .. }
                | Fix::ReplaceMethod { path, .. }
                | Fix::PutIntegration { path, .. } => Some(path.as_str()),
                _ => None,
            })
            .collect();
        let created = crate::wait::settle_all(paths.iter().map(|path| {
            let (live, api_id) = (&live, &api_id);
            async move {
                let mut rid = live.resources.get(*path).map(|r| r.id.clone());
                if steps.iter().any(|s| s.fix == Fix::CreateResource { path: path.to_string() }) {
                    ctx.progress(ID, format!("creating resource {path}"));
                    let (parent, part) = split_path(path);
                    let parent_id =
                        live.resources.get(parent).map(|r| r.id.clone()).unwrap_or_else(|| live.root_id.clone());
                    let out = call(ctx, ID, "CreateResource", || async {
                        ctx.aws
                            .apigateway
                            .create_resource()
                            .rest_api_id(api_id)
                            .parent_id(&parent_id)
                            .path_part(part)
                            .send()
                            .await
                            .aws(SERVICE, "CreateResource")
                    })
                    .await?;
                    rid = Some(out.id().unwrap_or_default().to_string());
                }
                let rid = rid.ok_or_else(|| Error::other(format!("internal: no resource id for path {path}")))?;
                for s in steps {
                    let (Fix::PutMethod { path: p, http_method }
                    | Fix::ReplaceMethod { path: p, http_method }
                    | Fix::PutIntegration { path: p, http_method }) = &s.fix
                    else {
                        continue;
                    };
                    if p != path {
                        continue;
                    }
                    let Some(m) = def.methods.iter().find(|m| m.path == *p && &m.http_method == http_method) else {
                        continue;
                    };
                    ctx.progress(ID, format!("{}: {}", s.change.field, s.change.desired));
                    if matches!(s.fix, Fix::ReplaceMethod { .. }) {
                        self.delete_method(ctx, api_id, &rid, http_method).await?;
                    }
                    if !matches!(s.fix, Fix::PutIntegration { .. }) {
                        call(ctx, ID, "PutMethod", || async {
                            ctx.aws
                                .apigateway
                                .put_method()
                                .rest_api_id(api_id)
                                .resource_id(&rid)
                                .http_method(http_method)
                                .authorization_type(&m.authorization_type)
                                .api_key_required(m.api_key_required)
                                .send()
                                .await
                                .aws(SERVICE, "PutMethod")
                        })
                        .await?;
                    }
                    call(ctx, ID, "PutIntegration", || async {
                        ctx.aws
                            .apigateway
                            .put_integration()
                            .rest_api_id(api_id)
                            .resource_id(&rid)
                            .http_method(http_method)
                            .r#type(IntegrationType::from(m.integration.kind.as_str()))
                            .integration_http_method(&m.integration.http_method)
                            .uri(&m.integration.uri)
                            .send()
                            .await
                            .aws(SERVICE, "PutIntegration")
                    })
                    .await?;
                }
                Ok::<_, Error>((path.to_string(), rid))
            }
        }))
        .await?;
        // The API is the definition now.
        for (path, rid) in created {
            let methods = def
                .methods
                .iter()
                .filter(|m| m.path == path)
                .map(|m| {
                    let live_method = LiveMethod {
                        authorization_type: Some(m.authorization_type.clone()),
                        api_key_required: m.api_key_required,
                        integration: Some(LiveIntegration {
                            kind: Some(m.integration.kind.clone()),
                            http_method: Some(m.integration.http_method.clone()),
                            uri: Some(m.integration.uri.clone()),
                        }),
                    };
                    (m.http_method.clone(), live_method)
                })
                .collect();
            live.resources.insert(path, LiveResource { id: rid, methods });
        }
        live.name = def.name.clone();
        live.api_key_source = Some(def.api_key_source.clone());
        live.endpoint_types = vec![def.endpoint_type.clone()];
        live.definition_hash = definition_hash(def);
        Ok(live)
    }

    async fn delete_method(&self, ctx: &Ctx, api_id: &str, resource_id: &str, http_method: &str) -> Result<()> {
        gone_is_ok(
            call(ctx, ID, "DeleteMethod", || async {
                ctx.aws
                    .apigateway
                    .delete_method()
                    .rest_api_id(api_id)
                    .resource_id(resource_id)
                    .http_method(http_method)
                    .send()
                    .await
                    .aws(SERVICE, "DeleteMethod")
            })
            .await,
        )
    }
}

#[async_trait]
impl Resource for RestApi {
    type Live = LiveApi;
    type Change = ApiChange;

    fn id(&self) -> Id<LiveApi> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::RestApi
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        apigw::grants(s, "/restapis")
    }
    fn aws_name(&self) -> Option<String> {
        Some(self.name.clone())
    }

    /// None: the integrations name the function by its ARN, known from its name.
    fn create_rounds(&self) -> u32 {
        4 // CreateRestApi; then at once per path: CreateResource, PutMethod, PutIntegration
    }

    fn export(&self, ctx: &Ctx, live: &LiveApi) -> Vec<CfnResource> {
        let mut out = vec![
            CfnResource::new(
                ID,
                "AWS::ApiGateway::RestApi",
                json!({
                    "Name": live.name,
                    "ApiKeySourceType": live.api_key_source,
                    "EndpointConfiguration": { "Types": live.endpoint_types },
                    "Tags": cfn::tags(&ctx.tags(ID.name())),
                }),
                cfn::identifier(&[("RestApiId", &live.id)]),
            )
            .with_output("RestApiId", cfn::reference(ID)),
        ];
        // Each path's resource, then each method (with its integration) on it.
        let resource_ref = |path: &str| match path {
            "/" => cfn::attribute(ID, "RootResourceId"),
            _ => json!({ "Ref": format!("{}{}", cfn::logical_id(ID), cfn_part(path)) }),
        };
        for (path, resource) in live.resources.iter().filter(|(path, _)| path.as_str() != "/") {
            let (parent, part) = path.rsplit_once('/').unwrap_or(("", path));
            out.push(CfnResource::part(
                ID.name(),
                &cfn_part(path),
                "AWS::ApiGateway::Resource",
                json!({
                    "RestApiId": cfn::reference(ID),
                    "ParentId": resource_ref(if parent.is_empty() { "/" } else { parent }),
                    "PathPart": part,
                }),
                cfn::identifier(&[("RestApiId", &live.id), ("ResourceId", &resource.id)]),
            ));
        }
        // The alias `live`'s ARN, from the function's: the API is imported before the alias exists
        // in the stack (CloudFormation publishes its own version later).
        let function_arn =
            format!("${{{}.Arn}}:{}", cfn::logical_id(super::function::ID), super::function_alias::ALIAS);
        let uri = format!(
            "arn:${{AWS::Partition}}:apigateway:${{AWS::Region}}:lambda:path/2015-03-31/functions/{function_arn}/invocations"
        );
        for m in &self.definition(ctx).methods {
            let Some(resource) = live.resources.get(&m.path) else { continue };
            out.push(CfnResource::part(
                ID.name(),
                &method_part(&m.path, &m.http_method),
                "AWS::ApiGateway::Method",
                json!({
                    "RestApiId": cfn::reference(ID),
                    "ResourceId": resource_ref(&m.path),
                    "HttpMethod": m.http_method,
                    "AuthorizationType": m.authorization_type,
                    "ApiKeyRequired": m.api_key_required,
                    "Integration": {
                        "Type": m.integration.kind,
                        "IntegrationHttpMethod": m.integration.http_method,
                        "Uri": cfn::sub(uri.clone()),
                    },
                }),
                cfn::identifier(&[
                    ("RestApiId", &live.id),
                    ("ResourceId", &resource.id),
                    ("HttpMethod", &m.http_method),
                ]),
            ));
        }
        out
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveApi>> {
        let all = apigw::rest_apis(ctx).await?;
        let (ours, others): (Vec<_>, Vec<_>) = all.iter().partition(|a| ctx.owns(ID.name(), tag_pairs(a.tags())));
        let Some(api) = at_most_one(ours, "REST API", ID.name())? else {
            // A same-named API that is not ours: never adopted. (No CloudFormation check: an
            // API's physical id is generated, not its name.)
            if others.iter().any(|a| a.name() == Some(self.name.as_str())) {
                return Err(ctx.foreign("REST API", &self.name).await);
            }
            return Ok(None);
        };
        let (mut live, _) = tokio::try_join!(self.read(ctx, api), ctx.identity())?;
        live.definition_hash = definition_hash(&self.definition(ctx));
        Ok(Some(live))
    }

    fn diff(&self, ctx: &Ctx, _inputs: &LiveStates, live: &LiveApi) -> Result<Vec<ApiChange>> {
        Ok(diff(&self.definition(ctx), live))
    }

    async fn create(&self, ctx: &Ctx, _inputs: &LiveStates) -> Result<LiveApi> {
        let def = self.definition(ctx);
        let out = call(ctx, ID, "CreateRestApi", || async {
            ctx.aws
                .apigateway
                .create_rest_api()
                .name(&self.name)
                .description(format!("movies API of movies-stack stack {}", ctx.stack))
                .api_key_source(ApiKeySourceType::from(def.api_key_source.as_str()))
                .endpoint_configuration(
                    EndpointConfiguration::builder().types(EndpointType::from(def.endpoint_type.as_str())).build(),
                )
                .set_tags(Some(ctx.tag_map(ID.name())))
                .send()
                .await
                .aws(SERVICE, "CreateRestApi")
        })
        .await?;
        let mut live = LiveApi {
            id: out.id().unwrap_or_default().to_string(),
            name: out.name().unwrap_or_default().to_string(),
            root_id: out.root_resource_id().unwrap_or_default().to_string(),
            api_key_source: out.api_key_source().map(|s| s.as_str().to_string()),
            endpoint_types: out
                .endpoint_configuration()
                .map(|e| e.types().iter().map(|t| t.as_str().to_string()).collect())
                .unwrap_or_default(),
            created_in_this_run: true,
            ..LiveApi::default()
        };
        if live.root_id.is_empty() {
            // Not in every answer: the root resource is the API's only one.
            live = self.read(ctx, &aws_sdk_apigateway::types::RestApi::builder().id(&live.id).build()).await?;
            live.created_in_this_run = true;
        } else {
            live.resources.insert("/".into(), LiveResource { id: live.root_id.clone(), methods: BTreeMap::new() });
        }
        // Resources, methods and integrations: the same steps `update` takes, so a run killed
        // half-way is finished by the next one's `update`.
        let steps = diff(&def, &live);
        self.reconcile(ctx, &def, live, &steps).await
    }

    async fn update(&self, ctx: &Ctx, _inputs: &LiveStates, live: &LiveApi, changes: &[ApiChange]) -> Result<LiveApi> {
        self.reconcile(ctx, &self.definition(ctx), live.clone(), changes).await
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveApi) -> Result<()> {
        // Deployments, resources, methods and integrations go with the API. DeleteRestApi is
        // limited to 1 request per 30 s: the pacer spaces them.
        gone_is_ok(
            call(ctx, ID, "DeleteRestApi", || async {
                ctx.aws.apigateway.delete_rest_api().rest_api_id(&live.id).send().await.aws(SERVICE, "DeleteRestApi")
            })
            .await,
        )
    }

    fn outputs(&self, _ctx: &Ctx, live: &LiveApi) -> Vec<(&'static str, String)> {
        vec![("RestApiId", live.id.clone())]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    const FN: &str = "arn:aws:lambda:us-east-1:123456789012:function:apigw_handler";

    fn def() -> Definition {
        definition("movies", "us-east-1", FN)
    }

    fn good_method(d: &Definition) -> LiveMethod {
        let m = &d.methods[0];
        LiveMethod {
            authorization_type: Some("NONE".into()),
            api_key_required: true,
            integration: Some(LiveIntegration {
                kind: Some("AWS_PROXY".into()),
                http_method: Some("POST".into()),
                uri: Some(m.integration.uri.clone()),
            }),
        }
    }

    fn in_sync() -> LiveApi {
        let d = def();
        let res =
            |id: &str| LiveResource { id: id.into(), methods: BTreeMap::from([("ANY".to_string(), good_method(&d))]) };
        LiveApi {
            id: "abc".into(),
            definition_hash: definition_hash(&d),
            name: "movies".into(),
            root_id: "r0".into(),
            api_key_source: Some("HEADER".into()),
            endpoint_types: vec!["REGIONAL".into()],
            resources: BTreeMap::from([("/".to_string(), res("r0")), ("/{proxy+}".to_string(), res("r1"))]),
            created_in_this_run: false,
        }
    }

    fn fixes(live: &LiveApi) -> Vec<Fix> {
        plan(&def(), live).into_iter().map(|(_, f)| f).collect()
    }

    #[test]
    fn invocation_uri_has_the_documented_shape() {
        assert_eq!(
            lambda_invocation_uri("us-east-1", FN),
            "arn:aws:apigateway:us-east-1:lambda:path/2015-03-31/functions/arn:aws:lambda:us-east-1:123456789012:function:apigw_handler/invocations"
        );
    }

    #[test]
    fn in_sync_api_has_no_changes() {
        assert!(diff(&def(), &in_sync()).is_empty());
    }

    #[test]
    fn fresh_api_gets_proxy_resource_and_both_methods() {
        let mut live = in_sync();
        live.resources =
            BTreeMap::from([("/".to_string(), LiveResource { id: "r0".into(), methods: BTreeMap::new() })]);
        assert_eq!(
            fixes(&live),
            vec![
                Fix::CreateResource { path: "/{proxy+}".into() },
                Fix::PutMethod { path: "/".into(), http_method: "ANY".into() },
                Fix::PutMethod { path: "/{proxy+}".into(), http_method: "ANY".into() },
            ]
        );
    }

    #[test]
    fn each_kind_of_drift_has_its_fix() {
        let uri = def().methods[0].integration.uri.clone();
        let cases: Vec<(&str, BoxedEdit<LiveApi>, Vec<Fix>)> = vec![
            (
                "api key no longer required",
                Box::new(|l| {
                    l.resources.get_mut("/").unwrap().methods.get_mut("ANY").unwrap().api_key_required = false
                }),
                vec![Fix::ReplaceMethod { path: "/".into(), http_method: "ANY".into() }],
            ),
            (
                "authorizer added",
                Box::new(|l| {
                    l.resources.get_mut("/{proxy+}").unwrap().methods.get_mut("ANY").unwrap().authorization_type =
                        Some("AWS_IAM".into())
                }),
                vec![Fix::ReplaceMethod { path: "/{proxy+}".into(), http_method: "ANY".into() }],
            ),
            (
                "integration type",
                Box::new(|l| {
                    l.resources
                        .get_mut("/")
                        .unwrap()
                        .methods
                        .get_mut("ANY")
                        .unwrap()
                        .integration
                        .as_mut()
                        .unwrap()
                        .kind = Some("AWS".into())
                }),
                vec![Fix::PutIntegration { path: "/".into(), http_method: "ANY".into() }],
            ),
            (
                "integration uri",
                Box::new(move |l| {
                    l.resources
                        .get_mut("/")
                        .unwrap()
                        .methods
                        .get_mut("ANY")
                        .unwrap()
                        .integration
                        .as_mut()
                        .unwrap()
                        .uri = Some(uri.replace("apigw_handler", "other"))
                }),
                vec![Fix::PutIntegration { path: "/".into(), http_method: "ANY".into() }],
            ),
            (
                "integration missing",
                Box::new(|l| l.resources.get_mut("/").unwrap().methods.get_mut("ANY").unwrap().integration = None),
                vec![Fix::PutIntegration { path: "/".into(), http_method: "ANY".into() }],
            ),
            (
                "method missing",
                Box::new(|l| {
                    l.resources.get_mut("/{proxy+}").unwrap().methods.clear();
                }),
                vec![Fix::PutMethod { path: "/{proxy+}".into(), http_method: "ANY".into() }],
            ),
            (
                "extra method",
                Box::new(|l| {
                    let m = l.resources["/"].methods["ANY"].clone();
                    l.resources.get_mut("/").unwrap().methods.insert("OPTIONS".into(), m);
                }),
                vec![Fix::DeleteMethod { path: "/".into(), http_method: "OPTIONS".into() }],
            ),
            (
                "extra resources, deepest first, their methods not listed",
                Box::new(|l| {
                    let m = l.resources["/"].methods.clone();
                    l.resources.insert("/a".into(), LiveResource { id: "ra".into(), methods: m.clone() });
                    l.resources.insert("/a/b".into(), LiveResource { id: "rb".into(), methods: m });
                }),
                vec![Fix::DeleteResource { path: "/a/b".into() }, Fix::DeleteResource { path: "/a".into() }],
            ),
            (
                "api settings",
                Box::new(|l| {
                    l.api_key_source = Some("AUTHORIZER".into());
                    l.endpoint_types = vec!["EDGE".into()];
                }),
                vec![
                    Fix::PatchApi { path: "/apiKeySource".into(), value: "HEADER".into() },
                    Fix::PatchApi { path: "/endpointConfiguration/types/EDGE".into(), value: "REGIONAL".into() },
                ],
            ),
        ];
        for (name, mutate, want) in cases {
            let mut live = in_sync();
            mutate(&mut live);
            assert_eq!(fixes(&live), want, "{name}");
            assert_eq!(diff(&def(), &live).len(), want.len(), "{name}");
        }
    }

    #[test]
    fn an_api_without_reported_endpoint_type_is_left_alone() {
        let mut live = in_sync();
        live.endpoint_types.clear();
        assert!(diff(&def(), &live).is_empty());
    }

    #[test]
    fn hash_is_stable_and_follows_the_definition() {
        let h = definition_hash(&def());
        assert_eq!(h.len(), 64);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(h, definition_hash(&def()));
        // The API's name and settings are not part of a deployment snapshot.
        assert_eq!(h, definition_hash(&definition("other-name", "us-east-1", FN)));
        assert_ne!(h, definition_hash(&definition("movies", "us-east-1", &FN.replace("apigw_handler", "x"))));
        let mut d = def();
        d.methods[1].api_key_required = false;
        assert_ne!(h, definition_hash(&d));
        // Method order does not matter.
        let mut d = def();
        d.methods.reverse();
        assert_eq!(h, definition_hash(&d));
    }

    #[test]
    fn paths_split_into_parent_and_part() {
        assert_eq!(split_path("/{proxy+}"), ("/", "{proxy+}"));
        assert_eq!(split_path("/a/b"), ("/a", "b"));
        assert_eq!(depth("/"), 0);
        assert_eq!(depth("/a/b"), 2);
    }
}
