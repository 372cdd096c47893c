//! What every provider shares: providers are the code that talks to real services (S3,
//! Route53, etcd; each in its capability's `provider.rs`). They know nothing about
//! WebAssembly or policy; a capability calls them only after the policy allowed the call.
//!
//! Every fallible call returns [`ProviderError`], whose variants map one-to-one
//! onto the guest-visible WIT error cases (plus [`ProviderError::Integrity`],
//! which the capability layer reports as `other`). Messages name the bucket,
//! key, zone or endpoint involved and say what to do next, because the reader
//! is an SRE in the middle of a recovery, not the author of this code.

use std::error::Error as StdError;

use aws_sdk_s3::config::endpoint::Endpoint;
use aws_sdk_s3::config::interceptors::{BeforeDeserializationInterceptorContextMut, FinalizerInterceptorContextMut};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_s3::error::{BoxError, ConnectorError, ProvideErrorMetadata, SdkError};
use aws_smithy_runtime_api::client::orchestrator::OrchestratorError;
use aws_smithy_runtime_api::http::Response as HttpResponse;

/// What went wrong in a backend call, classified the way a caller reacts to it.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    /// The bucket, object, zone, record or pod does not exist.
    #[error("not found: {0}")]
    NotFound(String),
    /// The target exists already or changed concurrently (create-only write,
    /// precondition, concurrent modification).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The request itself is wrong (bad name, too large, unsupported option);
    /// retrying the same call will fail the same way.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A transient fault: timeout, connection refused, throttling (429,
    /// SlowDown), or a 5xx from the service. Retrying later may succeed.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// Data failed an integrity check: a SHA-256 that does not match, or an
    /// etcd snapshot whose hash trailer is missing or wrong.
    #[error("integrity: {0}")]
    Integrity(String),
    /// Anything else, including refused credentials.
    #[error("{0}")]
    Other(String),
}

impl ProviderError {
    /// True for the transient kinds a caller may retry.
    pub fn is_retryable(&self) -> bool {
        matches!(self, ProviderError::Unavailable(_))
    }

    /// The message without the kind prefix that `Display` adds.
    pub fn message(&self) -> &str {
        match self {
            ProviderError::NotFound(m)
            | ProviderError::Conflict(m)
            | ProviderError::Invalid(m)
            | ProviderError::Unavailable(m)
            | ProviderError::Integrity(m)
            | ProviderError::Other(m) => m,
        }
    }

    /// The same kind of error with `context: ` put before its message.
    pub fn context(self, context: impl std::fmt::Display) -> ProviderError {
        use ProviderError as B;
        match self {
            B::NotFound(m) => B::NotFound(format!("{context}: {m}")),
            B::Conflict(m) => B::Conflict(format!("{context}: {m}")),
            B::Invalid(m) => B::Invalid(format!("{context}: {m}")),
            B::Unavailable(m) => B::Unavailable(format!("{context}: {m}")),
            B::Integrity(m) => B::Integrity(format!("{context}: {m}")),
            B::Other(m) => B::Other(format!("{context}: {m}")),
        }
    }
}

/// `err` and its sources joined with `: `, skipping a source whose text is
/// already contained in the previous one (hyper and the SDK often repeat it).
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut last = out.clone();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !last.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        last = text;
        source = s.source();
    }
    out
}

/// The response header [`NameEndpoint`] adds so errors can name the endpoint.
const ENDPOINT_HEADER: &str = "x-ferry-endpoint";

/// An SDK interceptor that makes every error name the endpoint it came from.
///
/// The SDK's errors do not say which URL was called, and a client built with a
/// custom endpoint (an S3-compatible store, moto) gives no way to read that URL
/// back. So the interceptor takes the resolved endpoint from the request's
/// config bag and (a) copies it into a response header for service errors and
/// (b) wraps connection errors (refused, DNS, TLS, timeout) in an error naming
/// it, keeping the error's kind so the SDK's retry decisions do not change.
#[derive(Debug)]
pub(crate) struct NameEndpoint;

fn resolved_endpoint(cfg: &ConfigBag) -> Option<String> {
    let url = cfg.load::<Endpoint>()?.url();
    // Scheme and authority only: the path and query may carry object keys.
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    let end = url[after_scheme..]
        .find(['/', '?'])
        .map(|i| after_scheme + i)
        .unwrap_or(url.len());
    Some(url[..end].to_string())
}

/// A connection-level failure, with the endpoint it happened at.
#[derive(Debug)]
struct AtEndpoint {
    endpoint: String,
    detail: String,
}

