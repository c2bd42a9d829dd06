//! [`ModelRef`]: a model as a client or `DEFAULT_MODEL` names it, `model` or `model@Provider`.

use std::fmt;

use crate::provider::ProviderId;

/// A model id with an optional provider, parsed from `model` or `model@Provider`.
///
/// The last `@` splits (`a@b@c` is model `a@b` at provider `c`), the same rule as `CUSTOM_MODELS`;
/// OpenRouter ids never contain `@`, so a plain OpenRouter id is never split.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ModelRef {
    /// Never empty.
    pub model: String,
    /// `None`: any provider that has the model.
    pub provider: Option<ProviderId>,
}

/// A model name that names no model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelRefError {
    #[error("model {0:?} has no model name")]
    NoModelName(String),
    #[error("model {0:?} has no provider name after '@'")]
    NoProviderName(String),
}

impl ModelRef {
    /// Parse `model` or `model@Provider` (provider case-insensitive, surrounding spaces ignored).
    pub fn parse(raw: &str) -> Result<ModelRef, ModelRefError> {
        let trimmed = raw.trim();
        let (model, provider) = match trimmed.rsplit_once('@') {
            Some((model, provider)) => (model.trim(), Some(provider.trim())),
            None => (trimmed, None),
        };
        if model.is_empty() {
            return Err(ModelRefError::NoModelName(raw.to_string()));
        }
        let provider = match provider {
            Some("") => return Err(ModelRefError::NoProviderName(raw.to_string())),
            Some(p) => Some(ProviderId::parse(p)),
            None => None,
        };
        Ok(ModelRef {
            model: model.to_string(),
            provider,
        })
    }
}

impl fmt::Display for ModelRef {
    /// `model` or `model@Provider`, with the provider's display name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.model)?;
        if let Some(p) = &self.provider {
            write!(f, "@{}", p.display_name())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_model_and_provider() {
        let or = Some(ProviderId::OpenRouter);
        type Expected = Result<(&'static str, Option<ProviderId>), &'static str>;
        let cases: [(&str, Expected); 9] = [
            ("gpt-4o", Ok(("gpt-4o", None))),
            ("qwen/qwen3-32b:free", Ok(("qwen/qwen3-32b:free", None))),
            ("x@OpenRouter", Ok(("x", or.clone()))),
            (" x @ openrouter ", Ok(("x", or.clone()))),
            ("gpt-4o@OpenAI", Ok(("gpt-4o", Some(ProviderId::OpenAi)))),
            (
                "a@b@c",
                Ok(("a@b", Some(ProviderId::Custom("c".to_string())))),
            ),
            ("", Err(r#"model "" has no model name"#)),
            ("@OpenAI", Err(r#"model "@OpenAI" has no model name"#)),
            ("x@", Err(r#"model "x@" has no provider name after '@'"#)),
        ];
        for (raw, expected) in cases {
            let got = ModelRef::parse(raw);
            match expected {
                Ok((model, provider)) => {
                    assert_eq!(
                        got,
                        Ok(ModelRef {
                            model: model.to_string(),
                            provider
                        }),
                        "{raw:?}"
                    )
                }
                Err(message) => {
                    assert_eq!(
                        got.map_err(|e| e.to_string()),
                        Err(message.to_string()),
                        "{raw:?}"
                    )
                }
            }
        }
        assert_eq!(
            ModelRef::parse("a@b@openai").unwrap().to_string(),
            "a@b@OpenAI"
        );
    }
}
