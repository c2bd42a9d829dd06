//! Redaction of secrets at the logging layer: the last line of defence after "never log a secret"
//! (which the code keeps by construction: secrets are `Secret`s whose `Debug` prints `<redacted>`).
//!
//! Every formatted log line passes through [`Redactor::scrub`]: the configured keys and access
//! codes are replaced wherever they appear, and so is anything shaped like a credential — a
//! `Bearer` token, an OpenAI/OpenRouter key (`sk-…`) or a NextChat access code (`nk-…`).

use std::borrow::Cow;

use switchboard_core::Settings;

use crate::serving::ServerSettings;

const MASK: &str = "<redacted>";

/// Scrubs secrets out of text.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    /// Exact secrets, longest first so a key that contains another is masked whole.
    exact: Vec<String>,
}

impl Redactor {
    /// A redactor for everything secret in `settings` and `server`. Access codes are only known as
    /// hashes, so they are caught by shape (`nk-…`, `Bearer …`) rather than by value.
    pub fn for_settings(settings: &Settings, server: &ServerSettings) -> Redactor {
        let mut exact: Vec<String> = settings
            .openrouter
            .api_keys
            .iter()
            .chain(settings.openai.api_keys.iter())
            .chain(server.cookie_secret.iter())
            .map(|s| s.expose().to_string())
            .filter(|s| s.len() >= 4)
            .collect();
        exact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        Redactor { exact }
    }

    /// Also mask these exact values (e.g. access codes known at start-up).
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Redactor {
        self.exact
            .extend(secrets.into_iter().filter(|s| s.len() >= 4));
        self.exact.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    pub fn scrub<'a>(&self, text: &'a str) -> Cow<'a, str> {
        let mut out: Cow<'a, str> = Cow::Borrowed(text);
        for secret in &self.exact {
            if out.contains(secret.as_str()) {
                out = Cow::Owned(out.replace(secret.as_str(), MASK));
            }
        }
        match scrub_shapes(&out) {
            Some(s) => Cow::Owned(s),
            None => out,
        }
    }
}

fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '~' | '+' | '/' | '=')
}

/// Mask credential-shaped tokens; `None` when there is nothing to mask.
fn scrub_shapes(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    if !(lower.contains("sk-") || lower.contains("nk-") || lower.contains("bearer")) {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut changed = false;
    let mut rest = text;
    let mut after_bearer = false;
    while !rest.is_empty() {
        let start = rest.find(is_token_char).unwrap_or(rest.len());
        out.push_str(&rest[..start]);
        rest = &rest[start..];
        if rest.is_empty() {
            break;
        }
        let end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
        let token = &rest[..end];
        let secret_shaped =
            (token.starts_with("sk-") || token.starts_with("nk-")) && token.len() > 6;
        if after_bearer || secret_shaped {
            out.push_str(MASK);
            changed = true;
        } else {
            out.push_str(token);
        }
        after_bearer = token.eq_ignore_ascii_case("bearer");
        rest = &rest[end..];
    }
    changed.then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_configured_secrets_and_credential_shapes() {
        let r = Redactor::default().with_secrets(["my-plain-secret-key".to_string()]);
        let cases = [
            ("key=my-plain-secret-key end", "key=<redacted> end"),
            (
                "authorization: Bearer abc.def-123",
                "authorization: Bearer <redacted>",
            ),
            ("used sk-or-v1-0123456789abcdef!", "used <redacted>!"),
            ("code nk-letmein123 wrong", "code <redacted> wrong"),
            ("\"Bearer\":\"tok\"", "\"Bearer\":\"<redacted>\""),
            ("nothing to see, sk- alone", "nothing to see, sk- alone"),
        ];
        for (input, want) in cases {
            assert_eq!(r.scrub(input), want, "{input}");
        }
        assert!(matches!(r.scrub("plain line"), Cow::Borrowed(_)));
    }
}
