//! WAF web ACLs and their associations (WAFV2 API reference), which moto accepts at once and
//! in any order:
//! - right after CreateWebACL, AssociateWebACL with the new ACL answers
//!   WAFUnavailableEntityException for a while ("After you create a web ACL, if you try to
//!   associate it with a resource, you might get an exception indicating that the web ACL is
//!   unavailable", AssociateWebACL; seen as "AWS WAF couldn't retrieve the resource that you
//!   requested. Retry your request.", aws/aws-pdk#508, hashicorp/terraform-provider-aws#17527);
//! - DeleteWebACL of an ACL still associated with a resource answers WAFAssociatedItemException
//!   ("Before deleting any web ACL, first disassociate it from all resources", DeleteWebACL);
//!   moto deletes it and leaves the resource pointing at nothing;
//! - GetWebACLForResource "uses GetWebACL, to verify that your account has permission to access
//!   the retrieved web ACL. If you get an error that indicates that your account isn't authorized
//!   to perform wafv2:GetWebACL on the resource, that error won't be included in your CloudTrail
//!   event history" (GetWebACLForResource): a resource associated with a web ACL the caller may
//!   not read (another team's, marked so by a test) answers AccessDeniedException, in IAM's words,
//!   naming that ACL; and so does GetWebACL on it. moto has no IAM.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Exchange;
use crate::proxy::Fault;

/// The account's web ACLs as the model follows them.
#[derive(Debug, Default)]
pub struct WebAcls {
    /// ACL ARN -> when CreateWebACL answered.
    created: HashMap<String, Instant>,
    /// Protected resource ARN -> the ACL ARN it is associated with (one ACL per resource:
    /// AssociateWebACL replaces the association, pulumi/pulumi-aws#4782).
    associations: HashMap<String, String>,
}

impl WebAcls {
    /// A successful call: `response` is moto's answer.
    pub fn record(&mut self, ex: &Exchange, response: Option<&Value>, now: Instant) {
        if ex.service != "wafv2" {
            return;
        }
        match ex.operation.as_str() {
            "CreateWebACL" => {
                if let Some(arn) = response.and_then(|r| r["Summary"]["ARN"].as_str()) {
                    self.created.insert(arn.to_string(), now);
                }
            }
            "AssociateWebACL" => {
                if let (Some(resource), Some(acl)) = (ex.str_at(&["ResourceArn"]), ex.str_at(&["WebACLArn"])) {
                    self.associations.insert(resource.to_string(), acl.to_string());
                }
            }
            "DisassociateWebACL" => {
                if let Some(resource) = ex.str_at(&["ResourceArn"]) {
                    self.associations.remove(resource);
                }
            }
            "DeleteWebACL" => {
                if let Some(suffix) = acl_suffix(ex) {
                    self.created.retain(|arn, _| !arn.ends_with(&suffix));
                    self.associations.retain(|_, acl| !acl.ends_with(&suffix));
                }
            }
            _ => {}
        }
    }

    /// AssociateWebACL with an ACL created less than `window` ago.
    pub fn unavailable(&self, ex: &Exchange, now: Instant, window: Duration) -> Option<Fault> {
        if !(ex.service == "wafv2" && ex.operation == "AssociateWebACL") {
            return None;
        }
        let created = self.created.get(ex.str_at(&["WebACLArn"])?)?;
        (now.saturating_duration_since(*created) < window).then(|| Fault {
            status: 400,
            code: "WAFUnavailableEntityException".into(),
            message: "AWS WAF couldn't retrieve the resource that you requested. Retry your request.".into(),
        })
    }

    /// DeleteWebACL of an ACL some resource is still associated with.
    pub fn still_associated(&self, ex: &Exchange) -> Option<Fault> {
        if !(ex.service == "wafv2" && ex.operation == "DeleteWebACL") {
            return None;
        }
        let suffix = acl_suffix(ex)?;
        self.associations.values().any(|acl| acl.ends_with(&suffix)).then(|| Fault {
            status: 400,
            code: "WAFAssociatedItemException".into(),
            message: "AWS WAF couldn’t perform the operation because your resource is being used by another resource \
                      or it’s associated with another resource."
                .into(),
        })
    }

    /// GetWebACLForResource of a resource associated with, or GetWebACL of, an ACL named in
    /// `unreadable`: the caller may not `wafv2:GetWebACL` it.
    pub fn unreadable(&self, ex: &Exchange, unreadable: &BTreeSet<String>) -> Option<Fault> {
        if ex.service != "wafv2" || unreadable.is_empty() {
            return None;
        }
        let acl = match ex.operation.as_str() {
            "GetWebACLForResource" => self.associations.get(ex.str_at(&["ResourceArn"])?)?.clone(),
            "GetWebACL" => {
                let suffix = acl_suffix(ex)?;
                let mut known = self.created.keys().chain(self.associations.values());
                known.find(|arn| arn.ends_with(&suffix))?.clone()
            }
            _ => return None,
        };
        unreadable.contains(acl_name(&acl)?).then(|| get_web_acl_denied(&acl))
    }
}

