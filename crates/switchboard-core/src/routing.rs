//! OpenRouter's routing options for one request: provider preferences (`provider`), fallback models
//! (`models`) and web search (the `web` plugin), parsed once into types that cannot be invalid.
//!
//! Provider preferences follow OpenRouter's `ProviderPreferences` schema key for key; an unknown key
//! or a value outside the schema is refused with a message naming it, so a typo never silently
//! routes a team's requests somewhere else.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Fallback models a chat may name after its own (OpenRouter tries them in order).
pub const MAX_FALLBACK_MODELS: usize = 3;

/// `provider` of a chat completion request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderPreferences {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub order: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub only: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignore: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub allow_fallbacks: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require_parameters: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_collection: Option<DataCollection>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub zdr: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce_distillable_text: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sort: Option<Sort>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_price: Option<MaxPrice>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quantizations: Option<Vec<Quantization>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataCollection {
    Allow,
    Deny,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortBy {
    Price,
    Throughput,
    Latency,
    Exacto,
}

/// `"price"`, or `{"by": "price", "partition": "model" | "none"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Sort {
    By(SortBy),
    Config {
        #[serde(skip_serializing_if = "Option::is_none")]
        by: Option<SortBy>,
        #[serde(skip_serializing_if = "Option::is_none")]
        partition: Option<Partition>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Partition {
    Model,
    None,
}

/// USD: per million prompt/completion tokens, per image, per audio unit, per request.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaxPrice {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completion: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub audio: Option<Price>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<Price>,
}

/// A price as OpenRouter takes it: a number or a decimal string.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Price {
    Number(f64),
    Text(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Quantization {
    Int4,
    Int8,
    Fp4,
    Mxfp4,
    Nvfp4,
    Fp6,
    Fp8,
    Mxfp8,
    Fp16,
    Bf16,
    Fp32,
    Unknown,
}

impl ProviderPreferences {
    /// Reads and checks a `provider` object (a chat setting, or `OPENROUTER_PROVIDER`).
    pub fn parse(value: &Value) -> Result<ProviderPreferences, String> {
        let prefs: ProviderPreferences =
            serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;
        if let Some(Price::Text(t)) = prefs.max_price.as_ref().and_then(|p| {
            [&p.prompt, &p.completion, &p.image, &p.audio, &p.request]
                .into_iter()
                .flatten()
                .find(|p| matches!(p, Price::Text(t) if t.trim().parse::<f64>().is_err()))
        }) {
            return Err(format!("max_price: `{t}` is not a number"));
        }
        if let Some(Price::Number(n)) = prefs.max_price.as_ref().and_then(|p| {
            [&p.prompt, &p.completion, &p.image, &p.audio, &p.request]
                .into_iter()
                .flatten()
                .find(|p| matches!(p, Price::Number(n) if !n.is_finite() || *n < 0.0))
        }) {
            return Err(format!("max_price: {n} is not a price"));
        }
        for (name, list) in [
            ("order", &prefs.order),
            ("only", &prefs.only),
            ("ignore", &prefs.ignore),
        ] {
            if list
                .iter()
                .flatten()
                .any(|slug| slug.trim().is_empty() || slug.len() > 128)
            {
                return Err(format!(
                    "{name}: provider names must be 1 to 128 characters"
                ));
            }
        }
        Ok(prefs)
    }

    /// `self` laid over `defaults`, key by key: the chat's choice wins where it makes one.
    pub fn over(&self, defaults: &ProviderPreferences) -> Value {
        let mut merged: Map<String, Value> = match serde_json::to_value(defaults) {
            Ok(Value::Object(map)) => map,
            _ => Map::new(),
        };
        if let Ok(Value::Object(mine)) = serde_json::to_value(self) {
            merged.extend(mine);
        }
        Value::Object(merged)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn every_documented_key_parses_and_round_trips() {
        let value = json!({
            "order": ["openai", "anthropic"], "only": ["openai"], "ignore": ["deepinfra"],
            "allow_fallbacks": false, "require_parameters": true, "data_collection": "deny",
            "zdr": true, "sort": "throughput", "max_price": {"prompt": 1.5, "completion": "2.5"},
            "quantizations": ["fp8", "bf16"], "enforce_distillable_text": false,
        });
        let prefs = ProviderPreferences::parse(&value).unwrap();
        assert_eq!(serde_json::to_value(&prefs).unwrap(), value);
        let sorted = json!({"sort": {"by": "price", "partition": "none"}});
        assert_eq!(
            serde_json::to_value(ProviderPreferences::parse(&sorted).unwrap()).unwrap(),
            sorted
        );
    }

    #[test]
    fn unknown_keys_and_values_outside_the_schema_are_refused() {
        for bad in [
            json!({"orderr": ["openai"]}),
            json!({"sort": "cheapest"}),
            json!({"data_collection": "maybe"}),
            json!({"quantizations": ["fp9"]}),
            json!({"max_price": {"prompt": "cheap"}}),
            json!({"max_price": {"prompt": -1}}),
            json!({"order": [""]}),
            json!({"zdr": "yes"}),
            json!(["openai"]),
        ] {
            assert!(ProviderPreferences::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_chat_s_choices_are_laid_over_the_server_default() {
        let server =
            ProviderPreferences::parse(&json!({"data_collection": "deny", "sort": "price"}))
                .unwrap();
        let chat = ProviderPreferences::parse(&json!({"sort": "latency", "zdr": true})).unwrap();
        assert_eq!(
            chat.over(&server),
            json!({"data_collection": "deny", "sort": "latency", "zdr": true})
        );
    }
}
