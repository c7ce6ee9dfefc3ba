//! The kinds of resource a movies stack is made of, shared by the deployer (`Resource::kind`) and
//! its tests (the inventory, the benchmark's model), so that both match on the same enum and a
//! new kind is a compile error wherever a `match` must learn it, never a display string that
//! silently stops matching.
//!
//! The serialized id (kebab-case, `graph --output json`'s `kind`) is stable; [`Kind::label`] is
//! the text people read.

use std::fmt;

use serde::{Deserialize, Serialize};

/// One kind of resource of the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    Vpc,
    Subnet,
    RouteTable,
    SecurityGroup,
    VpcEndpoint,
    FlowLog,
    IamRole,
    LogGroup,
    Function,
    FunctionAlias,
    Table,
    ApiGatewayAccount,
    RestApi,
    LambdaPermission,
    Stage,
    StageAccessLogs,
    UsagePlan,
    ApiKey,
    Alarm,
    WebAcl,
    WebAclAssociation,
}

impl Kind {
    /// For people: "VPC", "usage plan", ... (`plan`, `status`, `graph`, progress lines).
    pub const fn label(self) -> &'static str {
        match self {
            Kind::Vpc => "VPC",
            Kind::Subnet => "subnet",
            Kind::RouteTable => "route table",
            Kind::SecurityGroup => "security group",
            Kind::VpcEndpoint => "VPC endpoint",
            Kind::FlowLog => "VPC flow log",
            Kind::IamRole => "IAM role",
            Kind::LogGroup => "log group",
            Kind::Function => "Lambda function",
            Kind::FunctionAlias => "Lambda alias",
            Kind::Table => "DynamoDB table",
            Kind::ApiGatewayAccount => "API Gateway account CloudWatch role",
            Kind::RestApi => "REST API",
            Kind::LambdaPermission => "Lambda permission",
            Kind::Stage => "API stage",
            Kind::StageAccessLogs => "API stage access logs",
            Kind::UsagePlan => "usage plan",
            Kind::ApiKey => "API key",
            Kind::Alarm => "CloudWatch alarm",
            Kind::WebAcl => "web ACL",
            Kind::WebAclAssociation => "web ACL association",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.label())
    }
}
