//! The chat API's handlers: plain functions from a [`Caller`] and a request to JSON.

use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use switchboard_chat::ChatEngine;
use switchboard_chat::context::ModelLimits;
use switchboard_chat::view::{ChatView, MessageView};
use switchboard_chat::{ChatError, DEFAULT_TITLE, ReplyPlan, UserFile, UserTurn};
use switchboard_core::Settings;
use switchboard_core::catalog::ModelRef;
use switchboard_core::provider::ProviderId;
use switchboard_core::routing::{MAX_FALLBACK_MODELS, ProviderPreferences};
use switchboard_core::secret::Secret;
use switchboard_store::{Chat, ChatPage, ChatPatch, ChatSettings, Role, Store, TurnParent};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::read_body_within;
use crate::quota::Growth;
use crate::state::AppState;

/// Messages a chat page shows at first; older ones load on demand.
const FIRST_PAGE: u32 = 50;
const MAX_TITLE_CHARS: usize = 200;
/// Pinned chats listed at most (the sidebar's first page brings them all).
pub const MAX_PINNED: u32 = 200;
/// Chats one page of search results holds.
const SEARCH_PAGE: u32 = 30;
const MAX_MODEL_ID_CHARS: usize = 256;
/// `off` turns reasoning off (`reasoning.enabled: false`); the rest are OpenRouter's efforts.
const REASONING_EFFORTS: &[&str] = &[
    "off", "none", "minimal", "low", "medium", "high", "xhigh", "max",
];
const WEB_SEARCH_ENGINES: &[&str] = &["native", "exa"];
/// OpenRouter's file-parser engines for PDFs.
const PDF_ENGINES: &[&str] = &["pdf-text", "mistral-ocr", "native"];
/// Files one message may carry.
const MAX_FILES: usize = 10;
const MAX_FILE_NAME_CHARS: usize = 255;
const MAX_WEB_RESULTS: u32 = 25;

impl From<ChatError> for ApiError {
    fn from(e: ChatError) -> Self {
        match e {
            ChatError::NotFound => chat_not_found(),
            ChatError::Busy => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ChatError::ShuttingDown => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ChatError::NoWaitingToolCall => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ChatError::MessageNotFound => ApiError::not_found(e.to_string()),
            ChatError::NoReplies => ApiError::bad_request(e.to_string()),
            ChatError::Store(e) => e.into(),
        }
    }
}

fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return serde_json::from_slice(b"{}").map_err(|e| ApiError::bad_request(e.to_string()));
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
}

async fn json_body<T: DeserializeOwned>(
    settings: &Settings,
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    // A message carries its images (the page downscales them first): the chat API's own limit.
    let limit = settings.max_upload_bytes;
    let bytes = read_body_within(headers, body, limit, "SWITCHBOARD_MAX_UPLOAD_BYTES").await?;
    parse_json(&bytes)
}

fn chat_not_found() -> ApiError {
    ApiError::not_found("no such chat")
}

async fn load_chat(store: &Store, caller: &Caller, id: &str) -> Result<Chat, ApiError> {
    store
        .get_chat(&caller.workspace, id)
        .await?
        .ok_or_else(chat_not_found)
}

