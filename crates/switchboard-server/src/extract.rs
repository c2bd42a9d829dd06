//! Small request helpers shared by the handlers: the bounded body read, and the name of the web
//! UI's own-key header (admission reads it, the origin check counts it as a credential).

use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, header};
use bytes::Bytes;

use crate::error::ApiError;

/// The web UI's header for the user's own provider key. Unlike `Authorization`, it does not
/// change who the user is: chats stay in the workspace of the login cookie (or the anonymous
/// one), which is what the server-rendered pages show; the key only pays upstream.
pub const USER_KEY_HEADER: &str = "x-switchboard-user-key";

/// Read the whole body, refusing more than `limit` bytes with 413 (checked against
/// `Content-Length` first, so an honest oversized upload is refused without being kept; see
/// `drain` for what happens to its bytes).
pub async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    read_body_within(headers, body, limit, "SWITCHBOARD_MAX_BODY_BYTES").await
}

/// [`read_body`] with a limit set by `var` (named in the 413).
pub async fn read_body_within(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
    var: &str,
) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(declared) = declared.filter(|&n| n > limit as u64) {
        // A client waiting for `100 Continue` has not sent the body, and must not be asked to.
        let waits = headers
            .get(header::EXPECT)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
        if declared <= DRAIN_AT_MOST && !waits {
            drain(body).await;
        }
        return Err(ApiError::body_over(limit, var));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if too_large {
            ApiError::body_over(limit, var)
        } else {
            ApiError::bad_request("could not read the request body")
        }
    })
}

/// A refused body up to this size is read and thrown away before answering.
const DRAIN_AT_MOST: u64 = 8 << 20;
/// How long a refused body may take to arrive before we answer anyway.
const DRAIN_TIME: Duration = Duration::from_secs(5);

/// Read a refused body to its end and discard it, so the connection stays usable. hyper reads at
/// most one more buffer of a body the handler dropped and then closes the connection, after an
/// answer that did not say so: a client that reuses the connection loses its next request.
async fn drain(body: Body) {
    let mut body = body.into_data_stream();
    let all = async {
        use futures_util::StreamExt;
        while let Some(Ok(_)) = body.next().await {}
    };
    let _ = tokio::time::timeout(DRAIN_TIME, all).await;
}
