//! What is sent upstream for a reply: the chat's system prompt, then the latest messages that fit
//! the chat's history length and the model's context window, with images only for models that can
//! see them and previous reasoning handed back for providers that need it.

use serde_json::{Value, json};
use switchboard_core::routing::{MAX_FALLBACK_MODELS, ProviderPreferences};
use switchboard_store::{ChatSettings, Message, MessageStatus, Role};

/// Messages sent when the chat does not say.
pub const DEFAULT_HISTORY_LENGTH: u32 = 32;
/// Tokens reserved for the reply when the chat sets no `max_tokens`.
const DEFAULT_REPLY_BUDGET: u64 = 4096;

/// What the model can take.
pub struct ModelLimits {
    pub context_length: Option<u64>,
    pub vision: bool,
    /// Answers with images too: asked for them with `modalities`.
    pub image_output: bool,
}

/// A deliberately rough token estimate (≈ 3.5 characters per token): it only decides how much
/// history to drop, where erring towards less is harmless.
fn estimate_tokens(text: &str) -> u64 {
    (text.chars().count() as u64 * 2).div_ceil(7) + 4
}

/// Parameters clamped into the ranges providers accept; the chat API never fails a send on them.
pub fn clamp_settings(s: &ChatSettings) -> (Option<f64>, Option<f64>, Option<u32>) {
    (
        s.temperature.map(|t| t.clamp(0.0, 2.0)),
        s.top_p.map(|p| p.clamp(0.0, 1.0)),
        s.max_tokens.map(|m| m.clamp(1, 1_000_000)),
    )
}

/// Per-request routing the chat does not store: its id (OpenRouter's `session_id`, for sticky
/// routing and cache hits) and the server's default provider preferences.
pub struct Routing<'a> {
    /// Whether the request goes to OpenRouter: only then are its own fields sent.
    pub openrouter: bool,
    pub session_id: &'a str,
    pub provider_default: Option<&'a ProviderPreferences>,
}

/// The body of the upstream `chat/completions` request.
pub fn build_request(
    model: &str,
    settings: &ChatSettings,
    history: &[Message],
    limits: &ModelLimits,
    reasoning_effort: Option<&str>,
    routing: &Routing<'_>,
) -> Value {
    let (temperature, top_p, max_tokens) = clamp_settings(settings);
    let history_length = settings
        .history_length
        .unwrap_or(DEFAULT_HISTORY_LENGTH)
        .max(1) as usize;
    let budget = limits.context_length.map(|c| {
        c.saturating_sub(u64::from(max_tokens.unwrap_or(0)).max(DEFAULT_REPLY_BUDGET.min(c / 4)))
    });

    let mut picked: Vec<Value> = Vec::new();
    let mut used = settings
        .system_prompt
        .as_deref()
        .map(estimate_tokens)
        .unwrap_or(0);
    for m in history.iter().rev() {
        if picked.len() >= history_length {
            break;
        }
        let msgs = upstream_messages(m, limits.vision);
        if msgs.is_empty() {
            continue;
        }
        let cost = estimate_tokens(&m.content) + estimate_tokens(&m.reasoning) / 4;
        // Always keep the newest message, even if it alone overflows: the provider says so then.
        if !picked.is_empty() && budget.is_some_and(|b| used + cost > b) {
            break;
        }
        used += cost;
        // Reversed with the rest below.
        picked.extend(msgs.into_iter().rev());
    }
    picked.reverse();
    let mut messages = Vec::with_capacity(picked.len() + 1);
    if let Some(system) = settings
        .system_prompt
        .as_deref()
        .filter(|s| !s.trim().is_empty())
    {
        messages.push(json!({"role": "system", "content": system}));
    }
    messages.extend(picked);

    let mut body = json!({
        "model": model,
        "messages": messages,
        "stream": true,
        "usage": {"include": true},
    });
    if let Some(t) = temperature {
        body["temperature"] = json!(t);
    }
    if let Some(p) = top_p {
        body["top_p"] = json!(p);
    }
    if let Some(m) = max_tokens {
        body["max_tokens"] = json!(m);
    }
    for (name, value) in [
        ("frequency_penalty", settings.frequency_penalty),
        ("presence_penalty", settings.presence_penalty),
    ] {
        if let Some(v) = value {
            body[name] = json!(v.clamp(-2.0, 2.0));
        }
    }
    if limits.image_output {
        // Image models answer with text only unless asked for images.
        body["modalities"] = json!(["image", "text"]);
    }
    if let Some(reasoning) = reasoning_options(reasoning_effort, settings) {
        body["reasoning"] = reasoning;
    }
    if routing.openrouter {
        add_openrouter_routing(&mut body, model, settings, routing);
    }
    body
}

