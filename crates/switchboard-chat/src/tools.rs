//! The tool loop of a reply: the model asks for tool calls, the server runs them on the chat's MCP
//! servers and hands the results back, and the model continues — all inside the one detached
//! generation, so a tool-using reply survives a reload and a device switch like any other.
//!
//! One reply is one stored assistant message, however many rounds it takes. Its `tool_calls`
//! column holds every call with what became of it:
//! `{"id", "name", "arguments", "round", "offset", "server", "state", "result"}`, where `offset` is
//! how much of the reply's text came before the round's calls. From that, `context` rebuilds what
//! the provider must see — the assistant's text and calls, one `tool` message per call, then the
//! continuation — for the next round and for every later turn.
//!
//! A call's `state`: `waiting` (for Allow or Deny: the server's approval is `"ask"`), `running`,
//! `done`, `error` (the tool failed or timed out: the model is told), `denied`, `refused` (not
//! offered, or over `SWITCHBOARD_MAX_TOOL_STEPS`), `cancelled` (the reply was stopped). Every
//! change is written with a `tool_calls` event, so the page and a reload show it; a waiting call
//! also announces `tool_approval`, and the decision arrives as a `tool_decision` event stored by
//! whichever instance took `POST /api/chats/{id}/tool-calls/{call_id}`.

use serde_json::{Map, Value, json};
use switchboard_core::stream::{ToolCallAssembler, Usage as StreamUsage};
use switchboard_store::{Message, MessageStatus};

use super::{Generation, Outcome, details_json, failed};
use crate::hub::Subscription;
use crate::mcp::{self, Approval};

/// What became of a call that waited for a person.
enum Decision {
    Approved,
    Denied,
    /// The reply must end (stopped, interrupted, lost, or the database failed).
    End(Outcome),
}

impl Generation {
    /// The tools this reply offers: the chat's MCP servers' allowed tools, if the model can use
    /// tools at all.
    pub(super) fn offered_tools(&self) -> Option<mcp::Toolbox> {
        let names = self.plan.chat.settings.mcp_servers.as_ref()?;
        let mcp = self.engine.config.mcp.as_ref()?;
        if names.is_empty() || !self.plan.tools {
            return None;
        }
        let toolbox = mcp.toolbox(names);
        (!toolbox.is_empty()).then_some(toolbox)
    }

    /// Streams the reply, and while the model asks for tools, runs them and streams again.
    pub(super) async fn converse(&mut self, body: bytes::Bytes) -> Outcome {
        if self.toolbox.is_none() {
            return self.stream(body).await;
        }
        let mut spent: Option<StreamUsage> = None;
        let outcome = self.rounds(body, &mut spent).await;
        // The reply's usage is every round's.
        self.facts.usage = add_usage(spent, self.facts.usage.take());
        outcome
    }

    async fn rounds(&mut self, mut body: bytes::Bytes, spent: &mut Option<StreamUsage>) -> Outcome {
        let max = self.engine.config.max_tool_steps;
        let mut round: u32 = 0;
        loop {
            let outcome = self.stream(body).await;
            if !matches!(outcome, Outcome::Complete) {
                return outcome;
            }
            let calls = std::mem::replace(&mut self.tools, ToolCallAssembler::new()).finish();
            if calls.is_empty() {
                return outcome;
            }
            // Told to answer without tools and still calling them.
            if round > max {
                self.record_round(
                    calls,
                    round,
                    "refused",
                    Some("not run: too many tool rounds"),
                );
                return failed(
                    502,
                    &format!(
                        "the model kept calling tools after {max} rounds (SWITCHBOARD_MAX_TOOL_STEPS)"
                    ),
                );
            }
            let first = self.tool_records.len();
            if round == max {
                let why = format!(
                    "refused: this reply reached its limit of {max} rounds of tool calls; answer with what you have, without tools"
                );
                self.record_round(calls, round, "refused", Some(&why));
                if let Some(outcome) = self.write_tools().await {
                    return outcome;
                }
            } else {
                self.record_round(calls, round, "pending", None);
                for i in first..self.tool_records.len() {
                    if let Some(outcome) = self.run_call(i).await {
                        return outcome;
                    }
                }
            }
            *spent = add_usage(spent.take(), self.facts.usage.take());
            self.facts.finish_reason = None;
            self.facts.error = None;
            let mut next = self.request_body(&self.history_with_reply());
            if round == max {
                next["tool_choice"] = json!("none");
            }
            body = bytes::Bytes::from(next.to_string());
            round += 1;
        }
    }

