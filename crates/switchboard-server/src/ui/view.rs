//! What the page templates show, computed from the chat API's JSON shapes.
//!
//! The page is rendered from the same JSON the API sends (`GET /api/chats/{id}`), deserialized
//! into [`ChatJson`]; so the server-rendered page and what `app.js` renders from the API and the
//! event stream come from one shape. [`MessageCard`] is one message as the template draws it —
//! `app.js` builds the same markup in `renderMessage`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::i18n::Catalog;

/// A chat as `GET /api/chats/{id}` returns it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ChatJson {
    pub id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub settings: Value,
    #[serde(default)]
    pub messages: Vec<MessageJson>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub last_event_id: i64,
    /// The other replies of the compare that ends the chat (columns beside its last message).
    #[serde(default)]
    pub alternatives: Vec<MessageJson>,
}

/// A message as the chat API returns it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct MessageJson {
    pub id: String,
    #[serde(default)]
    pub seq: i64,
    #[serde(default)]
    pub parent_id: Option<String>,
    /// The branches at this message (itself included), when there are several.
    #[serde(default)]
    pub siblings: Vec<SiblingJson>,
    pub role: String,
    #[serde(default)]
    pub content: String,
    #[serde(default, skip_serializing)]
    pub html: String,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub error: Option<ErrorJson>,
    #[serde(default)]
    pub usage: Option<UsageJson>,
    #[serde(default)]
    pub tool_calls: Option<Value>,
    #[serde(default)]
    pub annotations: Option<Value>,
    #[serde(default)]
    pub attachments: Option<Value>,
    #[serde(default)]
    pub files: Vec<FileJson>,
    #[serde(default)]
    pub created_at: i64,
    #[serde(default)]
    pub first_token_at: Option<i64>,
    #[serde(default)]
    pub reasoning_ended_at: Option<i64>,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

/// A file stored with a message, as the chat API lists it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct FileJson {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub mime: String,
    #[serde(default)]
    pub size: i64,
    #[serde(default)]
    pub url: String,
}

impl FileJson {
    /// Shown as a picture (a raster image the route serves inline), not as a chip.
    pub fn is_image(&self) -> bool {
        ["image/png", "image/jpeg", "image/gif", "image/webp"].contains(&self.mime.as_str())
    }
}

/// One branch at a point of the tree, as the chat API lists it.
#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct SiblingJson {
    pub id: String,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub active: bool,
}