impl std::fmt::Display for AtEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot reach {}: {}", self.endpoint, self.detail)
    }
}

impl StdError for AtEndpoint {}

impl Intercept for NameEndpoint {
    fn name(&self) -> &'static str {
        "FerryNameEndpoint"
    }

    fn modify_before_deserialization(
        &self,
        context: &mut BeforeDeserializationInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        if let Some(endpoint) = resolved_endpoint(cfg) {
            // try_insert: a URL that is somehow not a valid header value must
            // not fail the call; the message then just lacks the endpoint.
            let _ = context
                .response_mut()
                .headers_mut()
                .try_insert(ENDPOINT_HEADER, endpoint);
        }
        Ok(())
    }

    fn modify_before_attempt_completion(
        &self,
        context: &mut FinalizerInterceptorContextMut<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let Some(endpoint) = resolved_endpoint(cfg) else {
            return Ok(());
        };
        if let Some(Err(err)) = context.output_or_error_mut()
            && let Some(conn) = err.as_connector_error()
        {
            let detail = match conn.source() {
                Some(s) => error_chain(s),
                None => conn.to_string(),
            };
            let wrapped: BoxError = Box::new(AtEndpoint { endpoint, detail });
            let replacement = if conn.is_timeout() {
                ConnectorError::timeout(wrapped)
            } else if conn.is_io() {
                ConnectorError::io(wrapped)
            } else if conn.is_user() {
                ConnectorError::user(wrapped)
            } else {
                ConnectorError::other(wrapped, conn.as_other())
            };
            *err = OrchestratorError::connector(replacement);
        }
        Ok(())
    }
}

/// Which AWS API a call went to, for wording.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Service {
    S3,
    Route53,
}

impl Service {
    fn name(self) -> &'static str {
        match self {
            Service::S3 => "S3",
            Service::Route53 => "Route53",
        }
    }
}

/// The service's error code (`NoSuchKey`, ...) of an SDK error, if it has one.
pub(crate) fn service_code<E, R>(err: &SdkError<E, R>) -> Option<&str>
where
    E: ProvideErrorMetadata,
{
    match err {
        SdkError::ServiceError(se) => se.err().code(),
        _ => None,
    }
}

/// Classifies an SDK error and words it for an SRE.
///
/// `action` says what was attempted, e.g. ``"reading s3://b/k"``.
pub(crate) fn sdk_error<E>(err: SdkError<E, HttpResponse>, service: Service, action: &str) -> ProviderError
where
    E: ProvideErrorMetadata + StdError + Send + Sync + 'static,
{
    let svc = service.name();
    match err {
        SdkError::ConstructionFailure(_) => ProviderError::Invalid(format!(
            "{action}: the {svc} request could not be built: {}",
            error_chain(&err)
        )),
        SdkError::TimeoutError(_) => ProviderError::Unavailable(format!(
            "{action}: {svc} did not answer in time; check the endpoint and network, then retry"
        )),
        SdkError::DispatchFailure(ref d) => {
            let chain = d
                .as_connector_error()
                .and_then(|c| c.source())
                .map(error_chain)
                .unwrap_or_else(|| error_chain(&err));
            if d.is_user() {
                ProviderError::Invalid(format!("{action}: the {svc} request is malformed: {chain}"))
            } else {
                ProviderError::Unavailable(format!(
                    "{action}: {chain}; check the {svc} endpoint URL, DNS, proxy and TLS settings, then retry"
                ))
            }
        }
        SdkError::ResponseError(ref r) => {
            let endpoint = r
                .raw()
                .headers()
                .get(ENDPOINT_HEADER)
                .unwrap_or("the endpoint")
                .to_string();
            ProviderError::Unavailable(format!(
                "{action}: {endpoint} sent a response {svc} clients cannot parse (HTTP {}): {}; a proxy in between or an incompatible store is likely, retry or check the endpoint",
                r.raw().status().as_u16(),
                error_chain(&err)
            ))
        }
        SdkError::ServiceError(ref se) => {
            let status = se.raw().status().as_u16();
            let endpoint = se
                .raw()
                .headers()
                .get(ENDPOINT_HEADER)
                .unwrap_or("the endpoint")
                .to_string();
            let code = se.err().code().unwrap_or("").to_string();
            let mut message = se.err().message().unwrap_or("").to_string();
            if code.is_empty() && message.is_empty() {
                // No error code: the SDK could not make sense of the answer.
                // Its own explanation plus the start of the body are the best
                // clues there are.
                message = error_chain(se.err());
                if let Some(body) = se.raw().body().bytes().filter(|b| !b.is_empty()) {
                    let text = String::from_utf8_lossy(&body[..body.len().min(300)]);
                    message = format!(
                        "{message}; body: {}",
                        text.split_whitespace().collect::<Vec<_>>().join(" ")
                    );
                }
            }
            classify_service_error(service, action, status, &code, &message, &endpoint)
        }
        // SdkError is non_exhaustive.
        other => ProviderError::Other(format!("{action}: {svc} call failed: {}", error_chain(&other))),
    }
}

