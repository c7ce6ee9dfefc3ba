//! The error type of the whole tool, its classification (what the retry policy reads) and the
//! process exit codes.

use std::fmt;
use std::time::Duration;

/// Documented exit codes (docs/commands.md "Exit codes").
pub mod exit {
    pub const OK: i32 = 0;
    /// A failure while talking to AWS, or any runtime failure.
    pub const FAILURE: i32 = 1;
    /// `plan`: changes pending; `status`: something missing or drifted.
    pub const CHANGES: i32 = 2;
    /// Invalid input: config file, flags, credentials, region. No AWS call was made for it
    /// unless the input could only be checked by AWS (credentials).
    pub const INPUT: i32 = 3;
    /// Another run holds the stack's lock, or this run lost it (it stopped changing the stack).
    pub const LOCKED: i32 = 4;
    /// `smoke` (or `up --smoke`): the API answered, but a step did not match what it must answer.
    pub const SMOKE_FAILED: i32 = 5;
    /// Interrupted by Ctrl-C.
    pub const INTERRUPTED: i32 = 130;
}

/// What kind of failure an AWS error is. Retry policy reads this, never raw strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    NotFound,
    AlreadyExists,
    /// The resource is busy (update in progress, dependency still attached).
    Conflict,
    Throttled,
    /// AWS is eventually consistent here: IAM role not yet assumable, backups being enabled, ...
    Propagating,
    /// A quota: never retried.
    Quota,
    /// Credentials or permissions.
    Auth,
    Fatal,
}

/// One failed AWS call, with everything a user needs to act on it.
#[derive(Debug, Clone)]
pub struct AwsError {
    pub service: &'static str,
    pub operation: &'static str,
    pub code: Option<String>,
    pub message: String,
    pub kind: ErrorKind,
    /// HTTP status, when there was a response (kept for `-v` debugging output).
    pub status: Option<u16>,
}

impl fmt::Display for AwsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} failed", self.service, self.operation)?;
        if let Some(code) = &self.code {
            write!(f, ": {code}")?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let (None, Some(status)) = (&self.code, self.status) {
            write!(f, " (HTTP {status})")?;
        }
        Ok(())
    }
}

impl std::error::Error for AwsError {}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: config, flags, credentials, region. Exit code 3.
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Aws(#[from] AwsError),
    /// An AWS error while working on one resource of the stack.
    #[error("{resource}: {source}")]
    Resource { resource: String, source: Box<Error> },
    #[error("timed out after {}s waiting for {what}", after.as_secs())]
    Timeout { what: String, after: Duration },
    /// Ctrl-C arrived while waiting. Exit code 130.
    #[error("interrupted while waiting for {0}")]
    Interrupted(String),
    /// Lenient observation (`plan`, `status`, `down`): a value needed for a call belongs to a
    /// dependency that does not exist, so the dependent cannot exist either.
    #[error("`{resource}` does not exist")]
    MissingDependency { resource: String },
    /// The stack's lock is held by another run. Exit code 4.
    #[error("{0}")]
    Locked(String),
    #[error("{0}")]
    Other(String),
}

impl Error {
    pub fn other(msg: impl Into<String>) -> Self {
        Error::Other(msg.into())
    }

    pub fn input(msg: impl Into<String>) -> Self {
        Error::Input(msg.into())
    }

    pub fn for_resource(self, resource: impl fmt::Display) -> Self {
        match self {
            Error::Resource { .. } | Error::Input(_) | Error::Interrupted(_) | Error::MissingDependency { .. } => self,
            other => Error::Resource { resource: resource.to_string(), source: Box::new(other) },
        }
    }

    /// The AWS error at the root, if any.
    pub fn aws(&self) -> Option<&AwsError> {
        match self {
            Error::Aws(e) => Some(e),
            Error::Resource { source, .. } => source.aws(),
            _ => None,
        }
    }

    pub fn kind(&self) -> Option<ErrorKind> {
        self.aws().map(|e| e.kind)
    }