/// Check settings a client sent: wrong types are refused by serde, values out of range here.
/// (Sampling parameters are also clamped at send time, so old stored values never fail a send.)
/// `kept`: the tool servers the chat names already, which stay valid after the operator removes
/// them from the configuration (a client saving other settings sends them back).
fn validate_settings(state: &AppState, s: &ChatSettings, kept: &[String]) -> Result<(), ApiError> {
    if let Some(names) = &s.mcp_servers {
        let mcp = state.chats().mcp();
        if names.len() > 32 {
            return Err(ApiError::bad_request(
                "settings.mcp_servers takes at most 32 names",
            ));
        }
        if let Some(unknown) = names
            .iter()
            .find(|n| !kept.contains(n) && !mcp.is_some_and(|m| m.has_server(n)))
        {
            return Err(ApiError::bad_request(format!(
                "settings.mcp_servers: no tool server named `{}` is configured (GET /api/tools lists them)",
                unknown.chars().take(64).collect::<String>()
            )));
        }
    }
    let range = |name: &str, v: Option<f64>, lo: f64, hi: f64| match v {
        Some(x) if !(lo..=hi).contains(&x) || x.is_nan() => Err(ApiError::bad_request(format!(
            "settings.{name} must be between {lo} and {hi}"
        ))),
        _ => Ok(()),
    };
    range("temperature", s.temperature, 0.0, 2.0)?;
    range("top_p", s.top_p, 0.0, 1.0)?;
    range("frequency_penalty", s.frequency_penalty, -2.0, 2.0)?;
    range("presence_penalty", s.presence_penalty, -2.0, 2.0)?;
    if s.max_tokens == Some(0) {
        return Err(ApiError::bad_request(
            "settings.max_tokens must be at least 1",
        ));
    }
    if s.history_length == Some(0) {
        return Err(ApiError::bad_request(
            "settings.history_length must be at least 1",
        ));
    }
    if let Some(e) = &s.reasoning_effort
        && !REASONING_EFFORTS.contains(&e.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "settings.reasoning_effort must be one of {}",
            REASONING_EFFORTS.join(", ")
        )));
    }
    if s.model
        .as_ref()
        .is_some_and(|m| m.len() > MAX_MODEL_ID_CHARS)
    {
        return Err(ApiError::bad_request("settings.model is too long"));
    }
    if let Some(engine) = &s.pdf_engine
        && !PDF_ENGINES.contains(&engine.as_str())
    {
        return Err(ApiError::bad_request(format!(
            "settings.pdf_engine must be one of {}",
            PDF_ENGINES.join(", ")
        )));
    }
    if let Some(provider) = &s.provider {
        ProviderPreferences::parse(provider)
            .map_err(|e| ApiError::bad_request(format!("settings.provider: {e}")))?;
    }
    if let Some(fallbacks) = &s.fallback_models {
        if fallbacks.len() > MAX_FALLBACK_MODELS {
            return Err(ApiError::bad_request(format!(
                "settings.fallback_models takes at most {MAX_FALLBACK_MODELS} models"
            )));
        }
        if fallbacks
            .iter()
            .any(|m| m.trim().is_empty() || m.len() > MAX_MODEL_ID_CHARS)
        {
            return Err(ApiError::bad_request(format!(
                "settings.fallback_models: model ids must be 1 to {MAX_MODEL_ID_CHARS} characters"
            )));
        }
    }
    if let Some(web) = &s.web_search {
        if web
            .max_results
            .is_some_and(|n| !(1..=MAX_WEB_RESULTS).contains(&n))
        {
            return Err(ApiError::bad_request(format!(
                "settings.web_search.max_results must be between 1 and {MAX_WEB_RESULTS}"
            )));
        }
        if let Some(engine) = &web.engine
            && !WEB_SEARCH_ENGINES.contains(&engine.as_str())
        {
            return Err(ApiError::bad_request(format!(
                "settings.web_search.engine must be one of {}",
                WEB_SEARCH_ENGINES.join(", ")
            )));
        }
    }
    if s.reasoning_max_tokens == Some(0) {
        return Err(ApiError::bad_request(
            "settings.reasoning_max_tokens must be at least 1",
        ));
    }
    Ok(())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct NewChatRequest {
    title: Option<String>,
    #[serde(default, deserialize_with = "strict_settings")]
    settings: ChatSettings,
}

/// The settings a client may send; anything else is refused rather than silently dropped.
const SETTINGS_KEYS: &[&str] = &[
    "model",
    "system_prompt",
    "temperature",
    "top_p",
    "max_tokens",
    "reasoning_effort",
    "history_length",
    "frequency_penalty",
    "presence_penalty",
    "provider",
    "fallback_models",
    "web_search",
    "reasoning_max_tokens",
    "reasoning_exclude",
    "mcp_servers",
    "pdf_engine",
];

fn strict_settings<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ChatSettings, D::Error> {
    use serde::de::Error;
    let value = Value::deserialize(d)?;
    if let Some(map) = value.as_object()
        && let Some(unknown) = map.keys().find(|k| !SETTINGS_KEYS.contains(&k.as_str()))
    {
        return Err(D::Error::custom(format!(
            "unknown setting `{unknown}`; known: {}",
            SETTINGS_KEYS.join(", ")
        )));
    }
    serde_json::from_value(value).map_err(D::Error::custom)
}

fn strict_settings_opt<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<ChatSettings>, D::Error> {
    strict_settings(d).map(Some)
}

pub async fn create_chat(
    caller: Caller,
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: NewChatRequest = json_body(state.settings(), &headers, body).await?;
    validate_settings(&state, &req.settings, &[])?;
    if let Some(model) = &req.settings.model {
        resolve_model(&state, Some(model), &req.settings)?;
    }
    let title = clean_title(req.title.as_deref())?.unwrap_or_else(|| DEFAULT_TITLE.to_string());
    let growth = Growth {
        chats: 1,
        bytes: title.len() as u64,
        replies: 0,
    };
    state
        .quotas()
        .check(&caller.principal, &caller.workspace, growth)
        .await?;
    let chat = state
        .store()
        .create_chat(&caller.workspace, &title, &req.settings)
        .await?;
    Ok((StatusCode::CREATED, Json(ChatView::header(&chat))).into_response())
}