/// `session_id`, `provider`, fallback `models` and the `web` plugin: OpenRouter's own fields,
/// which other OpenAI-compatible APIs would refuse.
fn add_openrouter_routing(
    body: &mut Value,
    model: &str,
    settings: &ChatSettings,
    routing: &Routing<'_>,
) {
    body["session_id"] = json!(routing.session_id);
    let chat_provider = settings
        .provider
        .as_ref()
        .and_then(|p| ProviderPreferences::parse(p).ok());
    let provider = match (chat_provider, routing.provider_default) {
        (Some(mine), Some(default)) => Some(mine.over(default)),
        (Some(mine), None) => Some(mine.over(&ProviderPreferences::default())),
        (None, Some(default)) => Some(default.over(&ProviderPreferences::default())),
        (None, None) => None,
    };
    if let Some(provider) = provider.filter(|p| p.as_object().is_some_and(|o| !o.is_empty())) {
        body["provider"] = provider;
    }
    if let Some(fallbacks) = settings.fallback_models.as_ref().filter(|f| !f.is_empty()) {
        let mut models = vec![json!(model)];
        models.extend(fallbacks.iter().take(MAX_FALLBACK_MODELS).map(|m| json!(m)));
        body["models"] = Value::Array(models);
    }
    let mut plugins = Vec::new();
    if let Some(web) = settings.web_search.as_ref().filter(|w| w.enabled) {
        let mut plugin = json!({"id": "web"});
        if let Some(n) = web.max_results {
            plugin["max_results"] = json!(n);
        }
        if let Some(engine) = &web.engine {
            plugin["engine"] = json!(engine);
        }
        plugins.push(plugin);
    }
    let sends_files = body["messages"].as_array().is_some_and(|messages| {
        messages.iter().any(|m| {
            m["content"]
                .as_array()
                .is_some_and(|parts| parts.iter().any(|p| p["type"] == "file"))
        })
    });
    if sends_files {
        let engine = settings.pdf_engine.as_deref().unwrap_or(DEFAULT_PDF_ENGINE);
        plugins.push(json!({"id": "file-parser", "pdf": {"engine": engine}}));
    }
    if !plugins.is_empty() {
        body["plugins"] = Value::Array(plugins);
    }
}

/// How PDFs are read when the chat does not say: OpenRouter's text extraction (free).
pub const DEFAULT_PDF_ENGINE: &str = "pdf-text";

/// OpenRouter's `reasoning` object: an effort (the message's, else the chat's), a token budget,
/// whether to leave the reasoning out of the reply, or `off`.
fn reasoning_options(effort: Option<&str>, settings: &ChatSettings) -> Option<Value> {
    let effort = effort.or(settings.reasoning_effort.as_deref());
    if effort == Some("off") {
        return Some(json!({"enabled": false}));
    }
    let mut reasoning = serde_json::Map::new();
    if let Some(effort) = effort {
        reasoning.insert("effort".into(), json!(effort));
    }
    if let Some(max) = settings.reasoning_max_tokens {
        reasoning.insert("max_tokens".into(), json!(max));
    }
    if settings.reasoning_exclude == Some(true) {
        reasoning.insert("exclude".into(), json!(true));
    }
    (!reasoning.is_empty()).then_some(Value::Object(reasoning))
}

/// What one stored message is upstream: usually one message; a reply that ran tools is its text
/// and calls per round, a `tool` message per call, then the text that followed.
fn upstream_messages(m: &Message, vision: bool) -> Vec<Value> {
    if m.role == Role::Assistant
        && m.status != MessageStatus::Streaming
        && let Some(calls) = m.tool_calls.as_ref().and_then(Value::as_array)
        && calls.iter().any(|c| c.get("round").is_some())
    {
        return tool_rounds(m, calls);
    }
    upstream_message(m, vision).into_iter().collect()
}

