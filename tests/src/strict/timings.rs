//! Every window and rate of the strict model in one place: AWS's shape, shorter for CI.

use std::time::Duration;

/// A token bucket's refill rate and size: `requests` per `per`, at most `burst` saved up.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub requests: u32,
    pub per: Duration,
    pub burst: u32,
}

impl Rate {
    pub const fn new(requests: u32, per: Duration, burst: u32) -> Rate {
        Rate { requests, per, burst }
    }

    /// Tokens per second.
    pub fn per_second(&self) -> f64 {
        f64::from(self.requests) / self.per.as_secs_f64()
    }

    /// The same quota with its period divided by `factor` (more requests per second).
    fn faster(self, factor: u32) -> Rate {
        Rate { per: self.per / factor, ..self }
    }
}

/// API Gateway's control-plane quotas per account, "API Gateway quotas for creating, deploying
/// and managing an API" (docs.aws.amazon.com/apigateway/latest/developerguide/limits.html;
/// fixed, they cannot be raised). Each named operation has its own bucket; everything else shares
/// one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ApiGatewayQuotas {
    /// Regional or private API: 1 per 3 s (edge-optimized: 1 per 30 s; the deployer makes
    /// regional APIs).
    pub create_rest_api: Rate,
    pub delete_rest_api: Rate,
    pub create_deployment: Rate,
    pub update_account: Rate,
    pub update_usage_plan: Rate,
    pub create_api_key: Rate,
    pub delete_api_key: Rate,
    pub create_resource: Rate,
    pub delete_resource: Rate,
    pub get_resources: Rate,
    /// "All other operations (total)": 10 per second, burst 40.
    pub other: Rate,
}

impl ApiGatewayQuotas {
    pub fn aws() -> ApiGatewayQuotas {
        let s = Duration::from_secs;
        ApiGatewayQuotas {
            create_rest_api: Rate::new(1, s(3), 1),
            delete_rest_api: Rate::new(1, s(30), 1),
            create_deployment: Rate::new(1, s(5), 1),
            update_account: Rate::new(1, s(20), 1),
            update_usage_plan: Rate::new(1, s(20), 1),
            create_api_key: Rate::new(5, s(1), 5),
            delete_api_key: Rate::new(5, s(1), 5),
            create_resource: Rate::new(5, s(1), 5),
            delete_resource: Rate::new(5, s(1), 5),
            get_resources: Rate::new(5, s(2), 5),
            other: Rate::new(10, s(1), 40),
        }
    }

    /// The bucket of an operation: its own name, or `None` for the shared one.
    pub fn of(&self, operation: &str) -> (Option<&'static str>, Rate) {
        match operation {
            "CreateRestApi" => (Some("CreateRestApi"), self.create_rest_api),
            "DeleteRestApi" => (Some("DeleteRestApi"), self.delete_rest_api),
            "CreateDeployment" => (Some("CreateDeployment"), self.create_deployment),
            "UpdateAccount" => (Some("UpdateAccount"), self.update_account),
            "UpdateUsagePlan" => (Some("UpdateUsagePlan"), self.update_usage_plan),
            "CreateApiKey" => (Some("CreateApiKey"), self.create_api_key),
            "DeleteApiKey" => (Some("DeleteApiKey"), self.delete_api_key),
            "CreateResource" => (Some("CreateResource"), self.create_resource),
            "DeleteResource" => (Some("DeleteResource"), self.delete_resource),
            "GetResources" => (Some("GetResources"), self.get_resources),
            _ => (None, self.other),
        }
    }

    fn faster(self, factor: u32) -> ApiGatewayQuotas {
        ApiGatewayQuotas {
            create_rest_api: self.create_rest_api.faster(factor),
            delete_rest_api: self.delete_rest_api.faster(factor),
            create_deployment: self.create_deployment.faster(factor),
            update_account: self.update_account.faster(factor),
            update_usage_plan: self.update_usage_plan.faster(factor),
            create_api_key: self.create_api_key.faster(factor),
            delete_api_key: self.delete_api_key.faster(factor),
            create_resource: self.create_resource.faster(factor),
            delete_resource: self.delete_resource.faster(factor),
            get_resources: self.get_resources.faster(factor),
            other: self.other.faster(factor),
        }
    }
}