fn clean_title(title: Option<&str>) -> Result<Option<String>, ApiError> {
    match title.map(str::trim) {
        None | Some("") => Ok(None),
        Some(t) if t.chars().count() > MAX_TITLE_CHARS => Err(ApiError::bad_request(format!(
            "title is longer than {MAX_TITLE_CHARS} characters"
        ))),
        Some(t) => Ok(Some(t.to_string())),
    }
}

#[derive(Deserialize)]
pub struct ListParams {
    limit: Option<u32>,
    before: Option<String>,
}

pub async fn list_chats(
    caller: Caller,
    State(store): State<Store>,
    params: Result<Query<ListParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params.limit.unwrap_or(50).clamp(1, 200);
    let before = match params.before.as_deref() {
        None | Some("") => None,
        Some(cursor) => {
            let (at, id) = cursor
                .split_once(':')
                .and_then(|(at, id)| Some((at.parse::<i64>().ok()?, id.to_string())))
                .ok_or_else(|| ApiError::bad_request("before must be a cursor from `next`"))?;
            Some((at, id))
        }
    };
    let chats = store
        .list_chats(
            &caller.workspace,
            ChatPage {
                limit,
                before: before.clone(),
            },
        )
        .await?;
    let next = (chats.len() == limit as usize)
        .then(|| chats.last().map(|c| format!("{}:{}", c.updated_at, c.id)))
        .flatten();
    let mut body = json!({"chats": chats, "next": next});
    // The first page also brings the pinned chats, which the sidebar shows above the rest
    // however old they are.
    if before.is_none() {
        body["pinned"] = json!(store.pinned_chats(&caller.workspace, MAX_PINNED).await?);
    }
    Ok(Json(body).into_response())
}

pub async fn get_chat(
    caller: Caller,
    State(chats): State<ChatEngine>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = chat_view(&chats, &caller, &id)
        .await?
        .ok_or_else(chat_not_found)?;
    Ok(Json(view).into_response())
}

/// The chat with its latest messages, consistent with `last_event_id`: resuming the event
/// stream from there neither skips nor repeats a change. `None` when the caller's workspace has
/// no such chat (the snapshot reads the chat itself: no separate read first).
pub async fn chat_view(
    chats: &ChatEngine,
    caller: &Caller,
    chat_id: &str,
) -> Result<Option<ChatView>, ApiError> {
    let Some(snapshot) = chats
        .snapshot(&caller.workspace, chat_id, None, FIRST_PAGE)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(ChatView::from_snapshot(snapshot).await))
}

#[derive(Deserialize)]
pub struct PageParams {
    before_seq: Option<i64>,
    limit: Option<u32>,
}

pub async fn list_messages(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path(id): Path<String>,
    params: Result<Query<PageParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let chat = load_chat(&store, &caller, &id).await?;
    let limit = params.limit.unwrap_or(FIRST_PAGE).clamp(1, 500);
    let snapshot = chats
        .snapshot(&caller.workspace, &chat.id, params.before_seq, limit)
        .await?
        .ok_or_else(chat_not_found)?;
    let mut views = MessageView::render_page(snapshot.messages).await;
    switchboard_chat::view::attach_siblings(&mut views, &snapshot.siblings);
    Ok(Json(json!({"messages": views, "has_more": snapshot.has_more})).into_response())
}