/// IAM's refusal of `wafv2:GetWebACL` on `acl_arn` (the shape of every IAM denial:
/// "User: ARN is not authorized to perform: ACTION on resource: ARN because no identity-based
/// policy allows the ACTION action").
fn get_web_acl_denied(acl_arn: &str) -> Fault {
    let account = acl_arn.split(':').nth(4).unwrap_or("123456789012");
    Fault {
        status: 400,
        code: "AccessDeniedException".into(),
        message: format!(
            "User: arn:aws:iam::{account}:user/deployer is not authorized to perform: wafv2:GetWebACL on resource: \
             {acl_arn} because no identity-based policy allows the wafv2:GetWebACL action"
        ),
    }
}

/// The name in a web ACL ARN (`.../webacl/NAME/ID`).
fn acl_name(arn: &str) -> Option<&str> {
    arn.split("/webacl/").nth(1)?.split('/').next()
}

/// The end of the ARN of the ACL a request names by `Name` and `Id`: `/webacl/NAME/ID`.
fn acl_suffix(ex: &Exchange) -> Option<String> {
    Some(format!("/webacl/{}/{}", ex.str_at(&["Name"])?, ex.str_at(&["Id"])?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const ACL: &str = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/s-web-acl/0f1e";
    const STAGE: &str = "arn:aws:apigateway:us-east-1::/restapis/a1/stages/prod";

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "wafv2".into(), operation: operation.into(), input }
    }

    #[test]
    fn a_new_acl_is_not_associable_at_once_and_an_associated_one_cannot_be_deleted() {
        let (t0, w) = (Instant::now(), Duration::from_secs(1));
        let mut acls = WebAcls::default();
        acls.record(&ex("CreateWebACL", json!({"Name": "s-web-acl"})), Some(&json!({"Summary": {"ARN": ACL}})), t0);
        let associate = ex("AssociateWebACL", json!({"WebACLArn": ACL, "ResourceArn": STAGE}));
        assert_eq!(acls.unavailable(&associate, t0, w).unwrap().code, "WAFUnavailableEntityException");
        assert!(acls.unavailable(&associate, t0 + w, w).is_none(), "associable once the window is over");

        acls.record(&associate, None, t0 + w);
        let delete = ex("DeleteWebACL", json!({"Name": "s-web-acl", "Id": "0f1e", "Scope": "REGIONAL"}));
        assert_eq!(acls.still_associated(&delete).unwrap().code, "WAFAssociatedItemException");
        let other = ex("DeleteWebACL", json!({"Name": "other", "Id": "0f1e", "Scope": "REGIONAL"}));
        assert!(acls.still_associated(&other).is_none());

        acls.record(&ex("DisassociateWebACL", json!({"ResourceArn": STAGE})), None, t0 + w);
        assert!(acls.still_associated(&delete).is_none(), "deletable once disassociated");
        acls.record(&delete, None, t0 + w);
        assert!(acls.created.is_empty());
    }

    #[test]
    fn another_teams_acl_is_not_readable_through_the_resource() {
        const THEIRS: &str = "arn:aws:wafv2:us-east-1:123456789012:regional/webacl/edge-team/9a8b";
        let t0 = Instant::now();
        let mut acls = WebAcls::default();
        let unreadable = BTreeSet::from(["edge-team".to_string()]);
        acls.record(&ex("CreateWebACL", json!({"Name": "edge-team"})), Some(&json!({"Summary": {"ARN": THEIRS}})), t0);
        let for_stage = ex("GetWebACLForResource", json!({"ResourceArn": STAGE}));
        assert!(acls.unreadable(&for_stage, &unreadable).is_none(), "nothing associated: nothing to read");
        acls.record(&ex("AssociateWebACL", json!({"WebACLArn": THEIRS, "ResourceArn": STAGE})), None, t0);
        let f = acls.unreadable(&for_stage, &unreadable).unwrap();
        assert_eq!((f.status, f.code.as_str()), (400, "AccessDeniedException"));
        assert_eq!(
            f.message,
            format!(
                "User: arn:aws:iam::123456789012:user/deployer is not authorized to perform: wafv2:GetWebACL on \
                 resource: {THEIRS} because no identity-based policy allows the wafv2:GetWebACL action"
            )
        );
        let get = ex("GetWebACL", json!({"Name": "edge-team", "Id": "9a8b", "Scope": "REGIONAL"}));
        assert_eq!(acls.unreadable(&get, &unreadable).unwrap().code, "AccessDeniedException");
        assert!(acls.unreadable(&for_stage, &BTreeSet::new()).is_none(), "readable unless marked");
        // Our own ACL on the stage is readable.
        acls.record(&ex("AssociateWebACL", json!({"WebACLArn": ACL, "ResourceArn": STAGE})), None, t0);
        assert!(acls.unreadable(&for_stage, &unreadable).is_none());
    }
}
