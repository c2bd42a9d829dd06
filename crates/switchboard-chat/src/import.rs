//! NextChat backups: a backup file (Settings → Backup in NextChat) becomes chats — sessions with their messages, and each session's mask (its
//! system prompt, context messages and model settings).
//!
//! The backup is NextChat's persisted zustand stores: `{"chat-next-web-store": {"sessions": [...]},
//! "mask-store": …, "app-config": …}`. Each session has `topic`, `messages` (`role`, `content` as a
//! string or OpenAI content parts, `date`), `lastUpdate` (ms) and `mask` (`context`, `modelConfig`).

use serde::Deserialize;
use serde_json::{Value, json};
use switchboard_store::{ChatSettings, MessageStatus, NewMessage, Role};

/// One NextChat session, ready to store with `Store::import_chat`.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedChat {
    pub title: String,
    pub settings: ChatSettings,
    /// The session's last update (ms); its messages get distinct times just before it.
    pub created_at: i64,
    pub messages: Vec<NewMessage>,
}

/// Why a file is not a NextChat backup.
#[derive(Debug, thiserror::Error)]
#[error("not a NextChat backup file: {0}")]
pub struct NotABackup(String);

/// The sessions of a NextChat backup that have messages, in the file's order.
pub fn parse_nextchat_backup(bytes: &[u8]) -> Result<Vec<ImportedChat>, NotABackup> {
    let backup: Backup = serde_json::from_slice(bytes).map_err(|e| NotABackup(e.to_string()))?;
    let sessions = match (backup.chat_store, backup.sessions) {
        (Some(store), _) => store.sessions,
        (None, Some(sessions)) => sessions,
        (None, None) => {
            return Err(NotABackup(
                "no \"chat-next-web-store\" sessions".to_string(),
            ));
        }
    };
    let mut chats = Vec::new();
    for session in sessions {
        let (settings, mut messages) = convert(&session);
        if messages.is_empty() {
            continue;
        }
        let created_at = session
            .last_update
            .map(|t| t as i64)
            .unwrap_or_else(crate::now_ms);
        // NextChat's dates are locale strings; keep the order and give each a distinct time.
        let n = messages.len() as i64;
        for (i, m) in messages.iter_mut().enumerate() {
            m.created_at = Some(created_at - (n - i as i64));
        }
        let title = match session.topic.trim() {
            "" => "Imported chat".to_string(),
            t => t.to_string(),
        };
        chats.push(ImportedChat {
            title,
            settings,
            created_at,
            messages,
        });
    }
    Ok(chats)
}

#[derive(Deserialize)]
struct Backup {
    #[serde(rename = "chat-next-web-store")]
    chat_store: Option<ChatStore>,
    /// A bare store export (`{"sessions": [...]}`) is accepted too.
    sessions: Option<Vec<Session>>,
}

#[derive(Deserialize)]
struct ChatStore {
    #[serde(default)]
    sessions: Vec<Session>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Session {
    topic: String,
    messages: Vec<NcMessage>,
    last_update: Option<f64>,
    mask: Option<Mask>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct Mask {
    context: Vec<NcMessage>,
    model_config: Option<ModelConfig>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ModelConfig {
    model: Option<String>,
    temperature: Option<f64>,
    // NextChat writes these two in snake_case, unlike the rest of its config.
    #[serde(alias = "top_p")]
    top_p: Option<f64>,
    #[serde(alias = "max_tokens")]
    max_tokens: Option<f64>,
    history_message_count: Option<f64>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct NcMessage {
    role: String,
    content: Value,
    #[serde(rename = "isError")]
    is_error: bool,
}

impl NcMessage {
    /// The text and the image URLs of a message.
    fn parts(&self) -> (String, Vec<String>) {
        match &self.content {
            Value::String(s) => (s.clone(), Vec::new()),
            Value::Array(parts) => {
                let mut text = String::new();
                let mut images = Vec::new();
                for p in parts {
                    match p["type"].as_str() {
                        Some("text") => text.push_str(p["text"].as_str().unwrap_or("")),
                        Some("image_url") => {
                            if let Some(url) = p["image_url"]["url"].as_str() {
                                images.push(url.to_string());
                            }
                        }
                        _ => {}
                    }
                }
                (text, images)
            }
            _ => (String::new(), Vec::new()),
        }
    }

    fn role(&self) -> Option<Role> {
        match self.role.as_str() {
            "user" => Some(Role::User),
            "assistant" => Some(Role::Assistant),
            "system" => Some(Role::System),
            _ => None,
        }
    }
}

fn convert(session: &Session) -> (ChatSettings, Vec<NewMessage>) {
    let mut settings = ChatSettings::default();
    let mut system = Vec::new();
    let mut messages = Vec::new();
    if let Some(mask) = &session.mask {
        if let Some(c) = &mask.model_config {
            settings.model = c.model.clone().filter(|m| !m.is_empty());
            settings.temperature = c.temperature.map(|t| t.clamp(0.0, 2.0));
            settings.top_p = c.top_p.map(|t| t.clamp(0.0, 1.0));
            settings.max_tokens = c.max_tokens.filter(|m| *m >= 1.0).map(|m| m as u32);
            settings.history_length = c
                .history_message_count
                .filter(|m| *m >= 1.0)
                .map(|m| m as u32);
        }
        for m in &mask.context {
            let (text, _) = m.parts();
            match m.role() {
                Some(Role::System) => system.push(text),
                Some(role) if !text.is_empty() => messages.push(NewMessage::new(role, text)),
                _ => {}
            }
        }
    }
    if !system.is_empty() {
        settings.system_prompt = Some(system.join("\n\n"));
    }
    for m in &session.messages {
        let Some(role) = m.role() else { continue };
        let (text, images) = m.parts();
        if text.is_empty() && images.is_empty() {
            continue;
        }
        let mut new = NewMessage::new(role, text);
        if !images.is_empty() {
            new.attachments = Some(json!(images));
        }
        if m.is_error {
            new.status = MessageStatus::Error;
        }
        messages.push(new);
    }
    (settings, messages)
}