    /// Keeps a finished round's calls as records.
    fn record_round(
        &mut self,
        calls: Vec<switchboard_core::stream::ToolCall>,
        round: u32,
        state: &str,
        result: Option<&str>,
    ) {
        let offset = self.content.len();
        for c in calls {
            let server = self
                .toolbox
                .as_ref()
                .and_then(|t| t.find(&c.name))
                .map(|e| e.server.config.name.clone());
            let mut record = json!({
                "id": c.id,
                "name": c.name,
                "arguments": c.arguments,
                "round": round,
                "offset": offset,
                "server": server,
                "state": state,
            });
            if let Some(result) = result {
                record["result"] = json!(result);
            }
            self.tool_records.push(record);
        }
    }

    /// The conversation as the next request must see it: the history, then this reply so far.
    fn history_with_reply(&self) -> Vec<Message> {
        let mut so_far = self.message.clone();
        so_far.content = self.content.clone();
        so_far.reasoning_details = details_json(&self.facts.details);
        so_far.tool_calls = self.tool_calls_json();
        so_far.status = MessageStatus::Complete;
        let mut history = self.history.clone();
        history.push(so_far);
        history
    }

    fn set_call(&mut self, i: usize, state: &str, result: Option<String>) {
        let record = &mut self.tool_records[i];
        record["state"] = json!(state);
        if let Some(result) = result {
            record["result"] = json!(result);
        }
    }

    /// Writes pending text, then the calls' new state. `Some` when the reply must end.
    async fn write_tools(&mut self) -> Option<Outcome> {
        self.pending.tool_calls_changed = true;
        self.write().await
    }

    /// Runs call `i` (asking first if its server says so). `Some` when the reply must end.
    async fn run_call(&mut self, i: usize) -> Option<Outcome> {
        let name = self.tool_records[i]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let found = self
            .toolbox
            .as_ref()
            .and_then(|t| t.find(&name))
            .map(|e| e.server.clone());
        let Some(server) = found else {
            let why = self
                .toolbox
                .as_ref()
                .map(|t| t.refusal(&name))
                .unwrap_or_default();
            self.set_call(i, "refused", Some(why));
            return self.write_tools().await;
        };
        let arguments = self.tool_records[i]["arguments"].as_str().unwrap_or("");
        let arguments: Map<String, Value> = if arguments.trim().is_empty() {
            Map::new()
        } else {
            match serde_json::from_str(arguments) {
                Ok(Value::Object(map)) => map,
                _ => {
                    let why = "error: the arguments were not a JSON object".to_string();
                    self.set_call(i, "error", Some(why));
                    return self.write_tools().await;
                }
            }
        };
        if server.config.approval == Approval::Ask {
            match self.await_decision(i).await {
                Decision::Approved => {}
                Decision::Denied => {
                    self.set_call(i, "denied", Some("the user denied this call".into()));
                    return self.write_tools().await;
                }
                Decision::End(outcome) => {
                    self.set_call(i, "cancelled", None);
                    return Some(outcome);
                }
            }
        }
        self.set_call(i, "running", None);
        if let Some(outcome) = self.write_tools().await {
            self.set_call(i, "cancelled", None);
            return Some(outcome);
        }
        let timeout = self.engine.config.tool_timeout;
        let stop = self.stop.clone();
        let interrupt = self.engine.interrupt.clone();
        // Dropping the call (stop, shutdown, timeout) cancels it on the server.
        let result = tokio::select! {
            biased;
            () = stop.cancelled() => {
                self.set_call(i, "cancelled", Some("the reply was stopped during this call".into()));
                return Some(Outcome::Stopped);
            }
            () = interrupt.cancelled() => {
                self.set_call(i, "cancelled", Some("the server shut down during this call".into()));
                return Some(Outcome::Interrupted);
            }
            r = tokio::time::timeout(timeout, mcp::call(&server, &name, arguments)) => r,
        };
        let (state, text) = match result {
            Err(_) => (
                "error",
                format!(
                    "error: the tool did not answer within {}s",
                    timeout.as_secs_f64()
                ),
            ),
            Ok(Err(e)) => ("error", format!("error: {e}")),
            Ok(Ok(out)) if out.is_error => ("error", out.text),
            Ok(Ok(out)) => ("done", out.text),
        };
        self.set_call(i, state, Some(text));
        self.write_tools().await
    }

