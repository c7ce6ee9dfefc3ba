//! Lambda versions and aliases ([`super::Behaviour::LambdaVersions`]), where moto accepts what
//! AWS refuses:
//!
//! - an alias' routing (CreateAlias / UpdateAlias `RoutingConfig.AdditionalVersionWeights`): at
//!   most one additional version, a published one (not `$LATEST`, not the alias' own version,
//!   one that exists), weight 0.0-1.0, and no routing on an alias of `$LATEST` (Lambda API
//!   reference, AliasRoutingConfiguration; developer guide, "Implement Lambda canary
//!   deployments using a weighted alias": "You can point an alias a maximum of two Lambda
//!   function versions", "must be published versions", "cannot point to $LATEST");
//! - DeleteFunction of a version an alias points at: 409 ResourceConflictException;
//! - PublishVersion whose `CodeSha256` is not `$LATEST`'s: 400 InvalidParameterValueException
//!   (PublishVersion reference: "the value must match the SHA256 of the $LATEST version");
//! - the account's code storage (75 GB by default, Lambda quotas; [`super::Config`]'s
//!   `lambda_code_storage_bytes`): every version's package counts, and a CreateFunction,
//!   UpdateFunctionCode or PublishVersion past it answers 400 CodeStorageExceededException.
//!
//! PublishVersion while the function is Pending or an update is in progress is
//! [`super::Behaviour::LambdaStates`]'s (`lambda.rs`).

use base64::Engine;
use serde_json::Value;

use super::Exchange;
use super::direct::MotoEc2;
use super::lambda::function_name;
use crate::proxy::Fault;

const LATEST: &str = "$LATEST";

fn invalid(message: String) -> Option<Fault> {
    Some(Fault { status: 400, code: "InvalidParameterValueException".into(), message })
}

/// What is wrong with an alias' routing, given the function's published versions.
pub fn routing_error(primary: &str, weights: &serde_json::Map<String, Value>, published: &[String]) -> Option<String> {
    if weights.is_empty() {
        return None;
    }
    if weights.len() > 1 {
        return Some(format!(
            "1 validation error detected: Value at 'routingConfig.additionalVersionWeights' failed to satisfy \
             constraint: Member must have length less than or equal to 1 (found {})",
            weights.len()
        ));
    }
    if primary == LATEST {
        return Some("$LATEST is not supported for an alias pointing to more than 1 version".into());
    }
    for (version, weight) in weights {
        let w = weight.as_f64().unwrap_or(-1.0);
        if !(0.0..=1.0).contains(&w) {
            return Some(format!(
                "1 validation error detected: Value '{weight}' at 'routingConfig.additionalVersionWeights' failed to \
                 satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to \
                 1.0, Member must have value greater than or equal to 0.0]"
            ));
        }
        if version == LATEST || !published.contains(version) {
            return Some(format!("Version {version} of the function is not a published version"));
        }
        if version == primary {
            return Some(format!("Alias cannot point to the same version {version} in its routing configuration"));
        }
    }
    None
}

