//! The values the store hands out and takes in.
//!
//! These are plain data with `Serialize` so the server can send them to browsers as they
//! are. JSON columns (`reasoning_details`, `tool_calls`, `annotations`, `attachments`) are
//! `serde_json::Value`: the store keeps them without interpreting them, because they are
//! provider payloads that must go back to the provider unchanged.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Per-chat generation settings, stored as one JSON column so that adding a setting never
/// needs a migration. Unknown keys are ignored and missing keys read as `None`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ChatSettings {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_effort: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub history_length: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frequency_penalty: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub presence_penalty: Option<f64>,
    /// OpenRouter's provider preferences (`provider`), as the chat API validated them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Value>,
    /// Models OpenRouter tries, in order, when the chat's model fails (`models`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fallback_models: Option<Vec<String>>,
    /// Web search for every message (OpenRouter's `web` plugin).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub web_search: Option<WebSearch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_max_tokens: Option<u32>,
    /// Let the model reason but leave the reasoning out of the reply.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasoning_exclude: Option<bool>,
    /// The MCP servers (by configured name) whose tools the chat's replies may use.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_servers: Option<Vec<String>>,
    /// How OpenRouter's file parser reads PDFs: `pdf-text` (the default), `mistral-ocr`, `native`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pdf_engine: Option<String>,
}

/// A chat's web search setting.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebSearch {
    pub enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_results: Option<u32>,
    /// `native` (the provider's own search) or `exa`; OpenRouter picks when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine: Option<String>,
}

/// A conversation. It belongs to exactly one workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Chat {
    pub id: String,
    pub workspace: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub settings: ChatSettings,
    /// The chat this one was forked from, while that chat exists.
    pub forked_from: Option<String>,
}

/// One line of the chat list.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatSummary {
    pub id: String,
    pub title: String,
    pub updated_at: i64,
    pub model: Option<String>,
    /// Kept at the top of the sidebar.
    pub pinned: bool,
}

/// Which page of the chat list to read: newest `updated_at` first.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatPage {
    pub limit: u32,
    /// Keyset cursor: `(updated_at, id)` of the last chat of the previous page. Stable
    /// while chats are being added, unlike an offset.
    pub before: Option<(i64, String)>,
}

/// A partial update of a chat; `None` leaves the field as it is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
pub struct ChatPatch {
    pub title: Option<String>,
    pub settings: Option<ChatSettings>,
}

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
    System,
    Tool,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::System => "system",
            Role::Tool => "tool",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            "tool" => Some(Role::Tool),
            _ => None,
        }
    }
}

/// Where a message is in its life. A message is `streaming` while a generation writes to
/// it and leaves that state exactly once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageStatus {
    Streaming,
    Complete,
    /// The user stopped the generation; the text so far is kept.
    Stopped,
    Error,
    /// The server stopped while the message was streaming; the text so far is kept.
    Interrupted,
}

impl MessageStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            MessageStatus::Streaming => "streaming",
            MessageStatus::Complete => "complete",
            MessageStatus::Stopped => "stopped",
            MessageStatus::Error => "error",
            MessageStatus::Interrupted => "interrupted",
        }
    }

    pub fn parse(text: &str) -> Option<MessageStatus> {
        match text {
            "streaming" => Some(MessageStatus::Streaming),
            "complete" => Some(MessageStatus::Complete),
            "stopped" => Some(MessageStatus::Stopped),
            "error" => Some(MessageStatus::Error),
            "interrupted" => Some(MessageStatus::Interrupted),
            _ => None,
        }
    }
}

/// Token accounting reported by the provider at the end of a generation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    /// In credits (USD), as reported by OpenRouter.
    pub cost: Option<f64>,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub id: String,
    pub chat_id: String,
    /// Position in the chat: strictly increasing, not necessarily contiguous.
    pub seq: i64,
    pub role: Role,
    pub content: String,
    pub reasoning: String,
    pub reasoning_details: Option<Value>,
    pub tool_calls: Option<Value>,
    pub annotations: Option<Value>,
    /// A JSON list of image data URLs or references.
    pub attachments: Option<Value>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub generation_id: Option<String>,
    pub status: MessageStatus,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub created_at: i64,
    pub first_token_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// When the answer began after the model's reasoning: "thought for" is this minus
    /// `first_token_at`.
    pub reasoning_ended_at: Option<i64>,
    /// The message this one answers or follows in the chat's tree; `None` for a first message.
    pub parent_id: Option<String>,
}

