//! `GET /api/chats/{id}/events`: the chat's numbered events as SSE, resumable with
//! `Last-Event-ID` or `?after=`.
//!
//! Each subscriber gets its own small task: it replays from the database what memory no longer
//! holds, then the ring's backlog, then the live broadcast. A subscriber that falls behind the
//! bounded broadcast is not waited for — it resubscribes from its last seq and catches up the
//! same way, so a slow browser never slows the generation.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::Caller;
use super::hub::ChatHub;
use crate::error::ApiError;
use crate::state::AppState;

const KEEP_ALIVE: Duration = Duration::from_secs(15);
const DB_PAGE: u32 = 500;

#[derive(Deserialize)]
pub struct EventParams {
    after: Option<i64>,
}

pub async fn events(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    params: Result<Query<EventParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    state
        .store()
        .get_chat(&caller.workspace, &id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat"))?;
    let hub = state.chats().hub(&state, &id).await?;
    let header_after = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Without a position, start from now: the page was rendered with the current state.
    let after = params
        .after
        .or(header_after)
        .unwrap_or_else(|| hub.snapshot().last_seq)
        .max(0);
    let (tx, rx) = mpsc::channel::<Bytes>(64);
    let down = state.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = follow(state, hub, id, after, tx) => {}
            () = down.shutting_down() => {}
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

fn frame(seq: i64, kind: &str, data: &str) -> Bytes {
    Bytes::from(format!("id: {seq}\nevent: {kind}\ndata: {data}\n\n"))
}

/// Feed one subscriber until it goes away.
async fn follow(
    state: AppState,
    hub: Arc<ChatHub>,
    chat_id: String,
    mut last: i64,
    tx: mpsc::Sender<Bytes>,
) {
    // An immediate comment lets the browser know the stream is open.
    if tx
        .send(Bytes::from_static(b": connected\n\n"))
        .await
        .is_err()
    {
        return;
    }
    loop {
        let sub = hub.subscribe(last);
        // What memory no longer holds is in the database.
        while last + 1 < sub.memory_from {
            let rows = match state.store().events_after(&chat_id, last, DB_PAGE).await {
                Ok(rows) => rows,
                Err(e) => {
                    tracing::warn!(error = %e, "reading chat events failed");
                    return;
                }
            };
            let mut progressed = false;
            for row in rows.iter().filter(|r| r.seq < sub.memory_from) {
                if tx.send(frame(row.seq, &row.kind, &row.data)).await.is_err() {
                    return;
                }
                last = row.seq;
                progressed = true;
            }
            if !progressed {
                break;
            }
        }
        for e in &sub.backlog {
            if e.seq <= last {
                continue;
            }
            if tx.send(frame(e.seq, e.kind, &e.data)).await.is_err() {
                return;
            }
            last = e.seq;
        }
        let mut rx = sub.receiver;
        let mut keep_alive = tokio::time::interval(KEEP_ALIVE);
        keep_alive.tick().await;
        loop {
            tokio::select! {
                _ = tx.closed() => return,
                _ = keep_alive.tick() => {
                    if tx.send(Bytes::from_static(b": keep-alive\n\n")).await.is_err() {
                        return;
                    }
                }
                r = rx.recv() => match r {
                    Ok(e) if e.seq > last => {
                        if tx.send(frame(e.seq, e.kind, &e.data)).await.is_err() {
                            return;
                        }
                        last = e.seq;
                    }
                    Ok(_) => {}
                    // Fell behind: catch up from the ring and the database.
                    Err(broadcast::error::RecvError::Lagged(_)) => break,
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        }
    }
}