/// `GET /api/chats/{id}/tree`: every message of the chat, on the active path or not, in seq
/// order, each with `on_path` (the JSON export carries the whole tree).
pub async fn tree(
    caller: Caller,
    State(store): State<Store>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    let tree = store.list_tree(&caller.workspace, &chat.id).await?;
    let on_path: Vec<bool> = tree.iter().map(|(_, on)| *on).collect();
    let views = MessageView::render_page(tree.into_iter().map(|(m, _)| m).collect()).await;
    let messages: Vec<Value> = views
        .into_iter()
        .zip(on_path)
        .map(|(view, on)| {
            let mut value = serde_json::to_value(view).unwrap_or_default();
            value["on_path"] = Value::Bool(on);
            value
        })
        .collect();
    Ok(Json(json!({"messages": messages})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchRequest {
    title: Option<String>,
    /// Keep the chat at the top of the sidebar (or not).
    pinned: Option<bool>,
    #[serde(default, deserialize_with = "strict_settings_opt")]
    settings: Option<ChatSettings>,
}

pub async fn patch_chat(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: PatchRequest = json_body(state.settings(), &headers, body).await?;
    if let Some(s) = &req.settings {
        let kept = match &s.mcp_servers {
            Some(_) => load_chat(state.store(), &caller, &id)
                .await?
                .settings
                .mcp_servers
                .unwrap_or_default(),
            None => Vec::new(),
        };
        validate_settings(&state, s, &kept)?;
        if let Some(model) = &s.model {
            resolve_model(&state, Some(model), s)?;
        }
    }
    let patch = ChatPatch {
        title: clean_title(req.title.as_deref())?,
        settings: req.settings,
    };
    // Pinning alone is not activity: it leaves the title, settings and `updated_at` alone.
    let chat = if patch.title.is_none() && patch.settings.is_none() {
        load_chat(state.store(), &caller, &id).await?
    } else {
        let chat = state
            .store()
            .update_chat(&caller.workspace, &id, &patch)
            .await?
            .ok_or_else(chat_not_found)?;
        let data =
            json!({"id": chat.id, "title": chat.title, "settings": chat.settings}).to_string();
        emit_quietly(state.chats(), &chat.id, "chat", data).await;
        chat
    };
    let mut body = ChatView::header(&chat);
    if let Some(pinned) = req.pinned {
        if !state
            .store()
            .set_chat_pinned(&caller.workspace, &id, pinned)
            .await?
        {
            return Err(chat_not_found());
        }
        body["pinned"] = json!(pinned);
    }
    Ok(Json(body).into_response())
}

pub async fn delete_chat(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    // Its replies, wherever they run, end; their next write finds the chat gone and stores nothing.
    chats.stop(&caller.workspace, &chat.id, None).await?;
    if !store.delete_chat(&caller.workspace, &id).await? {
        return Err(chat_not_found());
    }
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    content: String,
    model: Option<String>,
    /// A compare: 2 to 4 models answer at once, instead of `model`.
    models: Option<Vec<String>>,
    #[serde(default)]
    images: Vec<String>,
    /// PDFs and text files, sent with OpenRouter's file parser.
    #[serde(default)]
    files: Vec<FileUpload>,
    reasoning: Option<ReasoningRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileUpload {
    name: String,
    data_url: String,
}

/// Checks the files of a message: a name, and a `data:` URL of a PDF or a text file.
fn user_files(files: Vec<FileUpload>) -> Result<Vec<UserFile>, ApiError> {
    if files.len() > MAX_FILES {
        return Err(ApiError::bad_request(format!(
            "a message takes at most {MAX_FILES} files"
        )));
    }
    files
        .into_iter()
        .enumerate()
        .map(|(i, f)| {
            let name = f.name.trim();
            if name.is_empty() || name.chars().count() > MAX_FILE_NAME_CHARS || name.contains(['/', '\\']) {
                return Err(ApiError::bad_request(format!(
                    "files[{i}].name must be a file name of 1 to {MAX_FILE_NAME_CHARS} characters"
                )));
            }
            let (mime, data, size) = switchboard_chat::files::parse_data_url(&f.data_url)
                .filter(|(mime, ..)| is_document_type(mime))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "files[{i}].data_url must be a data:application/pdf;base64,… or data:text/…;base64,… URL"
                    ))
                })?;
            Ok(UserFile {
                name: name.to_string(),
                mime: mime.to_string(),
                data: data.to_string(),
                size,
            })
        })
        .collect()
}

