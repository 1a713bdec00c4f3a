//! Mapping of AWS SDK errors to the portable [`ErrorKind`]s.
//!
//! Owns the classification table (AWS error code -> kind) and [`AwsApiError`], the error kept in
//! the source chain of every [`ProviderError`] this backend returns, so that the AWS code and
//! message stay reachable through `source()` without an SDK type in the public API.

use std::fmt;

use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use aws_smithy_types::error::metadata::ProvideErrorMetadata;
use konstacks_core::error::{ErrorKind, ProviderError};

/// What AWS answered, as kept in the source chain of a [`ProviderError`].
///
/// `Display` shows the operation, the AWS error code and message (never a credential); the SDK's
/// own error is the `source()`.
#[derive(Debug)]
pub struct AwsApiError {
    operation: &'static str,
    code: Option<String>,
    message: Option<String>,
    status: Option<u16>,
    source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

impl AwsApiError {
    /// The API operation that failed (`RunInstances`).
    pub fn operation(&self) -> &str {
        self.operation
    }

    /// The AWS error code (`InvalidVpcID.NotFound`), when the service answered with one.
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The AWS error message, when the service answered with one.
    pub fn aws_message(&self) -> Option<&str> {
        self.message.as_deref()
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }
}

impl fmt::Display for AwsApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AWS {} failed", self.operation)?;
        if let Some(status) = self.status {
            write!(f, " with HTTP {status}")?;
        }
        match (&self.code, &self.message) {
            (Some(c), Some(m)) => write!(f, ": {c}: {m}"),
            (Some(c), None) => write!(f, ": {c}"),
            (None, Some(m)) => write!(f, ": {m}"),
            (None, None) => Ok(()),
        }
    }
}

impl std::error::Error for AwsApiError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

const THROTTLING: &[&str] = &[
    "RequestLimitExceeded",
    "Throttling",
    "ThrottlingException",
    "ThrottledException",
    "RequestThrottled",
    "RequestThrottledException",
    "TooManyRequestsException",
    "ProvisionedThroughputExceededException",
    "SlowDown",
    "PriorRequestNotComplete",
    "EC2ThrottledException",
    "BandwidthLimitExceeded",
];

const PERMISSION: &[&str] = &[
    "AuthFailure",
    "UnauthorizedOperation",
    "AccessDenied",
    "AccessDeniedException",
    "InvalidClientTokenId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "ExpiredTokenException",
    "UnrecognizedClientException",
    "OptInRequired",
    "Blocked",
    "PendingVerification",
];

const CONFLICT: &[&str] = &[
    "DependencyViolation",
    "InvalidDBInstanceState",
    "InvalidDBInstanceStateFault",
    "InvalidDBSubnetGroupStateFault",
    "InvalidDBSubnetStateFault",
    "InvalidDBSnapshotState",
    "IncorrectInstanceState",
    "IncorrectState",
    "InvalidState",
    "InvalidSubnet.Conflict",
    "Resource.AlreadyAssociated",
    "IdempotentParameterMismatch",
    "InvalidVpcState",
    "OperationNotPermitted",
    // S3: a bucket that holds objects; a conflicting operation on the bucket still running.
    "BucketNotEmpty",
    "OperationAborted",
    // ElastiCache: a replication group busy being created, modified or deleted.
    "InvalidReplicationGroupState",
    "InvalidReplicationGroupStateFault",
    "InvalidCacheClusterState",
    "InvalidCacheClusterStateFault",
    "CacheSubnetGroupInUse",
    // Route 53 and ACM.
    "HostedZoneNotEmpty",
    "ResourceInUseException",
    "RequestInProgressException",
    "ConcurrentModification",
    "InvalidStateException",
    "ResourceInUse",
    "PriorityInUse",
];

/// S3 and ElastiCache codes that do not follow the `...NotFound` / `...AlreadyExists` patterns.
const NOT_FOUND: &[&str] = &["NoSuchBucket", "ServerSideEncryptionConfigurationNotFoundError"];
const ALREADY_EXISTS: &[&str] = &["BucketAlreadyExists", "BucketAlreadyOwnedByYou"];

const TRANSIENT: &[&str] = &[
    "InternalError",
    "InternalFailure",
    "InternalServerError",
    "ServiceUnavailable",
    "ServiceUnavailableException",
    "Unavailable",
    "RequestTimeout",
    "RequestTimeoutException",
    "InsufficientInstanceCapacity",
    "InsufficientDBInstanceCapacity",
    "InsufficientCapacity",
    "InsufficientAddressCapacity",
    "InsufficientHostCapacity",
    "HealthUnavailable",
    "InsufficientCacheClusterCapacity",
    "InsufficientCacheClusterCapacityFault",
];

