//! Naming a chat after its first reply, with `SWITCHBOARD_TITLE_MODEL` or the chat's own model —
//! never a hard-wired OpenAI model (NextChat's bug: titles failed for everyone without OpenAI).
//! A failure leaves the default title.

use std::time::Duration;

use serde_json::json;
use switchboard_core::secret::Secret;
use switchboard_core::stream::{StreamEvent, decode_json_body};

use crate::engine::Inner;

/// The title a chat has until it is named.
pub const DEFAULT_TITLE: &str = "New chat";
const MAX_TITLE_CHARS: usize = 60;

pub struct TitleJob {
    pub chat_id: String,
    pub upstream_url: String,
    pub http: reqwest::Client,
    pub key: Secret,
    pub model: String,
    pub first_user_message: String,
    /// The workspace whose spend this request is, when the server's key pays for it.
    pub spend_workspace: Option<String>,
}

impl TitleJob {
    pub(crate) async fn run(self, engine: &Inner, reply: &str) {
        let clip = |s: &str| s.chars().take(2000).collect::<String>();
        let body = json!({
            "model": self.model,
            "stream": false,
            "max_tokens": 32,
            "usage": {"include": true},
            "messages": [
                {"role": "system", "content": "Name this conversation in at most six words. Answer with the title only, no quotes."},
                {"role": "assistant", "content": clip(reply)},
                {"role": "user", "content": clip(&self.first_user_message)},
            ],
        });
        let resp = self
            .http
            .post(&self.upstream_url)
            .header("authorization", format!("Bearer {}", self.key.expose()))
            .header("x-title", engine.config.app_name.as_str())
            .timeout(Duration::from_secs(60))
            .json(&body)
            .send()
            .await;
        let bytes = match resp {
            Ok(r) if r.status().is_success() => r.bytes().await.unwrap_or_default(),
            Ok(r) => {
                tracing::debug!(status = %r.status(), "title request refused; keeping the default title");
                return;
            }
            Err(_) => return,
        };
        let events = decode_json_body(&bytes);
        if let Some(workspace) = &self.spend_workspace {
            record_title_spend(engine, workspace, &self.model, &events);
        }
        let text: String = events
            .into_iter()
            .filter_map(|e| match e {
                StreamEvent::Content(t) => Some(t),
                _ => None,
            })
            .collect();
        let Some(title) = clean_title(&text) else {
            return;
        };
        match engine
            .store
            .set_title_if_default(&self.chat_id, DEFAULT_TITLE, &title)
            .await
        {
            Ok(true) => {
                let data = json!({"id": self.chat_id, "title": title}).to_string();
                if let Err(e) = engine.emit(&self.chat_id, "chat", "", data).await {
                    tracing::warn!(error = %e, "could not store a chat title event");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not save a chat title"),
        }
    }
}

fn record_title_spend(engine: &Inner, workspace: &str, model: &str, events: &[StreamEvent]) {
    let usage = events.iter().find_map(|e| match e {
        StreamEvent::Usage(u) => Some(u),
        _ => None,
    });
    let int = |n: u64| i64::try_from(n).ok();
    let spend = switchboard_store::Spend {
        workspace: workspace.to_owned(),
        entry: "title".into(),
        model: Some(model.to_owned()),
        provider: None,
        prompt_tokens: usage.and_then(|u| int(u.prompt_tokens)),
        completion_tokens: usage.and_then(|u| int(u.completion_tokens)),
        reasoning_tokens: usage.and_then(|u| u.reasoning_tokens.and_then(int)),
        cached_tokens: usage.and_then(|u| u.cached_tokens.and_then(int)),
        cost: usage.and_then(|u| u.cost),
        at: crate::now_ms(),
    };
    engine.ledger.record(spend);
}

/// First line, without quotes or a trailing period, at most 60 characters.
pub fn clean_title(raw: &str) -> Option<String> {
    let line = raw.lines().map(str::trim).find(|l| !l.is_empty())?;
    let line = line
        .trim_start_matches(['#', '*', ' '])
        .trim_matches(['"', '\'', '“', '”', '*', ' '])
        .trim_end_matches('.');
    let title: String = line.chars().take(MAX_TITLE_CHARS).collect();
    let title = title.trim().to_string();
    (!title.is_empty()).then_some(title)
}

#[cfg(test)]
mod tests {
    use super::clean_title;

    #[test]
    fn titles_are_cleaned() {
        assert_eq!(
            clean_title("\n\"Rust async basics.\"\nmore").as_deref(),
            Some("Rust async basics")
        );
        assert_eq!(clean_title("## **Title**").as_deref(), Some("Title"));
        assert_eq!(clean_title("   \n  "), None);
        assert_eq!(clean_title(&"x".repeat(100)).unwrap().len(), 60);
    }
}