/// What the file parser reads: PDFs and text.
fn is_document_type(mime: &str) -> bool {
    mime == "application/pdf" || mime == "application/json" || mime.starts_with("text/")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReasoningRequest {
    effort: String,
}

pub async fn post_message(
    caller: Caller,
    State(state): State<AppState>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: SendRequest = json_body(state.settings(), &headers, body).await?;
    let files = user_files(req.files)?;
    if req.content.trim().is_empty() && req.images.is_empty() && files.is_empty() {
        return Err(ApiError::bad_request("content must not be empty"));
    }
    for (i, image) in req.images.iter().enumerate() {
        if !is_image_data_url(image) {
            return Err(ApiError::bad_request(format!(
                "images[{i}] must be a data:image/(png|jpeg|gif|webp);base64,… URL"
            )));
        }
    }
    let effort = match req.reasoning {
        Some(r) if REASONING_EFFORTS.contains(&r.effort.as_str()) => Some(r.effort),
        Some(_) => {
            return Err(ApiError::bad_request(format!(
                "reasoning.effort must be one of {}",
                REASONING_EFFORTS.join(", ")
            )));
        }
        None => None,
    };
    let compare = match req.models {
        Some(_) if req.model.is_some() => {
            return Err(ApiError::bad_request(
                "send either model or models, not both",
            ));
        }
        Some(models) => {
            if !(MIN_COMPARE..=MAX_COMPARE).contains(&models.len()) {
                return Err(ApiError::bad_request(format!(
                    "models takes {MIN_COMPARE} to {MAX_COMPARE} model ids"
                )));
            }
            if models
                .iter()
                .enumerate()
                .any(|(i, m)| models[..i].contains(m))
            {
                return Err(ApiError::bad_request("models must be different"));
            }
            Some(models)
        }
        None => None,
    };
    let chat = load_chat(state.store(), &caller, &id).await?;
    let user = Arc::new(UserTurn {
        content: req.content,
        images: req.images,
        files,
    });
    let Some(models) = compare else {
        let plan = plan_reply(
            &state,
            &caller,
            chat,
            &headers,
            Turn {
                user: Some(user),
                parent: TurnParent::End,
            },
            req.model.as_deref(),
            effort,
        )
        .await?;
        let started = state.chats().start_reply(plan).await?;
        return Ok(accepted(
            started.user_message_id,
            started.assistant_message_id,
        ));
    };
    // Plan, then act: every model is checked before the turn is stored.
    let mut plans = Vec::with_capacity(models.len());
    for model in &models {
        let mut plan = plan_reply(
            &state,
            &caller,
            chat.clone(),
            &headers,
            Turn {
                user: Some(user.clone()),
                parent: TurnParent::End,
            },
            Some(model),
            effort.clone(),
        )
        .await?;
        // A compare leaves the chat's model as it was: "continue with this" picks one.
        plan.settings = None;
        plans.push(plan);
    }
    let started = state.chats().start_replies(plans).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "user_message_id": started.user_message_id,
            "assistant_message_ids": started.assistant_message_ids,
        })),
    )
        .into_response())
}

/// How many models a compare asks at least, and at most.
const MIN_COMPARE: usize = 2;
const MAX_COMPARE: usize = 4;

/// 202: the turn is stored and the reply is being generated.
fn accepted(user_id: Option<String>, assistant_id: String) -> Response {
    (
        StatusCode::ACCEPTED,
        Json(json!({"user_message_id": user_id, "assistant_message_id": assistant_id})),
    )
        .into_response()
}

fn is_image_data_url(s: &str) -> bool {
    ["png", "jpeg", "jpg", "gif", "webp"]
        .iter()
        .any(|t| s.starts_with(&format!("data:image/{t};base64,")))
}

/// Where a reply goes and with what.
pub struct Target {
    pub model: String,
    pub provider: ProviderId,
    pub limits: ModelLimits,
    /// Whether the model accepts `tools` (unknown models: as far as we know, yes).
    pub tools: bool,
}

/// The model a reply uses: the request's, else the chat's, else the server's default; refused
/// with 400 when this server does not offer it.
pub fn resolve_model(
    state: &AppState,
    requested: Option<&str>,
    settings: &ChatSettings,
) -> Result<Target, ApiError> {
    let table = state.catalog().table();
    let raw = match requested.or(settings.model.as_deref()) {
        Some(m) => m.to_string(),
        None => table
            .default_entry()
            .map(|e| format!("{}@{}", e.id, e.provider.as_str()))
            .ok_or_else(|| ApiError::bad_request("no model is available on this server"))?,
    };
    if raw.len() > MAX_MODEL_ID_CHARS {
        return Err(ApiError::bad_request("model id is too long"));
    }
    if raw.starts_with("@preset/") {
        return preset(state, &raw);
    }
    let r = ModelRef::parse(&raw).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let provider = match r.provider {
        Some(p) => p,
        None => table
            .resolve(&r.model, None)
            .map(|e| e.provider.clone())
            .unwrap_or(ProviderId::OpenRouter),
    };
    if !table.is_allowed(&r.model, Some(&provider)) {
        return Err(ApiError::bad_request(format!(
            "model {} is not available on this server",
            r.model
        )));
    }
    if state.upstream(&provider).is_none() {
        return Err(ApiError::bad_request(format!(
            "provider {} is not configured on this server",
            provider.as_str()
        )));
    }
    let entry = table.resolve(&r.model, Some(&provider));
    Ok(Target {
        limits: ModelLimits {
            context_length: entry.and_then(|e| e.context_length),
            vision: entry.is_some_and(|e| e.vision),
            image_output: entry.is_some_and(|e| e.image_output),
        },
        tools: entry.is_none_or(|e| e.tools),
        model: r.model,
        provider,
    })
}

