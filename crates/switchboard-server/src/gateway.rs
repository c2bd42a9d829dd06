//! The OpenAI-compatible gateway: `POST /v1/chat/completions` and `GET /v1/models`, for SDKs and
//! tools that speak OpenAI's API.
//!
//! Routing: `model@Provider` picks the provider (the suffix is stripped before forwarding);
//! otherwise the provider the model table lists the model under; otherwise OpenRouter. Streaming,
//! cancellation, errors and the model restriction are the proxy's, through the same [`relay`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::json;
use switchboard_core::catalog::ModelRef;
use switchboard_core::provider::ProviderId;

use crate::auth::{CredentialStyle, Gate, admit};
use crate::catalog::ModelCatalog;
use crate::error::ApiError;
use crate::extract::read_body;
use crate::relay::{UpstreamRequest, relay};
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
}

async fn chat_completions(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let principal = admit(state.gate(), &headers, peer.ip(), CredentialStyle::Gateway).await?;
    crate::spend::check_budget(&state, &principal).await?;
    let body = read_body(&headers, body, state.settings().max_body_bytes).await?;
    let requested = CompletionRequest::parse(&body)?;
    let raw_model = requested
        .model
        .as_deref()
        .ok_or_else(|| ApiError::bad_request("`model` is required"))?;
    check_shape(&requested)?;
    let model_ref = ModelRef::parse(raw_model).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let table = state.catalog().table();
    let provider = match &model_ref.provider {
        Some(p) => p.clone(),
        None => table
            .resolve(&model_ref.model, None)
            .map(|e| e.provider.clone())
            .unwrap_or(ProviderId::OpenRouter),
    };
    let upstream = state.upstream(&provider).ok_or_else(|| {
        ApiError::bad_request(format!(
            "provider {} is not configured on this server",
            provider.as_str()
        ))
    })?;
    for m in std::iter::once(&model_ref.model).chain(requested.models.iter()) {
        if !table.is_allowed(m, Some(&provider)) {
            return Err(ApiError::model_not_available(m));
        }
    }
    let authorization = upstream.authorization(&principal)?;
    // Only a `model@Provider` request is re-encoded; every other body goes up byte for byte.
    let body = if model_ref.provider.is_some() {
        strip_provider_suffix(&body, &model_ref.model)?
    } else {
        body
    };
    let meter = (!principal.has_own_key()).then(|| crate::relay::SpendMeter {
        ledger: state.chats().ledger().clone(),
        workspace: principal.workspace(),
        entry: "gateway",
        asked: crate::relay::AskedModel::Named(model_ref.model.clone()),
        lookup: upstream.generation_lookup(state.http(), &authorization),
    });
    relay(
        &state,
        UpstreamRequest {
            method: Method::POST,
            url: upstream
                .url_of("v1/chat/completions", None)
                .ok_or_else(|| ApiError::not_found("the provider has no chat completions"))?,
            authorization,
            client_headers: headers,
            meter,
            body,
        },
        started,
    )
    .await
}

/// The longest model id the gateway relays; real ids are well under 100 characters.
pub const MAX_MODEL_ID_CHARS: usize = 256;

/// What the gateway reads of a completion request, in one pass over the body (a conversation
/// can be megabytes): [`crate::models::RequestedModels`]'s fields and the shape of `messages`.
/// The body itself goes up untouched.
#[derive(serde::Deserialize)]
struct CompletionRequest {
    model: Option<String>,
    #[serde(default)]
    models: Vec<String>,
    #[serde(default)]
    messages: Messages,
}

impl CompletionRequest {
    fn parse(body: &[u8]) -> Result<CompletionRequest, ApiError> {
        crate::models::parse_request(body)
    }
}

/// What `messages` is, counted without keeping any of it. Any JSON value is accepted here, so a
/// wrong one is refused by [`check_shape`] with its own message, not as invalid JSON.
#[derive(Debug, Default, PartialEq)]
enum Messages {
    /// Absent or `null`.
    #[default]
    Missing,
    NotAnArray,
    Count(usize),
}

impl<'de> serde::Deserialize<'de> for Messages {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Messages, D::Error> {
        use serde::de::{IgnoredAny, MapAccess, SeqAccess, Visitor};