/// The function's published versions in moto, with their code sizes, and `$LATEST`'s sha and size.
async fn versions(moto: &MotoEc2, function: &str) -> Option<Vec<(String, i64, String)>> {
    let doc = moto.get_lambda_json(&format!("/2015-03-31/functions/{function}/versions")).await.ok()?;
    Some(
        doc["Versions"]
            .as_array()?
            .iter()
            .map(|v| {
                (
                    v["Version"].as_str().unwrap_or_default().to_string(),
                    v["CodeSize"].as_i64().unwrap_or(0),
                    v["CodeSha256"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect(),
    )
}

/// Every package the account stores: each version of each function (moto's ListFunctions with
/// `FunctionVersion=ALL`).
async fn stored_bytes(moto: &MotoEc2) -> Option<i64> {
    let doc = moto.get_lambda_json("/2015-03-31/functions/?FunctionVersion=ALL").await.ok()?;
    Some(doc["Functions"].as_array()?.iter().map(|f| f["CodeSize"].as_i64().unwrap_or(0)).sum())
}

fn zip_bytes(ex: &Exchange) -> Option<i64> {
    let b64 = ex.str_at(&["ZipFile"]).or_else(|| ex.str_at(&["Code", "ZipFile"]))?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(bytes.len() as i64)
}

fn storage_exceeded(stored: i64, quota: u64) -> Option<Fault> {
    (stored > quota as i64).then(|| Fault {
        status: 400,
        code: "CodeStorageExceededException".into(),
        message: format!("Code storage limit exceeded. ({stored} bytes, limit {quota})"),
    })
}

/// AWS's refusal of `ex`, if any.
pub async fn refuse(moto: &MotoEc2, ex: &Exchange, storage_quota: u64) -> Option<Fault> {
    if ex.service != "lambda" {
        return None;
    }
    let op = ex.operation.as_str();
    if !matches!(
        op,
        "CreateAlias" | "UpdateAlias" | "DeleteFunction" | "PublishVersion" | "CreateFunction" | "UpdateFunctionCode"
    ) {
        return None;
    }
    let function = function_name(ex.str_at(&["FunctionName"])?).to_string();
    match op {
        "CreateAlias" | "UpdateAlias" => {
            let weights = ex.input.get("RoutingConfig")?.get("AdditionalVersionWeights")?.as_object()?;
            let primary = match ex.str_at(&["FunctionVersion"]) {
                Some(v) => v.to_string(),
                None => {
                    let name = ex.str_at(&["Name"])?;
                    let alias =
                        moto.get_lambda_json(&format!("/2015-03-31/functions/{function}/aliases/{name}")).await.ok()?;
                    alias["FunctionVersion"].as_str()?.to_string()
                }
            };
            let published: Vec<String> =
                versions(moto, &function).await?.into_iter().map(|(v, _, _)| v).filter(|v| v != LATEST).collect();
            routing_error(&primary, weights, &published).and_then(invalid)
        }
        "DeleteFunction" => {
            let qualifier = ex.str_at(&["Qualifier"])?;
            let doc = moto.get_lambda_json(&format!("/2015-03-31/functions/{function}/aliases")).await.ok()?;
            let holding: Vec<String> = doc["Aliases"]
                .as_array()?
                .iter()
                .filter(|a| {
                    a["FunctionVersion"].as_str() == Some(qualifier)
                        || a["RoutingConfig"]["AdditionalVersionWeights"].get(qualifier).is_some()
                })
                .filter_map(|a| a["Name"].as_str().map(str::to_string))
                .collect();
            (!holding.is_empty()).then(|| Fault {
                status: 409,
                code: "ResourceConflictException".into(),
                message: format!(
                    "Unable to delete version because the following aliases reference it: [{}]",
                    holding.join(", ")
                ),
            })
        }
        "PublishVersion" => {
            let all = versions(moto, &function).await?;
            let (_, latest_size, latest_sha) = all.iter().find(|(v, _, _)| v == LATEST)?.clone();
            if let Some(want) = ex.str_at(&["CodeSha256"])
                && want != latest_sha
            {
                return invalid(format!(
                    "CodeSHA256 ({want}) is different from current CodeSHA256 in $LATEST ({latest_sha}). Please try again \
                     with the current CodeSHA256."
                ));
            }
            // A publish of what the last version already is makes no new version (and no new bytes).
            let unchanged =
                all.iter().rev().find(|(v, _, _)| v != LATEST).is_some_and(|(_, _, sha)| *sha == latest_sha);
            if unchanged {
                return None;
            }
            storage_exceeded(stored_bytes(moto).await? + latest_size, storage_quota)
        }
        "CreateFunction" => storage_exceeded(stored_bytes(moto).await? + zip_bytes(ex)?, storage_quota),
        "UpdateFunctionCode" => {
            let latest = versions(moto, &function).await?.into_iter().find(|(v, _, _)| v == LATEST)?.1;
            storage_exceeded(stored_bytes(moto).await? - latest + zip_bytes(ex)?, storage_quota)
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn weights(v: Value) -> serde_json::Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn an_alias_routes_to_one_other_published_version_with_a_weight_between_0_and_1() {
        let published = vec!["1".to_string(), "2".to_string(), "3".to_string()];
        assert_eq!(routing_error("1", &weights(json!({})), &published), None);
        assert_eq!(routing_error("1", &weights(json!({"2": 0.1})), &published), None);
        assert_eq!(routing_error("1", &weights(json!({"2": 0.0})), &published), None);
        let refused = [
            ("1", json!({"2": 0.1, "3": 0.1}), "length less than or equal to 1"),
            ("1", json!({"2": 1.5}), "less than or equal to 1.0"),
            ("1", json!({"2": -0.1}), "greater than or equal to 0.0"),
            ("1", json!({"$LATEST": 0.1}), "not a published version"),
            ("1", json!({"9": 0.1}), "not a published version"),
            ("$LATEST", json!({"2": 0.1}), "$LATEST is not supported"),
            ("2", json!({"2": 0.1}), "same version"),
        ];
        for (primary, w, why) in refused {
            let e = routing_error(primary, &weights(w.clone()), &published);
            assert!(e.as_deref().is_some_and(|e| e.contains(why)), "{primary} {w}: {e:?}");
        }
    }
}
