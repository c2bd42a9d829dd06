//! Which company a model comes from, for the badge the UI shows next to its name.
//!
//! Derived from the model id alone: OpenRouter ids start with the vendor (`anthropic/…`), and bare
//! names used with OpenAI-compatible providers are recognised by their family (`gpt-…`, `claude-…`).

/// The maker of a model. Unknown makers are [`Vendor::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Vendor {
    OpenAi,
    Anthropic,
    Google,
    Gemma,
    Mistral,
    XAi,
    Meta,
    DeepSeek,
    Qwen,
    Moonshot,
    OpenRouter,
    Cohere,
    Nvidia,
    Microsoft,
    Amazon,
    Zhipu,
    MiniMax,
    Mock,
    Other,
}

impl Vendor {
    /// The vendor of a model id such as `anthropic/claude-sonnet-4`, `google/gemma-3-27b-it` or `gpt-4o`.
    pub fn from_model_id(id: &str) -> Vendor {
        let id = id.trim().to_ascii_lowercase();
        match id.split_once('/') {
            Some((prefix, rest)) => Vendor::from_prefix(prefix, rest),
            None => Vendor::from_bare_name(&id),
        }
    }

    fn from_prefix(prefix: &str, rest: &str) -> Vendor {
        match prefix {
            "openai" => Vendor::OpenAi,
            "anthropic" => Vendor::Anthropic,
            "google" if rest.starts_with("gemma") => Vendor::Gemma,
            "google" => Vendor::Google,
            "mistralai" | "mistral" => Vendor::Mistral,
            "x-ai" | "xai" => Vendor::XAi,
            "meta-llama" | "meta" => Vendor::Meta,
            "moonshotai" | "moonshot" => Vendor::Moonshot,
            "openrouter" => Vendor::OpenRouter,
            "cohere" => Vendor::Cohere,
            "nvidia" => Vendor::Nvidia,
            "microsoft" => Vendor::Microsoft,
            "amazon" => Vendor::Amazon,
            "z-ai" | "zhipu" | "zhipuai" | "thudm" => Vendor::Zhipu,
            "minimax" => Vendor::MiniMax,
            "mock" => Vendor::Mock,
            _ if prefix.starts_with("deepseek") => Vendor::DeepSeek,
            _ if prefix.starts_with("qwen") => Vendor::Qwen,
            _ => Vendor::Other,
        }
    }

    fn from_bare_name(name: &str) -> Vendor {
        const FAMILIES: &[(&str, Vendor)] = &[
            ("gpt-", Vendor::OpenAi),
            ("chatgpt-", Vendor::OpenAi),
            ("o1", Vendor::OpenAi),
            ("o3", Vendor::OpenAi),
            ("o4", Vendor::OpenAi),
            ("claude", Vendor::Anthropic),
            ("gemini", Vendor::Google),
            ("gemma", Vendor::Gemma),
            ("deepseek", Vendor::DeepSeek),
            ("qwen", Vendor::Qwen),
            ("qwq", Vendor::Qwen),
            ("mistral", Vendor::Mistral),
            ("mixtral", Vendor::Mistral),
            ("codestral", Vendor::Mistral),
            ("pixtral", Vendor::Mistral),
            ("grok", Vendor::XAi),
            ("llama", Vendor::Meta),
            ("kimi", Vendor::Moonshot),
            ("moonshot", Vendor::Moonshot),
            ("glm", Vendor::Zhipu),
            ("command", Vendor::Cohere),
        ];
        FAMILIES
            .iter()
            .find(|(family, _)| name.starts_with(family) && !is_o_series_lookalike(name, family))
            .map_or(Vendor::Other, |(_, vendor)| *vendor)
    }