        struct Shape;
        impl<'de> Visitor<'de> for Shape {
            type Value = Messages;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Messages, A::Error> {
                let mut n = 0;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    n += 1;
                }
                Ok(Messages::Count(n))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Messages, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Messages::NotAnArray)
            }
            fn visit_unit<E>(self) -> Result<Messages, E> {
                Ok(Messages::Missing)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Messages, E> {
                Ok(Messages::NotAnArray)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Messages, E> {
                Ok(Messages::NotAnArray)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Messages, E> {
                Ok(Messages::NotAnArray)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Messages, E> {
                Ok(Messages::NotAnArray)
            }
            fn visit_str<E>(self, _: &str) -> Result<Messages, E> {
                Ok(Messages::NotAnArray)
            }
        }
        d.deserialize_any(Shape)
    }
}

/// Refuse what no provider would answer usefully before it costs an upstream call: an oversized
/// model id (one of 100,000 characters was relayed) or no messages.
fn check_shape(requested: &CompletionRequest) -> Result<(), ApiError> {
    let ids = requested.model.iter().chain(requested.models.iter());
    if let Some(long) = ids
        .into_iter()
        .find(|m| m.chars().count() > MAX_MODEL_ID_CHARS)
    {
        return Err(ApiError::bad_request(format!(
            "a model id is {} characters long; the limit is {MAX_MODEL_ID_CHARS}",
            long.chars().count()
        )));
    }
    match requested.messages {
        Messages::Count(n) if n > 0 => Ok(()),
        Messages::NotAnArray => Err(ApiError::bad_request(
            "`messages` must be an array of messages",
        )),
        _ => Err(ApiError::bad_request(
            "`messages` must be a non-empty array of messages",
        )),
    }
}

fn strip_provider_suffix(body: &[u8], model: &str) -> Result<Bytes, ApiError> {
    let mut value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    value["model"] = serde_json::Value::String(model.to_string());
    Ok(Bytes::from(
        serde_json::to_vec(&value).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

/// OpenAI's list shape, with the models available on this server.
async fn models(
    State(gate): State<Gate>,
    State(catalog): State<Arc<ModelCatalog>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    admit(&gate, &headers, peer.ip(), CredentialStyle::Gateway).await?;
    let table = catalog.table();
    let mut seen = std::collections::HashSet::new();
    let data: Vec<_> = table
        .entries()
        .iter()
        .filter(|e| e.available)
        .map(|e| {
            // An id offered by two providers is listed once plainly and then as `id@provider`.
            let id = if seen.insert(e.id.as_str()) {
                e.id.clone()
            } else {
                format!("{}@{}", e.id, e.provider.as_str())
            };
            json!({"id": id, "object": "model", "created": 0, "owned_by": e.vendor.slug()})
        })
        .collect();
    Ok(Json(json!({"object": "list", "data": data})).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(body: &str) -> Result<(), String> {
        CompletionRequest::parse(body.as_bytes())
            .and_then(|r| check_shape(&r))
            .map_err(|e| e.message.into_owned())
    }

    #[test]
    fn messages_are_checked_in_the_same_pass_as_the_model() {
        let parsed = CompletionRequest::parse(
            br#"{"messages": [{"role": "user", "content": "hi"}, {"x": [1, {"y": null}]}], "model": "a/b", "models": ["c/d"]}"#,
        )
        .unwrap();
        assert_eq!(parsed.messages, Messages::Count(2));
        assert_eq!(parsed.model.as_deref(), Some("a/b"));
        assert_eq!(parsed.models, ["c/d"]);
        assert_eq!(shape(r#"{"model": "a/b", "messages": [{}]}"#), Ok(()));
        for (body, refusal) in [
            (r#"{"model": "a/b"}"#, "non-empty array"),
            (r#"{"model": "a/b", "messages": null}"#, "non-empty array"),
            (r#"{"model": "a/b", "messages": []}"#, "non-empty array"),
            (r#"{"model": "a/b", "messages": "hi"}"#, "must be an array"),
            (
                r#"{"model": "a/b", "messages": {"role": "user"}}"#,
                "must be an array",
            ),
            (r#"{"model": "a/b", "messages": 3}"#, "must be an array"),
            (r#"{"model": "a/b", "messages": [}"#, "not valid JSON"),
            (r#"{"model": 7, "messages": [{}]}"#, "not valid JSON"),
        ] {
            let got = shape(body).unwrap_err();
            assert!(got.contains(refusal), "{body}: {got}");
        }
    }
}
