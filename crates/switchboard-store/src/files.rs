//! Files stored with a message: a user's attachments (PDFs, text) and a model's generated images.
//!
//! They are written in the transaction that stores their message (a turn, or a reply's finish),
//! so a message never names a file that is not there, and they go with their message or chat.
//! Reads check the workspace through the chat, like every query a browser can reach.

use crate::db::{Sql, Tx};
use crate::{Store, StoreError};

/// A file to store with a message.
#[derive(Debug, Clone, PartialEq)]
pub struct NewFile {
    /// Chosen by the caller ([`NewFile::new_id`]) so the message can name it before it is stored.
    pub id: String,
    pub message_id: String,
    pub name: String,
    pub mime: String,
    /// The bytes, base64 (standard alphabet), as a data URL carries them.
    pub data: String,
    /// Decoded length in bytes.
    pub size: i64,
}

impl NewFile {
    /// A fresh file id (`f_…`).
    pub fn new_id() -> String {
        crate::ids::new_file_id()
    }
}

/// A stored file.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFile {
    pub id: String,
    pub message_id: String,
    pub name: String,
    pub mime: String,
    /// Base64.
    pub data: String,
    pub size: i64,
    pub created_at: i64,
}

/// Inserts `files` of chat `chat_id` inside `tx`.
pub(crate) async fn insert_files(
    tx: &mut Tx,
    chat_id: &str,
    files: &[NewFile],
    now: i64,
) -> Result<(), StoreError> {
    for file in files {
        tx.execute(
            Sql::new(
                "store a message's file",
                "INSERT INTO message_files (id, chat_id, message_id, name, mime, size, data, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .text(&file.id)
            .text(chat_id)
            .text(&file.message_id)
            .text(&file.name)
            .text(&file.mime)
            .int(file.size)
            .text(&file.data)
            .int(now),
        )
        .await?;
    }
    Ok(())
}

impl Store {
    /// File `file_id` of any chat in workspace `ws`, if there is one: a fork's messages name the
    /// files of the chat they were copied from.
    pub async fn get_file(
        &self,
        ws: &str,
        file_id: &str,
    ) -> Result<Option<StoredFile>, StoreError> {
        let row = self
            .db
            .fetch_optional(
                Sql::new(
                    "read a message's file",
                    "SELECT f.id, f.message_id, f.name, f.mime, f.size, f.data, f.created_at
                     FROM message_files f JOIN chats c ON c.id = f.chat_id
                     WHERE f.id = $1 AND c.workspace = $2",
                )
                .text(file_id)
                .text(ws),
            )
            .await?;
        row.map(|row| {
            Ok(StoredFile {
                id: row.get("id")?,
                message_id: row.get("message_id")?,
                name: row.get("name")?,
                mime: row.get("mime")?,
                data: row.get("data")?,
                size: row.get("size")?,
                created_at: row.get("created_at")?,
            })
        })
        .transpose()
    }
}
