//! API Gateway usage plans and the stages bound to them ([`super::Behaviour::UsagePlanStages`]).
//! AWS refuses to delete a plan that a stage is still bound to: "Cannot delete Usage Plan {id}
//! because there are API Stages associated with it, including {api}:{stage}" (aws/aws-sdk-js#3841,
//! serverless/serverless#4006). Deleting a stage removes it from every usage plan: recreating a
//! stage "will remove downstream resources such as ... aws_api_gateway_usage_plan associated with
//! that stage" (a terraform-provider-aws maintainer, hashicorp/terraform-provider-aws#14100), and
//! deleting a REST API deletes its stages. moto does neither: DeleteUsagePlan always succeeds, and
//! a deleted stage stays in the plans.

use serde_json::{Value, json};

use super::Exchange;
use super::direct::MotoEc2;
use crate::proxy::Fault;

/// The refusal AWS gives DeleteUsagePlan on a plan that has a stage, read from moto.
pub async fn refuse_bound(moto: &MotoEc2, ex: &Exchange) -> Option<Fault> {
    if !ex.is("apigateway", "DeleteUsagePlan") {
        return None;
    }
    let id = ex.str_at(&["usagePlanId"])?;
    let plan = moto.get_json(&format!("/usageplans/{id}")).await.ok()?;
    let stage = plan["apiStages"].as_array()?.first()?;
    Some(Fault {
        status: 400,
        code: "BadRequestException".into(),
        message: format!(
            "Cannot delete Usage Plan {id} because there are API Stages associated with it, including {}:{}",
            stage["apiId"].as_str().unwrap_or_default(),
            stage["stage"].as_str().unwrap_or_default()
        ),
    })
}

/// After a DeleteStage or DeleteRestApi that succeeded: what it deleted is off every plan in moto,
/// as AWS does by itself. True when a plan was changed.
pub async fn unbind_deleted(moto: &MotoEc2, ex: &Exchange) -> bool {
    if ex.service != "apigateway" {
        return false;
    }
    let (api, stage) = match ex.operation.as_str() {
        "DeleteStage" => (ex.str_at(&["restApiId"]), ex.str_at(&["stageName"])),
        "DeleteRestApi" => (ex.str_at(&["restApiId"]), None),
        _ => return false,
    };
    let Some(api) = api else { return false };
    let Ok(plans) = moto.get_json("/usageplans").await else { return false };
    let mut changed = false;
    for plan in plans["item"].as_array().into_iter().flatten() {
        let Some(id) = plan["id"].as_str() else { continue };
        let ops: Vec<Value> = plan["apiStages"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|s| s["apiId"] == api && stage.is_none_or(|st| s["stage"] == st))
            .map(|s| {
                let value = format!("{api}:{}", s["stage"].as_str().unwrap_or_default());
                json!({ "op": "remove", "path": "/apiStages", "value": value })
            })
            .collect();
        if !ops.is_empty() {
            let body = json!({ "patchOperations": ops });
            changed |= moto.patch_json(&format!("/usageplans/{id}"), &body).await.is_ok();
        }
    }
    changed
}
