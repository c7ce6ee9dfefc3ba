//! The Lambda permission that lets API Gateway invoke the function's alias `live` (what the API
//! invokes), scoped to this stack's API. A permission on the alias is its own policy: one on the
//! function alone does not let the alias be invoked (`AddPermission`'s `Qualifier`). Permissions
//! are not taggable: ours is the statement with [`STATEMENT_ID`] in the alias' policy of our
//! (tagged) function. A statement of ours left on the unqualified function (by a version of this
//! tool before the alias) is removed.

use async_trait::async_trait;
use serde_json::{Value, json};

use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope, function, function_alias, rest_api};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource, Import};
use crate::error::{Error, Result};

pub const ID: Id<LivePermission> = Id::new("api-permission");
pub const STATEMENT_ID: &str = "movies-stack-apigateway";
const PRINCIPAL: &str = "apigateway.amazonaws.com";
const ACTION: &str = "lambda:InvokeFunction";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiPermission {
    /// The function whose resource policy holds the statement.
    pub function_name: String,
    /// The only stage that may invoke it.
    pub stage: String,
}

/// Our statement(s) in the function's policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LivePermission {
    pub function_name: String,
    /// Ours in the alias' policy.
    pub statements: Vec<PermissionStatement>,
    /// How many of ours the unqualified function's policy still holds (removed by `update`).
    pub unqualified: usize,
}

/// One statement of a function's resource policy, as far as we compare it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PermissionStatement {
    pub principal: String,
    pub action: String,
    pub source_arn: Option<String>,
}

/// Any method and path of this API's stage only:
/// `arn:aws:execute-api:REGION:ACCOUNT:API_ID/STAGE/*` (not another stage of it, nor the
/// console's test invocations).
pub fn source_arn(partition: &str, region: &str, account_id: &str, api_id: &str, stage: &str) -> String {
    format!("arn:{partition}:execute-api:{region}:{account_id}:{api_id}/{stage}/*")
}

pub fn desired(source_arn: String) -> PermissionStatement {
    PermissionStatement { principal: PRINCIPAL.to_string(), action: ACTION.to_string(), source_arn: Some(source_arn) }
}

/// The statements carrying our statement id in a GetPolicy document. AWS refuses a duplicate
/// statement id, but moto accepts one, so there may be several.
#[cfg(test)]
pub fn our_statements(policy: &str) -> Result<Vec<PermissionStatement>> {
    Ok(our_statements_on(policy)?.into_iter().map(|(s, _)| s).collect())
}

/// Ours, each with the `Resource` it grants (the function's ARN, or the alias' `...:live`).
pub fn our_statements_on(policy: &str) -> Result<Vec<(PermissionStatement, String)>> {
    let doc: Value = serde_json::from_str(policy)
        .map_err(|e| Error::other(format!("the function's resource policy is not JSON ({e}): {policy}")))?;
    let statements = match &doc["Statement"] {
        Value::Array(items) => items.clone(),
        Value::Null => vec![],
        one => vec![one.clone()],
    };
    let first_string = |v: &Value| -> String {
        match v {
            Value::String(s) => s.clone(),
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
            _ => String::new(),
        }
    };
    Ok(statements
        .iter()
        .filter(|s| s["Sid"] == STATEMENT_ID)
        .map(|s| {
            // Principal comes back as {"Service": "..."}; a bare string is valid policy syntax too.
            let principal = match &s["Principal"] {
                Value::Object(p) => p.get("Service").map(first_string).unwrap_or_default(),
                other => first_string(other),
            };
            // Lambda writes `{"ArnLike": {"AWS:SourceArn": "..."}}`; match the key
            // case-insensitively (condition keys are case-insensitive).
            let source_arn = s["Condition"].as_object().and_then(|ops| {
                ops.values()
                    .filter_map(Value::as_object)
                    .flat_map(|keys| keys.iter())
                    .find(|(k, _)| k.eq_ignore_ascii_case("aws:SourceArn"))
                    .map(|(_, v)| first_string(v))
            });
            (
                PermissionStatement { principal, action: first_string(&s["Action"]), source_arn },
                first_string(&s["Resource"]),
            )
        })
        .collect())
}