/// An OpenRouter preset (`@preset/name`): passed through as it is, to OpenRouter, where this server
/// lets chats pick that id (any, unless `CUSTOM_MODELS` restricts the list).
fn preset(state: &AppState, raw: &str) -> Result<Target, ApiError> {
    let name = &raw["@preset/".len()..];
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(ApiError::bad_request(format!(
            "{raw} is not a preset name (@preset/ followed by letters, digits, - _ .)"
        )));
    }
    let provider = ProviderId::OpenRouter;
    if !state.catalog().table().is_allowed(raw, Some(&provider)) {
        return Err(ApiError::bad_request(format!(
            "model {raw} is not available on this server"
        )));
    }
    if state.upstream(&provider).is_none() {
        return Err(ApiError::bad_request(
            "provider openrouter is not configured on this server",
        ));
    }
    Ok(Target {
        model: raw.to_string(),
        provider,
        limits: ModelLimits {
            context_length: None,
            vision: false,
            image_output: false,
        },
        tools: true,
    })
}

/// What a turn adds, and where in the chat's tree.
struct Turn {
    user: Option<Arc<UserTurn>>,
    /// Edit and regenerate branch off an earlier message.
    parent: TurnParent,
}

/// Plan, then act: everything a reply needs is checked here — model, provider, vision, the
/// credential, a user-set endpoint — before the engine writes anything. A refusal leaves the
/// chat exactly as it was.
async fn plan_reply(
    state: &AppState,
    caller: &Caller,
    chat: Chat,
    headers: &HeaderMap,
    turn: Turn,
    requested_model: Option<&str>,
    effort: Option<String>,
) -> Result<ReplyPlan, ApiError> {
    let target = resolve_model(state, requested_model, &chat.settings)?;
    crate::spend::check_budget(state, &caller.principal).await?;
    // The user's message is what this turn adds before the reply (which is bounded by
    // SWITCHBOARD_MAX_REPLY_BYTES, and checked by the next turn).
    let adds = turn.user.as_ref().map_or(0, |u| {
        u.content.len()
            + u.images.iter().map(String::len).sum::<usize>()
            + u.files.iter().map(|f| f.data.len()).sum::<usize>()
    });
    let growth = Growth {
        chats: 0,
        bytes: adds as u64,
        replies: 1,
    };
    state
        .quotas()
        .check(&caller.principal, &caller.workspace, growth)
        .await?;
    if let Some(u) = &turn.user
        && !u.images.is_empty()
        && !target.limits.vision
    {
        return Err(ApiError::bad_request(format!(
            "model {} cannot see images; pick a vision model or remove the images",
            target.model
        )));
    }
    let upstream = state
        .upstream(&target.provider)
        .ok_or_else(|| ApiError::bad_request("provider not configured"))?;
    let key: Secret = caller
        .principal
        .upstream_key(&upstream.config, &upstream.rotation)?
        .clone();
    let endpoint = user_endpoint(state, caller, headers).await?;
    // A reply completed by a configured provider proves an own key; one from an endpoint the
    // user chose proves nothing.
    let verifies_key = caller.principal.has_own_key() && endpoint.is_none();
    let title_model = title_model(state, &target, endpoint.is_some());
    let (http, in_flight, base_url) = match endpoint {
        Some(vetted) => (vetted.client, None, vetted.base_url),
        None => {
            let lane = state.outbound().take();
            let http = lane.client().clone();
            let lane: Box<dyn std::any::Any + Send + Sync> = Box::new(lane);
            (http, Some(lane), upstream.config.base_url.clone())
        }
    };
    // The model a message was sent with becomes the chat's: regenerate and the next message use
    // it, on every device. Saved with the turn, not before it.
    let settings = (requested_model.is_some() && chat.settings.model.as_deref() != requested_model)
        .then(|| ChatSettings {
            model: requested_model.map(str::to_string),
            ..chat.settings.clone()
        });
    Ok(ReplyPlan {
        workspace: caller.workspace.clone(),
        parent: turn.parent,
        user: turn.user,
        model: target.model,
        provider: target.provider.as_str().to_string(),
        limits: target.limits,
        settings,
        upstream: switchboard_chat::Upstream {
            url: format!("{base_url}/v1/chat/completions"),
            http,
            key,
            in_flight,
        },
        reasoning_effort: effort,
        paid_by_server: !caller.principal.has_own_key(),
        verifies_key,
        tools: target.tools,
        title_model,
        chat,
    })
}

/// Small fast models that name a chat well, in order of preference: the first the catalog has
/// on the reply's provider is used when `SWITCHBOARD_TITLE_MODEL` is not set.
const TITLE_MODELS: &[&str] = &[
    "openai/gpt-4o-mini",
    "google/gemini-2.0-flash-001",
    "google/gemini-2.5-flash-lite",
    "anthropic/claude-3-haiku",
    "mistralai/mistral-small-3.1-24b-instruct",
    "meta-llama/llama-3.1-8b-instruct",
];