/// The `‹ 2 / 3 ›` switch on a message with siblings.
pub struct BranchNav {
    /// 1-based position of this message among its siblings.
    pub index: usize,
    pub total: usize,
    pub prev: Option<String>,
    pub next: Option<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct ErrorJson {
    #[serde(default)]
    pub code: Option<Value>,
    #[serde(default)]
    pub message: String,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
pub struct UsageJson {
    #[serde(default)]
    pub prompt_tokens: Option<i64>,
    #[serde(default)]
    pub completion_tokens: Option<i64>,
    #[serde(default)]
    pub reasoning_tokens: Option<i64>,
    #[serde(default)]
    pub cost: Option<f64>,
}

/// One line of the sidebar.
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct ChatLine {
    pub id: String,
    pub title: String,
    #[serde(default)]
    pub updated_at: i64,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub pinned: bool,
}

/// A tool call as shown: name and pretty-printed arguments, and for a call the server ran, its
/// state and result (untrusted text: only ever escaped, never rendered as HTML).
pub struct ToolCard {
    pub id: String,
    pub name: String,
    pub arguments: String,
    /// `waiting`, `running`, `done`, … (see switchboard-chat's `tools`); empty for a call only
    /// shown.
    pub state: String,
    pub state_label: String,
    pub result: Option<String>,
    /// Waiting for Allow / Deny in a reply still running: the card shows the buttons.
    pub asks: bool,
}

/// A web citation.
pub struct Citation {
    pub url: String,
    pub title: String,
}

/// One message, ready for the template.
pub struct MessageCard {
    pub id: String,
    pub seq: i64,
    pub role: String,
    pub status: String,
    pub streaming: bool,
    /// Sanitized HTML (a streaming reply's is its text so far), or `None` when there is none
    /// yet (then `content` is shown as escaped text).
    pub html: Option<String>,
    pub content: String,
    pub reasoning: String,
    pub thinking_open: bool,
    pub thinking_label: String,
    pub tools: Vec<ToolCard>,
    pub citations: Vec<Citation>,
    pub images: Vec<String>,
    /// Files stored with the message: images shown, the rest as chips; all downloadable.
    pub files: Vec<FileJson>,
    pub error: Option<String>,
    pub branch: Option<BranchNav>,
}

impl MessageCard {
    pub fn new(m: &MessageJson, tr: &Catalog) -> MessageCard {
        let streaming = m.status == "streaming";
        let thinking_open = streaming && m.content.is_empty();
        let thinking_label = if thinking_open {
            tr.get("thinking").to_string()
        } else {
            match thought_ms(m) {
                Some(ms) => tr.fmt("thought_for", "s", &tr.decimal(ms as f64 / 1000.0, 1)),
                None => tr.get("thinking_done").to_string(),
            }
        };
        MessageCard {
            id: m.id.clone(),
            seq: m.seq,
            role: m.role.clone(),
            status: m.status.clone(),
            streaming,
            html: (!streaming || !m.html.is_empty()).then(|| m.html.clone()),
            content: m.content.clone(),
            reasoning: m.reasoning.clone(),
            thinking_open,
            thinking_label,
            tools: tools(m.tool_calls.as_ref(), streaming, tr),
            citations: citations(m.annotations.as_ref()),
            images: images(m.attachments.as_ref()),
            files: m
                .files
                .iter()
                .filter(|f| f.url.starts_with("/api/chats/"))
                .cloned()
                .collect(),
            error: m.error.as_ref().map(|e| match &e.code {
                Some(code) => format!("{} ({code})", e.message),
                None => e.message.clone(),
            }),
            branch: branch_nav(m),
        }
    }

    pub fn is_user(&self) -> bool {
        self.role == "user"
    }
}

fn branch_nav(m: &MessageJson) -> Option<BranchNav> {
    let at = m.siblings.iter().position(|s| s.id == m.id)?;
    (m.siblings.len() > 1).then(|| BranchNav {
        index: at + 1,
        total: m.siblings.len(),
        prev: at.checked_sub(1).map(|i| m.siblings[i].id.clone()),
        next: m.siblings.get(at + 1).map(|s| s.id.clone()),
    })
}

/// The head of one compare column: the model, its numbers, and what can be done with it.
pub struct ColumnHead {
    pub id: String,
    pub model: String,
    /// Time to first token, total time, tokens and cost, as far as known.
    pub stats: String,
    /// On the active path ("Continue with this" picked it, or it came first).
    pub selected: bool,
    pub streaming: bool,
}

impl ColumnHead {
    pub fn new(m: &MessageJson, selected: bool, tr: &Catalog) -> ColumnHead {
        let secs = |ms: i64| format!("{:.1}", ms.max(0) as f64 / 1000.0);
        let mut parts = Vec::new();
        if let Some(first) = m.first_token_at {
            parts.push(tr.fmt("ttft", "s", &secs(first - m.created_at)));
        }
        if let Some(end) = m.finished_at {
            parts.push(tr.fmt("total_time", "s", &secs(end - m.created_at)));
        }
        if let Some(u) = &m.usage {
            if let Some(c) = u.completion_tokens {
                parts.push(tr.fmt("tokens", "n", &c.to_string()));
            }
            if let Some(cost) = u.cost {
                parts.push(format!("${cost:.4}"));
            }
        }
        ColumnHead {
            id: m.id.clone(),
            model: m.model.clone().unwrap_or_else(|| "?".into()),
            stats: parts.join(" · "),
            selected,
            streaming: m.status == "streaming",
        }
    }
}

/// How long the model thought: from the start to its first answer token, or start to finish.
/// How long the model reasoned: from its first token to the first answer token (as the page
/// measured it live), else to the end of a reply that only reasoned.
fn thought_ms(m: &MessageJson) -> Option<i64> {
    let end = m.reasoning_ended_at.or(m.finished_at)?;
    let start = m.first_token_at.unwrap_or(m.created_at);
    Some((end - start).max(0))
}

fn tools(calls: Option<&Value>, streaming: bool, tr: &Catalog) -> Vec<ToolCard> {
    let Some(Value::Array(calls)) = calls else {
        return Vec::new();
    };
    calls
        .iter()
        .map(|c| {
            let f = c.get("function");
            let name = c
                .get("name")
                .or_else(|| f.and_then(|f| f.get("name")))
                .and_then(Value::as_str)
                .unwrap_or("?");
            let args = c
                .get("arguments")
                .or_else(|| f.and_then(|f| f.get("arguments")))
                .cloned()
                .unwrap_or(Value::Null);
            let state = c.get("state").and_then(Value::as_str).unwrap_or("");
            // A call left unfinished by a reply that ended shows as not run.
            let state = match state {
                "waiting" | "running" | "pending" if !streaming => "cancelled",
                s => s,
            };
            ToolCard {
                id: c
                    .get("id")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string(),
                name: name.to_string(),
                arguments: pretty_arguments(&args),
                state: state.to_string(),
                state_label: if state.is_empty() {
                    String::new()
                } else {
                    tr.get(&format!("tool_{state}")).to_string()
                },
                result: c.get("result").and_then(Value::as_str).map(str::to_string),
                asks: state == "waiting",
            }
        })
        .collect()
}

/// Arguments arrive as a JSON string; show them as indented JSON when they parse.
fn pretty_arguments(args: &Value) -> String {
    let parsed = match args {
        Value::String(s) => serde_json::from_str::<Value>(s).ok(),
        Value::Null => return String::new(),
        other => Some(other.clone()),
    };
    match parsed {
        Some(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
        None => args.as_str().unwrap_or_default().to_string(),
    }
}

fn citations(annotations: Option<&Value>) -> Vec<Citation> {
    let Some(Value::Array(list)) = annotations else {
        return Vec::new();
    };
    list.iter()
        .filter_map(|a| {
            let c = a.get("url_citation").unwrap_or(a);
            let url = c.get("url")?.as_str()?;
            if !(url.starts_with("https://") || url.starts_with("http://")) {
                return None;
            }
            let title = c.get("title").and_then(Value::as_str).unwrap_or(url);
            Some(Citation {
                url: url.to_string(),
                title: if title.is_empty() { url } else { title }.to_string(),
            })
        })
        .collect()
}

/// Image attachments the page may show: raster data URLs only.
fn images(attachments: Option<&Value>) -> Vec<String> {
    let Some(Value::Array(list)) = attachments else {
        return Vec::new();
    };
    list.iter()
        .filter_map(Value::as_str)
        .filter(|s| is_safe_image(s))
        .map(str::to_string)
        .collect()
}

pub fn is_safe_image(url: &str) -> bool {
    ["png", "jpeg", "jpg", "gif", "webp"]
        .iter()
        .any(|t| url.starts_with(&format!("data:image/{t};base64,")))
}

/// JSON for a `<script type="application/json">` block: `<` is escaped so no `</script>` or
/// `<!--` in the data can end the block.
pub fn script_json(value: &impl Serialize) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".into())
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}
