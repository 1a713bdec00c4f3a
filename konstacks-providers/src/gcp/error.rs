//! Google API errors and failed operations as portable [`ErrorKind`]s.
//!
//! A call can fail twice over on GCP: the HTTP request itself (Google's error envelope, which
//! the client turns into a [`google_cloud_gax::error::Error`] with the status and the
//! `errors[].reason` of the envelope), or the long-running operation it started, which ends
//! `DONE` with `error.errors[].code` (`QUOTA_EXCEEDED`, `RESOURCE_ALREADY_EXISTS`, ...). Both map
//! to the same kinds so that the engine retries, adopts or reports the same way on every cloud.

use google_cloud_gax::error::rpc::{Code, StatusDetails};
use google_cloud_gax::error::Error as GaxError;
use konstacks_core::error::{ErrorKind, ProviderError};

/// The kind of an error answered by a Google API (`reasons` are the envelope's
/// `errors[].reason`, lowercase camel case: `notFound`, `alreadyExists`, `rateLimitExceeded`).
pub(crate) fn kind_of(http: Option<u16>, code: Option<Code>, reasons: &[String]) -> ErrorKind {
    let has = |r: &str| reasons.iter().any(|x| x.eq_ignore_ascii_case(r));
    if has("rateLimitExceeded") || has("userRateLimitExceeded") || has("RATE_LIMIT_EXCEEDED") {
        return ErrorKind::Throttled;
    }
    if has("quotaExceeded") || has("QUOTA_EXCEEDED") {
        return ErrorKind::QuotaExceeded;
    }
    if has("resourceInUseByAnotherResource") || has("resourceNotReady") || has("conditionNotMet") {
        return ErrorKind::Conflict;
    }
    if has("alreadyExists") || has("instanceAlreadyExists") {
        return ErrorKind::AlreadyExists;
    }
    if has("notFound") || has("instanceDoesNotExist") {
        return ErrorKind::NotFound;
    }
    match http {
        Some(404) => return ErrorKind::NotFound,
        Some(409) => return ErrorKind::AlreadyExists,
        Some(412) => return ErrorKind::Conflict,
        Some(429) => return ErrorKind::Throttled,
        Some(401 | 403) => return ErrorKind::PermissionDenied,
        Some(400 | 422) => return ErrorKind::InvalidSpec,
        Some(500..=599) => return ErrorKind::Transient,
        _ => {}
    }
    match code {
        Some(Code::NotFound) => ErrorKind::NotFound,
        Some(Code::AlreadyExists) => ErrorKind::AlreadyExists,
        Some(Code::ResourceExhausted) => ErrorKind::Throttled,
        Some(Code::PermissionDenied | Code::Unauthenticated) => ErrorKind::PermissionDenied,
        Some(Code::InvalidArgument | Code::OutOfRange) => ErrorKind::InvalidSpec,
        Some(Code::FailedPrecondition | Code::Aborted) => ErrorKind::Conflict,
        Some(Code::Unavailable | Code::DeadlineExceeded | Code::Internal) => ErrorKind::Transient,
        Some(Code::Cancelled) => ErrorKind::Cancelled,
        _ => ErrorKind::Other,
    }
}

/// The reasons in a status's details.
fn reasons(e: &GaxError) -> Vec<String> {
    e.status()
        .map(|s| {
            s.details
                .iter()
                .filter_map(|d| match d {
                    StatusDetails::ErrorInfo(info) => Some(info.reason.clone()),
                    _ => None,
                })
                .filter(|r| !r.is_empty())
                .collect()
        })
        .unwrap_or_default()
}

/// A failed API call while doing `what`.
pub(crate) fn api(what: impl std::fmt::Display, e: GaxError) -> ProviderError {
    let reasons = reasons(&e);
    let kind = if e.is_timeout() || e.is_io() || e.is_connect() || e.is_transport() {
        ErrorKind::Transient
    } else if e.is_authentication() {
        ErrorKind::PermissionDenied
    } else {
        kind_of(e.http_status_code(), e.status().map(|s| s.code), &reasons)
    };
    let detail = match e.status() {
        Some(s) if !s.message.is_empty() => s.message.clone(),
        _ => e.to_string(),
    };
    let status = e.http_status_code().map(|c| format!("HTTP {c}")).unwrap_or_else(|| "no HTTP answer".into());
    let reason = if reasons.is_empty() { String::new() } else { format!(", {}", reasons.join(", ")) };
    ProviderError::new(kind, format!("{what}: {detail} ({status}{reason})")).with_source(e)
}

