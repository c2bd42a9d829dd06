//! Capability guesses from a model's name, for models the live catalog does not describe
//! (built-in OpenAI models, `CUSTOM_MODELS` additions, a local vLLM).
//!
//! The vision list follows NextChat's `VISION_MODEL_REGEXES` in spirit, written as plain substring
//! and word checks; it only has to be right for common families, and `VISION_MODELS` overrides
//! it. Catalog models never use these guesses: the catalog says what they accept.

/// Substrings that mark a model as accepting images.
const VISION_SUBSTRINGS: &[&str] = &[
    "vision",
    "gpt-4o",
    "gpt-4.1",
    "gpt-4-turbo",
    "gpt-5",
    "claude-3",
    "claude-4",
    "claude-sonnet-4",
    "claude-opus-4",
    "claude-haiku-4",
    "gemini-1.5",
    "gemini-2",
    "gemini-3",
    "gemini-exp",
    "learnlm",
    "gemma-3",
    "pixtral",
    "llava",
    "llama-4",
    "grok-4",
    "glm-4v",
    "glm-4.5v",
];

/// Names that match [`VISION_SUBSTRINGS`] or the `o` series but take text only.
const NOT_VISION_SUBSTRINGS: &[&str] = &[
    "claude-3-5-haiku-20241022",
    "gpt-4-turbo-preview",
    "o1-mini",
    "o1-preview",
    "o3-mini",
];

/// Substrings that mark a model as a reasoning ("thinking") model.
const REASONING_SUBSTRINGS: &[&str] = &[
    "gpt-5",
    "deepseek-r1",
    "deepseek-reasoner",
    "qwq",
    "thinking",
    "reasoner",
];

/// The name with any `vendor/` prefix removed, lower-cased.
fn base_name(id: &str) -> String {
    let id = id.trim().to_ascii_lowercase();
    match id.rsplit_once('/') {
        Some((_, name)) => name.to_string(),
        None => id,
    }
}

/// `o1`, `o3`, `o4` as a whole first word (`o3`, `o4-mini`, `o1-2024-12-17`).
fn is_o_series(name: &str) -> bool {
    let first = name.split(['-', ':', '.']).next().unwrap_or("");
    matches!(first, "o1" | "o3" | "o4")
}

/// Whether a word of the name is `vl` or ends in it (`qwen2.5-vl-72b`, `internvl3`).
fn has_vl_word(name: &str) -> bool {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .any(|word| {
            word.trim_end_matches(|c: char| c.is_ascii_digit())
                .ends_with("vl")
        })
}

/// Guess whether a model accepts images from its id.
pub(crate) fn looks_like_vision(id: &str) -> bool {
    let name = base_name(id);
    if NOT_VISION_SUBSTRINGS.iter().any(|s| name.contains(s)) {
        return false;
    }
    VISION_SUBSTRINGS.iter().any(|s| name.contains(s)) || is_o_series(&name) || has_vl_word(&name)
}

/// Guess whether a model reasons before answering from its id.
pub(crate) fn looks_like_reasoning(id: &str) -> bool {
    let name = base_name(id);
    REASONING_SUBSTRINGS.iter().any(|s| name.contains(s)) || is_o_series(&name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_from_names() {
        // (id, vision, reasoning)
        let cases = [
            ("gpt-4o", true, false),
            ("gpt-4o-mini", true, false),
            ("gpt-4.1-mini", true, false),
            ("gpt-4-turbo", true, false),
            ("gpt-4-turbo-preview", false, false),
            ("gpt-4", false, false),
            ("gpt-3.5-turbo", false, false),
            ("gpt-5", true, true),
            ("o1", true, true),
            ("o1-mini", false, true),
            ("o3", true, true),
            ("o3-mini", false, true),
            ("o4-mini", true, true),
            ("claude-3-5-sonnet-20241022", true, false),
            ("claude-3-5-haiku-20241022", false, false),
            ("claude-sonnet-4-20250514", true, false),
            ("claude-opus-4-1", true, false),
            ("gemini-1.5-pro", true, false),
            ("gemini-2.5-flash", true, false),
            ("gemini-2.5-flash-thinking", true, true),
            ("gemma-3-27b-it", true, false),
            ("gemma-2-9b-it", false, false),
            ("qwen2.5-vl-72b-instruct", true, false),
            ("qwen-vl-max", true, false),
            ("internvl3-78b", true, false),
            ("qwen3-32b", false, false),
            ("qwq-32b", false, true),
            ("pixtral-large", true, false),
            ("llava-1.6", true, false),
            ("llama-3.2-11b-vision-instruct", true, false),
            ("llama-3.3-70b-instruct", false, false),
            ("grok-4", true, false),
            ("grok-2-vision-1212", true, false),
            ("grok-3", false, false),
            ("deepseek-r1-distill-llama-70b", false, true),
            ("deepseek-reasoner", false, true),
            ("deepseek-chat", false, false),
            ("devlin-7b", false, false),
            ("acme/o3-pro", true, true),
            ("my-local-model", false, false),
        ];
        for (id, vision, reasoning) in cases {
            assert_eq!(
                (looks_like_vision(id), looks_like_reasoning(id)),
                (vision, reasoning),
                "{id}"
            );
        }
    }
}
