//! Folding deltas back into whole values: tool calls, and `reasoning_details` for the next turn.

use serde_json::{Map, Value};

use super::event::StreamEvent;

/// A complete tool call, assembled from its [`StreamEvent::ToolCall`] fragments.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ToolCall {
    /// The call id to answer with a `tool` message (empty if the provider sent none).
    pub id: String,
    /// The function name.
    pub name: String,
    /// The JSON arguments text, as the model wrote it (not validated here).
    pub arguments: String,
}

/// Assembles [`StreamEvent::ToolCall`] fragments, keyed by index, into whole [`ToolCall`]s.
///
/// The id and name are taken from the first fragment that has them; arguments are concatenated.
/// Some providers number every call 0 and tell them apart only by id, so a fragment whose id differs
/// from the one already collected at its index starts a new call.
#[derive(Debug, Default, Clone)]
pub struct ToolCallAssembler {
    calls: Vec<(u32, ToolCall)>,
}

impl ToolCallAssembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes in one event; events other than [`StreamEvent::ToolCall`] are ignored, so every event
    /// of a stream can be passed through here.
    pub fn push(&mut self, event: &StreamEvent) {
        let StreamEvent::ToolCall {
            index,
            id,
            name,
            arguments_delta,
        } = event
        else {
            return;
        };
        let id = id.as_deref().filter(|id| !id.is_empty());
        let existing = self
            .calls
            .iter()
            .rposition(|(at, _)| at == index)
            .filter(|&position| {
                let known = &self.calls[position].1.id;
                id.is_none_or(|id| known.is_empty() || known == id)
            });
        let call = match existing {
            Some(position) => &mut self.calls[position].1,
            None => {
                self.calls.push((*index, ToolCall::default()));
                &mut self.calls.last_mut().expect("just pushed").1
            }
        };
        if let Some(id) = id
            && call.id.is_empty()
        {
            call.id = id.to_owned();
        }
        if let Some(name) = name
            && call.name.is_empty()
        {
            call.name.clone_from(name);
        }
        call.arguments.push_str(arguments_delta);
    }

    /// The assembled calls, ordered by index (calls sharing an index keep their arrival order).
    pub fn finish(mut self) -> Vec<ToolCall> {
        self.calls.sort_by_key(|(index, _)| *index);
        self.calls.into_iter().map(|(_, call)| call).collect()
    }
}

/// Merges streamed `reasoning_details` fragments (the values of [`StreamEvent::ReasoningDetail`])
/// into the array OpenRouter expects back in the assistant message of the next turn.
///
/// Fragments with the same `type` and `index` are one block: their `text` and `summary` are
/// concatenated; other fields (`signature`, `data`, `id`, `format`, …) keep the last non-empty
/// value, because a block's signature arrives in its own, last, fragment and an earlier fragment may
/// carry an empty one. Blocks keep the order in which they first appeared; a fragment that is not a
/// JSON object is kept as it is.
pub fn merge_reasoning_details<'a>(fragments: impl IntoIterator<Item = &'a Value>) -> Vec<Value> {
    // Each block with its (type, index) key; `None` for a fragment that is not an object.
    type BlockKey = Option<(String, Option<u64>)>;
    let mut blocks: Vec<(BlockKey, Value)> = Vec::new();
    for fragment in fragments {
        let Value::Object(fields) = fragment else {
            blocks.push((None, fragment.clone()));
            continue;
        };
        let key = (
            fields
                .get("type")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            fields.get("index").and_then(Value::as_u64),
        );
        let block = blocks
            .iter_mut()
            .find(|(known, _)| known.as_ref() == Some(&key))
            .and_then(|(_, block)| block.as_object_mut());
        match block {
            Some(block) => merge_into(block, fields),
            None => blocks.push((Some(key), fragment.clone())),
        }
    }
    blocks.into_iter().map(|(_, block)| block).collect()
}

fn merge_into(block: &mut Map<String, Value>, fragment: &Map<String, Value>) {
    for (name, value) in fragment {
        let concatenated = matches!(name.as_str(), "text" | "summary");
        match (block.get_mut(name), value) {
            (Some(Value::String(known)), Value::String(more)) if concatenated => {
                known.push_str(more);
            }
            (Some(_), Value::Null) => {}
            (Some(_), Value::String(more)) if more.is_empty() => {}
            (Some(known), _) => *known = value.clone(),
            (None, _) => {
                block.insert(name.clone(), value.clone());
            }
        }
    }
}
