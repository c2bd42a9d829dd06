//! The one place errors become HTTP responses.
//!
//! Every error body has OpenRouter's shape, `{"error":{"code":<status>,"message":"…"}}`, so a client
//! that already handles OpenRouter's errors handles ours.

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use switchboard_core::access::AccessError;
use switchboard_core::error::error_json;

/// An error answered to the client. Build one with a constructor that says what went wrong.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: Cow<'static, str>,
    pub retry_after_secs: Option<u64>,
    /// A name for `error.code` instead of the status (e.g. `budget_exceeded`).
    pub code: Option<&'static str>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            status,
            message: message.into(),
            retry_after_secs: None,
            code: None,
        }
    }

    pub fn bad_request(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }

    pub fn forbidden(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::body_over(limit, "SWITCHBOARD_MAX_BODY_BYTES")
    }

    /// 413 naming the variable that sets the limit.
    pub fn body_over(limit: usize, var: &str) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than the limit of {limit} bytes ({var})"),
        )
    }

    pub fn bad_gateway(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, message)
    }

    pub fn gateway_timeout(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::GATEWAY_TIMEOUT, message)
    }

    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// 507 `quota_exceeded`: the write would take the workspace over a limit, which `message`
    /// names.
    pub fn quota_exceeded(message: impl Into<Cow<'static, str>>) -> Self {
        ApiError {
            code: Some("quota_exceeded"),
            ..Self::new(StatusCode::INSUFFICIENT_STORAGE, message)
        }
    }

    pub fn model_not_available(model: &str) -> Self {
        Self::forbidden(format!("model {model} is not available on this server"))
    }
}

impl From<AccessError> for ApiError {
    fn from(e: AccessError) -> Self {
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::UNAUTHORIZED);
        let retry_after_secs = match &e {
            AccessError::Throttled { retry_after } => Some(retry_after.as_secs().max(1)),
            _ => None,
        };
        ApiError {
            status,
            message: e.to_string().into(),
            retry_after_secs,
            code: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut res = (
            self.status,
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            match self.code {
                Some(code) => switchboard_core::error::named_error_json(code, &self.message),
                None => error_json(self.status.as_u16(), &self.message),
            },
        )
            .into_response();
        if let Some(secs) = self.retry_after_secs {
            res.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        res
    }
}

/// The one place store errors become responses. A database that cannot be reached or written is
/// 503 (nothing was changed: every write is one transaction); stored data that cannot be read back
/// is a bug or corruption, 500; a chat busy with another reply is 409.
impl From<switchboard_store::StoreError> for ApiError {
    fn from(e: switchboard_store::StoreError) -> Self {
        use switchboard_store::StoreError;
        let cause = std::error::Error::source(&e).map(ToString::to_string);
        match &e {
            StoreError::Busy { .. } => {
                return ApiError::new(
                    StatusCode::CONFLICT,
                    "a reply is being generated in this chat; stop it first",
                );
            }
            StoreError::Corrupt { .. } => {
                tracing::error!(error = %e, "stored data could not be read");
                return ApiError::internal(
                    "stored data could not be read back; see the server log",
                );
            }
            _ => {}
        }
        tracing::error!(error = %e, cause = cause.as_deref().unwrap_or(""), "storage error");
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the database is not available right now; nothing was changed",
        )
    }
}