/// The model that names the chat; `None` lets the reply's own model do it (reasoning off). An
/// endpoint the user chose may serve none of the catalog's models, so it gets the reply's.
fn title_model(state: &AppState, target: &Target, own_endpoint: bool) -> Option<String> {
    if let Some(model) = &state.settings().title_model {
        return Some(model.clone());
    }
    if own_endpoint {
        return None;
    }
    let table = state.catalog().table();
    TITLE_MODELS
        .iter()
        .find(|id| table.resolve(id, Some(&target.provider)).is_some())
        .map(|id| id.to_string())
}

/// A user-set endpoint from the browser, vetted; only with the user's own key, so the server's
/// keys never travel to a URL a client chose.
async fn user_endpoint(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
) -> Result<Option<crate::ssrf::VettedEndpoint>, ApiError> {
    let Some(raw) = headers
        .get(crate::ssrf::ENDPOINT_HEADER)
        .map(|v| v.to_str().unwrap_or(""))
        .filter(|v| !v.trim().is_empty())
    else {
        return Ok(None);
    };
    if !caller.principal.has_own_key() {
        return Err(ApiError::bad_request(
            "a custom endpoint can only be used with your own API key",
        ));
    }
    crate::ssrf::vet_endpoint(state.outbound(), raw)
        .await
        .map(Some)
}

/// Store a chat-level event; a failure is logged, not fatal: the change itself is stored, and
/// clients that missed the event see it on their next load.
async fn emit_quietly(chats: &ChatEngine, chat_id: &str, kind: &str, data: String) {
    if let Err(e) = chats.emit(chat_id, kind, "", data).await {
        tracing::warn!(error = %e, kind, "could not store a chat event");
    }
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RegenerateRequest {
    model: Option<String>,
}

pub async fn regenerate(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: RegenerateRequest = json_body(state.settings(), &headers, body).await?;
    let chat = load_chat(state.store(), &caller, &id).await?;
    let msg = state
        .store()
        .get_message(&caller.workspace, &id, &message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    // Regenerating a user message means: answer it again. A new reply goes beside the old one,
    // which is kept.
    let parent = match msg.role {
        Role::Assistant => msg.parent_id,
        _ => Some(msg.id),
    };
    let turn = Turn {
        user: None,
        parent: TurnParent::Under(parent),
    };
    let plan = plan_reply(
        &state,
        &caller,
        chat,
        &headers,
        turn,
        req.model.as_deref(),
        None,
    )
    .await?;
    let started = state.chats().start_reply(plan).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"assistant_message_id": started.assistant_message_id})),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    content: String,
    model: Option<String>,
}

/// The files of a message an edit replaces, copied for the edited one (the old rows go with the
/// old message).
async fn kept_files(
    state: &AppState,
    caller: &Caller,
    msg: &switchboard_store::Message,
) -> Result<Vec<UserFile>, ApiError> {
    let ids = msg
        .attachments
        .as_ref()
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(|a| a.get("file").and_then(Value::as_str));
    let mut files = Vec::new();
    for id in ids {
        if let Some(f) = state.store().get_file(&caller.workspace, id).await? {
            files.push(UserFile {
                name: f.name,
                mime: f.mime,
                data: f.data,
                size: f.size,
            });
        }
    }
    Ok(files)
}

