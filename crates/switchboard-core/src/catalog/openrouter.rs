//! The live OpenRouter catalog, decoded from `GET /v1/models` into [`CatalogModel`]s.
//!
//! OpenRouter lists several hundred models and adds fields over time, so decoding is lenient:
//! unknown fields are ignored, `null` or mistyped fields count as missing, and one model that
//! cannot be used (no id) is skipped rather than failing the whole list. Only a body that is not
//! a `{"data": [...]}` JSON object is an error.

use serde_json::Value;
use serde_json::value::RawValue;

/// USD prices of one model, per token (OpenRouter's unit).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Pricing {
    pub prompt_per_token: f64,
    pub completion_per_token: f64,
}

impl Pricing {
    /// USD per million prompt tokens, rounded to 6 decimals to hide float noise (2.5, not 2.4999…).
    pub fn prompt_per_mtok(&self) -> f64 {
        per_mtok(self.prompt_per_token)
    }

    /// USD per million completion tokens, rounded like [`Pricing::prompt_per_mtok`].
    pub fn completion_per_mtok(&self) -> f64 {
        per_mtok(self.completion_per_token)
    }

    /// Both prices are zero.
    pub fn is_free(&self) -> bool {
        self.prompt_per_token == 0.0 && self.completion_per_token == 0.0
    }
}

fn per_mtok(per_token: f64) -> f64 {
    (per_token * 1e12).round() / 1e6
}

/// One model of OpenRouter's catalog, with the fields Switchboard uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogModel {
    /// OpenRouter's id, e.g. `qwen/qwen3-32b:free`. Never empty.
    pub id: String,
    /// Human name, e.g. `Qwen: Qwen3 32B (free)`; the id when the catalog gives none.
    pub name: String,
    pub context_length: Option<u64>,
    /// `None` when a price is missing, not a number, or negative (`"-1"` means "varies").
    pub pricing: Option<Pricing>,
    /// `architecture.input_modalities`, e.g. `["text", "image"]`.
    pub input_modalities: Vec<String>,
    /// `architecture.output_modalities`.
    pub output_modalities: Vec<String>,
    /// Request parameters the model accepts, e.g. `tools`, `reasoning`.
    pub supported_parameters: Vec<String>,
    /// `top_provider.max_completion_tokens`.
    pub max_completion_tokens: Option<u64>,
}

/// A `/v1/models` body that is not a catalog at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("model catalog is not JSON: {0}")]
    NotJson(String),
    #[error("model catalog has no \"data\" array")]
    NoData,
}

impl CatalogModel {
    /// Decode an OpenRouter `GET /v1/models` body. Models without an id are skipped.
    ///
    /// One model at a time: the list is split into borrowed raw entries first, so only one
    /// model's JSON tree exists at once. A tree of the whole catalog (~350 KB of JSON, mostly
    /// descriptions we never read) took a few MB that the allocator then kept for the life of
    /// the process.
    pub fn parse_list(body: &[u8]) -> Result<Vec<CatalogModel>, CatalogError> {
        #[derive(serde::Deserialize)]
        struct List<'a> {
            #[serde(borrow)]
            data: Vec<&'a RawValue>,
        }
        let list: List = serde_json::from_slice(body).map_err(|e| match e.classify() {
            // Well-formed JSON, but not `{"data": [...]}`.
            serde_json::error::Category::Data => CatalogError::NoData,
            _ => CatalogError::NotJson(e.to_string()),
        })?;
        Ok(list
            .data
            .iter()
            .filter_map(|raw| CatalogModel::from_json(&serde_json::from_str(raw.get()).ok()?))
            .collect())
    }

    fn from_json(model: &Value) -> Option<CatalogModel> {
        let id = model.get("id")?.as_str()?.trim();
        if id.is_empty() {
            return None;
        }
        let name = match model.get("name").and_then(Value::as_str).map(str::trim) {
            Some(name) if !name.is_empty() => name.to_string(),
            _ => id.to_string(),
        };
        let architecture = model.get("architecture");
        let top_provider = model.get("top_provider");
        let context_length = model
            .get("context_length")
            .and_then(Value::as_u64)
            .or_else(|| top_provider?.get("context_length")?.as_u64());
        let pricing = model.get("pricing").and_then(|p| {
            Some(Pricing {
                prompt_per_token: price(p.get("prompt")?)?,
                completion_per_token: price(p.get("completion")?)?,
            })
        });
        Some(CatalogModel {
            id: id.to_string(),
            name,
            context_length,
            pricing,
            input_modalities: strings(architecture.and_then(|a| a.get("input_modalities"))),
            output_modalities: strings(architecture.and_then(|a| a.get("output_modalities"))),
            supported_parameters: strings(model.get("supported_parameters")),
            max_completion_tokens: top_provider
                .and_then(|t| t.get("max_completion_tokens"))
                .and_then(Value::as_u64),
        })
    }
}

/// A price as OpenRouter writes it (a decimal string; a number is accepted too).
fn price(value: &Value) -> Option<f64> {
    let parsed = match value {
        Value::String(s) => s.trim().parse::<f64>().ok()?,
        Value::Number(n) => n.as_f64()?,
        _ => return None,
    };
    (parsed.is_finite() && parsed >= 0.0).then_some(parsed)
}

