//! `GET /api/models`, and the model restriction every entry point shares.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use switchboard_core::catalog::{ModelEntry, ModelQuery};
use switchboard_core::provider::ProviderId;

use crate::auth::{CredentialStyle, Gate, admit};
use crate::catalog::ModelCatalog;
use crate::error::ApiError;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route("/api/models", get(list_models)).route(
        "/api/models/{author}/{slug}/endpoints",
        get(model_endpoints),
    )
}

/// The largest endpoints list read from OpenRouter.
const MAX_ENDPOINTS_BODY: usize = 1024 * 1024;

/// `GET /api/models/{author}/{slug}/endpoints`: the providers that serve a model, from OpenRouter's
/// endpoints route, for the chat's routing panel (order, exclude, compare prices and speed). Only
/// for a model this server offers; the answer is OpenRouter's `{"data": …}` as it came.
async fn model_endpoints(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::extract::Path((author, slug)): axum::extract::Path<(String, String)>,
) -> Result<Response, ApiError> {
    let principal = admit(state.gate(), &headers, peer.ip(), CredentialStyle::NextChat).await?;
    let safe = |s: &str| {
        !s.is_empty()
            && s.len() <= 128
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            && s != "."
            && s != ".."
    };
    if !safe(&author) || !safe(&slug) {
        return Err(ApiError::bad_request("not a model id"));
    }
    let model = format!("{author}/{slug}");
    let provider = ProviderId::OpenRouter;
    if !state.model_allowed(&provider, &model) {
        return Err(ApiError::model_not_available(&model));
    }
    let upstream = state.upstream(&provider).ok_or_else(|| {
        ApiError::bad_request("provider openrouter is not configured on this server")
    })?;
    let key = principal
        .upstream_key(&upstream.config, &upstream.rotation)?
        .clone();
    // The endpoints of a `:free` (or other variant) id are its base model's.
    let slug = slug.split(':').next().unwrap_or(&slug);
    let url = format!(
        "{}/v1/models/{author}/{slug}/endpoints",
        upstream.config.base_url
    );
    let unreachable = |_| ApiError::bad_gateway("OpenRouter's endpoints list could not be read");
    let res = state
        .http()
        .get(&url)
        .header("authorization", format!("Bearer {}", key.expose()))
        .send()
        .await
        .map_err(unreachable)?;
    let status = res.status().as_u16();
    if status == 404 {
        return Err(ApiError::not_found(format!(
            "OpenRouter lists no endpoints for {model}"
        )));
    }
    if !res.status().is_success() {
        return Err(ApiError::bad_gateway(format!(
            "OpenRouter answered HTTP {status} for the endpoints of {model}"
        )));
    }
    let mut body = Vec::new();
    let mut res = res;
    while let Some(chunk) = res.chunk().await.map_err(unreachable)? {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_ENDPOINTS_BODY {
            return Err(ApiError::bad_gateway(
                "OpenRouter's endpoints list is too large",
            ));
        }
    }
    let value: serde_json::Value = serde_json::from_slice(&body)
        .map_err(|_| ApiError::bad_gateway("OpenRouter's endpoints list is not JSON"))?;
    Ok(Json(value).into_response())
}

/// The only fields of a completion request the restriction looks at; the body itself is forwarded
/// untouched.
#[derive(Deserialize)]
pub struct RequestedModels {
    pub model: Option<String>,
    #[serde(default)]
    pub models: Vec<String>,
}

impl RequestedModels {
    pub fn parse(body: &[u8]) -> Result<RequestedModels, ApiError> {
        parse_request(body)
    }
}

/// A JSON request body read into `T` (the fields an entry point looks at); 400 naming the JSON
/// error otherwise.
pub fn parse_request<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))
}

/// Refuse a completion request whose `model` or any `models[]` entry is not available on
/// `provider` (403), when `CUSTOM_MODELS` restricts the list. The models read, when the body had
/// to be read for them (`None` without a restriction: the body was not parsed).
pub fn check_request_models(
    state: &AppState,
    provider: &ProviderId,
    body: &[u8],
) -> Result<Option<RequestedModels>, ApiError> {
    if state.settings().custom_model_rules.is_empty() {
        return Ok(None);
    }
    let req = RequestedModels::parse(body)?;
    for m in req.model.iter().chain(req.models.iter()) {
        if !state.model_allowed(provider, m) {
            return Err(ApiError::model_not_available(m));
        }
    }
    Ok(Some(req))
}

