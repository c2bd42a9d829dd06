//! The one error body shape of the whole project, as OpenRouter's: `{"error":{"code","message"}}`.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ErrorBody<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Debug, Serialize)]
pub struct ErrorDetail<'a> {
    pub code: u16,
    pub message: &'a str,
}

/// The JSON bytes of an error body.
pub fn error_json(code: u16, message: &str) -> Vec<u8> {
    serde_json::to_vec(&ErrorBody {
        error: ErrorDetail { code, message },
    })
    .expect("serialising two plain fields cannot fail")
}

/// An error body whose `code` is a name (`budget_exceeded`) rather than the HTTP status, for
/// refusals a client must tell apart from others with the same status.
pub fn named_error_json(code: &str, message: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}}))
        .expect("serialising two plain fields cannot fail")
}