/// The portable kind of an AWS error code and HTTP status.
pub(crate) fn classify(code: Option<&str>, status: Option<u16>) -> ErrorKind {
    let Some(code) = code else {
        return match status {
            Some(429) => ErrorKind::Throttled,
            Some(403) => ErrorKind::PermissionDenied,
            Some(404) => ErrorKind::NotFound,
            Some(s) if s >= 500 => ErrorKind::Transient,
            _ => ErrorKind::Other,
        };
    };
    if THROTTLING.contains(&code) {
        return ErrorKind::Throttled;
    }
    if PERMISSION.contains(&code) {
        return ErrorKind::PermissionDenied;
    }
    if CONFLICT.contains(&code) {
        return ErrorKind::Conflict;
    }
    if NOT_FOUND.contains(&code) || code.starts_with("NoSuch") {
        return ErrorKind::NotFound;
    }
    if ALREADY_EXISTS.contains(&code) {
        return ErrorKind::AlreadyExists;
    }
    if TRANSIENT.contains(&code) {
        return ErrorKind::Transient;
    }
    if matches!(code, "NoSuchHostedZone" | "NoSuchChange" | "ResourceNotFoundException" | "NoSuchDelegationSet") {
        return ErrorKind::NotFound;
    }
    if matches!(code, "HostedZoneAlreadyExists" | "ConflictingDomainExists" | "InvalidChangeBatch.AlreadyExists") {
        return ErrorKind::AlreadyExists;
    }
    if matches!(code, "TooManyHostedZones" | "TooManyTagsException" | "LimitExceededException") {
        return ErrorKind::QuotaExceeded;
    }
    if code.ends_with(".NotFound") || code.ends_with("NotFound") || code.ends_with("NotFoundFault") {
        return ErrorKind::NotFound;
    }
    if code.ends_with(".Duplicate") || code.contains("AlreadyExists") || code.starts_with("Duplicate") {
        return ErrorKind::AlreadyExists;
    }
    if code.contains("LimitExceeded") || code.contains("QuotaExceeded") || code.starts_with("TooMany") {
        return ErrorKind::QuotaExceeded;
    }
    if code.starts_with("InvalidParameter")
        || code.starts_with("MissingParameter")
        || code.ends_with(".Malformed")
        || code.ends_with(".Range")
        || code.starts_with("ValidationError")
        || code.starts_with("Invalid")
        || code == "Unsupported"
        || code.ends_with("NotSupported")
        || code.ends_with("NotSupportedFault")
    {
        return ErrorKind::InvalidSpec;
    }
    match status {
        Some(s) if s >= 500 => ErrorKind::Transient,
        _ => ErrorKind::Other,
    }
}

/// Convert an SDK error into a [`ProviderError`] whose message says what failed (`what`) and
/// what to do next; the AWS code and message go into the source chain.
pub(crate) fn sdk_error<E>(operation: &'static str, what: &str, e: SdkError<E, HttpResponse>) -> ProviderError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let (kind, code, message, status) = match &e {
        SdkError::ServiceError(se) => {
            let status = se.raw().status().as_u16();
            let code = se.err().code().map(str::to_string);
            let message = se.err().message().map(str::to_string);
            (classify(code.as_deref(), Some(status)), code, message, Some(status))
        }
        SdkError::TimeoutError(_) => (ErrorKind::Transient, None, Some("the request timed out".into()), None),
        SdkError::DispatchFailure(d) => {
            let kind = if d.is_io() || d.is_timeout() { ErrorKind::Transient } else { ErrorKind::Other };
            (kind, None, Some("the request could not be sent (connection, endpoint or credentials)".into()), None)
        }
        SdkError::ResponseError(r) => {
            let status = r.raw().status().as_u16();
            (ErrorKind::Transient, None, Some("the answer could not be read".into()), Some(status))
        }
        SdkError::ConstructionFailure(_) => {
            (ErrorKind::Other, None, Some("the request could not be built".into()), None)
        }
        _ => (ErrorKind::Other, None, None, None),
    };
    let hint = match kind {
        ErrorKind::Throttled => "AWS is throttling requests; retry later",
        ErrorKind::Transient => "a temporary AWS or network failure; retry",
        ErrorKind::NotFound => "it does not exist (or is not visible yet)",
        ErrorKind::AlreadyExists => "it already exists; adopt or rename it",
        ErrorKind::Conflict => "the resource is in use or in the wrong state; wait or remove what depends on it",
        ErrorKind::InvalidSpec => "AWS rejected the specification; fix the stack",
        ErrorKind::PermissionDenied => "the credentials lack a permission; check the IAM policy and the region",
        ErrorKind::QuotaExceeded => "an account quota is reached; raise it in Service Quotas or remove resources",
        _ => "see the AWS error below",
    };
    let api = AwsApiError { operation, code, message, status, source: Box::new(e) };
    ProviderError::new(kind, format!("{what}: {hint}")).with_source(api)
}

/// The AWS error code behind a [`ProviderError`] made by [`sdk_error`], if any.
pub(crate) fn aws_code(e: &ProviderError) -> Option<&str> {
    let src = std::error::Error::source(e)?;
    src.downcast_ref::<AwsApiError>().and_then(AwsApiError::code)
}

