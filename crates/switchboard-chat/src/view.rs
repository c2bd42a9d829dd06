//! The JSON the chat API and the event stream send for messages and chats.

use serde::Serialize;
use serde_json::{Value, json};
use switchboard_store::{Chat, Message, MessageStatus, Role, Sibling};

use crate::rendered;

#[derive(Serialize, Clone)]
pub struct ErrorView {
    pub code: Option<Value>,
    pub message: String,
}

#[derive(Serialize, Clone)]
pub struct UsageView {
    pub prompt_tokens: Option<i64>,
    pub completion_tokens: Option<i64>,
    pub reasoning_tokens: Option<i64>,
    pub cached_tokens: Option<i64>,
    pub cost: Option<f64>,
}

/// One branch at a point of the chat's tree: enough to offer switching to it.
#[derive(Serialize, Clone, Debug, PartialEq)]
pub struct SiblingView {
    pub id: String,
    pub model: Option<String>,
    pub status: MessageStatus,
    /// Whether this branch is on the chat's active path.
    pub active: bool,
}

/// A file stored with a message (a user's attachment, a generated image), fetched from its own
/// route: pages never carry the bytes.
#[derive(Serialize, Clone)]
pub struct FileView {
    pub id: String,
    pub name: String,
    pub mime: String,
    pub size: i64,
    /// `GET` it (cached); add `?download=1` to save it.
    pub url: String,
}

impl FileView {
    /// The files a message's `attachments` name (`{"file": id, …}` entries).
    pub fn of(m: &Message) -> Vec<FileView> {
        let Some(Value::Array(list)) = &m.attachments else {
            return Vec::new();
        };
        list.iter()
            .filter_map(|a| {
                let id = a.get("file")?.as_str()?;
                // Ids are ours (`f_` + base32); anything else would not be a safe URL segment.
                if !id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return None;
                }
                Some(FileView {
                    id: id.to_owned(),
                    name: a
                        .get("name")
                        .and_then(Value::as_str)
                        .unwrap_or(id)
                        .to_owned(),
                    mime: a
                        .get("mime")
                        .and_then(Value::as_str)
                        .unwrap_or("application/octet-stream")
                        .to_owned(),
                    size: a.get("size").and_then(Value::as_i64).unwrap_or(0),
                    url: format!("/api/chats/{}/files/{id}", m.chat_id),
                })
            })
            .collect()
    }
}

/// A message as browsers and API clients see it.
#[derive(Serialize, Clone)]
pub struct MessageView {
    pub id: String,
    pub seq: i64,
    /// The message this one follows in the chat's tree; `null` for a first message.
    pub parent_id: Option<String>,
    /// Every branch at this point (this message and the others under the same parent), in seq
    /// order, when there is more than one; empty otherwise.
    pub siblings: Vec<SiblingView>,
    pub role: Role,
    pub content: String,
    /// `content` rendered from markdown and sanitized, for display.
    pub html: String,
    pub reasoning: String,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub status: MessageStatus,
    pub error: Option<ErrorView>,
    pub usage: Option<UsageView>,
    pub tool_calls: Option<Value>,
    pub annotations: Option<Value>,
    pub attachments: Option<Value>,
    /// The files `attachments` names, with their URLs.
    pub files: Vec<FileView>,
    pub finish_reason: Option<String>,
    pub created_at: i64,
    pub first_token_at: Option<i64>,
    /// When the answer began after the reasoning (for "thought for").
    pub reasoning_ended_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl MessageView {
    /// The view without the rendered HTML.
    fn new_plain(m: &Message) -> MessageView {
        let u = &m.usage;
        let usage =
            (u.prompt_tokens.is_some() || u.completion_tokens.is_some() || u.cost.is_some())
                .then_some(UsageView {
                    prompt_tokens: u.prompt_tokens,
                    completion_tokens: u.completion_tokens,
                    reasoning_tokens: u.reasoning_tokens,
                    cached_tokens: u.cached_tokens,
                    cost: u.cost,
                });
        let error = m.error_message.as_ref().map(|message| ErrorView {
            code: m.error_code.as_ref().map(|c| match c.parse::<i64>() {
                Ok(n) => Value::from(n),
                Err(_) => Value::from(c.clone()),
            }),
            message: message.clone(),
        });
        MessageView {
            id: m.id.clone(),
            seq: m.seq,
            parent_id: m.parent_id.clone(),
            siblings: Vec::new(),
            role: m.role,
            html: String::new(),
            content: m.content.clone(),
            reasoning: m.reasoning.clone(),
            model: m.model.clone(),
            provider: m.provider.clone(),
            status: m.status,
            error,
            usage,
            tool_calls: m.tool_calls.clone(),
            annotations: m.annotations.clone(),
            attachments: m.attachments.clone(),
            files: FileView::of(m),
            finish_reason: m.finish_reason.clone(),
            created_at: m.created_at,
            first_token_at: m.first_token_at,
            reasoning_ended_at: m.reasoning_ended_at,
            finished_at: m.finished_at,
        }
    }

    /// The view with `html` already rendered (see [`render_texts`]).
    pub fn with_html(m: &Message, html: String) -> MessageView {
        MessageView {
            html,
            ..MessageView::new_plain(m)
        }
    }

    /// Views of a page of messages, rendered where [`off_the_workers_if_long`] says.
    pub async fn render_page(messages: Vec<Message>) -> Vec<MessageView> {
        let quick = messages.iter().all(is_quick);
        off_the_workers_if_long(quick, move || {
            messages.iter().map(MessageView::new_or_plain).collect()
        })
        .await
        // The work catches the renderer's panics: only a runtime shutting down (nobody left to
        // read the page) gets here.
        .unwrap_or_default()
    }

    /// The `{"message": …}` JSON of a finished message's event, rendered like a page.
    pub async fn event_json(message: Message) -> String {
        let id = message.id.clone();
        off_the_workers_if_long(is_quick(&message), move || {
            json!({"message": MessageView::new_or_plain(&message)}).to_string()
        })
        .await
        .unwrap_or_else(|| json!({"message": {"id": id}}).to_string())
    }

    /// The view, or the text unrendered when the renderer panics: a message is shown rather than
    /// lost.
    fn new_or_plain(m: &Message) -> MessageView {
        let html = std::panic::catch_unwind(|| html_of(m)).unwrap_or_default();
        MessageView::with_html(m, html)
    }
}

/// Whether [`html_of`] takes only microseconds for `m`.
fn is_quick(m: &Message) -> bool {
    rendered::is_quick(&m.content, m.status != MessageStatus::Streaming)
}

/// A message's content rendered: remembered once the message is finished (its text no longer
/// changes); while it streams, its settled blocks remembered and the rest rendered afresh.
fn html_of(m: &Message) -> String {
    if m.status == MessageStatus::Streaming {
        rendered::render_streaming(&m.content)
    } else {
        rendered::render_remembered(&m.content)
    }
}

/// The HTML of each text, rendered where [`off_the_workers_if_long`] says: for messages about to be
/// stored, so that no rendering happens inside the transaction that stores them.
pub async fn render_texts(texts: Vec<String>) -> Vec<String> {
    let len = texts.len();
    let quick = texts.iter().all(|t| rendered::is_quick(t, true));
    off_the_workers_if_long(quick, move || {
        texts.iter().map(|t| html_or_empty(t)).collect()
    })
    .await
    .unwrap_or_else(|| vec![String::new(); len])
}

/// Rendered markdown, or nothing when the renderer panics (the client shows the text).
fn html_or_empty(text: &str) -> String {
    std::panic::catch_unwind(|| rendered::render_remembered(text)).unwrap_or_default()
}

/// Runs `render` (markdown rendering: the one CPU-heavy thing a request does) in place when it is
/// `quick` ([`rendered::is_quick`]), else on tokio's blocking pool: a long text or code must not
/// hold up the threads that relay streams, and a short one should not pay for two thread
/// hand-offs. `None` when the blocking pool could not run it.
async fn off_the_workers_if_long<T: Send + 'static>(
    quick: bool,
    render: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    if quick {
        return Some(render());
    }
    tokio::task::spawn_blocking(render).await.ok()
}