/// How long each window of the model lasts. Windows are per resource and start at the call
/// that triggers them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timings {
    /// After CreateRole / PutRolePolicy / AttachRolePolicy, consumers of the role fail.
    pub iam_propagation: Duration,
    /// After CreateFunction the function is `Pending`.
    pub lambda_pending: Duration,
    /// After UpdateFunctionCode / UpdateFunctionConfiguration, `LastUpdateStatus` is `InProgress`.
    pub lambda_update: Duration,
    /// After CreateTable the table is `CREATING`.
    pub table_creating: Duration,
    /// After CreateTable, UpdateContinuousBackups answers "Backups are being enabled".
    pub pitr_unavailable: Duration,
    /// After CreateSecurityGroup / CreateSubnet, EC2 calls naming the new id answer NotFound.
    pub ec2_not_found: Duration,
    /// After DeleteFunction (or emptying its VPC config), the function's ENIs stay in use.
    pub eni_linger: Duration,
    /// After CreateWebACL, AssociateWebACL with it answers WAFUnavailableEntityException.
    pub waf_unavailable: Duration,
    /// How long API Gateway takes to apply a write to a REST API's resources, methods or
    /// integrations at least (another write to the same API meanwhile answers ConflictException).
    /// No documented figure: long enough that writes sent at once meet, as they do on AWS.
    pub apigateway_write: Duration,
    pub apigateway: ApiGatewayQuotas,
}

/// How much faster than AWS's [`Timings::fast`] runs API Gateway's quotas; the deployers of an
/// [`crate::Account`] pace themselves to match (`MOVIES_STACK_EMULATOR_QUOTA_SPEEDUP`).
pub const FAST_QUOTA_SPEEDUP: u32 = 10;

impl Timings {
    /// The default: AWS's shape, short enough for CI. API Gateway's quotas are ten times
    /// AWS's rates (DeleteRestApi 1 per 3 s, UpdateAccount 1 per 2 s, ...).
    pub fn fast() -> Timings {
        let ms = Duration::from_millis;
        Timings {
            iam_propagation: ms(2000),
            lambda_pending: ms(2000),
            lambda_update: ms(1000),
            table_creating: ms(1000),
            pitr_unavailable: ms(2000),
            ec2_not_found: ms(500),
            eni_linger: ms(3000),
            waf_unavailable: ms(1500),
            apigateway_write: ms(50),
            apigateway: ApiGatewayQuotas::aws().faster(FAST_QUOTA_SPEEDUP),
        }
    }

    /// No waits at all: every window is zero, API Gateway's quotas are AWS's (the deployer paces
    /// itself by them, so they cost nothing unless it overspends). For counting round trips
    /// (benchmarks), with AWS's waits measured apart ([`Timings::aws_like`]); every refusal and
    /// validation of the model stays on.
    pub fn instant() -> Timings {
        Timings {
            iam_propagation: Duration::ZERO,
            lambda_pending: Duration::ZERO,
            lambda_update: Duration::ZERO,
            table_creating: Duration::ZERO,
            pitr_unavailable: Duration::ZERO,
            ec2_not_found: Duration::ZERO,
            eni_linger: Duration::ZERO,
            waf_unavailable: Duration::ZERO,
            apigateway_write: Duration::ZERO,
            apigateway: ApiGatewayQuotas::aws(),
        }
    }

    /// Closer to what AWS does (for benchmarks): IAM 8 s, function Pending 60 s, table creation
    /// 10 s, PITR 10 s, a new web ACL 10 s, API Gateway's real quotas. ENIs linger far longer on
    /// AWS (P99 ~35 min, terraform-provider-aws `deleteLingeringLambdaENIs`); 2 minutes keeps a
    /// benchmark bounded.
    pub fn aws_like() -> Timings {
        let s = Duration::from_secs;
        Timings {
            iam_propagation: s(8),
            lambda_pending: s(60),
            lambda_update: s(5),
            table_creating: s(10),
            pitr_unavailable: s(10),
            ec2_not_found: s(2),
            eni_linger: s(120),
            // "from a few seconds to a number of minutes" (WAFV2 API reference, AssociateWebACL).
            waf_unavailable: s(10),
            apigateway_write: Duration::from_millis(200),
            apigateway: ApiGatewayQuotas::aws(),
        }
    }
}

impl Default for Timings {
    fn default() -> Timings {
        Timings::fast()
    }
}