/// One of the children of a parent (a branch), as much as a client needs to offer switching to
/// it or to show a compare column's state.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sibling {
    pub id: String,
    /// `None` for a first message of the chat.
    pub parent_id: Option<String>,
    pub seq: i64,
    pub role: Role,
    pub model: Option<String>,
    pub status: MessageStatus,
    /// Whether this sibling is on the chat's active path.
    pub active: bool,
}

/// A message to add to a chat.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct NewMessage {
    /// Chosen by the caller when it must know the id before the message is stored; a fresh
    /// one otherwise.
    #[serde(default)]
    pub id: Option<String>,
    pub role: Role,
    pub content: String,
    #[serde(default)]
    pub reasoning: String,
    #[serde(default)]
    pub attachments: Option<Value>,
    #[serde(default)]
    pub model: Option<String>,
    #[serde(default)]
    pub provider: Option<String>,
    pub status: MessageStatus,
    /// Defaults to now; set when importing old conversations.
    #[serde(default)]
    pub created_at: Option<i64>,
}

impl NewMessage {
    /// A finished message with only a role and text, the common case.
    pub fn new(role: Role, content: impl Into<String>) -> NewMessage {
        NewMessage {
            id: None,
            role,
            content: content.into(),
            reasoning: String::new(),
            attachments: None,
            model: None,
            provider: None,
            status: MessageStatus::Complete,
            created_at: None,
        }
    }

    /// An empty assistant message that a generation is about to fill.
    pub fn streaming_reply(model: impl Into<String>) -> NewMessage {
        NewMessage {
            model: Some(model.into()),
            status: MessageStatus::Streaming,
            ..NewMessage::new(Role::Assistant, "")
        }
    }
}

/// An event as read back for a resuming browser.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StoredEvent {
    pub seq: i64,
    pub message_id: String,
    pub kind: String,
    pub data: String,
    pub created_at: i64,
}

/// The end of a generation. Text fields carry the final full text; `None` fields leave
/// the stored value as it is.
#[derive(Debug, Clone, PartialEq)]
pub struct MessageFinish {
    pub chat_id: String,
    pub message_id: String,
    /// The instance that generated the reply (`None`: a reply stored by an older version, which
    /// recorded no owner). Only a reply still streaming under this owner is finished.
    pub owner: Option<String>,
    pub status: MessageStatus,
    pub content: String,
    pub reasoning: String,
    pub reasoning_details: Option<Value>,
    pub tool_calls: Option<Value>,
    pub annotations: Option<Value>,
    pub usage: Usage,
    pub finish_reason: Option<String>,
    pub error_code: Option<String>,
    pub error_message: Option<String>,
    pub finished_at: i64,
    pub generation_id: Option<String>,
    pub provider: Option<String>,
    pub model: Option<String>,
    /// Kept only if none was stored yet.
    pub first_token_at: Option<i64>,
    /// Kept only if none was stored yet.
    pub reasoning_ended_at: Option<i64>,
    /// Events for the message's chat (the final `done`), stored in the same transaction.
    pub events: Vec<crate::EventDraft>,
    /// Kinds of this message's events to delete once it is finished: its deltas, which the
    /// `done` event's final message supersedes.
    pub compact: Vec<String>,
    /// The message's attachments (references to `files`); `None` leaves them as they are.
    pub attachments: Option<Value>,
    /// Files stored with the message in the same transaction (images the model generated).
    pub files: Vec<crate::NewFile>,
}

/// One chat found by a search: its title matched, or some of its messages did (then the best of
/// them, with a plain-text excerpt).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChatHit {
    pub chat_id: String,
    pub chat_title: String,
    pub updated_at: i64,
    /// The best-matching message, if a message matched.
    pub message_id: Option<String>,
    /// An excerpt of that message around the match, without Markdown markup; empty when only
    /// the title matched.
    pub snippet: String,
}

/// One full-text search result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SearchHit {
    pub chat_id: String,
    pub chat_title: String,
    pub message_id: String,
    pub role: Role,
    /// A short plain-text excerpt around the match, without markup.
    pub snippet: String,
    pub created_at: i64,
}