    /// Short lower-case id for CSS classes and JSON, e.g. `openai`, `gemma`, `other`.
    pub fn slug(self) -> &'static str {
        match self {
            Vendor::OpenAi => "openai",
            Vendor::Anthropic => "anthropic",
            Vendor::Google => "google",
            Vendor::Gemma => "gemma",
            Vendor::Mistral => "mistral",
            Vendor::XAi => "xai",
            Vendor::Meta => "meta",
            Vendor::DeepSeek => "deepseek",
            Vendor::Qwen => "qwen",
            Vendor::Moonshot => "moonshot",
            Vendor::OpenRouter => "openrouter",
            Vendor::Cohere => "cohere",
            Vendor::Nvidia => "nvidia",
            Vendor::Microsoft => "microsoft",
            Vendor::Amazon => "amazon",
            Vendor::Zhipu => "zhipu",
            Vendor::MiniMax => "minimax",
            Vendor::Mock => "mock",
            Vendor::Other => "other",
        }
    }

    /// The name shown on the badge, e.g. `OpenAI`, `xAI`, `Other`.
    pub fn label(self) -> &'static str {
        match self {
            Vendor::OpenAi => "OpenAI",
            Vendor::Anthropic => "Anthropic",
            Vendor::Google => "Google",
            Vendor::Gemma => "Gemma",
            Vendor::Mistral => "Mistral",
            Vendor::XAi => "xAI",
            Vendor::Meta => "Meta",
            Vendor::DeepSeek => "DeepSeek",
            Vendor::Qwen => "Qwen",
            Vendor::Moonshot => "Moonshot",
            Vendor::OpenRouter => "OpenRouter",
            Vendor::Cohere => "Cohere",
            Vendor::Nvidia => "NVIDIA",
            Vendor::Microsoft => "Microsoft",
            Vendor::Amazon => "Amazon",
            Vendor::Zhipu => "Zhipu",
            Vendor::MiniMax => "MiniMax",
            Vendor::Mock => "Mock",
            Vendor::Other => "Other",
        }
    }
}

/// `o1`/`o3`/`o4` name OpenAI models only as a whole first word (`o3-mini`), not `o4xyz`.
fn is_o_series_lookalike(name: &str, family: &str) -> bool {
    family.len() == 2
        && family.starts_with('o')
        && !matches!(name.as_bytes().get(2), None | Some(b'-' | b':' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_from_model_id() {
        let cases = [
            ("openai/gpt-4o", "openai", "OpenAI"),
            ("anthropic/claude-sonnet-4", "anthropic", "Anthropic"),
            ("google/gemini-2.5-pro", "google", "Google"),
            ("google/gemma-3-27b-it:free", "gemma", "Gemma"),
            (
                "mistralai/mistral-small-3.2-24b-instruct",
                "mistral",
                "Mistral",
            ),
            ("x-ai/grok-4", "xai", "xAI"),
            ("meta-llama/llama-3.3-70b-instruct", "meta", "Meta"),
            ("deepseek/deepseek-r1:free", "deepseek", "DeepSeek"),
            ("deepseek-ai/deepseek-v3", "deepseek", "DeepSeek"),
            ("qwen/qwen3-32b:free", "qwen", "Qwen"),
            ("moonshotai/kimi-k2", "moonshot", "Moonshot"),
            ("openrouter/auto", "openrouter", "OpenRouter"),
            ("cohere/command-r-plus", "cohere", "Cohere"),
            ("nvidia/llama-3.1-nemotron-70b-instruct", "nvidia", "NVIDIA"),
            ("microsoft/phi-4", "microsoft", "Microsoft"),
            ("amazon/nova-pro-v1", "amazon", "Amazon"),
            ("z-ai/glm-4.5", "zhipu", "Zhipu"),
            ("minimax/minimax-m1", "minimax", "MiniMax"),
            ("mock/echo", "mock", "Mock"),
            ("OpenAI/GPT-4o", "openai", "OpenAI"),
            ("someone/some-model", "other", "Other"),
            ("gpt-4o", "openai", "OpenAI"),
            ("chatgpt-4o-latest", "openai", "OpenAI"),
            ("o1", "openai", "OpenAI"),
            ("o3-mini", "openai", "OpenAI"),
            ("o4-mini", "openai", "OpenAI"),
            ("o4xyz", "other", "Other"),
            ("claude-3-5-sonnet-20241022", "anthropic", "Anthropic"),
            ("gemini-2.0-flash", "google", "Google"),
            ("gemma-3-4b", "gemma", "Gemma"),
            ("deepseek-chat", "deepseek", "DeepSeek"),
            ("qwen-max", "qwen", "Qwen"),
            ("qwq-32b", "qwen", "Qwen"),
            ("grok-3", "xai", "xAI"),
            ("llama3.2", "meta", "Meta"),
            ("my-local-model", "other", "Other"),
            ("", "other", "Other"),
        ];
        for (id, slug, label) in cases {
            let vendor = Vendor::from_model_id(id);
            assert_eq!((vendor.slug(), vendor.label()), (slug, label), "{id:?}");
        }
    }
}