pub async fn edit_message(
    caller: Caller,
    State(state): State<AppState>,
    Path((id, message_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: EditRequest = json_body(state.settings(), &headers, body).await?;
    if req.content.trim().is_empty() {
        return Err(ApiError::bad_request("content must not be empty"));
    }
    let chat = load_chat(state.store(), &caller, &id).await?;
    let msg = state
        .store()
        .get_message(&caller.workspace, &id, &message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    if msg.role != Role::User {
        return Err(ApiError::bad_request(
            "only your own messages can be edited",
        ));
    }
    let images: Vec<String> = msg
        .attachments
        .as_ref()
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let files = kept_files(&state, &caller, &msg).await?;
    let turn = Turn {
        user: Some(Arc::new(UserTurn {
            content: req.content,
            images,
            files,
        })),
        // The edited message stays, with its replies, beside the new one.
        parent: TurnParent::Under(msg.parent_id),
    };
    let plan = plan_reply(
        &state,
        &caller,
        chat,
        &headers,
        turn,
        req.model.as_deref(),
        None,
    )
    .await?;
    let started = state.chats().start_reply(plan).await?;
    Ok(accepted(
        started.user_message_id,
        started.assistant_message_id,
    ))
}

pub async fn delete_message(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    let msg = store
        .get_message(&caller.workspace, &chat.id, &message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    if msg.status == switchboard_store::MessageStatus::Streaming {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            "this reply is being generated; stop it first",
        ));
    }
    if !store
        .delete_message(&caller.workspace, &id, &message_id)
        .await?
    {
        return Err(ApiError::not_found("no such message"));
    }
    let data = json!({"message_ids": [message_id]}).to_string();
    emit_quietly(&chats, &chat.id, "deleted", data).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToolDecision {
    approve: bool,
}

/// `POST /api/chats/{id}/tool-calls/{call_id}` `{"approve": true|false}`: allows or denies a
/// tool call waiting in the chat's running reply, from any device.
pub async fn decide_tool_call(
    caller: Caller,
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path((id, call_id)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let req: ToolDecision = json_body(&settings, &headers, body).await?;
    let chat = load_chat(&store, &caller, &id).await?;
    chats
        .decide_tool_call(&caller.workspace, &chat.id, &call_id, req.approve)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /api/tools`: the MCP servers, their state and their tools. No command, URL, header or
/// environment value: those are the operator's.
pub async fn list_tools(_caller: Caller, State(chats): State<ChatEngine>) -> Json<Value> {
    let servers = chats.mcp().map(|m| m.servers()).unwrap_or_default();
    Json(json!({"servers": servers}))
}

pub async fn stop(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    chats.stop(&caller.workspace, &chat.id, None).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/chats/{id}/messages/{message_id}/stop`: stops one reply of the running turn (a
/// compare's column), wherever it runs; the others go on.
pub async fn stop_message(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    store
        .get_message(&caller.workspace, &chat.id, &message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such message"))?;
    chats
        .stop(&caller.workspace, &chat.id, Some(&message_id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /api/chats/{id}/messages/{message_id}/select`: makes that branch the active path (the
/// next message continues from it) and answers with the chat as it now reads.
pub async fn select_message(
    caller: Caller,
    State(store): State<Store>,
    State(chats): State<ChatEngine>,
    Path((id, message_id)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let chat = load_chat(&store, &caller, &id).await?;
    chats
        .select(&caller.workspace, &chat.id, &message_id)
        .await?;
    let view = chat_view(&chats, &caller, &chat.id)
        .await?
        .ok_or_else(chat_not_found)?;
    Ok(Json(view).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForkRequest {
    message_id: String,
}

pub async fn fork(
    caller: Caller,
    State(settings): State<Arc<Settings>>,
    State(store): State<Store>,
    State(quotas): State<crate::quota::Quotas>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: ForkRequest = json_body(&settings, &headers, body).await?;
    // A fork copies at most the whole chat.
    let source = store.chat_usage(&caller.workspace, &id).await?;
    let growth = Growth {
        chats: 1,
        bytes: source.bytes,
        replies: 0,
    };
    quotas
        .check(&caller.principal, &caller.workspace, growth)
        .await?;
    let chat = store
        .fork_chat(&caller.workspace, &id, &req.message_id)
        .await?
        .ok_or_else(|| ApiError::not_found("no such chat or message"))?;
    Ok((StatusCode::CREATED, Json(ChatView::header(&chat))).into_response())
}

#[derive(Deserialize)]
pub struct SearchParams {
    q: Option<String>,
    offset: Option<u32>,
}

pub async fn search(
    caller: Caller,
    State(store): State<Store>,
    params: Result<Query<SearchParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = params.q.unwrap_or_default();
    if q.len() > 1000 {
        return Err(ApiError::bad_request("q is longer than 1000 bytes"));
    }
    let offset = params.offset.unwrap_or(0).min(100_000);
    let results = store
        .search_chats(&caller.workspace, &q, SEARCH_PAGE, offset)
        .await?;
    let next = (results.len() == SEARCH_PAGE as usize).then_some(offset + SEARCH_PAGE);
    Ok(Json(json!({"results": results, "next": next})).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenderRequest {
    markdown: String,
}

/// `POST /api/render`: Markdown rendered and sanitized exactly as a stored message is. The page
/// sends a streaming reply's text so far (at a throttle) and swaps the HTML in, so there is one
/// renderer, on the server, and the browser never parses Markdown itself.
pub async fn render_markdown(
    _caller: Caller,
    State(settings): State<Arc<Settings>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let req: RenderRequest = json_body(&settings, &headers, body).await?;
    let limit = settings.max_reply_bytes;
    if req.markdown.len() > limit {
        return Err(ApiError::body_over(limit, "SWITCHBOARD_MAX_REPLY_BYTES"));
    }
    // The text of a streaming reply, asked for again and again as it grows: its settled blocks
    // are remembered. Highlighting is CPU work: keep it off the threads that relay streams.
    let html = tokio::task::spawn_blocking(move || {
        switchboard_chat::rendered::render_streaming(&req.markdown)
    })
    .await
    .map_err(|e| ApiError::internal(format!("rendering markdown: {e}")))?;
    Ok(Json(json!({"html": html})).into_response())
}
