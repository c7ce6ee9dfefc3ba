//! VPC Flow Logs: ALL traffic of the VPC to the stack's CloudWatch log group, delivered through
//! the flow-log IAM role. Flow logs cannot be modified: any difference means delete + create.

use async_trait::async_trait;
use aws_sdk_ec2::types::{FlowLog as Ec2FlowLog, FlowLogsResourceType, LogDestinationType, ResourceType, TrafficType};

use super::ec2::{pick, stack_filter, tag_spec};
use super::{Ctx, Dep, FieldChange, Grant, Id, Kind, LiveStates, Resource, Scope, iam_role, log_group, vpc};
use crate::aws::AwsResultExt;
use crate::cfn::{self, CfnResource};
use crate::error::{Codes, Error, ErrorKind, Result};
use crate::wait::{backoff, retry};
use serde_json::json;

pub const ID: Id<LiveFlowLog> = Id::new("flow-log");

/// Codes only the flow log's calls meet: flow logs per resource, and a flow log of the same
/// destination and traffic type that exists already.
const CODES: &Codes =
    &[("FlowLogsLimitExceeded", ErrorKind::Quota), ("FlowLogAlreadyExists", ErrorKind::AlreadyExists)];
/// Seconds; 60 rather than the default 600 so traffic shows up within a minute or so.
pub const MAX_AGGREGATION_INTERVAL: i32 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlowLog {
    /// The flow-log group's name.
    pub log_group: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DesiredFlowLog {
    pub vpc_id: String,
    pub log_group: String,
    pub role_arn: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveFlowLog {
    pub id: String,
    pub resource_id: String,
    pub log_group: String,
    pub role_arn: String,
    pub traffic_type: String,
    pub destination_type: String,
    pub max_aggregation_interval: Option<i32>,
    /// `SUCCESS` / `FAILED`, and AWS's reason when failed ("Access error", "Rate limited").
    pub deliver_status: Option<String>,
    pub deliver_error: Option<String>,
}

/// Every field of a flow log is fixed at creation: each difference is a replacement.
pub fn diff(desired: &DesiredFlowLog, live: &LiveFlowLog) -> Vec<FieldChange> {
    let mut changes = Vec::new();
    let mut field = |name: &str, want: &str, have: &str| {
        if want != have {
            changes.push(FieldChange::replace(name, want, have));
        }
    };
    field("resource", &desired.vpc_id, &live.resource_id);
    field("log_group", &desired.log_group, &live.log_group);
    field("role", &desired.role_arn, &live.role_arn);
    field("traffic_type", "ALL", &live.traffic_type);
    field("destination_type", "cloud-watch-logs", &live.destination_type);
    let interval = live.max_aggregation_interval.map(|i| i.to_string()).unwrap_or_else(|| "(none)".into());
    field("max_aggregation_interval", &MAX_AGGREGATION_INTERVAL.to_string(), &interval);
    changes
}

fn live_flow_log(f: &Ec2FlowLog) -> LiveFlowLog {
    LiveFlowLog {
        id: f.flow_log_id().unwrap_or_default().to_string(),
        resource_id: f.resource_id().unwrap_or_default().to_string(),
        log_group: f.log_group_name().unwrap_or_default().to_string(),
        role_arn: f.deliver_logs_permission_arn().unwrap_or_default().to_string(),
        traffic_type: f.traffic_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        destination_type: f.log_destination_type().map(|t| t.as_str().to_string()).unwrap_or_default(),
        max_aggregation_interval: f.max_aggregation_interval(),
        deliver_status: f.deliver_logs_status().map(str::to_string),
        deliver_error: f.deliver_logs_error_message().map(str::to_string),
    }
}

impl FlowLog {
    fn desired(&self, inputs: &LiveStates) -> Result<DesiredFlowLog> {
        Ok(DesiredFlowLog {
            vpc_id: inputs.get(vpc::ID)?.id.clone(),
            log_group: self.log_group.clone(),
            role_arn: inputs.get(iam_role::FLOW_LOGS)?.arn.clone(),
        })
    }

    async fn delete_by_id(&self, ctx: &Ctx, flow_log_id: &str) -> Result<()> {
        let out = match ctx.aws.ec2.delete_flow_logs().flow_log_ids(flow_log_id).send().await.aws_with(
            "EC2",
            "DeleteFlowLogs",
            CODES,
        ) {
            Ok(out) => out,
            // InvalidFlowLogId.NotFound: already gone.
            Err(e) if e.is_not_found() => return Ok(()),
            Err(e) => return Err(e),
        };
        // Per-id failures come back in `Unsuccessful` with HTTP 200.
        match out
            .unsuccessful()
            .iter()
            .filter_map(|u| u.error())
            .find(|e| !e.code().unwrap_or_default().ends_with("NotFound"))
        {
            Some(err) => Err(Error::other(format!(
                "EC2 DeleteFlowLogs failed for {flow_log_id}: {}: {}",
                err.code().unwrap_or("?"),
                err.message().unwrap_or_default()
            ))),
            None => Ok(()),
        }
    }
}

#[async_trait]
impl Resource for FlowLog {
    type Live = LiveFlowLog;
    type Change = FieldChange;

    fn id(&self) -> Id<LiveFlowLog> {
        ID
    }

    fn kind(&self) -> Kind {
        Kind::FlowLog
    }
    fn grants(&self, s: &Scope) -> Vec<Grant> {
        let changes = ["ec2:CreateFlowLogs", "ec2:DeleteFlowLogs"];
        super::ec2::grants(s, "vpc-flow-log", &["ec2:DescribeFlowLogs"], "ec2:CreateFlowLogs", &changes, &["vpc"])
    }

    fn deps(&self) -> Vec<Dep> {
        vec![Dep::on(vpc::ID), Dep::on(log_group::FLOW), Dep::on(iam_role::FLOW_LOGS)]
    }

    fn create_rounds(&self) -> u32 {
        1
    }

    /// Nothing holds on to a flow log: a changed one is deleted and created again.
    fn replaces_itself(&self) -> bool {
        true
    }

    fn export(&self, ctx: &Ctx, live: &LiveFlowLog) -> Vec<CfnResource> {
        let properties = json!({
            "ResourceId": cfn::reference(vpc::ID),
            "ResourceType": "VPC",
            "TrafficType": live.traffic_type,
            "LogDestinationType": live.destination_type,
            "LogGroupName": cfn::reference(log_group::FLOW),
            "DeliverLogsPermissionArn": cfn::attribute(iam_role::FLOW_LOGS, "Arn"),
            "MaxAggregationInterval": live.max_aggregation_interval,
            "Tags": cfn::tags(&ctx.tags(ID.name())),
        });
        vec![CfnResource::new(ID, "AWS::EC2::FlowLog", properties, cfn::identifier(&[("Id", &live.id)]))]
    }

    async fn observe(&self, ctx: &Ctx) -> Result<Option<LiveFlowLog>> {
        let all = ctx
            .once("ec2:DescribeFlowLogs", || async {
                let out = ctx.aws.ec2.describe_flow_logs().filter(stack_filter(ctx)).send().await.aws_with(
                    "EC2",
                    "DescribeFlowLogs",
                    CODES,
                )?;
                Ok(out.flow_logs().to_vec())
            })
            .await?;
        let Some(live) = pick(ctx, &all, |f| f.tags(), "flow log", ID.name())?.as_ref().map(live_flow_log) else {
            return Ok(None);
        };
        // Delivery failures are not a difference we can fix by recreating: say so. They are
        // expected for a minute or two after the role is created (IAM propagation).
        if live.deliver_status.as_deref() == Some("FAILED") {
            ctx.warn(format!(
                "flow log {} cannot deliver to log group `{}`: {} (check role {}; right after creation this clears within minutes)",
                live.id,
                live.log_group,
                live.deliver_error.as_deref().unwrap_or("no reason given"),
                live.role_arn
            ));
        }
        Ok(Some(live))
    }

    fn diff(&self, _ctx: &Ctx, inputs: &LiveStates, live: &LiveFlowLog) -> Result<Vec<FieldChange>> {
        Ok(diff(&self.desired(inputs)?, live))
    }

    async fn create(&self, ctx: &Ctx, inputs: &LiveStates) -> Result<LiveFlowLog> {
        let desired = self.desired(inputs)?;
        // With a delivery role created a moment ago, EC2 answers 400 InvalidParameter "Unable to
        // assume given IAM role" until IAM has propagated it (ErrorKind::Propagating;
        // hashicorp/terraform-provider-aws#29323).
        let out = retry(
            ctx,
            ID,
            "the flow-log role to be assumable (IAM propagation)",
            &[ErrorKind::Propagating],
            ctx.timeouts.iam_propagation,
            backoff::IAM_PROPAGATION,
            || async {
                ctx.aws
                    .ec2
                    .create_flow_logs()
                    .resource_type(FlowLogsResourceType::Vpc)
                    .resource_ids(&desired.vpc_id)
                    .traffic_type(TrafficType::All)
                    .log_destination_type(LogDestinationType::CloudWatchLogs)
                    .log_group_name(&desired.log_group)
                    .deliver_logs_permission_arn(&desired.role_arn)
                    .max_aggregation_interval(MAX_AGGREGATION_INTERVAL)
                    .tag_specifications(tag_spec(ctx, ID.name(), ResourceType::VpcFlowLog))
                    .send()
                    .await
                    .aws_with("EC2", "CreateFlowLogs", CODES)
            },
        )
        .await?;
        // CreateFlowLogs answers HTTP 200 even when it created nothing: the reason is in
        // `Unsuccessful` (AWS docs, CreateFlowLogs response).
        if let Some(item) = out.unsuccessful().first() {
            let err = item.error();
            return Err(Error::other(format!(
                "EC2 CreateFlowLogs did not create the flow log for {}: {}: {}",
                item.resource_id().unwrap_or(&desired.vpc_id),
                err.and_then(|e| e.code()).unwrap_or("?"),
                err.and_then(|e| e.message()).unwrap_or_default()
            )));
        }
        let id = out
            .flow_log_ids()
            .first()
            .cloned()
            .ok_or_else(|| Error::other("EC2 CreateFlowLogs returned neither a flow log id nor an error"))?;
        Ok(LiveFlowLog {
            id,
            resource_id: desired.vpc_id,
            log_group: desired.log_group,
            role_arn: desired.role_arn,
            traffic_type: "ALL".into(),
            destination_type: "cloud-watch-logs".into(),
            max_aggregation_interval: Some(MAX_AGGREGATION_INTERVAL),
            deliver_status: None,
            deliver_error: None,
        })
    }

    async fn update(
        &self,
        ctx: &Ctx,
        inputs: &LiveStates,
        live: &LiveFlowLog,
        _changes: &[FieldChange],
    ) -> Result<LiveFlowLog> {
        // Immutable: delete then create. A run killed in between finds no flow log and creates
        // it; creating first would fail with FlowLogAlreadyExists when only the role changed.
        ctx.progress(ID, format!("replacing flow log {} (flow logs cannot be modified)", live.id));
        self.delete_by_id(ctx, &live.id).await?;
        self.create(ctx, inputs).await
    }

    async fn delete(&self, ctx: &Ctx, live: &LiveFlowLog) -> Result<()> {
        self.delete_by_id(ctx, &live.id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_support::*;

    fn desired() -> DesiredFlowLog {
        DesiredFlowLog {
            vpc_id: "vpc-1".into(),
            log_group: "/movies-stack/dev/flow-logs".into(),
            role_arn: "arn:aws:iam::123456789012:role/dev-flow-logs".into(),
        }
    }

    fn live() -> LiveFlowLog {
        LiveFlowLog {
            id: "fl-1".into(),
            resource_id: "vpc-1".into(),
            log_group: "/movies-stack/dev/flow-logs".into(),
            role_arn: "arn:aws:iam::123456789012:role/dev-flow-logs".into(),
            traffic_type: "ALL".into(),
            destination_type: "cloud-watch-logs".into(),
            max_aggregation_interval: Some(60),
            deliver_status: Some("SUCCESS".into()),
            deliver_error: None,
        }
    }

    #[test]
    fn in_sync_flow_log_has_no_changes() {
        assert_eq!(diff(&desired(), &live()), vec![]);
        let mut failing = live();
        failing.deliver_status = Some("FAILED".into());
        assert_eq!(diff(&desired(), &failing), vec![], "delivery status is reported, not replaced");
    }

    #[test]
    fn every_difference_is_a_replacement() {
        let cases: Vec<(Edit<LiveFlowLog>, &str)> = vec![
            (|l| l.resource_id = "vpc-2".into(), "resource"),
            (|l| l.log_group = "other".into(), "log_group"),
            (|l| l.role_arn = "arn:aws:iam::123456789012:role/other".into(), "role"),
            (|l| l.traffic_type = "REJECT".into(), "traffic_type"),
            (|l| l.destination_type = "s3".into(), "destination_type"),
            (|l| l.max_aggregation_interval = Some(600), "max_aggregation_interval"),
        ];
        for (mutate, field) in cases {
            let mut l = live();
            mutate(&mut l);
            let changes = diff(&desired(), &l);
            assert_eq!(changes.len(), 1, "{field}");
            assert_eq!(changes[0].field, field);
            assert!(changes[0].replace, "{field}");
        }
    }
}