    pub fn is_interrupted(&self) -> bool {
        matches!(self, Error::Interrupted(_))
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == Some(ErrorKind::NotFound)
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) => exit::INPUT,
            Error::Locked(_) => exit::LOCKED,
            Error::Interrupted(_) => exit::INTERRUPTED,
            Error::Resource { source, .. } => source.exit_code(),
            Error::Aws(e) if e.kind == ErrorKind::Auth => exit::INPUT,
            _ => exit::FAILURE,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Ok(()) for success and for "already gone": the common ending of a delete (deleting
/// something that does not exist succeeds).
pub fn gone_is_ok<T>(res: Result<T>) -> Result<()> {
    match res {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(e),
    }
}

/// Messages (lower case) of errors that clear by themselves once AWS has propagated a change
/// made a moment ago: a new IAM role or policy, new backups, EC2 capacity for ENIs.
const PROPAGATING_MESSAGES: [&str; 8] = [
    // Lambda CreateFunction / UpdateFunctionConfiguration with a fresh role. terraform-provider-aws
    // `retryFunctionOp` (internal/service/lambda/function.go) retries this whole family: the
    // "does not have permissions" prefix covers "...to call CreateNetworkInterface on EC2" (VPC)
    // and "...to call PutTraceSegments on XRAY" (TracingConfig Active).
    "cannot be assumed by lambda",
    "the provided execution role does not have permissions",
    "throttled by ec2",
    // Environment variables are encrypted with a grant made for the role (KMS CreateGrant).
    "kms key is invalid for creategrant",
    // EC2 CreateFlowLogs with a fresh delivery role: 400 InvalidParameter "Unable to assume given
    // IAM role: 'arn:...'" (hashicorp/terraform-provider-aws#29323).
    "unable to assume given iam role",
    // API Gateway UpdateAccount with a fresh CloudWatch role (terraform's aws_api_gateway_account
    // retries both for 2 minutes).
    "role arn does not have required permissions",
    "could not successfully write to cloudwatch logs",
    // DynamoDB UpdateContinuousBackups right after CreateTable (terraform `updatePITR`).
    "backups are being enabled",
];

/// Error codes that only one kind's calls meet, with what each means there. The kind's module
/// lists them (its `CODES`) and classifies its own calls with them ([`classify_with`], through
/// `AwsResultExt::aws_with`); this file keeps the codes every service shares.
pub type Codes = [(&'static str, ErrorKind)];

/// Classify an AWS error from its code, message and HTTP status, as a call of no kind with codes
/// of its own (the SDK calls go through `AwsResultExt`, which calls [`classify_with`]).
#[cfg(test)]
pub fn classify(code: Option<&str>, message: &str, status: Option<u16>) -> ErrorKind {
    classify_with(&[], code, message, status)
}

/// [`classify`], with the codes one kind meets (`codes`) taken before the generic ones.
pub fn classify_with(codes: &Codes, code: Option<&str>, message: &str, status: Option<u16>) -> ErrorKind {
    let code = code.unwrap_or("");
    let msg = message.to_ascii_lowercase();
    // Order matters: the same code (e.g. InvalidParameterValueException) can mean propagation.
    if PROPAGATING_MESSAGES.iter().any(|m| msg.contains(m)) {
        return ErrorKind::Propagating;
    }
    if let Some((_, kind)) = codes.iter().find(|(c, _)| *c == code) {
        return *kind;
    }
    match code {
        "TooManyRequestsException"
        | "ThrottlingException"
        | "Throttling"
        | "RequestLimitExceeded"
        | "ProvisionedThroughputExceededException"
        | "ThrottledException"
        | "RequestThrottledException"
        | "EC2ThrottledException"
        | "SlowDown" => {
            return ErrorKind::Throttled;
        }
        "LimitExceededException"
        | "ServiceQuotaExceededException" => return ErrorKind::Quota,
        "ResourceAlreadyExistsException"
        | "EntityAlreadyExists"
        | "RouteAlreadyExists"
        // DynamoDB: the stack's table and the lock table are both created by CreateTable.
        | "TableAlreadyExistsException" => return ErrorKind::AlreadyExists,
        "ResourceConflictException"
        | "DependencyViolation"
        | "ResourceInUseException"
        | "DeleteConflict"
        | "ConcurrentModificationException"
        | "IncorrectState" => {
            if msg.contains("already exist") {
                return ErrorKind::AlreadyExists;
            }
            return ErrorKind::Conflict;
        }
        "ConflictException" => {
            return if msg.contains("already exist") { ErrorKind::AlreadyExists } else { ErrorKind::Conflict };
        }
        "UnrecognizedClientException"
        | "InvalidClientTokenId"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "AuthFailure"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "InvalidSignatureException"
        | "MissingAuthenticationToken" => return ErrorKind::Auth,
        _ => {}
    }
    if code.ends_with("NotFound")
        || code.ends_with("NotFoundException")
        || code.ends_with(".NotFound")
        || code == "NoSuchEntity"
        || (code == "ValidationError" && msg.contains("does not exist"))
        || status == Some(404)
    {
        return ErrorKind::NotFound;
    }
    if status == Some(429) {
        return ErrorKind::Throttled;
    }
    ErrorKind::Fatal
}

/// `Display` of an error and all its sources, joined with ": " (the SDK's own Display is only
/// "service error" / "dispatch failure", useless on its own).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let next = c.to_string();
        if !s.ends_with(&next) {
            s.push_str(": ");
            s.push_str(&next);
        }
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_the_errors_the_stack_must_survive() {
        let cases: &[(&str, &str, Option<u16>, ErrorKind)] = &[
            (
                "InvalidParameterValueException",
                "The role defined for the function cannot be assumed by Lambda.",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "InvalidParameterValueException",
                "The provided execution role does not have permissions to call CreateNetworkInterface on EC2",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "InvalidParameterValueException",
                "The provided execution role does not have permissions to call PutTraceSegments on XRAY",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "InvalidParameterValueException",
                "Lambda was unable to configure access to your environment variables because the KMS key is invalid \
                 for CreateGrant. Please check your KMS key settings.",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "InvalidParameterValueException",
                "Lambda was unable to configure your environment: ENI creation was throttled by EC2",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "InvalidParameter",
                "Unable to assume given IAM role: 'arn:aws:iam::123456789012:role/s-flow-logs'",
                Some(400),
                ErrorKind::Propagating,
            ),
            (
                "BadRequestException",
                "The role ARN does not have required permissions set to API Gateway",
                Some(400),
                ErrorKind::Propagating,
            ),
            ("InvalidParameterValueException", "Runtime cobol is not supported", Some(400), ErrorKind::Fatal),
            ("TooManyRequestsException", "Too Many Requests", Some(429), ErrorKind::Throttled),
            ("ThrottlingException", "Rate exceeded", Some(400), ErrorKind::Throttled),
            ("LimitExceededException", "too many usage plans", Some(429), ErrorKind::Quota),
            ("DependencyViolation", "resource sg-1 has a dependent object", Some(400), ErrorKind::Conflict),
            ("ResourceConflictException", "An update is in progress for resource", Some(409), ErrorKind::Conflict),
            ("ResourceConflictException", "Function already exist: f", Some(409), ErrorKind::AlreadyExists),
            ("ResourceNotFoundException", "Function not found", Some(404), ErrorKind::NotFound),
            ("InvalidVpcID.NotFound", "The vpc ID 'vpc-1' does not exist", Some(400), ErrorKind::NotFound),
            ("NoSuchEntity", "Role x not found", Some(404), ErrorKind::NotFound),
            ("ValidationError", "Stack for x does not exist", Some(400), ErrorKind::NotFound),
            (
                "InvalidClientTokenId",
                "The security token included in the request is invalid",
                Some(403),
                ErrorKind::Auth,
            ),
            ("BadRequestException", "Invalid API Stage", Some(400), ErrorKind::Fatal),
        ];
        for (code, msg, status, want) in cases {
            assert_eq!(classify(Some(code), msg, *status), *want, "{code}: {msg}");
        }
    }

    #[test]
    fn a_kinds_own_codes_come_after_the_propagation_messages_and_before_the_generic_ones() {
        const CODES: &Codes = &[("OddNotFoundException", ErrorKind::Conflict), ("Odd", ErrorKind::Quota)];
        assert_eq!(classify_with(CODES, Some("Odd"), "no", Some(400)), ErrorKind::Quota);
        assert_eq!(classify(Some("Odd"), "no", Some(400)), ErrorKind::Fatal, "elsewhere, an unknown code");
        assert_eq!(classify_with(CODES, Some("OddNotFoundException"), "x", Some(404)), ErrorKind::Conflict);
        let propagating = "Unable to assume given IAM role: 'arn:aws:iam::1:role/r'";
        assert_eq!(classify_with(CODES, Some("Odd"), propagating, Some(400)), ErrorKind::Propagating);
    }

    #[test]
    fn input_errors_exit_3_and_aws_errors_exit_1() {
        assert_eq!(Error::input("bad").exit_code(), exit::INPUT);
        let aws = AwsError {
            service: "EC2",
            operation: "CreateVpc",
            code: Some("VpcLimitExceeded".into()),
            message: "The maximum number of VPCs has been reached.".into(),
            kind: ErrorKind::Quota,
            status: Some(400),
        };
        let e = Error::from(aws).for_resource("vpc");
        assert_eq!(e.exit_code(), exit::FAILURE);
        assert_eq!(
            e.to_string(),
            "vpc: EC2 CreateVpc failed: VpcLimitExceeded: The maximum number of VPCs has been reached."
        );
    }
}