#[derive(Serialize)]
pub struct ChatView {
    pub id: String,
    pub title: String,
    pub created_at: i64,
    pub updated_at: i64,
    pub settings: switchboard_store::ChatSettings,
    pub forked_from: Option<String>,
    pub messages: Vec<MessageView>,
    pub has_more: bool,
    pub last_event_id: i64,
    /// The assistant message being generated now on the active path, if any.
    pub generating: Option<String>,
    /// Every reply of the running turn (several in a compare), on the path or beside it.
    pub generating_ids: Vec<String>,
    /// The other replies of the turn that ends the active path, in full, in seq order: a
    /// compare's other columns (empty otherwise).
    pub alternatives: Vec<MessageView>,
}

/// Puts each message's branches (`siblings`) on its view: itself and the `others` under the
/// same parent, in seq order, when there are any.
pub fn attach_siblings(views: &mut [MessageView], others: &[Sibling]) {
    for view in views.iter_mut() {
        let mut here: Vec<(i64, SiblingView)> = others
            .iter()
            .filter(|s| s.parent_id == view.parent_id && s.id != view.id)
            .map(|s| {
                (
                    s.seq,
                    SiblingView {
                        id: s.id.clone(),
                        model: s.model.clone(),
                        status: s.status,
                        active: false,
                    },
                )
            })
            .collect();
        if here.is_empty() {
            continue;
        }
        here.push((
            view.seq,
            SiblingView {
                id: view.id.clone(),
                model: view.model.clone(),
                status: view.status,
                active: true,
            },
        ));
        here.sort_by_key(|(seq, _)| *seq);
        view.siblings = here.into_iter().map(|(_, s)| s).collect();
    }
}

impl ChatView {
    /// The chat as one snapshot shows it: `last_event_id` counts exactly the changes these
    /// messages include, and `generating` is the reply still streaming, if any.
    pub async fn from_snapshot(snapshot: switchboard_store::ChatSnapshot) -> ChatView {
        let chat = snapshot.chat;
        let generating = snapshot
            .messages
            .iter()
            .find(|m| m.status == MessageStatus::Streaming)
            .map(|m| m.id.clone());
        let generating_ids = generating
            .iter()
            .cloned()
            .chain(
                snapshot
                    .siblings
                    .iter()
                    .filter(|s| s.status == MessageStatus::Streaming)
                    .map(|s| s.id.clone()),
            )
            .collect();
        let mut messages = MessageView::render_page(snapshot.messages).await;
        attach_siblings(&mut messages, &snapshot.siblings);
        ChatView {
            messages,
            generating_ids,
            alternatives: MessageView::render_page(snapshot.alternatives).await,
            has_more: snapshot.has_more,
            last_event_id: snapshot.last_event_seq,
            generating,
            id: chat.id,
            title: chat.title,
            created_at: chat.created_at,
            updated_at: chat.updated_at,
            settings: chat.settings,
            forked_from: chat.forked_from,
        }
    }

    pub fn header(chat: &Chat) -> Value {
        serde_json::json!({
            "id": chat.id,
            "title": chat.title,
            "created_at": chat.created_at,
            "updated_at": chat.updated_at,
            "settings": chat.settings,
            "forked_from": chat.forked_from,
        })
    }
}
