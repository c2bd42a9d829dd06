//! What can go wrong when the web layer asks the engine for something.

use switchboard_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum ChatError {
    /// The chat is not in the caller's workspace (or does not exist).
    #[error("no such chat")]
    NotFound,
    /// Another reply is being generated in the chat, on this instance or another.
    #[error("a reply is being generated in this chat; stop it first")]
    Busy,
    /// The instance is shutting down and starts no new replies.
    #[error("this server is shutting down; send again in a moment")]
    ShuttingDown,
    /// No call of that id waits for a decision in the chat's running reply.
    #[error("no tool call of that id is waiting for approval in this chat")]
    NoWaitingToolCall,
    /// No message of that id in the chat.
    #[error("no such message")]
    MessageNotFound,
    /// A turn was asked for with no reply to generate.
    #[error("a turn needs at least one model")]
    NoReplies,
    #[error(transparent)]
    Store(#[from] StoreError),
}
