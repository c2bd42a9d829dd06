//! Upstream providers as data.
//!
//! A provider is an id, a base URL, its server keys and the API paths a client may reach through the
//! proxy. Adding an OpenAI-compatible provider (DeepSeek, a local vLLM, …) is one more
//! [`ProviderConfig`] value, not a copied module.

use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::secret::Secret;

/// Which upstream a request goes to. Names compare case-insensitively (`@OpenRouter` = `@openrouter`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProviderId {
    OpenRouter,
    OpenAi,
    /// A provider named only in `CUSTOM_MODELS` / `DEFAULT_MODEL`, kept lower-case.
    Custom(String),
}

impl ProviderId {
    /// Parse a provider name as written after `@`. Case-insensitive; never fails for non-empty input.
    pub fn parse(name: &str) -> ProviderId {
        let lower = name.trim().to_ascii_lowercase();
        match lower.as_str() {
            "openrouter" => ProviderId::OpenRouter,
            "openai" => ProviderId::OpenAi,
            _ => ProviderId::Custom(lower),
        }
    }

    /// The lower-case id used in JSON (`openrouter`, `openai`, or the custom name).
    pub fn as_str(&self) -> &str {
        match self {
            ProviderId::OpenRouter => "openrouter",
            ProviderId::OpenAi => "openai",
            ProviderId::Custom(s) => s,
        }
    }

    /// The name NextChat shows (`OpenRouter`, `OpenAI`), used when printing rules back.
    pub fn display_name(&self) -> &str {
        match self {
            ProviderId::OpenRouter => "OpenRouter",
            ProviderId::OpenAi => "OpenAI",
            ProviderId::Custom(s) => s,
        }
    }
}

impl fmt::Display for ProviderId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One configured upstream.
#[derive(Debug)]
pub struct ProviderConfig {
    pub id: ProviderId,
    /// Normalised: scheme present, no trailing slash. The API lives under `{base_url}/v1/...`.
    pub base_url: String,
    /// The server's keys; one is picked per request, round-robin.
    pub api_keys: Vec<Secret>,
    /// The environment variable that sets the keys, named in "no key configured" errors.
    pub key_var: &'static str,
}

impl Clone for ProviderConfig {
    fn clone(&self) -> Self {
        ProviderConfig {
            id: self.id.clone(),
            base_url: self.base_url.clone(),
            api_keys: self.api_keys.clone(),
            key_var: self.key_var,
        }
    }
}

impl ProviderConfig {
    pub fn has_server_key(&self) -> bool {
        !self.api_keys.is_empty()
    }

    /// The proxy paths (below `/api/<provider>/`) a client may reach. Anything else is refused, so the
    /// server's key can never be spent on an endpoint nobody meant to expose.
    pub fn allowed_paths(&self) -> &'static [&'static str] {
        match self.id {
            ProviderId::OpenRouter => &[
                "v1/chat/completions",
                "v1/completions",
                "v1/responses",
                "v1/models",
                "v1/models/user",
                "v1/key",
                "v1/auth/key",
                "v1/credits",
                "v1/generation",
            ],
            _ => &["v1/chat/completions", "v1/models"],
        }
    }
}

/// Round-robin over a provider's keys: every key gets used, without locking.
#[derive(Debug, Default)]
pub struct KeyRotation {
    next: AtomicUsize,
}

impl KeyRotation {
    pub fn pick<'a, T>(&self, keys: &'a [T]) -> Option<&'a T> {
        if keys.is_empty() {
            return None;
        }
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        Some(&keys[i % keys.len()])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_are_case_insensitive() {
        assert_eq!(ProviderId::parse("OpenRouter"), ProviderId::OpenRouter);
        assert_eq!(ProviderId::parse("openrouter"), ProviderId::OpenRouter);
        assert_eq!(ProviderId::parse("OPENAI"), ProviderId::OpenAi);
        assert_eq!(
            ProviderId::parse("DeepSeek"),
            ProviderId::Custom("deepseek".into())
        );
    }

    #[test]
    fn rotation_uses_every_key() {
        let keys: Vec<Secret> = ["a", "b", "c"]
            .iter()
            .map(|k| Secret::new(k.to_string()))
            .collect();
        let rot = KeyRotation::default();
        let picked: Vec<&str> = (0..6).map(|_| rot.pick(&keys).unwrap().expose()).collect();
        assert_eq!(picked, ["a", "b", "c", "a", "b", "c"]);
        assert!(rot.pick::<Secret>(&[]).is_none());
    }
}
