//! Lambda function states and VPC network interfaces
//! (docs.aws.amazon.com/lambda/latest/dg/functions-states.html; aws-behaviours.md §4.2, §4.3).
//!
//! - After CreateFunction the function is `Pending` ("The function is being created.",
//!   `Creating`); after each UpdateFunctionCode / UpdateFunctionConfiguration,
//!   `LastUpdateStatus` is `InProgress`. Meanwhile UpdateFunctionCode,
//!   UpdateFunctionConfiguration and PublishVersion answer 409 ResourceConflictException.
//!   While Pending, "any invocations or other API actions that operate on the function will
//!   fail" (the states page): PutFunctionConcurrency and DeleteFunctionConcurrency answer the same
//!   409 then (terraform's `resourceFunctionCreate` waits for Active before it reserves
//!   concurrency).
//! - A function with a VPC config gets Hyperplane ENIs (description `AWS Lambda VPC ENI-...`),
//!   made here in moto through EC2 directly: one per subnet, with the function's security groups,
//!   `in-use` (attached to a stand-in instance, as moto knows no service-owned attachments).
//!   After DeleteFunction, or once the VPC config changes, they stay in use for a while, then
//!   the model releases them (detached: `available`) and the deployer may delete them. While an
//!   ENI exists its security group and subnet cannot be deleted (DependencyViolation), which
//!   moto does not enforce.
//! - A subnet in a zone Lambda does not support is refused.

use std::collections::HashMap;
use std::time::Instant;

use serde_json::Value;

use super::direct::{MotoEc2, xml_first};
use super::timings::Timings;
use super::{Behaviour, Exchange, Model};
use crate::proxy::Fault;

