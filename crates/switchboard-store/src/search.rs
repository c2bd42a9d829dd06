//! Full-text search over a workspace's messages.
//!
//! The one place where the SQL differs by backend: SQLite uses the FTS5 table
//! `messages_fts` (kept in step with `messages` by triggers), PostgreSQL the generated
//! `messages.search` tsvector with a GIN index. Both tokenise text simply (no stemming,
//! no stop words) so the same query finds the same messages on either.
//!
//! User input never reaches either query language as syntax. It is cut into words
//! (runs of letters and digits); every word must match, and the last also matches as a
//! prefix so results appear while the user is still typing. Quotes, `*`, `-`, `:`,
//! parentheses or `OR` in the input are therefore just separators or words.

use crate::db::{Db, Sql};
use crate::{Role, SearchHit, Store, StoreError};

/// Words of plain letters and digits, which are literal in both FTS5 and tsquery syntax.
fn words(query: &str) -> Vec<&str> {
    query
        .split(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .collect()
}

/// `"w1" "w2" "w3"*`: each word a quoted FTS5 string, implicitly ANDed.
fn fts5_query(words: &[&str]) -> String {
    let mut query = words
        .iter()
        .map(|word| format!("\"{word}\""))
        .collect::<Vec<_>>()
        .join(" ");
    query.push('*');
    query
}

/// `'w1' & 'w2' & 'w3':*` for `to_tsquery`.
fn tsquery(words: &[&str]) -> String {
    let mut query = words
        .iter()
        .map(|word| format!("'{word}'"))
        .collect::<Vec<_>>()
        .join(" & ");
    query.push_str(":*");
    query
}

const SQLITE_SEARCH: &str = "
    SELECT m.chat_id, c.title AS chat_title, m.id AS message_id, m.role,
           snippet(messages_fts, 0, '', '', '…', 16) AS snippet, m.created_at
    FROM messages_fts
    JOIN messages m ON m.rid = messages_fts.rowid
    JOIN chats c ON c.id = m.chat_id
    WHERE messages_fts MATCH $2 AND c.workspace = $1
    ORDER BY m.created_at DESC, m.seq DESC, m.id DESC
    LIMIT $3";

// The headline is computed in the outer query so only the rows returned pay for it.
const POSTGRES_SEARCH: &str = "
    SELECT hit.chat_id, hit.chat_title, hit.message_id, hit.role, hit.created_at,
           ts_headline('simple', hit.content, to_tsquery('simple', $2),
                       'StartSel=\"\", StopSel=\"\", MinWords=8, MaxWords=16') AS snippet
    FROM (
        SELECT m.chat_id, c.title AS chat_title, m.id AS message_id, m.role, m.created_at,
               m.seq, m.content
        FROM messages m
        JOIN chats c ON c.id = m.chat_id
        WHERE c.workspace = $1 AND m.search @@ to_tsquery('simple', $2)
        ORDER BY m.created_at DESC, m.seq DESC, m.id DESC
        LIMIT $3
    ) AS hit
    ORDER BY hit.created_at DESC, hit.seq DESC, hit.message_id DESC";

impl Store {
    /// Messages of workspace `ws` containing every word of `query`, newest first. A query
    /// without words returns nothing.
    pub async fn search(
        &self,
        ws: &str,
        query: &str,
        limit: u32,
    ) -> Result<Vec<SearchHit>, StoreError> {
        let words = words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let sql = match &self.db {
            Db::Sqlite(_) => Sql::new("search messages", SQLITE_SEARCH)
                .text(ws)
                .text(fts5_query(&words)),
            Db::Postgres(_) => Sql::new("search messages", POSTGRES_SEARCH)
                .text(ws)
                .text(tsquery(&words)),
        };
        let rows = self.db.fetch_all(sql.int(i64::from(limit))).await?;
        rows.iter()
            .map(|row| {
                let role: String = row.get("role")?;
                Ok(SearchHit {
                    chat_id: row.get("chat_id")?,
                    chat_title: row.get("chat_title")?,
                    message_id: row.get("message_id")?,
                    role: Role::parse(&role).ok_or_else(|| StoreError::Corrupt {
                        column: "messages.role",
                        detail: format!("unknown role {role:?}"),
                    })?,
                    snippet: row.get::<String>("snippet")?.trim().to_owned(),
                    created_at: row.get("created_at")?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_input_becomes_plain_words() {
        assert_eq!(
            words(r#""a* OR -b:(c) ü日本"#),
            ["a", "OR", "b", "c", "ü日本"]
        );
        assert!(words(r#""*-:()"#).is_empty());
        assert_eq!(fts5_query(&["a", "OR", "bc"]), r#""a" "OR" "bc"*"#);
        assert_eq!(tsquery(&["a", "bc"]), "'a' & 'bc':*");
    }
}