/// A reply that ran tools (see `tools`): per round, the text before its calls and the calls,
/// then each call's result as a `tool` message; then the rest of the text.
fn tool_rounds(m: &Message, calls: &[Value]) -> Vec<Value> {
    let slice = |from: usize, to: usize| -> &str {
        let mut to = to.min(m.content.len());
        while !m.content.is_char_boundary(to) {
            to -= 1;
        }
        let from = from.min(to);
        if m.content.is_char_boundary(from) {
            &m.content[from..to]
        } else {
            ""
        }
    };
    let mut out = Vec::new();
    let mut done = 0;
    let mut rounds: Vec<u64> = calls.iter().filter_map(|c| c["round"].as_u64()).collect();
    rounds.dedup();
    for round in rounds {
        let these: Vec<&Value> = calls
            .iter()
            .filter(|c| c["round"].as_u64() == Some(round))
            .collect();
        let offset = these[0]["offset"].as_u64().unwrap_or(0) as usize;
        let text = slice(done, offset);
        done = offset.max(done);
        let mut assistant = json!({
            "role": "assistant",
            "content": if text.is_empty() { Value::Null } else { json!(text) },
            "tool_calls": these.iter().map(|c| json!({
                "id": c["id"],
                "type": "function",
                "function": {"name": c["name"], "arguments": c["arguments"]},
            })).collect::<Vec<_>>(),
        });
        if out.is_empty()
            && let Some(details) = m.reasoning_details.as_ref().filter(|d| !d.is_null())
        {
            assistant["reasoning_details"] = details.clone();
        }
        out.push(assistant);
        for c in these {
            let result = c["result"]
                .as_str()
                .unwrap_or("not run: the reply ended before this call finished");
            out.push(json!({"role": "tool", "tool_call_id": c["id"], "content": result}));
        }
    }
    let rest = slice(done, m.content.len());
    if !rest.is_empty() {
        out.push(json!({"role": "assistant", "content": rest}));
    }
    out
}