/// A provider error raised before any AWS call (bad input).
pub(crate) fn invalid(message: impl Into<String>) -> ProviderError {
    ProviderError::new(ErrorKind::InvalidSpec, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_map_to_kinds() {
        let k = |c: &str| classify(Some(c), Some(400));
        assert_eq!(k("RequestLimitExceeded"), ErrorKind::Throttled);
        assert_eq!(k("Throttling"), ErrorKind::Throttled);
        assert_eq!(k("ThrottlingException"), ErrorKind::Throttled);
        assert_eq!(k("InvalidVpcID.NotFound"), ErrorKind::NotFound);
        assert_eq!(k("DBInstanceNotFound"), ErrorKind::NotFound);
        assert_eq!(k("DBSubnetGroupNotFoundFault"), ErrorKind::NotFound);
        assert_eq!(k("DependencyViolation"), ErrorKind::Conflict);
        assert_eq!(k("InvalidDBInstanceState"), ErrorKind::Conflict);
        assert_eq!(k("InvalidParameterValue"), ErrorKind::InvalidSpec);
        assert_eq!(k("InvalidParameterCombination"), ErrorKind::InvalidSpec);
        assert_eq!(k("InvalidSubnet.Range"), ErrorKind::InvalidSpec);
        assert_eq!(k("AuthFailure"), ErrorKind::PermissionDenied);
        assert_eq!(k("UnauthorizedOperation"), ErrorKind::PermissionDenied);
        assert_eq!(k("VpcLimitExceeded"), ErrorKind::QuotaExceeded);
        assert_eq!(k("InstanceQuotaExceeded"), ErrorKind::QuotaExceeded);
        assert_eq!(k("InvalidGroup.Duplicate"), ErrorKind::AlreadyExists);
        assert_eq!(k("DBInstanceAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k("InsufficientInstanceCapacity"), ErrorKind::Transient);
        assert_eq!(k("BucketAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k("BucketAlreadyOwnedByYou"), ErrorKind::AlreadyExists);
        assert_eq!(k("NoSuchBucket"), ErrorKind::NotFound);
        assert_eq!(k("NoSuchLifecycleConfiguration"), ErrorKind::NotFound);
        assert_eq!(k("BucketNotEmpty"), ErrorKind::Conflict);
        assert_eq!(k("InvalidBucketName"), ErrorKind::InvalidSpec);
        assert_eq!(k("OperationAborted"), ErrorKind::Conflict);
        assert_eq!(k("ReplicationGroupNotFoundFault"), ErrorKind::NotFound);
        assert_eq!(k("ReplicationGroupAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k("CacheSubnetGroupNotFoundFault"), ErrorKind::NotFound);
        assert_eq!(k("CacheSubnetGroupAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k("InvalidReplicationGroupState"), ErrorKind::Conflict);
        assert_eq!(k("InsufficientCacheClusterCapacity"), ErrorKind::Transient);
        assert_eq!(k("NoSuchHostedZone"), ErrorKind::NotFound);
        assert_eq!(k("ResourceNotFoundException"), ErrorKind::NotFound);
        assert_eq!(k("HostedZoneNotEmpty"), ErrorKind::Conflict);
        assert_eq!(k("ResourceInUseException"), ErrorKind::Conflict);
        assert_eq!(k("InvalidChangeBatch"), ErrorKind::InvalidSpec);
        assert_eq!(k("PriorRequestNotComplete"), ErrorKind::Throttled);
        assert_eq!(k("HostedZoneAlreadyExists"), ErrorKind::AlreadyExists);
        assert_eq!(k("LimitExceededException"), ErrorKind::QuotaExceeded);
        assert_eq!(k("TooManyHostedZones"), ErrorKind::QuotaExceeded);
        // Elastic Load Balancing v2.
        assert_eq!(k("LoadBalancerNotFound"), ErrorKind::NotFound);
        assert_eq!(k("TargetGroupNotFound"), ErrorKind::NotFound);
        assert_eq!(k("CertificateNotFound"), ErrorKind::NotFound);
        assert_eq!(k("DuplicateLoadBalancerName"), ErrorKind::AlreadyExists);
        assert_eq!(k("DuplicateTargetGroupName"), ErrorKind::AlreadyExists);
        assert_eq!(k("TooManyTargetGroups"), ErrorKind::QuotaExceeded);
        assert_eq!(k("TooManyRequestsException"), ErrorKind::Throttled);
        assert_eq!(k("ResourceInUse"), ErrorKind::Conflict);
        assert_eq!(k("PriorityInUse"), ErrorKind::Conflict);
        assert_eq!(k("InvalidConfigurationRequest"), ErrorKind::InvalidSpec);
        assert_eq!(k("Throttling"), ErrorKind::Throttled);
        assert_eq!(classify(Some("Weird"), Some(503)), ErrorKind::Transient);
        assert_eq!(classify(None, Some(500)), ErrorKind::Transient);
        assert_eq!(classify(None, Some(429)), ErrorKind::Throttled);
    }
}