fn strings(value: Option<&Value>) -> Vec<String> {
    value
        .and_then(Value::as_array)
        .map(|items| {
            items
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A trimmed-down `/v1/models` body with the awkward cases OpenRouter really sends.
    const BODY: &str = r#"{"data": [
      {"id": "qwen/qwen3-32b:free", "canonical_slug": "qwen/qwen3-32b-04-28",
       "name": "Qwen: Qwen3 32B (free)", "created": 1745875945, "context_length": 40960,
       "architecture": {"modality": "text->text", "input_modalities": ["text"],
                        "output_modalities": ["text"], "tokenizer": "Qwen3"},
       "pricing": {"prompt": "0", "completion": "0", "request": "0"},
       "top_provider": {"context_length": 40960, "max_completion_tokens": null, "is_moderated": false},
       "supported_parameters": ["max_tokens", "reasoning", "include_reasoning", "tools"]},
      {"id": "openrouter/auto", "name": "Auto Router", "context_length": 2000000,
       "architecture": {"input_modalities": ["text", "image"], "output_modalities": ["text"]},
       "pricing": {"prompt": "-1", "completion": "-1"},
       "top_provider": null, "supported_parameters": null},
      {"id": "openai/gpt-4o", "name": "OpenAI: GPT-4o", "context_length": null,
       "architecture": {"input_modalities": ["text", "image", "file"]},
       "pricing": {"prompt": "0.0000025", "completion": "0.00001", "image": "0.003613"},
       "top_provider": {"context_length": 128000, "max_completion_tokens": 16384},
       "supported_parameters": ["tools", "tool_choice", 7], "future_field": {"x": 1}},
      {"name": "no id: skipped"},
      {"id": 42, "name": "numeric id: skipped"},
      {"id": "  ", "name": "blank id: skipped"},
      "not an object: skipped",
      null,
      {"id": "bare/minimum"},
      {"id": "half/priced", "name": "", "pricing": {"prompt": "0.000001", "completion": null},
       "context_length": "8192"}
    ]}"#;

    #[test]
    fn parses_a_catalog_body_skipping_unusable_models() {
        let models = CatalogModel::parse_list(BODY.as_bytes()).unwrap();
        let ids: Vec<&str> = models.iter().map(|m| m.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "qwen/qwen3-32b:free",
                "openrouter/auto",
                "openai/gpt-4o",
                "bare/minimum",
                "half/priced"
            ]
        );
        let strs = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let expected = [
            CatalogModel {
                id: "qwen/qwen3-32b:free".into(),
                name: "Qwen: Qwen3 32B (free)".into(),
                context_length: Some(40960),
                pricing: Some(Pricing {
                    prompt_per_token: 0.0,
                    completion_per_token: 0.0,
                }),
                input_modalities: strs(&["text"]),
                output_modalities: strs(&["text"]),
                supported_parameters: strs(&[
                    "max_tokens",
                    "reasoning",
                    "include_reasoning",
                    "tools",
                ]),
                max_completion_tokens: None,
            },
            CatalogModel {
                id: "openrouter/auto".into(),
                name: "Auto Router".into(),
                context_length: Some(2_000_000),
                pricing: None,
                input_modalities: strs(&["text", "image"]),
                output_modalities: strs(&["text"]),
                supported_parameters: vec![],
                max_completion_tokens: None,
            },
            CatalogModel {
                id: "openai/gpt-4o".into(),
                name: "OpenAI: GPT-4o".into(),
                context_length: Some(128_000),
                pricing: Some(Pricing {
                    prompt_per_token: 0.0000025,
                    completion_per_token: 0.00001,
                }),
                input_modalities: strs(&["text", "image", "file"]),
                output_modalities: vec![],
                supported_parameters: strs(&["tools", "tool_choice"]),
                max_completion_tokens: Some(16384),
            },
            CatalogModel {
                id: "bare/minimum".into(),
                name: "bare/minimum".into(),
                ..CatalogModel::default()
            },
            CatalogModel {
                id: "half/priced".into(),
                name: "half/priced".into(),
                ..CatalogModel::default()
            },
        ];
        assert_eq!(models, expected);
    }

    #[test]
    fn a_body_that_is_not_a_catalog_is_an_error() {
        let cases = [
            ("", "model catalog is not JSON"),
            ("<html>", "model catalog is not JSON"),
            (
                r#"{"data": [{"id": "cut/off"}"#,
                "model catalog is not JSON",
            ),
            ("[]", "model catalog has no \"data\" array"),
            (r#"{"data": 5}"#, "model catalog has no \"data\" array"),
            (r#"{"data": null}"#, "model catalog has no \"data\" array"),
            (
                r#"{"error": {"code": 500}}"#,
                "model catalog has no \"data\" array",
            ),
        ];
        for (body, message) in cases {
            let err = CatalogModel::parse_list(body.as_bytes()).expect_err(body);
            assert!(err.to_string().starts_with(message), "{body:?}: {err}");
        }
        assert_eq!(CatalogModel::parse_list(br#"{"data": []}"#), Ok(vec![]));
    }

    #[test]
    fn prices_per_million_tokens_are_rounded() {
        let cases = [
            ("0.0000025", "0.00001", 2.5, 10.0),
            ("0.00000015", "0.0000006", 0.15, 0.6),
            ("0", "0", 0.0, 0.0),
            ("0.000000001", "0.0000000004", 0.001, 0.0004),
        ];
        for (prompt, completion, prompt_m, completion_m) in cases {
            let body = format!(
                r#"{{"data":[{{"id":"m","pricing":{{"prompt":"{prompt}","completion":"{completion}"}}}}]}}"#
            );
            let models = CatalogModel::parse_list(body.as_bytes()).unwrap();
            let pricing = models[0].pricing.unwrap();
            assert_eq!(pricing.prompt_per_mtok(), prompt_m, "{prompt}");
            assert_eq!(pricing.completion_per_mtok(), completion_m, "{completion}");
        }
    }
}