#[derive(Deserialize, Default)]
struct ModelsParams {
    q: Option<String>,
    #[serde(default)]
    free: bool,
    #[serde(default)]
    vision: bool,
    #[serde(default)]
    reasoning: bool,
    #[serde(default)]
    image_output: bool,
    #[serde(default)]
    all: bool,
}

#[derive(Serialize)]
struct ModelsResponse<'a> {
    default: Option<String>,
    models: Vec<ModelJson<'a>>,
}

#[derive(Serialize)]
pub struct ModelJson<'a> {
    id: &'a str,
    provider: &'a str,
    display_name: &'a str,
    available: bool,
    is_default: bool,
    vision: bool,
    reasoning: bool,
    tools: bool,
    image_output: bool,
    free: bool,
    context_length: Option<u64>,
    pricing: Option<PricingJson>,
    vendor: &'static str,
}

#[derive(Serialize)]
struct PricingJson {
    prompt_per_mtok: f64,
    completion_per_mtok: f64,
}

impl<'a> From<&'a ModelEntry> for ModelJson<'a> {
    fn from(e: &'a ModelEntry) -> Self {
        ModelJson {
            id: &e.id,
            provider: e.provider.as_str(),
            display_name: &e.display_name,
            available: e.available,
            is_default: e.is_default,
            vision: e.vision,
            reasoning: e.reasoning,
            tools: e.tools,
            image_output: e.image_output,
            free: e.free,
            context_length: e.context_length,
            pricing: e.pricing.map(|p| PricingJson {
                prompt_per_mtok: p.prompt_per_mtok(),
                completion_per_mtok: p.completion_per_mtok(),
            }),
            vendor: e.vendor.slug(),
        }
    }
}

async fn list_models(
    State(gate): State<Gate>,
    State(catalog): State<Arc<ModelCatalog>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    params: Result<Query<ModelsParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    admit(&gate, &headers, peer.ip(), CredentialStyle::NextChat).await?;
    let Query(params) =
        params.map_err(|e| ApiError::bad_request(format!("bad query parameters: {e}")))?;
    let table = catalog.table();
    let query = ModelQuery {
        q: params.q,
        free: params.free,
        vision: params.vision,
        reasoning: params.reasoning,
        image_output: params.image_output,
        include_unavailable: params.all,
    };
    let body = ModelsResponse {
        default: table
            .default_entry()
            .map(|e| format!("{}@{}", e.id, e.provider.as_str())),
        models: table
            .query(&query)
            .into_iter()
            .map(ModelJson::from)
            .collect(),
    };
    let bytes = serde_json::to_vec(&body)
        .map_err(|e| ApiError::internal(format!("serializing the model list: {e}")))?;
    Ok(cached_json(&headers, bytes))
}

/// How long a browser may reuse the model list without asking: it changes when the catalog is
/// refreshed (hourly by default), and the page needs it on every chat it opens.
const MODELS_MAX_AGE: &str = "private, max-age=60";

/// A JSON answer with an `ETag` (a hash of the body): a request whose `If-None-Match` names it
/// gets `304 Not Modified` and no body, which saves the 100 KB list on every page.
fn cached_json(headers: &HeaderMap, bytes: Vec<u8>) -> Response {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(&bytes);
    let tag: String = digest[..12].iter().map(|b| format!("{b:02x}")).collect();
    let etag = format!("\"{tag}\"");
    // A compressing layer may have weakened the tag it sent (`W/"…"`): compare the opaque part.
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*");
    let mut res = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            bytes,
        )
            .into_response()
    };
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(MODELS_MAX_AGE),
    );
    // The list depends on who asks (an own key sees its provider's models).
    h.insert(
        header::VARY,
        HeaderValue::from_static("cookie, authorization, x-switchboard-user-key"),
    );
    res
}