/// The kind of a failed operation from its error codes and HTTP status.
pub(crate) fn operation_kind(codes: &[String], http: Option<u16>) -> ErrorKind {
    let has = |needle: &str| codes.iter().any(|c| c.contains(needle));
    if has("QUOTA") {
        ErrorKind::QuotaExceeded
    } else if has("RATE_LIMIT") {
        ErrorKind::Throttled
    } else if has("ALREADY_EXISTS") {
        ErrorKind::AlreadyExists
    } else if has("NOT_FOUND") || has("DOES_NOT_EXIST") {
        ErrorKind::NotFound
    } else if has("IN_USE") || has("NOT_READY") || has("CONFLICT") {
        ErrorKind::Conflict
    } else if has("RESOURCE_POOL_EXHAUSTED") || has("UNAVAILABLE") || has("INTERNAL") {
        ErrorKind::Transient
    } else if has("INVALID") || has("BAD_REQUEST") || has("UNSUPPORTED") {
        ErrorKind::InvalidSpec
    } else if has("PERMISSION") || has("FORBIDDEN") || has("NOT_AUTHORIZED") {
        ErrorKind::PermissionDenied
    } else {
        kind_of(http, None, &[])
    }
}

/// A long-running operation that ended with errors: `errors` are `(code, message)` pairs.
pub(crate) fn operation(what: &str, op: &str, errors: &[(String, String)], http: Option<u16>) -> ProviderError {
    let codes: Vec<String> = errors.iter().map(|(c, _)| c.clone()).collect();
    let text: Vec<String> = errors.iter().map(|(c, m)| format!("{c}: {m}")).collect();
    ProviderError::new(
        operation_kind(&codes, http),
        format!(
            "{what} failed in operation `{op}`: {}",
            if text.is_empty() { "no detail".into() } else { text.join("; ") }
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_reasons_win_over_status() {
        assert_eq!(kind_of(Some(403), None, &["rateLimitExceeded".into()]), ErrorKind::Throttled);
        assert_eq!(kind_of(Some(403), None, &["quotaExceeded".into()]), ErrorKind::QuotaExceeded);
        assert_eq!(kind_of(Some(403), None, &["forbidden".into()]), ErrorKind::PermissionDenied);
        assert_eq!(kind_of(Some(400), None, &["resourceInUseByAnotherResource".into()]), ErrorKind::Conflict);
        assert_eq!(kind_of(Some(400), None, &["invalid".into()]), ErrorKind::InvalidSpec);
        assert_eq!(kind_of(Some(409), None, &[]), ErrorKind::AlreadyExists);
        assert_eq!(kind_of(Some(404), None, &[]), ErrorKind::NotFound);
        assert_eq!(kind_of(Some(503), None, &[]), ErrorKind::Transient);
        assert_eq!(kind_of(None, Some(Code::Unavailable), &[]), ErrorKind::Transient);
    }

    #[test]
    fn operation_codes() {
        let e = operation("creating instance `web`", "operation-1", &[("QUOTA_EXCEEDED".into(), "CPUS".into())], None);
        assert_eq!(e.kind(), ErrorKind::QuotaExceeded);
        assert!(e.message().contains("QUOTA_EXCEEDED: CPUS"));
        assert_eq!(operation_kind(&["RESOURCE_ALREADY_EXISTS".into()], Some(409)), ErrorKind::AlreadyExists);
        assert_eq!(operation_kind(&["ZONE_RESOURCE_POOL_EXHAUSTED".into()], None), ErrorKind::Transient);
        assert_eq!(operation_kind(&["INVALID_FIELD_VALUE".into()], Some(400)), ErrorKind::InvalidSpec);
        assert_eq!(operation_kind(&["SOMETHING".into()], Some(503)), ErrorKind::Transient);
    }
}