    /// Marks call `i` waiting, announces it, and waits for a decision from any device.
    async fn await_decision(&mut self, i: usize) -> Decision {
        let store = self.engine.store.clone();
        let chat_id = self.plan.chat.id.clone();
        // Follow the chat from before the waiting state is stored: a decision needs that state,
        // so it comes after.
        let after = match store.last_event_seq(&chat_id).await {
            Ok(seq) => seq,
            Err(e) => {
                tracing::warn!(error = %e, "reading a chat's events failed");
                return Decision::End(failed(503, "the database could not be read"));
            }
        };
        let mut events = Subscription::new(store, self.engine.hubs.hub(&chat_id), after);
        self.set_call(i, "waiting", None);
        if let Some(outcome) = self.write_tools().await {
            return Decision::End(outcome);
        }
        let call_id = self.tool_records[i]["id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let announce = json!({"message_id": self.message.id, "call": self.tool_records[i]});
        if let Err(e) = self
            .engine
            .emit(
                &chat_id,
                "tool_approval",
                &self.message.id,
                announce.to_string(),
            )
            .await
        {
            // The waiting state is stored; the page shows the card from it.
            tracing::warn!(error = %e, "announcing a tool call awaiting approval failed");
        }
        let stop = self.stop.clone();
        let interrupt = self.engine.interrupt.clone();
        loop {
            let batch = tokio::select! {
                biased;
                () = stop.cancelled() => return Decision::End(Outcome::Stopped),
                () = interrupt.cancelled() => return Decision::End(Outcome::Interrupted),
                batch = events.next() => batch,
            };
            let batch = match batch {
                Ok(batch) => batch,
                Err(e) => {
                    tracing::warn!(error = %e, "following a chat's events failed");
                    return Decision::End(failed(503, "the database could not be read"));
                }
            };
            for event in batch {
                if event.message_id != self.message.id {
                    continue;
                }
                if event.kind != "tool_decision" {
                    continue;
                }
                let Ok(data) = serde_json::from_str::<Value>(&event.data) else {
                    continue;
                };
                if data["call_id"] == call_id.as_str() {
                    return if data["approve"] == true {
                        Decision::Approved
                    } else {
                        Decision::Denied
                    };
                }
            }
        }
    }
}

/// Two rounds' usage, summed.
fn add_usage(a: Option<StreamUsage>, b: Option<StreamUsage>) -> Option<StreamUsage> {
    let add = |x: Option<u64>, y: Option<u64>| match (x, y) {
        (None, None) => None,
        (x, y) => Some(x.unwrap_or(0) + y.unwrap_or(0)),
    };
    match (a, b) {
        (None, b) => b,
        (a, None) => a,
        (Some(a), Some(b)) => Some(StreamUsage {
            prompt_tokens: a.prompt_tokens + b.prompt_tokens,
            completion_tokens: a.completion_tokens + b.completion_tokens,
            total_tokens: a.total_tokens + b.total_tokens,
            reasoning_tokens: add(a.reasoning_tokens, b.reasoning_tokens),
            cached_tokens: add(a.cached_tokens, b.cached_tokens),
            cost: match (a.cost, b.cost) {
                (None, None) => None,
                (x, y) => Some(x.unwrap_or(0.0) + y.unwrap_or(0.0)),
            },
            ..a
        }),
    }
}