fn upstream_message(m: &Message, vision: bool) -> Option<Value> {
    match m.role {
        Role::User => {
            let images: Vec<&str> = m
                .attachments
                .as_ref()
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            // Files the generation loaded (`data_url` beside the stored reference).
            let files: Vec<Value> = m
                .attachments
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|a| {
                    let url = a.get("data_url")?.as_str()?;
                    Some(json!({"type": "file", "file": {
                        "filename": a.get("name").and_then(Value::as_str).unwrap_or("file"),
                        "file_data": url,
                    }}))
                })
                .collect();
            if (images.is_empty() || !vision) && files.is_empty() {
                let mut text = m.content.clone();
                if !images.is_empty() {
                    text.push_str("\n[image omitted: this model cannot see images]");
                }
                return Some(json!({"role": "user", "content": text}));
            }
            let mut text = m.content.clone();
            if !images.is_empty() && !vision {
                text.push_str("\n[image omitted: this model cannot see images]");
            }
            let mut parts = vec![json!({"type": "text", "text": text})];
            if vision {
                parts.extend(
                    images
                        .iter()
                        .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
                );
            }
            parts.extend(files);
            Some(json!({"role": "user", "content": parts}))
        }
        Role::Assistant => {
            // A reply that failed before saying anything teaches the model nothing.
            if m.content.is_empty() && m.tool_calls.is_none() {
                return None;
            }
            if m.status == MessageStatus::Streaming {
                return None;
            }
            let mut msg = json!({"role": "assistant", "content": m.content});
            // Providers that sign their reasoning (Anthropic, Gemini, OpenAI's encrypted
            // reasoning) need it back verbatim to continue the conversation.
            if let Some(details) = m.reasoning_details.as_ref().filter(|d| !d.is_null()) {
                msg["reasoning_details"] = details.clone();
            }
            // The file parser's output goes back, so a file is not parsed (and paid) again.
            let parsed: Vec<Value> = m
                .annotations
                .as_ref()
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter(|a| a.get("type").and_then(Value::as_str) == Some("file"))
                .cloned()
                .collect();
            if !parsed.is_empty() {
                msg["annotations"] = Value::Array(parsed);
            }
            Some(msg)
        }
        Role::System => Some(json!({"role": "system", "content": m.content})),
        Role::Tool => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NO_ROUTING: Routing<'static> = Routing {
        openrouter: false,
        session_id: "c",
        provider_default: None,
    };

    #[test]
    fn openrouter_routing_goes_with_requests_to_openrouter_only() {
        let settings = ChatSettings {
            provider: Some(json!({"sort": "latency", "zdr": true})),
            fallback_models: Some(vec!["b/one".into(), "c/two".into()]),
            web_search: Some(switchboard_store::WebSearch {
                enabled: true,
                max_results: Some(3),
                engine: Some("exa".into()),
            }),
            reasoning_max_tokens: Some(2000),
            reasoning_exclude: Some(true),
            ..ChatSettings::default()
        };
        let server =
            ProviderPreferences::parse(&json!({"data_collection": "deny", "sort": "price"}))
                .unwrap();
        let limits = ModelLimits {
            context_length: None,
            vision: false,
            image_output: false,
        };
        let routing = Routing {
            openrouter: true,
            session_id: "c_chat",
            provider_default: Some(&server),
        };
        let body = build_request("a/model", &settings, &[], &limits, Some("low"), &routing);
        assert_eq!(body["session_id"], "c_chat");
        assert_eq!(
            body["provider"],
            json!({"data_collection": "deny", "sort": "latency", "zdr": true})
        );
        assert_eq!(body["models"], json!(["a/model", "b/one", "c/two"]));
        assert_eq!(
            body["plugins"],
            json!([{"id": "web", "max_results": 3, "engine": "exa"}])
        );
        assert_eq!(
            body["reasoning"],
            json!({"effort": "low", "max_tokens": 2000, "exclude": true})
        );
        let elsewhere = build_request("a/model", &settings, &[], &limits, Some("off"), &NO_ROUTING);
        for key in ["session_id", "provider", "models", "plugins"] {
            assert!(
                elsewhere.get(key).is_none(),
                "{key} sent to a non-OpenRouter API"
            );
        }
        assert_eq!(elsewhere["reasoning"], json!({"enabled": false}));
    }

    fn msg(role: Role, content: &str) -> Message {
        crate::test_message(
            &format!("m_{content}"),
            role,
            MessageStatus::Complete,
            content,
        )
    }

    #[test]
    fn system_prompt_then_latest_messages_within_history_length() {
        let settings = ChatSettings {
            system_prompt: Some("Be brief.".into()),
            history_length: Some(2),
            temperature: Some(9.0),
            top_p: Some(-1.0),
            ..Default::default()
        };
        let history = [
            msg(Role::User, "one"),
            msg(Role::Assistant, "two"),
            msg(Role::User, "three"),
        ];
        let limits = ModelLimits {
            context_length: None,
            vision: false,
            image_output: false,
        };
        let body = build_request("m", &settings, &history, &limits, Some("high"), &NO_ROUTING);
        let contents: Vec<&str> = body["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(contents, ["Be brief.", "two", "three"]);
        assert_eq!(body["temperature"], 2.0);
        assert_eq!(body["top_p"], 0.0);
        assert_eq!(body["reasoning"]["effort"], "high");
        assert_eq!(body["stream"], true);
    }

    #[test]
    fn a_reply_that_ran_tools_goes_back_as_calls_results_and_continuation() {
        let mut reply = msg(Role::Assistant, "Let me look.Found it: hi.");
        reply.tool_calls = Some(json!([
            {"id": "c1", "name": "echo", "arguments": "{\"message\":\"hi\"}", "round": 0,
             "offset": 12, "state": "done", "result": "Echo: hi"},
            {"id": "c2", "name": "add", "arguments": "{}", "round": 0, "offset": 12,
             "state": "denied", "result": "the user denied this call"},
            {"id": "c3", "name": "echo", "arguments": "{}", "round": 1, "offset": 12,
             "state": "waiting"},
        ]));
        let history = [msg(Role::User, "call echo"), reply];
        let limits = ModelLimits {
            context_length: None,
            vision: false,
            image_output: false,
        };
        let body = build_request(
            "m",
            &ChatSettings::default(),
            &history,
            &limits,
            None,
            &NO_ROUTING,
        );
        let messages = body["messages"].as_array().unwrap();
        let shape: Vec<(&str, &Value)> = messages
            .iter()
            .map(|m| (m["role"].as_str().unwrap(), &m["content"]))
            .collect();
        assert_eq!(
            shape,
            [
                ("user", &json!("call echo")),
                ("assistant", &json!("Let me look.")),
                ("tool", &json!("Echo: hi")),
                ("tool", &json!("the user denied this call")),
                ("assistant", &Value::Null),
                (
                    "tool",
                    &json!("not run: the reply ended before this call finished")
                ),
                ("assistant", &json!("Found it: hi.")),
            ]
        );
        assert_eq!(messages[1]["tool_calls"][1]["id"], "c2");
        assert_eq!(messages[1]["tool_calls"][0]["function"]["name"], "echo");
        assert_eq!(messages[2]["tool_call_id"], "c1");
        assert_eq!(messages[4]["tool_calls"][0]["id"], "c3");
    }

    #[test]
    fn context_window_drops_oldest_but_keeps_newest() {
        let history = [
            msg(Role::User, &"a".repeat(7000)),
            msg(Role::Assistant, "ok"),
            msg(Role::User, "last"),
        ];
        let limits = ModelLimits {
            context_length: Some(1000),
            vision: false,
            image_output: false,
        };
        let body = build_request(
            "m",
            &ChatSettings::default(),
            &history,
            &limits,
            None,
            &NO_ROUTING,
        );
        let n = body["messages"].as_array().unwrap().len();
        assert_eq!(n, 2, "{body}");
    }

    #[test]
    fn files_go_as_parts_with_the_parser_beside_web_search_and_parsed_files_go_back() {
        let mut user = msg(Role::User, "read");
        user.attachments = Some(json!([
            "data:image/png;base64,AAAA",
            {"file": "f_1", "name": "a.pdf", "mime": "application/pdf", "size": 3,
             "data_url": "data:application/pdf;base64,JVBE"},
        ]));
        let mut reply = msg(Role::Assistant, "read it");
        reply.annotations = Some(json!([
            {"type": "url_citation", "url": "https://example.com"},
            {"type": "file", "file": {"hash": "h", "name": "a.pdf", "content": []}},
        ]));
        let settings = ChatSettings {
            web_search: Some(switchboard_store::WebSearch {
                enabled: true,
                max_results: None,
                engine: None,
            }),
            pdf_engine: Some("native".into()),
            ..ChatSettings::default()
        };
        let limits = ModelLimits {
            context_length: None,
            vision: false,
            image_output: true,
        };
        let routing = Routing {
            openrouter: true,
            session_id: "c",
            provider_default: None,
        };
        let body = build_request("m", &settings, &[user, reply], &limits, None, &routing);
        let parts = &body["messages"][0]["content"];
        assert_eq!(
            parts[0]["text"],
            "read\n[image omitted: this model cannot see images]"
        );
        assert_eq!(
            parts[1],
            json!({"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}})
        );
        assert_eq!(parts.as_array().unwrap().len(), 2);
        // Only the file parser's annotations go back; citations are the reply's own.
        assert_eq!(
            body["messages"][1]["annotations"],
            json!([{"type": "file", "file": {"hash": "h", "name": "a.pdf", "content": []}}])
        );
        assert_eq!(
            body["plugins"],
            json!([{"id": "web"}, {"id": "file-parser", "pdf": {"engine": "native"}}])
        );
        assert_eq!(body["modalities"], json!(["image", "text"]));
    }

    #[test]
    fn images_only_for_vision_models_and_reasoning_details_go_back() {
        let mut user = msg(Role::User, "look");
        user.attachments = Some(json!(["data:image/png;base64,AAAA"]));
        let mut reply = msg(Role::Assistant, "seen");
        reply.reasoning_details = Some(json!([{"type": "reasoning.text", "signature": "s"}]));
        let history = [user, reply];
        let vision = ModelLimits {
            context_length: None,
            vision: true,
            image_output: false,
        };
        let body = build_request(
            "m",
            &ChatSettings::default(),
            &history,
            &vision,
            None,
            &NO_ROUTING,
        );
        assert_eq!(body["messages"][0]["content"][1]["type"], "image_url");
        assert_eq!(
            body["messages"][1]["reasoning_details"][0]["signature"],
            "s"
        );
        let blind = ModelLimits {
            context_length: None,
            vision: false,
            image_output: false,
        };
        let body = build_request(
            "m",
            &ChatSettings::default(),
            &history,
            &blind,
            None,
            &NO_ROUTING,
        );
        assert!(
            body["messages"][0]["content"]
                .as_str()
                .unwrap()
                .contains("image omitted")
        );
    }
}
