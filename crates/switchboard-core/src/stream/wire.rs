//! The wire shapes we read, as serde structs. Private: nothing outside `stream` sees these.
//!
//! Everything is `#[serde(default)]` and lenient, because one odd field must not cost a whole
//! chunk: text fields accept a string, null, or an array of content parts; unknown fields are
//! ignored. A stream chunk (`chat.completion.chunk`), a whole completion (`chat.completion`) and an
//! error body all deserialize into [`WireChunk`]; a choice carries `delta` in the first and
//! `message` in the second.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_json::Value;

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireChunk {
    pub id: Option<String>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub choices: Option<Vec<WireChoice>>,
    pub usage: Option<WireUsage>,
    pub error: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireChoice {
    pub index: u32,
    pub delta: Option<WireMessage>,
    pub message: Option<WireMessage>,
    pub finish_reason: Option<String>,
    pub native_finish_reason: Option<String>,
}

/// `choices[].delta` of a chunk or `choices[].message` of a completion.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireMessage {
    #[serde(deserialize_with = "lenient_text")]
    pub content: Option<String>,
    #[serde(deserialize_with = "lenient_text")]
    pub reasoning: Option<String>,
    #[serde(deserialize_with = "lenient_text")]
    pub reasoning_content: Option<String>,
    pub reasoning_details: Option<Vec<Value>>,
    pub tool_calls: Option<Vec<WireToolCall>>,
    pub annotations: Option<Vec<Value>>,
    /// Generated images (`[{"type":"image_url","image_url":{"url":…}}]`).
    pub images: Option<Vec<Value>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireToolCall {
    pub index: Option<u32>,
    pub id: Option<String>,
    pub function: Option<WireFunction>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireFunction {
    pub name: Option<String>,
    /// Normally a string of JSON; some providers send the object itself.
    pub arguments: Option<Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireUsage {
    pub prompt_tokens: Option<u64>,
    pub completion_tokens: Option<u64>,
    pub total_tokens: Option<u64>,
    pub cost: Option<f64>,
    pub is_byok: Option<bool>,
    pub prompt_tokens_details: Option<WirePromptDetails>,
    pub completion_tokens_details: Option<WireCompletionDetails>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WirePromptDetails {
    pub cached_tokens: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct WireCompletionDetails {
    pub reasoning_tokens: Option<u64>,
}

/// A text field: a string; null or anything odd → `None`; an array of content parts → the text of
/// its `text` parts concatenated (some providers send `content` that way).
fn lenient_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    struct TextVisitor;

    impl<'de> Visitor<'de> for TextVisitor {
        type Value = Option<String>;

        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, null or an array of content parts")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
            Ok(Some(v))
        }
        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(TextVisitor)
        }
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_map<A: de::MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            IgnoredAny.visit_map(map)?;
            Ok(None)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut text: Option<String> = None;
            while let Some(part) = seq.next_element::<Value>()? {
                let piece = match &part {
                    Value::String(s) => Some(s.as_str()),
                    Value::Object(o) if o.get("type").is_none_or(|t| t == "text") => {
                        o.get("text").and_then(Value::as_str)
                    }
                    _ => None,
                };
                if let Some(piece) = piece {
                    text.get_or_insert_with(String::new).push_str(piece);
                }
            }
            Ok(text)
        }
    }

    deserializer.deserialize_any(TextVisitor)
}