/// The classification of a service error from its HTTP status and error code.
pub(crate) fn classify_service_error(
    service: Service,
    action: &str,
    status: u16,
    code: &str,
    message: &str,
    endpoint: &str,
) -> ProviderError {
    let svc = service.name();
    let what = match (code.is_empty(), message.is_empty()) {
        (true, true) => format!("HTTP {status}"),
        (false, true) => format!("HTTP {status} {code}"),
        (true, false) => format!("HTTP {status}: {message}"),
        (false, false) => format!("HTTP {status} {code}: {message}"),
    };
    let lower = message.to_ascii_lowercase();
    match code {
        "NoSuchKey" | "NoSuchBucket" | "NotFound" | "NoSuchUpload" | "NoSuchHostedZone" | "NoSuchChange"
        | "NoSuchBucketPolicy" | "HostedZoneNotFound" => {
            return ProviderError::NotFound(format!("{action}: does not exist ({what})"));
        }
        "PreconditionFailed" => {
            return ProviderError::Conflict(format!(
                "{action}: the object exists already or changed since it was read ({what}); read it again before deciding to overwrite"
            ));
        }
        "ConditionalRequestConflict" | "OperationAborted" => {
            return ProviderError::Conflict(format!(
                "{action}: a concurrent write to the same key is in progress ({what}); retry after it finishes"
            ));
        }
        "BucketAlreadyExists" | "BucketAlreadyOwnedByYou" | "HostedZoneAlreadyExists" | "ConflictingDomainExists" => {
            return ProviderError::Conflict(format!("{action}: exists already ({what})"));
        }
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestLimitExceeded"
        | "TooManyRequestsException"
        | "PriorRequestNotComplete"
        | "RequestTimeout"
        | "InternalError"
        | "ServiceUnavailable" => {
            return ProviderError::Unavailable(format!(
                "{action}: {endpoint} is busy or failing ({what}); retry later"
            ));
        }
        // Refused credentials: the wording names the endpoint (a custom
        // endpoint with another store's keys is a common mix-up) and says
        // which part of the credentials to look at.
        "SignatureDoesNotMatch" => {
            return ProviderError::Other(format!(
                "{action}: {svc} at {endpoint} rejected the request signature ({what}); the secret key does not \
                 belong to the access key in use (or a proxy altered the request): check the credentials ferry \
                 uses for this endpoint (AWS profile, AWS_* environment, role)"
            ));
        }
        "InvalidAccessKeyId" | "NotSignedUp" | "InvalidClientTokenId" | "UnrecognizedClientException" => {
            return ProviderError::Other(format!(
                "{action}: {svc} at {endpoint} does not know the access key in use ({what}); check that the \
                 credentials (AWS profile, AWS_* environment, role) belong to this account and endpoint"
            ));
        }
        "ExpiredToken" | "ExpiredTokenException" | "InvalidToken" | "TokenRefreshRequired" => {
            return ProviderError::Other(format!(
                "{action}: {svc} at {endpoint} refused the session token in use ({what}); refresh the \
                 temporary credentials (SSO login, role assumption) and retry"
            ));
        }
        "RequestTimeTooSkewed" => {
            return ProviderError::Other(format!(
                "{action}: {svc} at {endpoint} refused the request because this machine's clock is off ({what}); \
                 fix the clock (NTP) and retry"
            ));
        }
        "AccessDenied" | "AllAccessDisabled" | "AccessDeniedException" => {
            return ProviderError::Other(format!(
                "{action}: {svc} at {endpoint} denied access to the credentials in use ({what}); check the AWS \
                 profile, role and the bucket or zone policy"
            ));
        }
        // Route53 rejects a whole batch with InvalidChangeBatch; its message
        // tells an existing record from a missing one.
        "InvalidChangeBatch" if lower.contains("already exists") => {
            return ProviderError::Conflict(format!("{action}: a record in the batch exists already ({what})"));
        }
        "InvalidChangeBatch" if lower.contains("not found") => {
            return ProviderError::NotFound(format!("{action}: a record to delete does not exist ({what})"));
        }
        "InvalidChangeBatch" | "InvalidInput" | "InvalidArgument" | "InvalidRequest" | "InvalidBucketName"
        | "KeyTooLongError" | "EntityTooSmall" | "EntityTooLarge" | "InvalidPart" | "InvalidPartOrder"
        | "InvalidDomainName" | "InvalidRange" => {
            return ProviderError::Invalid(format!("{action}: {svc} rejected the request ({what})"));
        }
        _ => {}
    }
    match status {
        404 => ProviderError::NotFound(format!("{action}: does not exist ({what})")),
        409 => ProviderError::Conflict(format!("{action}: conflicting concurrent change ({what}); retry")),
        412 => ProviderError::Conflict(format!(
            "{action}: precondition failed, the target exists already or changed ({what})"
        )),
        401 | 403 => ProviderError::Other(format!(
            "{action}: {svc} at {endpoint} refused the credentials in use ({what}); check the AWS profile, role \
             and the bucket or zone policy"
        )),
        408 | 429 | 500..=599 => {
            ProviderError::Unavailable(format!("{action}: {endpoint} is busy or failing ({what}); retry later"))
        }
        400..=499 => ProviderError::Invalid(format!("{action}: {svc} rejected the request ({what})")),
        _ => ProviderError::Other(format!("{action}: unexpected {svc} answer from {endpoint} ({what})")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_by_code_and_status() {
        let c = |status, code: &str, msg: &str| classify_service_error(Service::S3, "x", status, code, msg, "http://e");
        assert!(matches!(c(404, "NoSuchKey", ""), ProviderError::NotFound(_)));
        assert!(matches!(c(404, "", ""), ProviderError::NotFound(_)));
        assert!(matches!(c(412, "PreconditionFailed", ""), ProviderError::Conflict(_)));
        assert!(matches!(
            c(409, "ConditionalRequestConflict", ""),
            ProviderError::Conflict(_)
        ));
        assert!(matches!(c(503, "SlowDown", ""), ProviderError::Unavailable(_)));
        assert!(matches!(c(429, "", ""), ProviderError::Unavailable(_)));
        assert!(matches!(c(502, "", ""), ProviderError::Unavailable(_)));
        assert!(matches!(c(403, "AccessDenied", ""), ProviderError::Other(_)));
        assert!(matches!(
            c(
                400,
                "InvalidChangeBatch",
                "Tried to create resource record set but it already exists"
            ),
            ProviderError::Conflict(_)
        ));
        assert!(matches!(
            c(
                400,
                "InvalidChangeBatch",
                "Tried to delete resource record set but it was not found"
            ),
            ProviderError::NotFound(_)
        ));
        assert!(matches!(
            c(400, "InvalidChangeBatch", "bad TTL"),
            ProviderError::Invalid(_)
        ));
        for code in [
            "SignatureDoesNotMatch",
            "InvalidAccessKeyId",
            "NotSignedUp",
            "ExpiredToken",
            "RequestTimeTooSkewed",
            "AccessDenied",
            "",
        ] {
            let err = c(403, code, "");
            assert!(matches!(err, ProviderError::Other(_)), "{code}: {err}");
            assert!(err.to_string().contains("at http://e"), "{code}: {err}");
        }
        assert!(
            c(403, "SignatureDoesNotMatch", "")
                .to_string()
                .contains("secret key does not belong to the access key")
        );
        assert!(c(403, "RequestTimeTooSkewed", "").to_string().contains("clock"));
        let msg = c(503, "SlowDown", "Please reduce your request rate").to_string();
        assert!(
            msg.contains("http://e") && msg.contains("SlowDown") && msg.contains("retry"),
            "{msg}"
        );
    }

    #[test]
    fn chain_skips_repeats() {
        #[derive(Debug)]
        struct E(&'static str, Option<Box<E>>);
        impl std::fmt::Display for E {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.0)
            }
        }
        impl StdError for E {
            fn source(&self) -> Option<&(dyn StdError + 'static)> {
                self.1.as_deref().map(|e| e as &(dyn StdError + 'static))
            }
        }
        let e = E(
            "a: refused",
            Some(Box::new(E("refused", Some(Box::new(E("os error 111", None)))))),
        );
        assert_eq!(error_chain(&e), "a: refused: os error 111");
    }
}
