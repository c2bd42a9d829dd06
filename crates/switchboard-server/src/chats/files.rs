//! `GET /api/chats/{id}/files/{file_id}`: a file stored with a message (an attachment, a generated
//! image), so pages show and download it without carrying its bytes in every load.
//!
//! A file never changes (its id is new with each), so browsers may keep it for a year; it is
//! private to the workspace, so only the browser keeps it. What is not an image is never run by
//! the browser: `nosniff` and a sandboxing CSP, and `?download=1` saves anything as a file.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use serde::Deserialize;
use switchboard_store::Store;

use crate::auth::Caller;
use crate::error::ApiError;

#[derive(Deserialize)]
pub struct FileQuery {
    #[serde(default)]
    download: Option<String>,
}

/// Raster images a page shows inline; anything else is served as text or bytes to save.
const INLINE_IMAGES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

pub async fn get_file(
    caller: Caller,
    State(store): State<Store>,
    Path((chat_id, file_id)): Path<(String, String)>,
    Query(query): Query<FileQuery>,
) -> Result<Response, ApiError> {
    // The chat is the one whose page shows the file: its own, or (a fork) its source's.
    store
        .get_chat(&caller.workspace, &chat_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    let file = store
        .get_file(&caller.workspace, &file_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such file"))?;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(file.data.as_bytes())
        .map_err(|e| ApiError::internal(format!("a stored file is not base64: {e}")))?;
    let download = query.download.is_some_and(|d| d != "0");
    let content_type =
        if INLINE_IMAGES.contains(&file.mime.as_str()) || file.mime == "application/pdf" {
            file.mime.clone()
        } else if file.mime.starts_with("text/") {
            "text/plain; charset=utf-8".to_owned()
        } else {
            "application/octet-stream".to_owned()
        };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    let value = |v: &str| HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static(""));
    headers.insert(header::CONTENT_TYPE, value(&content_type));
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("private, max-age=31536000, immutable"),
    );
    headers.insert(header::ETAG, value(&format!("\"{}\"", file.id)));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; img-src 'self'; sandbox"),
    );
    // The name is the user's or ours; only a safe ASCII form goes into the header.
    let safe: String = file
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._- ".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let disposition = if download { "attachment" } else { "inline" };
    headers.insert(
        header::CONTENT_DISPOSITION,
        value(&format!("{disposition}; filename=\"{safe}\"")),
    );
    Ok(response)
}
