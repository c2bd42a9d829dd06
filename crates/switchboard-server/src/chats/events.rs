//! `GET /api/chats/{id}/events`: the chat's numbered events as SSE, resumable with
//! `Last-Event-ID` or `?after=`.
//!
//! Each subscriber gets its own small task reading a [`Subscription`]: every event is stored
//! before it is announced, so the subscription reads what it has not seen from the database and
//! waits for the chat to move — on whichever instance the reply is generated. A slow browser
//! only falls behind in its own reading; it never slows the generation.

use std::convert::Infallible;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use switchboard_chat::{ChatEngine, Subscription};
use switchboard_core::stream::encode_event;
use switchboard_store::Store;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::state::Shutdown;

const KEEP_ALIVE: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
pub struct EventParams {
    after: Option<i64>,
}

pub async fn events(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    State(shutdown): State<Shutdown>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let latest = store
        .followed_chat_seq(&caller.workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    let header_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Without a position, start from now: the page was rendered with the current state.
    let after = match params.after.or(header_after) {
        Some(after) => after.max(0),
        None => latest,
    };
    let subscription = chats.subscribe(&id, after);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    tokio::spawn(async move {
        tokio::select! {
            () = follow(subscription, tx) => {}
            () = shutdown.wait() => {}
        }
    });
    let body = Body::from_stream(ReceiverStream::new(rx).map(Ok::<_, Infallible>));
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(res)
}

/// Feed one subscriber until it goes away.
async fn follow(mut subscription: Subscription, tx: mpsc::Sender<Bytes>) {
    // An immediate comment lets the browser know the stream is open.
    if tx
        .send(Bytes::from_static(b": connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
    keep_alive.tick().await;
    loop {
        tokio::select! {
            () = tx.closed() => return,
            _ = keep_alive.tick() => {
                if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                    return;
                }
            }
            next = subscription.next() => match next {
                Ok(events) => {
                    let mut frames = Vec::new();
                    for e in &events {
                        frames.extend_from_slice(
                            encode_event(Some(&e.seq.to_string()), Some(&e.kind), &e.data)
                                .as_bytes(),
                        );
                    }
                    if tx.send(Bytes::from(frames)).await.is_err() {
                        return;
                    }
                }
                Err(e) => {
                    // The browser reconnects with its Last-Event-ID and misses nothing.
                    tracing::warn!(error = %e, "reading chat events failed");
                    return;
                }
            },
        }
    }
}
