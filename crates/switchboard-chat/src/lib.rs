//! Switchboard's chat engine: conversations kept on the server, replies generated in tasks of
//! their own (detached from the request that asked), and the numbered, resumable event stream
//! browsers follow — on one instance or on many sharing one PostgreSQL database.
//!
//! The path of one reply: [`ChatEngine::start_reply`] takes a fully validated [`ReplyPlan`],
//! claims the chat and stores the turn in one transaction (the database says who generates what),
//! and spawns a [`generate`] task. That task streams the provider's answer and appends it to the
//! database every [`generate::WRITE_EVERY`] at most; each write is announced on the [`bus`] after
//! it commits. Subscribers ([`Subscription`]) read the committed events, so anything a browser is
//! shown is already stored, and any instance can serve any browser.
//!
//! A compare ([`ChatEngine::start_replies`]) is one turn of several replies, siblings in the
//! chat's tree: one transaction stores them, each is a generation of its own (stoppable alone),
//! and one turn per chat runs at a time, on every instance.
//!
//! Architecture invariant: nothing in here knows HTTP servers; the web layer calls this crate.

pub mod bus;
pub mod context;
mod engine;
mod error;
pub mod failure;
pub mod files;
pub mod generate;
mod hub;
pub mod import;
mod journal;
mod ledger;
pub mod markdown;
pub mod mcp;
pub mod rendered;
pub mod title;
pub mod view;

pub use engine::{
    ChatEngine, EngineConfig, ReplyPlan, StartedReply, StartedTurn, Upstream, UserFile, UserTurn,
};
pub use error::ChatError;
pub use hub::Subscription;
pub use ledger::{GenerationLookup, Ledger};
pub use title::DEFAULT_TITLE;

/// Unix time in milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A stored message for unit tests: `content` in chat `c`, every optional field empty.
#[cfg(test)]
pub(crate) fn test_message(
    id: &str,
    role: switchboard_store::Role,
    status: switchboard_store::MessageStatus,
    content: &str,
) -> switchboard_store::Message {
    switchboard_store::Message {
        id: id.into(),
        chat_id: "c".into(),
        seq: 0,
        role,
        content: content.into(),
        reasoning: String::new(),
        reasoning_details: None,
        tool_calls: None,
        annotations: None,
        attachments: None,
        model: None,
        provider: None,
        generation_id: None,
        status,
        error_code: None,
        error_message: None,
        usage: Default::default(),
        finish_reason: None,
        created_at: 0,
        first_token_at: None,
        finished_at: None,
        reasoning_ended_at: None,
        parent_id: None,
    }
}