/// The function's name from a FunctionName label: a name, an ARN or a partial ARN, with or
/// without a qualifier.
pub fn function_name(label: &str) -> &str {
    let after = label.rsplit("function:").next().unwrap_or(label);
    after.split(':').next().unwrap_or(after)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Vpc {
    subnets: Vec<String>,
    groups: Vec<String>,
}

#[derive(Debug)]
struct Function {
    arn: String,
    role: Option<String>,
    created: Instant,
    updated: Option<Instant>,
    vpc: Vpc,
}

/// A Lambda ENI the model made in moto.
#[derive(Debug)]
struct Eni {
    id: String,
    function: String,
    subnet: String,
    groups: Vec<String>,
    instance: String,
    /// `Some` while in use.
    attachment: Option<String>,
    /// Since when its function no longer uses it (Lambda lets go of it a while later).
    lingering_since: Option<Instant>,
    releasing: bool,
}

/// ENIs to create once moto has answered (the creation needs calls to moto).
#[derive(Debug, Default)]
pub struct EniWork(Vec<(String, Vpc)>);

impl EniWork {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[derive(Debug, Default)]
pub struct Functions {
    map: HashMap<String, Function>,
    enis: Vec<Eni>,
}

fn vpc_of(ex: &Exchange) -> Option<Vpc> {
    ex.input.get("VpcConfig")?;
    Some(Vpc {
        subnets: ex.strings_at(&["VpcConfig", "SubnetIds"]).unwrap_or_default(),
        groups: ex.strings_at(&["VpcConfig", "SecurityGroupIds"]).unwrap_or_default(),
    })
}

fn conflict(message: String) -> Option<Fault> {
    Some(Fault { status: 409, code: "ResourceConflictException".into(), message })
}

impl Functions {
    fn named(&self, ex: &Exchange) -> Option<(&str, &Function)> {
        let name = function_name(ex.str_at(&["FunctionName"])?);
        self.map.get_key_value(name).map(|(k, f)| (k.as_str(), f))
    }

    /// The role of the function an UpdateFunctionConfiguration names.
    pub fn role_of(&self, ex: &Exchange) -> Option<String> {
        if ex.service != "lambda" {
            return None;
        }
        self.named(ex)?.1.role.clone()
    }

    /// Updates refused while the function is Pending or an update is in progress; its reserved
    /// concurrency, while it is Pending.
    pub fn conflict(&self, ex: &Exchange, now: Instant, t: &Timings) -> Option<Fault> {
        if ex.service != "lambda" {
            return None;
        }
        let update =
            matches!(ex.operation.as_str(), "UpdateFunctionCode" | "UpdateFunctionConfiguration" | "PublishVersion");
        let concurrency = matches!(ex.operation.as_str(), "PutFunctionConcurrency" | "DeleteFunctionConcurrency");
        if !(update || concurrency) {
            return None;
        }
        let (_, f) = self.named(ex)?;
        if now.saturating_duration_since(f.created) < t.lambda_pending {
            return conflict(
                "The operation cannot be performed at this time. The function is currently in the following state: Pending"
                    .into(),
            );
        }
        if update && f.updated.is_some_and(|u| now.saturating_duration_since(u) < t.lambda_update) {
            return conflict(format!(
                "The operation cannot be performed at this time. An update is in progress for resource: {}",
                f.arn
            ));
        }
        None
    }

    /// A successful call's effect on functions and ENIs; the ENIs to create.
    pub fn record(&mut self, ex: &Exchange, body: Option<&Value>, now: Instant) -> EniWork {
        let mut work = EniWork::default();
        if ex.service == "ec2" && ex.operation == "DeleteNetworkInterface" {
            if let Some(id) = ex.str_at(&["NetworkInterfaceId"]) {
                self.enis.retain(|e| e.id != id);
            }
            return work;
        }
        if ex.service != "lambda" {
            return work;
        }
        let Some(name) = ex.str_at(&["FunctionName"]).map(|n| function_name(n).to_string()) else { return work };
        match ex.operation.as_str() {
            "CreateFunction" => {
                let vpc = vpc_of(ex).unwrap_or_default();
                if !vpc.subnets.is_empty() {
                    work.0.push((name.clone(), vpc.clone()));
                }
                let arn = body.and_then(|b| b.get("FunctionArn")).and_then(Value::as_str).unwrap_or_default();
                self.map.insert(
                    name,
                    Function {
                        arn: arn.to_string(),
                        role: ex.str_at(&["Role"]).map(str::to_string),
                        created: now,
                        updated: None,
                        vpc,
                    },
                );
            }
            "UpdateFunctionCode" | "UpdateFunctionConfiguration" => {
                let new_vpc = vpc_of(ex);
                let Some(f) = self.map.get_mut(&name) else { return work };
                f.updated = Some(now);
                if let Some(role) = ex.str_at(&["Role"]) {
                    f.role = Some(role.to_string());
                }
                if let Some(vpc) = new_vpc.filter(|v| *v != f.vpc) {
                    f.vpc = vpc.clone();
                    self.linger(&name, now);
                    if !vpc.subnets.is_empty() {
                        work.0.push((name, vpc));
                    }
                }
            }
            // A version's deletion (with a qualifier) leaves the function.
            "DeleteFunction" if ex.str_at(&["Qualifier"]).is_none() => {
                self.map.remove(&name);
                self.linger(&name, now);
            }
            _ => {}
        }
        work
    }

    /// The function's ENIs start lingering: Lambda lets go of them later.
    fn linger(&mut self, function: &str, now: Instant) {
        for e in self.enis.iter_mut().filter(|e| e.function == function && e.lingering_since.is_none()) {
            e.lingering_since = Some(now);
        }
    }

    /// The configuration in a Lambda answer, as AWS reports it during the windows.
    pub fn rewrite(&self, ex: &Exchange, body: &mut Value, now: Instant, t: &Timings) -> bool {
        if ex.service != "lambda" {
            return false;
        }
        let config = match ex.operation.as_str() {
            "CreateFunction" | "GetFunctionConfiguration" | "UpdateFunctionCode" | "UpdateFunctionConfiguration" => {
                body.as_object_mut()
            }
            "GetFunction" => body.get_mut("Configuration").and_then(Value::as_object_mut),
            _ => None,
        };
        let (Some(config), Some((_, f))) = (config, self.named(ex)) else { return false };
        let clear_update = |c: &mut serde_json::Map<String, Value>| {
            for k in ["LastUpdateStatusReason", "LastUpdateStatusReasonCode"] {
                c.remove(k);
            }
        };
        if now.saturating_duration_since(f.created) < t.lambda_pending {
            config.insert("State".into(), Value::from("Pending"));
            config.insert("StateReason".into(), Value::from("The function is being created."));
            config.insert("StateReasonCode".into(), Value::from("Creating"));
            // LastUpdateStatus describes updates; a function being created has none yet.
            config.remove("LastUpdateStatus");
            clear_update(config);
            return true;
        }
        if f.updated.is_some_and(|u| now.saturating_duration_since(u) < t.lambda_update) {
            config.insert("LastUpdateStatus".into(), Value::from("InProgress"));
            clear_update(config);
            return true;
        }
        false
    }

    /// EC2 refusing to delete what a Lambda ENI still uses, or the ENI itself while in use.
    pub fn eni_dependency(&self, ex: &Exchange) -> Option<Fault> {
        if ex.service != "ec2" {
            return None;
        }
        let fault = |code: &str, message: String| Some(Fault { status: 400, code: code.into(), message });
        match ex.operation.as_str() {
            "DeleteSecurityGroup" => {
                let sg = ex.str_at(&["GroupId"])?;
                self.enis
                    .iter()
                    .any(|e| e.groups.iter().any(|g| g == sg))
                    .then(|| fault("DependencyViolation", format!("resource {sg} has a dependent object")))?
            }
            "DeleteSubnet" => {
                let subnet = ex.str_at(&["SubnetId"])?;
                self.enis.iter().any(|e| e.subnet == subnet).then(|| {
                    fault(
                        "DependencyViolation",
                        format!("The subnet '{subnet}' has dependencies and cannot be deleted."),
                    )
                })?
            }
            "DeleteNetworkInterface" => {
                let id = ex.str_at(&["NetworkInterfaceId"])?;
                self.enis.iter().any(|e| e.id == id && e.attachment.is_some()).then(|| {
                    fault("InvalidNetworkInterface.InUse", format!("The network interface {id} is currently in use."))
                })?
            }
            _ => None,
        }
    }
}

/// A stand-in AMI for the instance that holds the ENIs (moto does not validate image ids unless
/// told to).
const STAND_IN_AMI: &str = "ami-00000000000000000";

/// Lambda refusing a subnet in `zone` (keboola/developer-portal#81: use1-az3).
pub async fn refused_zone(moto: &MotoEc2, ex: &Exchange, zone: &str) -> Option<Fault> {
    if !(ex.service == "lambda" && matches!(ex.operation.as_str(), "CreateFunction" | "UpdateFunctionConfiguration")) {
        return None;
    }
    for subnet in ex.strings_at(&["VpcConfig", "SubnetIds"]).unwrap_or_default() {
        // A subnet moto does not know is moto's to refuse.
        if moto.subnet_zone_id(&subnet).await.is_ok_and(|z| z == zone) {
            return Some(Fault {
                status: 400,
                code: "InvalidParameterValueException".into(),
                message: "The provided subnets contain availability zone Lambda doesn't support.".into(),
            });
        }
    }
    None
}

/// Make the function's ENIs in moto, in use.
pub async fn apply(model: &Model, moto: &MotoEc2, work: EniWork, now: Instant) {
    for (function, vpc) in work.0 {
        match create_enis(moto, &function, &vpc).await {
            Ok(made) => {
                model.hit(Behaviour::LambdaEnis);
                let mut st = model.state.lock().unwrap();
                // Deleted or re-configured while the ENIs were being made: they linger at once.
                let current = st.functions.map.get(&function).is_some_and(|f| f.vpc == vpc);
                for mut e in made {
                    e.lingering_since = (!current).then_some(now);
                    st.functions.enis.push(e);
                }
            }
            Err(e) => eprintln!("strict model: creating the Lambda ENIs of {function} in moto failed: {e}"),
        }
    }
}

async fn create_enis(moto: &MotoEc2, function: &str, vpc: &Vpc) -> Result<Vec<Eni>, String> {
    let run = moto
        .call(
            "RunInstances",
            &[
                ("ImageId".into(), STAND_IN_AMI.into()),
                ("InstanceType".into(), "t3.micro".into()),
                ("MinCount".into(), "1".into()),
                ("MaxCount".into(), "1".into()),
                ("SubnetId".into(), vpc.subnets[0].clone()),
            ],
        )
        .await?;
    let instance = xml_first(&run, "instanceId").ok_or("RunInstances: no instanceId")?.to_string();
    let mut made = Vec::new();
    for (i, subnet) in vpc.subnets.iter().enumerate() {
        let mut params = vec![
            ("SubnetId".to_string(), subnet.clone()),
            ("Description".to_string(), format!("AWS Lambda VPC ENI-{function}-{}", crate::unique_suffix())),
        ];
        params.extend(vpc.groups.iter().enumerate().map(|(n, g)| (format!("SecurityGroupId.{}", n + 1), g.clone())));
        let created = moto.call("CreateNetworkInterface", &params).await?;
        let id = xml_first(&created, "networkInterfaceId").ok_or("CreateNetworkInterface: no id")?.to_string();
        let attached = moto
            .call(
                "AttachNetworkInterface",
                &[
                    ("NetworkInterfaceId".into(), id.clone()),
                    ("InstanceId".into(), instance.clone()),
                    ("DeviceIndex".into(), (i + 1).to_string()),
                ],
            )
            .await?;
        let attachment = xml_first(&attached, "attachmentId").ok_or("AttachNetworkInterface: no attachmentId")?;
        made.push(Eni {
            id,
            function: function.to_string(),
            subnet: subnet.clone(),
            groups: vpc.groups.clone(),
            instance: instance.clone(),
            attachment: Some(attachment.to_string()),
            lingering_since: None,
            releasing: false,
        });
    }
    Ok(made)
}

/// Release (detach) the ENIs whose lingering is over, and retire their stand-in instances.
pub async fn release_lingering(model: &Model, moto: &MotoEc2, now: Instant) {
    let linger = model.config.timings.eni_linger;
    let due: Vec<(String, String)> = {
        let mut st = model.state.lock().unwrap();
        st.functions
            .enis
            .iter_mut()
            .filter(|e| !e.releasing && e.lingering_since.is_some_and(|t| now.saturating_duration_since(t) >= linger))
            .filter_map(|e| {
                e.releasing = true;
                // Released in the model at once, before moto detaches it: a client that sees it
                // `available` in moto (a concurrent request) may delete it right away.
                Some((e.id.clone(), e.attachment.take()?))
            })
            .collect()
    };
    for (id, attachment) in due {
        let detached = moto
            .call(
                "DetachNetworkInterface",
                &[("AttachmentId".into(), attachment.clone()), ("Force".into(), "true".into())],
            )
            .await;
        if let Err(err) = detached {
            eprintln!("strict model: releasing Lambda ENI {id} in moto failed: {err}");
            let mut st = model.state.lock().unwrap();
            if let Some(e) = st.functions.enis.iter_mut().find(|e| e.id == id) {
                e.attachment = Some(attachment);
            }
        }
    }
    let retired: Vec<String> = {
        let st = model.state.lock().unwrap();
        let mut instances: Vec<String> =
            st.functions.enis.iter().filter(|e| e.releasing).map(|e| e.instance.clone()).collect();
        instances.sort();
        instances.dedup();
        // An empty id: already retired (cleared below), not to be terminated again on every request.
        instances.retain(|i| {
            !i.is_empty() && st.functions.enis.iter().filter(|e| &e.instance == i).all(|e| e.attachment.is_none())
        });
        instances
    };
    for instance in retired {
        let done = moto.call("TerminateInstances", &[("InstanceId.1".into(), instance.clone())]).await;
        if let Err(err) = done {
            eprintln!("strict model: retiring the stand-in instance {instance} failed: {err}");
        }
        let mut st = model.state.lock().unwrap();
        for e in st.functions.enis.iter_mut().filter(|e| e.instance == instance) {
            e.instance.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::time::Duration;

    fn ex(operation: &str, input: Value) -> Exchange {
        Exchange { service: "lambda".into(), operation: operation.into(), input }
    }

    #[test]
    fn function_names_from_labels() {
        assert_eq!(function_name("apigw_handler"), "apigw_handler");
        assert_eq!(function_name("arn:aws:lambda:us-east-1:123456789012:function:f:prod"), "f");
        assert_eq!(function_name("123456789012:function:f"), "f");
        assert_eq!(function_name("f:$LATEST"), "f");
    }

    #[test]
    fn pending_then_update_in_progress_then_idle() {
        let t = Timings::fast();
        let t0 = Instant::now();
        let mut fns = Functions::default();
        let create = ex("CreateFunction", json!({"FunctionName": "f", "Role": "arn:aws:iam::1:role/r"}));
        let arn = "arn:aws:lambda:us-east-1:123456789012:function:f";
        let mut created =
            json!({"FunctionName": "f", "FunctionArn": arn, "State": "Active", "LastUpdateStatus": "Successful"});
        assert!(fns.record(&create, Some(&created), t0).is_empty());
        assert!(fns.rewrite(&create, &mut created, t0, &t));
        assert_eq!((created["State"].as_str(), created.get("LastUpdateStatus")), (Some("Pending"), None));
        assert_eq!(created["StateReasonCode"], "Creating");

        let mut got = json!({"Configuration": {"State": "Active", "LastUpdateStatus": "Successful"}});
        assert!(fns.rewrite(&ex("GetFunction", json!({"FunctionName": arn})), &mut got, t0, &t));
        assert_eq!(got["Configuration"]["State"], "Pending");

        let code = ex("UpdateFunctionCode", json!({"FunctionName": "f"}));
        let f = fns.conflict(&code, t0, &t).unwrap();
        assert_eq!((f.status, f.code.as_str()), (409, "ResourceConflictException"));
        assert!(f.message.ends_with("in the following state: Pending"));
        // Reserved concurrency operates on the function too: refused while Pending.
        let put = ex("PutFunctionConcurrency", json!({"FunctionName": "f", "ReservedConcurrentExecutions": 5}));
        let delete = ex("DeleteFunctionConcurrency", json!({"FunctionName": arn}));
        for call in [&put, &delete] {
            let f = fns.conflict(call, t0, &t).unwrap();
            assert_eq!(
                (f.status, f.code.as_str(), f.message.as_str()),
                (
                    409,
                    "ResourceConflictException",
                    "The operation cannot be performed at this time. The function is currently in the following state: Pending"
                ),
                "{}",
                call.operation
            );
        }

        let t1 = t0 + t.lambda_pending;
        assert!(fns.conflict(&code, t1, &t).is_none());
        assert!(fns.conflict(&put, t1, &t).is_none());
        fns.record(&code, Some(&json!({})), t1);
        assert!(
            fns.conflict(&put, t1, &t).is_none(),
            "an update in progress holds back updates only (the states page lists them)"
        );
        let f = fns.conflict(&ex("PublishVersion", json!({"FunctionName": "f"})), t1, &t).unwrap();
        assert_eq!(
            f.message,
            format!("The operation cannot be performed at this time. An update is in progress for resource: {arn}")
        );
        let mut conf = json!({"State": "Active", "LastUpdateStatus": "Successful"});
        assert!(fns.rewrite(&ex("GetFunctionConfiguration", json!({"FunctionName": "f"})), &mut conf, t1, &t));
        assert_eq!(conf["LastUpdateStatus"], "InProgress");
        assert!(fns.conflict(&code, t1 + t.lambda_update, &t).is_none());
        assert_eq!(
            fns.role_of(&ex("UpdateFunctionConfiguration", json!({"FunctionName": "f"}))).as_deref(),
            Some("arn:aws:iam::1:role/r")
        );
    }

    #[test]
    fn enis_block_their_group_and_subnet_until_deleted() {
        let t0 = Instant::now();
        let mut fns = Functions::default();
        let create = ex(
            "CreateFunction",
            json!({"FunctionName": "f", "VpcConfig": {"SubnetIds": ["subnet-1", "subnet-2"], "SecurityGroupIds": ["sg-1"]}}),
        );
        let work = fns.record(&create, Some(&json!({"FunctionArn": "arn"})), t0);
        assert_eq!(work.0.len(), 1);
        fns.enis.push(Eni {
            id: "eni-1".into(),
            function: "f".into(),
            subnet: "subnet-1".into(),
            groups: vec!["sg-1".into()],
            instance: "i-1".into(),
            attachment: Some("eni-attach-1".into()),
            lingering_since: None,
            releasing: false,
        });
        let ec2 = |op: &str, input: Value| Exchange { service: "ec2".into(), operation: op.into(), input };
        let f = fns.eni_dependency(&ec2("DeleteSecurityGroup", json!({"GroupId": "sg-1"}))).unwrap();
        assert_eq!(
            (f.code.as_str(), f.message.as_str()),
            ("DependencyViolation", "resource sg-1 has a dependent object")
        );
        assert!(fns.eni_dependency(&ec2("DeleteSubnet", json!({"SubnetId": "subnet-1"}))).is_some());
        assert!(fns.eni_dependency(&ec2("DeleteSubnet", json!({"SubnetId": "subnet-9"}))).is_none());
        assert_eq!(
            fns.eni_dependency(&ec2("DeleteNetworkInterface", json!({"NetworkInterfaceId": "eni-1"}))).unwrap().code,
            "InvalidNetworkInterface.InUse"
        );

        // DeleteFunction: the ENIs linger from now on.
        fns.record(&ex("DeleteFunction", json!({"FunctionName": "f"})), None, t0 + Duration::from_secs(1));
        assert_eq!(fns.enis[0].lingering_since, Some(t0 + Duration::from_secs(1)));
        fns.enis[0].attachment = None;
        assert!(fns.eni_dependency(&ec2("DeleteNetworkInterface", json!({"NetworkInterfaceId": "eni-1"}))).is_none());
        fns.record(&ec2("DeleteNetworkInterface", json!({"NetworkInterfaceId": "eni-1"})), None, t0);
        assert!(fns.eni_dependency(&ec2("DeleteSecurityGroup", json!({"GroupId": "sg-1"}))).is_none());
    }
}
