//! Lambda's account concurrency (Lambda developer guide, "Understanding Lambda function
//! scaling"; PutFunctionConcurrency and GetAccountSettings API references).
//!
//! - The account has a concurrency limit per region: 1000 by default, 10 (or 50) on new
//!   accounts until AWS raises it (aws-samples/alarm-context-tool#2, awslabs/fhir-works-on-aws-
//!   deployment#691: "Full account concurrency is 10 and Unreserved account concurrency is 10").
//!   A test sets it through [`crate::ProxyBuilder::lambda_concurrency_limit`].
//! - GetAccountSettings: moto 5.2.5 does not implement it (`GET /2016-08-19/account-settings/`
//!   is a 404 page), so the model answers it from the limit and the reservations it has seen.
//! - PutFunctionConcurrency that would leave the account fewer unreserved executions than
//!   Lambda keeps (100, or the whole limit when it is lower: "[10]" on a new account, "[100]"
//!   on a standard one) is refused as AWS refuses it: 400 InvalidParameterValueException
//!   "Specified ReservedConcurrentExecutions for function decreases account's
//!   UnreservedConcurrentExecution below its minimum value of [N]." (moto checks nothing unless
//!   MOTO_LAMBDA_CONCURRENCY_QUOTA is set, and then always against 100).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Exchange;
use super::lambda::function_name;
use crate::proxy::{Fault, Reply};

/// The reservations made through the model, by function name.
#[derive(Debug, Default)]
pub struct Reservations(BTreeMap<String, i64>);

/// What Lambda keeps unreserved in an account with this limit.
fn minimum_unreserved(limit: i64) -> i64 {
    limit.min(100)
}

impl Reservations {
    fn unreserved(&self, limit: i64, except: Option<&str>) -> i64 {
        limit - self.0.iter().filter(|(f, _)| Some(f.as_str()) != except).map(|(_, n)| n).sum::<i64>()
    }

    /// AWS's refusal of a PutFunctionConcurrency the account cannot spare.
    pub fn refuse(&self, ex: &Exchange, limit: i64) -> Option<Fault> {
        if !(ex.service == "lambda" && ex.operation == "PutFunctionConcurrency") {
            return None;
        }
        let function = function_name(ex.str_at(&["FunctionName"])?);
        let wanted = ex.input.get("ReservedConcurrentExecutions")?.as_i64()?;
        let minimum = minimum_unreserved(limit);
        // The function's own reservation is replaced, not added to.
        (self.unreserved(limit, Some(function)) - wanted < minimum).then(|| Fault {
            status: 400,
            code: "InvalidParameterValueException".into(),
            message: format!(
                "Specified ReservedConcurrentExecutions for function decreases account's UnreservedConcurrentExecution below its minimum value of [{minimum}]."
            ),
        })
    }

    /// AWS's answer to GetAccountSettings (`AccountLimit`; the code-size figures are Lambda's
    /// documented quotas). `AccountUsage` is left out: the model does not know the code sizes.
    pub fn account_settings(&self, limit: i64) -> Reply {
        let body = json!({"AccountLimit": {
            "TotalCodeSize": 80_530_636_800_i64,
            "CodeSizeUnzipped": 262_144_000,
            "CodeSizeZipped": 52_428_800,
            "ConcurrentExecutions": limit,
            "UnreservedConcurrentExecutions": self.unreserved(limit, None),
        }});
        Reply { status: 200, content_type: "application/json".into(), body: body.to_string() }
    }

    /// A successful call's effect on the reservations.
    pub fn record(&mut self, ex: &Exchange) {
        if ex.service != "lambda" {
            return;
        }
        let Some(function) = ex.str_at(&["FunctionName"]).map(|f| function_name(f).to_string()) else { return };
        match ex.operation.as_str() {
            "PutFunctionConcurrency" => {
                if let Some(n) = ex.input.get("ReservedConcurrentExecutions").and_then(Value::as_i64) {
                    self.0.insert(function, n);
                }
            }
            "DeleteFunctionConcurrency" | "DeleteFunction" => {
                self.0.remove(&function);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "lambda".into(), operation: operation.into(), input }
    }

    fn put(function: &str, n: i64) -> Exchange {
        ex("PutFunctionConcurrency", json!({"FunctionName": function, "ReservedConcurrentExecutions": n}))
    }

    fn unreserved(r: &Reservations, limit: i64) -> i64 {
        let reply: Value = serde_json::from_str(&r.account_settings(limit).body).unwrap();
        reply["AccountLimit"]["UnreservedConcurrentExecutions"].as_i64().unwrap()
    }

    #[test]
    fn a_new_account_can_reserve_nothing_and_a_standard_one_keeps_100() {
        let mut r = Reservations::default();
        let refused = r.refuse(&put("f", 1), 10).expect("refused on a new account");
        assert_eq!((refused.status, refused.code.as_str()), (400, "InvalidParameterValueException"));
        assert!(refused.message.ends_with("below its minimum value of [10]."), "{}", refused.message);
        assert!(r.refuse(&put("f", 900), 1000).is_none());
        assert!(r.refuse(&put("f", 901), 1000).unwrap().message.contains("[100]"));

        r.record(&put("arn:aws:lambda:us-east-1:123456789012:function:f", 600));
        assert_eq!(unreserved(&r, 1000), 400);
        assert!(r.refuse(&put("g", 301), 1000).is_some(), "f's 600 count against g");
        assert!(r.refuse(&put("f", 900), 1000).is_none(), "f's own reservation is replaced");
        r.record(&ex("DeleteFunctionConcurrency", json!({"FunctionName": "f"})));
        assert_eq!(unreserved(&r, 1000), 1000);
        r.record(&put("f", 5));
        r.record(&ex("DeleteFunction", json!({"FunctionName": "f"})));
        assert_eq!(unreserved(&r, 10), 10);
    }
}