/// Every difference is a replacement: a Lambda permission cannot be edited, only removed and
/// added again. `live` holds at least one statement.
pub fn diff(desired: &PermissionStatement, live: &[PermissionStatement]) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    if live.len() > 1 {
        changes.push(FieldChange::replace("statements", 1, live.len()));
    }
    let Some(l) = live.first() else {
        return changes;
    };
    if l.principal != desired.principal {
        changes.push(FieldChange::replace("principal", &desired.principal, &l.principal));
    }
    if l.action != desired.action {
        changes.push(FieldChange::replace("action", &desired.action, &l.action));
    }
    if l.source_arn != desired.source_arn {
        let show = |a: &Option<String>| a.clone().unwrap_or_else(|| "none (any source)".to_string());
        changes.push(FieldChange::replace("source_arn", show(&desired.source_arn), show(&l.source_arn)));
    }
    changes
}

impl ApiPermission {
    fn desired(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<PermissionStatement> {
        let api_id = &inputs.get(rest_api::ID)?.id;
        Ok(desired(source_arn(
            crate::aws::partition(&ctx.aws.region),
            &ctx.aws.region,
            ctx.account_id(),
            api_id,
            &self.stage,
        )))
    }

    /// Our statements in the function's policy (empty when the function has no policy, or does
    /// not exist).
    /// Ours in the alias' policy (`qualifier`), or in the function's: only the statements that
    /// grant that resource (moto keeps one policy for the function and its aliases).
    async fn statements(&self, ctx: &Ctx, function: &str, qualifier: Option<&str>) -> Result<Vec<PermissionStatement>> {
        let call = ctx.aws.lambda.get_policy().function_name(function).set_qualifier(qualifier.map(str::to_string));
        let on_alias = |resource: &str| resource.ends_with(&format!(":{}", function_alias::ALIAS));
        match call.send().await.aws("Lambda", "GetPolicy") {
            Ok(out) => Ok(our_statements_on(out.policy().unwrap_or("{}"))?
                .into_iter()
                .filter(|(_, resource)| resource.is_empty() || on_alias(resource) == qualifier.is_some())
                .map(|(s, _)| s)
                .collect()),
            Err(e) if e.is_not_found() => Ok(vec![]),
            Err(e) => Err(e),
        }
    }

    async fn add(&self, ctx: &Ctx, statement: &PermissionStatement) -> Result<()> {
        // Policy changes conflict with an update of the function in progress.
        function::retry_while_busy(ctx, ID, "the function's update to finish", || async {
            ctx.aws
                .lambda
                .add_permission()
                .function_name(&self.function_name)
                .qualifier(function_alias::ALIAS)
                .statement_id(STATEMENT_ID)
                .action(&statement.action)
                .principal(&statement.principal)
                .set_source_arn(statement.source_arn.clone())
                .send()
                .await
                .aws("Lambda", "AddPermission")
        })
        .await?;
        Ok(())
    }

    /// Remove our statement, `count` times at most (moto may hold duplicates); gone is fine.
    async fn remove(&self, ctx: &Ctx, function: &str, qualifier: Option<&str>, count: usize) -> Result<()> {
        for _ in 0..count.max(1) {
            let res = function::retry_while_busy(ctx, ID, "the function's update to finish", || async {
                ctx.aws
                    .lambda
                    .remove_permission()
                    .function_name(function)
                    .set_qualifier(qualifier.map(str::to_string))
                    .statement_id(STATEMENT_ID)
                    .send()
                    .await
                    .aws("Lambda", "RemovePermission")
            })
            .await;
            match res {
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(()),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Resource for ApiPermission {
    type Live = LivePermission;
    type Change = FieldChange;

    fn id(&self) -> Id<LivePermission> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::LambdaPermission
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        // A statement of the function's resource-based policy: authorized on the function.
        let actions = ["lambda:GetPolicy", "lambda:AddPermission", "lambda:RemovePermission"];
        let function = s.arn("lambda", &format!("function:{}", self.function_name));
        let alias = s.arn("lambda", &format!("function:{}:{}", self.function_name, function_alias::ALIAS));
        vec![Grant::new("TheFunction", &actions, [function, alias])]
    }

    /// It lives in the function's policy (the function must exist, not be Active: AddPermission
    /// works on a Pending function) and names the API. DeleteFunction deletes the policy with
    /// the function, so `down` deletes the function without waiting for it (nor for the stage
    /// and usage plans before it), and sends no RemovePermission.
    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(function_alias::ID).goes_with(), Dep::on(rest_api::ID)]
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    /// A Lambda permission cannot be edited: a different one is removed and added again.
    fn replaces_itself(&self) -> bool {
        true
    }

    fn export(&self, _ctx: &Ctx, live: &LivePermission) -> Vec<CfnResource> {
        let properties = json!({
            "FunctionName": cfn::reference(function_alias::ID),
            "Action": ACTION,
            "Principal": PRINCIPAL,
            "SourceArn": cfn::sub(format!(
                "arn:${{AWS::Partition}}:execute-api:${{AWS::Region}}:${{AWS::AccountId}}:${{{}}}/{}/*",
                cfn::logical_id(rest_api::ID),
                self.stage
            )),
        });
        let import = Import::Not {
            why: format!(
                "CloudFormation's AWS::Lambda::Permission has no StatementId property \
                 (aws-cloudformation/cloudformation-coverage-roadmap#2304): it cannot name our statement `{STATEMENT_ID}` \
                 in the policy of `{}`",
                live.function_name
            ),
            instead: format!(
                "after the import, update the stack with template-complete.json: CloudFormation adds the same grant \
                 under a statement id of its own. Then remove ours: aws lambda remove-permission --function-name {} \
                 --statement-id {STATEMENT_ID}",
                live.function_name
            ),
            later: true,
        };
        vec![CfnResource::new(ID, "AWS::Lambda::Permission", properties, import)]
    }

    /// Both policies, read together: the alias' (ours) and the function's (a leftover of ours).
    async fn observe(&self, ctx: &Ctx) -> Result<Option<LivePermission>> {
        let (statements, unqualified) = tokio::join!(
            self.statements(ctx, &self.function_name, Some(function_alias::ALIAS)),
            self.statements(ctx, &self.function_name, None)
        );
        let (statements, unqualified) = (statements?, unqualified?.len());
        ctx.once("permission-unqualified", || async { Ok(unqualified) }).await?;
        Ok((!statements.is_empty()).then(|| LivePermission {
            function_name: self.function_name.clone(),
            statements,
            unqualified,
        }))
    }

    fn diff(&self, ctx: &Ctx, inputs: &LiveStates, live: &LivePermission) -> Result<Vec<FieldChange>> {
        let mut changes = diff(&self.desired(ctx, inputs)?, &live.statements);
        if live.unqualified > 0 {
            changes.push(FieldChange::update("unqualified_statements", 0, live.unqualified));
        }
        Ok(changes)
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LivePermission> {
        let statement = self.desired(ctx, inputs)?;
        self.add(ctx, &statement).await?;
        // What the sweep saw on the unqualified function (nothing when it did not look).
        let leftover = ctx.already::<usize>("permission-unqualified").map(|n| *n).unwrap_or(0);
        if leftover > 0 {
            self.remove(ctx, &self.function_name, None, leftover).await?;
        }
        Ok(LivePermission { function_name: self.function_name.clone(), statements: vec![statement], unqualified: 0 })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LivePermission,
        changes: &[FieldChange],
    ) -> Result<LivePermission> {
        if live.unqualified > 0 {
            self.remove(ctx, &live.function_name, None, live.unqualified).await?;
        }
        if changes.iter().all(|c| c.field == "unqualified_statements") {
            return Ok(LivePermission { unqualified: 0, ..live.clone() });
        }
        // Every other change is a replacement. A crash between the two calls leaves no
        // statement: the next run sees it missing and adds it.
        self.remove(ctx, &live.function_name, Some(function_alias::ALIAS), live.statements.len()).await?;
        let statement = self.desired(ctx, inputs)?;
        self.add(ctx, &statement).await?;
        Ok(LivePermission { function_name: self.function_name.clone(), statements: vec![statement], unqualified: 0 })
    }

    async fn delete(&self, ctx: &Ctx, live: &LivePermission) -> Result<()> {
        // A function (or alias) that is gone took its policy with it: RemovePermission says NotFound.
        if live.unqualified > 0 {
            self.remove(ctx, &live.function_name, None, live.unqualified).await?;
        }
        self.remove(ctx, &live.function_name, Some(function_alias::ALIAS), live.statements.len()).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:execute-api:us-east-1:123456789012:abc123/prod/*";

    /// A GetPolicy document as Lambda returns it.
    fn policy(statements: &str) -> String {
        format!(r#"{{"Version":"2012-10-17","Id":"default","Statement":[{statements}]}}"#)
    }

    fn ours(source: &str) -> String {
        format!(
            r#"{{"Sid":"movies-stack-apigateway","Effect":"Allow","Principal":{{"Service":"apigateway.amazonaws.com"}},"Action":"lambda:InvokeFunction","Resource":"arn:aws:lambda:us-east-1:123456789012:function:f","Condition":{{"ArnLike":{{"AWS:SourceArn":"{source}"}}}}}}"#
        )
    }

    const OTHER: &str = r#"{"Sid":"someone-else","Effect":"Allow","Principal":{"Service":"s3.amazonaws.com"},"Action":"lambda:InvokeFunction","Resource":"arn:f"}"#;

    #[test]
    fn source_arn_is_scoped_to_the_stage() {
        assert_eq!(source_arn("aws", "us-east-1", "123456789012", "abc123", "prod"), ARN);
    }

    #[test]
    fn our_statement_is_found_among_others() {
        let live = our_statements(&policy(&format!("{OTHER},{}", ours(ARN)))).unwrap();
        assert_eq!(live, vec![desired(ARN.to_string())]);
        assert!(diff(&desired(ARN.to_string()), &live).is_empty());
        assert!(our_statements(&policy(OTHER)).unwrap().is_empty());
    }

    #[test]
    fn a_single_statement_object_and_lowercase_condition_key_parse() {
        let doc = r#"{"Statement":{"Sid":"movies-stack-apigateway","Principal":"apigateway.amazonaws.com","Action":["lambda:InvokeFunction"],"Condition":{"ArnLike":{"aws:sourcearn":"x"}}}}"#;
        let live = our_statements(doc).unwrap();
        assert_eq!(
            live,
            vec![PermissionStatement {
                principal: PRINCIPAL.into(),
                action: ACTION.into(),
                source_arn: Some("x".into())
            }]
        );
    }

    #[test]
    fn differences_are_replacements() {
        let want = desired(ARN.to_string());
        let wider = "arn:aws:execute-api:us-east-1:123456789012:*/*";
        let cases: Vec<(Vec<PermissionStatement>, Vec<&str>)> = vec![
            (vec![desired(wider.to_string())], vec!["source_arn"]),
            (vec![PermissionStatement { source_arn: None, ..want.clone() }], vec!["source_arn"]),
            (vec![PermissionStatement { principal: "s3.amazonaws.com".into(), ..want.clone() }], vec!["principal"]),
            (vec![PermissionStatement { action: "lambda:*".into(), ..want.clone() }], vec!["action"]),
            (vec![want.clone(), want.clone()], vec!["statements"]),
        ];
        for (live, fields) in cases {
            let changes = diff(&want, &live);
            assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), fields, "{live:?}");
            assert!(changes.iter().all(|c| c.replace));
        }
    }

    #[test]
    fn a_policy_that_is_not_json_is_an_error() {
        assert!(our_statements("not json").is_err());
    }
}
