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
use crate::{ChatHit, Role, SearchHit, Store, StoreError};

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

/// Title words matched at most: a longer query still needs every word in a message.
const MAX_TITLE_WORDS: usize = 8;

// One row per chat: its best message hit (by rank, then the newest), if any, with that
// message's text for the excerpt, and whether its title holds every word. The title
// conditions (`{title}`) are spliced in at run time, one `LIKE` per word, from `$5` on.
// (FTS5's `snippet()` cannot be used under a window function, so both backends cut the
// excerpt in Rust, the same way.)
const SQLITE_CHAT_SEARCH: &str = "
    WITH hits AS (
        SELECT m.chat_id, m.id AS message_id, m.content,
               ROW_NUMBER() OVER (PARTITION BY m.chat_id
                                  ORDER BY messages_fts.rank, m.created_at DESC, m.id DESC) AS n
        FROM messages_fts
        JOIN messages m ON m.rid = messages_fts.rowid
        JOIN chats c ON c.id = m.chat_id
        WHERE messages_fts MATCH $2 AND c.workspace = $1
    )
    SELECT c.id AS chat_id, c.title AS chat_title, c.updated_at, h.message_id, h.content,
           CASE WHEN {title} THEN 1 ELSE 0 END AS by_title
    FROM chats c
    LEFT JOIN hits h ON h.chat_id = c.id AND h.n = 1
    WHERE c.workspace = $1 AND (h.chat_id IS NOT NULL OR ({title}))
    ORDER BY by_title DESC, c.updated_at DESC, c.id DESC
    LIMIT $3 OFFSET $4";

const POSTGRES_CHAT_SEARCH: &str = "
    WITH hits AS (
        SELECT m.chat_id, m.id AS message_id, m.content,
               ROW_NUMBER() OVER (PARTITION BY m.chat_id
                                  ORDER BY ts_rank(m.search, to_tsquery('simple', $2)) DESC,
                                           m.created_at DESC, m.id DESC) AS n
        FROM messages m
        JOIN chats c ON c.id = m.chat_id
        WHERE c.workspace = $1 AND m.search @@ to_tsquery('simple', $2)
    )
    SELECT c.id AS chat_id, c.title AS chat_title, c.updated_at, h.message_id, h.content,
           CASE WHEN {title} THEN 1 ELSE 0 END AS by_title
    FROM chats c
    LEFT JOIN hits h ON h.chat_id = c.id AND h.n = 1
    WHERE c.workspace = $1 AND (h.chat_id IS NOT NULL OR ({title}))
    ORDER BY by_title DESC, c.updated_at DESC, c.id DESC
    LIMIT $3 OFFSET $4";

/// About 16 words of `text` around the first word that starts with one of `words`
/// (case-insensitively), `…` where it was cut, Markdown syntax removed.
fn excerpt(text: &str, words: &[&str]) -> String {
    let plain = plain_snippet(text);
    let all: Vec<&str> = plain.split(' ').collect();
    let lower: Vec<String> = words.iter().map(|w| w.to_lowercase()).collect();
    let at = all
        .iter()
        .position(|w| {
            let w = w.to_lowercase();
            let w = w.trim_start_matches(|c: char| !c.is_alphanumeric());
            lower.iter().any(|q| w.starts_with(q.as_str()))
        })
        .unwrap_or(0);
    let start = at.saturating_sub(5);
    let end = (start + 16).min(all.len());
    let mut out = all[start..end].join(" ");
    if start > 0 {
        out.insert(0, '…');
    }
    if end < all.len() {
        out.push('…');
    }
    out
}

/// A `LIKE` pattern matching `word` anywhere, its wildcards escaped with `\\`.
fn like_anywhere(word: &str) -> String {
    let mut pattern = String::from("%");
    for c in word.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A search excerpt without the Markdown syntax around the words (`**bold**`, `` `code` ``,
/// `# heading`, table pipes), which would otherwise show as such.
pub fn plain_snippet(snippet: &str) -> String {
    let mut out = String::with_capacity(snippet.len());
    for line in snippet.lines() {
        let line = line.trim_start_matches(['#', '>', ' ']);
        for c in line.chars() {
            match c {
                '*' | '`' | '~' | '|' => {}
                c => out.push(c),
            }
        }
        out.push(' ');
    }
    out.split_whitespace()
        .filter(|w| !w.chars().all(|c| c == '-' || c == ':' || c == '_'))
        .collect::<Vec<_>>()
        .join(" ")
}

impl Store {
    /// Chats of workspace `ws` whose title holds every word of `query` (case-insensitively, as
    /// text) or with a message holding them all (full-text, the last word as a prefix): one row
    /// per chat, title matches first, then the most recently updated; `offset` pages on.
    pub async fn search_chats(
        &self,
        ws: &str,
        query: &str,
        limit: u32,
        offset: u32,
    ) -> Result<Vec<ChatHit>, StoreError> {
        let words = words(query);
        if words.is_empty() {
            return Ok(Vec::new());
        }
        let title_words = &words[..words.len().min(MAX_TITLE_WORDS)];
        let title = (0..title_words.len())
            .map(|i| format!("LOWER(c.title) LIKE ${} ESCAPE '\\'", i + 5))
            .collect::<Vec<_>>()
            .join(" AND ");
        let (template, fts) = match &self.db {
            Db::Sqlite(_) => (SQLITE_CHAT_SEARCH, fts5_query(&words)),
            Db::Postgres(_) => (POSTGRES_CHAT_SEARCH, tsquery(&words)),
        };
        let mut sql = Sql::built("search chats", template.replace("{title}", &title))
            .text(ws)
            .text(fts)
            .int(i64::from(limit))
            .int(i64::from(offset));
        for word in title_words {
            sql = sql.text(like_anywhere(word));
        }
        let rows = self.db.fetch_all(sql).await?;
        rows.iter()
            .map(|row| {
                Ok(ChatHit {
                    chat_id: row.get("chat_id")?,
                    chat_title: row.get("chat_title")?,
                    updated_at: row.get("updated_at")?,
                    message_id: row.get("message_id")?,
                    snippet: row
                        .get::<Option<String>>("content")?
                        .map(|text| excerpt(&text, &words))
                        .unwrap_or_default(),
                })
            })
            .collect()
    }

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
        assert_eq!(like_anywhere("50%_A\\b"), "%50\\%\\_a\\\\b%");
    }

    #[test]
    fn snippets_lose_their_markdown_syntax() {
        assert_eq!(
            plain_snippet("a **bold** and `code` word"),
            "a bold and code word"
        );
        assert_eq!(
            plain_snippet("## Heading\n| a | b |\n| --- | --- |\n> quote"),
            "Heading a b quote"
        );
        assert_eq!(plain_snippet("  "), "");
        let long = "one two three four five six seven eight **Needle** nine ten eleven twelve \
                    thirteen fourteen fifteen sixteen seventeen eighteen";
        assert_eq!(
            excerpt(long, &["needl"]),
            "…four five six seven eight Needle nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen"
        );
        assert_eq!(excerpt("no match here", &["x"]), "no match here");
    }
}
