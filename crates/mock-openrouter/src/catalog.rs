//! The synthesized model catalog served at `GET /api/v1/models`.
//!
//! Switchboard's model picker, its pricing display and its "does this model take images / reasoning /
//! tools" checks all read OpenRouter's catalog, so the mock has to serve one that looks like the real
//! thing: several hundred entries across many vendors, every field in OpenRouter's shape, prices as
//! decimal strings in USD per token. Nothing here is real data; the list is generated
//! deterministically from a small table of families × sizes, plus one entry per `mock/*` scenario
//! model so a server can default to one.
//!
//! The JSON is built once when the server starts and served as shared `Bytes`.

use serde_json::{Value, json};

/// What a family of models can do; several of these can be combined.
#[derive(Clone, Copy)]
struct Caps(u8);

impl Caps {
    const NONE: Caps = Caps(0);
    const IMAGE: Caps = Caps(1);
    const REASONING: Caps = Caps(2);
    const TOOLS: Caps = Caps(4);
    /// Also list a `:free` variant with zero prices.
    const FREE: Caps = Caps(8);
    /// Draws images: `output_modalities` has `image`.
    const IMAGE_OUT: Caps = Caps(16);

    const fn with(self, other: Caps) -> Caps {
        Caps(self.0 | other.0)
    }

    fn has(self, other: Caps) -> bool {
        self.0 & other.0 == other.0
    }
}

const T: Caps = Caps::TOOLS;
const TI: Caps = Caps::TOOLS.with(Caps::IMAGE);
const TR: Caps = Caps::TOOLS.with(Caps::REASONING);
const TIR: Caps = TI.with(Caps::REASONING);
const TF: Caps = T.with(Caps::FREE);
const TRF: Caps = TR.with(Caps::FREE);
const TIF: Caps = TI.with(Caps::FREE);
const F: Caps = Caps::FREE;
const N: Caps = Caps::NONE;
const I: Caps = Caps::IMAGE;

/// One family of models. `slug` and `name` contain `{}` where the size goes; a family without
/// sizes uses `&[""]` and no placeholder.
struct Family {
    vendor: &'static str,
    slug: &'static str,
    name: &'static str,
    sizes: &'static [&'static str],
    context: u64,
    /// USD per million prompt tokens, in mills (1 = $0.001 per million), so prices stay exact
    /// integers until they are formatted.
    prompt_mills: u64,
    completion_mills: u64,
    caps: Caps,
}

const fn fam(
    vendor: &'static str,
    slug: &'static str,
    name: &'static str,
    sizes: &'static [&'static str],
    context: u64,
    (prompt_mills, completion_mills): (u64, u64),
    caps: Caps,
) -> Family {
    Family {
        vendor,
        slug,
        name,
        sizes,
        context,
        prompt_mills,
        completion_mills,
        caps,
    }
}

const ONE: &[&str] = &[""];

/// The families. Sizes earlier in a list are cheaper; see [`price_for`].
#[rustfmt::skip]
const FAMILIES: &[Family] = &[
    // OpenAI
    fam("openai", "gpt-4o", "GPT-4o", ONE, 128_000, (2_500, 10_000), TI),
    fam("openai", "gpt-4o-mini", "GPT-4o-mini", ONE, 128_000, (150, 600), TI),
    fam("openai", "gpt-4o-{}", "GPT-4o ({})", &["2024-05-13", "2024-08-06", "2024-11-20"], 128_000, (2_500, 10_000), TI),
    fam("openai", "gpt-4.1{}", "GPT-4.1{}", &["", "-mini", "-nano"], 1_047_576, (2_000, 8_000), TI),
    fam("openai", "gpt-4-turbo", "GPT-4 Turbo", ONE, 128_000, (10_000, 30_000), TI),
    fam("openai", "gpt-4", "GPT-4", ONE, 8_191, (30_000, 60_000), T),
    fam("openai", "gpt-3.5-turbo{}", "GPT-3.5 Turbo{}", &["", "-0613", "-16k", "-instruct"], 16_385, (500, 1_500), T),
    fam("openai", "gpt-5{}", "GPT-5{}", &["", "-mini", "-nano", "-pro", "-codex", "-chat"], 400_000, (1_250, 10_000), TIR),
    fam("openai", "gpt-5.1{}", "GPT-5.1{}", &["", "-mini", "-codex", "-chat"], 400_000, (1_250, 10_000), TIR),
    fam("openai", "o1{}", "o1{}", &["", "-mini", "-pro"], 200_000, (15_000, 60_000), TIR),
    fam("openai", "o3{}", "o3{}", &["", "-mini", "-pro", "-deep-research"], 200_000, (2_000, 8_000), TIR),
    fam("openai", "o4-mini{}", "o4 Mini{}", &["", "-high", "-deep-research"], 200_000, (1_100, 4_400), TIR),
    fam("openai", "gpt-oss-{}", "gpt-oss-{}", &["20b", "120b"], 131_072, (40, 160), TRF),
    fam("openai", "codex-mini", "Codex Mini", ONE, 200_000, (1_500, 6_000), TIR),
    // Anthropic
    fam("anthropic", "claude-3-haiku", "Claude 3 Haiku", ONE, 200_000, (250, 1_250), TI),
    fam("anthropic", "claude-3-opus", "Claude 3 Opus", ONE, 200_000, (15_000, 75_000), TI),
    fam("anthropic", "claude-3.5-{}", "Claude 3.5 {}", &["haiku", "sonnet"], 200_000, (800, 4_000), TI),
    fam("anthropic", "claude-3.7-sonnet{}", "Claude 3.7 Sonnet{}", &["", ":thinking"], 200_000, (3_000, 15_000), TIR),
    fam("anthropic", "claude-sonnet-{}", "Claude Sonnet {}", &["4", "4.5"], 1_000_000, (3_000, 15_000), TIR),
    fam("anthropic", "claude-opus-{}", "Claude Opus {}", &["4", "4.1", "4.5"], 200_000, (15_000, 75_000), TIR),
    fam("anthropic", "claude-haiku-4.5", "Claude Haiku 4.5", ONE, 200_000, (1_000, 5_000), TIR),
    // Google
    fam("google", "gemini-2.5-{}", "Gemini 2.5 {}", &["flash-lite", "flash", "pro"], 1_048_576, (100, 400), TIR),
    fam("google", "gemini-2.5-{}-preview", "Gemini 2.5 {} Preview", &["flash-image", "flash-lite", "flash"], 1_048_576, (300, 2_500), TIR),
    fam("google", "gemini-2.0-{}", "Gemini 2.0 {}", &["flash-lite-001", "flash-001", "flash-exp"], 1_048_576, (75, 300), TIF),
    fam("google", "gemini-3-pro-preview", "Gemini 3 Pro Preview", ONE, 1_048_576, (2_000, 12_000), TIR),
    fam("google", "gemini-pro-1.5", "Gemini 1.5 Pro", ONE, 2_000_000, (1_250, 5_000), TI),
    fam("google", "gemma-2-{}-it", "Gemma 2 {}", &["9b", "27b"], 8_192, (30, 90), N),
    fam("google", "gemma-3-{}-it", "Gemma 3 {}", &["1b", "4b", "12b", "27b"], 131_072, (20, 60), I.with(F)),
    fam("google", "gemma-3n-{}-it", "Gemma 3n {}", &["e2b", "e4b"], 32_768, (20, 40), F),
    // Meta
    fam("meta-llama", "llama-3-{}-instruct", "Llama 3 {} Instruct", &["8b", "70b"], 8_192, (30, 60), N),
    fam("meta-llama", "llama-3.1-{}-instruct", "Llama 3.1 {} Instruct", &["8b", "70b", "405b"], 131_072, (20, 50), TF),
    fam("meta-llama", "llama-3.2-{}-instruct", "Llama 3.2 {} Instruct", &["1b", "3b", "11b-vision", "90b-vision"], 131_072, (10, 20), F),
    fam("meta-llama", "llama-3.3-{}-instruct", "Llama 3.3 {} Instruct", &["8b", "70b"], 131_072, (40, 120), TF),
    fam("meta-llama", "llama-4-{}", "Llama 4 {}", &["scout", "maverick"], 1_048_576, (80, 300), TIF),
    fam("meta-llama", "llama-guard-{}", "Llama Guard {}", &["2-8b", "3-8b", "4-12b"], 131_072, (20, 60), N),
    // Mistral
    fam("mistralai", "mistral-{}", "Mistral {}", &["tiny", "small", "medium", "large", "nemo", "saba"], 131_072, (100, 300), T),
    fam("mistralai", "mistral-small-{}", "Mistral Small {}", &["24b-instruct-2501", "3.1-24b-instruct", "3.2-24b-instruct"], 131_072, (50, 100), TIF),
    fam("mistralai", "mistral-medium-{}", "Mistral Medium {}", &["3", "3.1"], 131_072, (400, 2_000), TI),
    fam("mistralai", "mistral-large-{}", "Mistral Large {}", &["2407", "2411"], 131_072, (2_000, 6_000), T),
    fam("mistralai", "mistral-7b-instruct{}", "Mistral 7B Instruct{}", &["", "-v0.1", "-v0.2", "-v0.3"], 32_768, (30, 50), TF),
    fam("mistralai", "mixtral-{}-instruct", "Mixtral {} Instruct", &["8x7b", "8x22b"], 65_536, (240, 240), T),
    fam("mistralai", "codestral-{}", "Codestral {}", &["2501", "2508"], 256_000, (300, 900), T),
    fam("mistralai", "devstral-{}", "Devstral {}", &["small", "medium", "small-2505"], 131_072, (70, 280), TF),
    fam("mistralai", "magistral-{}", "Magistral {}", &["small-2506", "medium-2506"], 40_960, (500, 1_500), TR),
    fam("mistralai", "ministral-{}", "Ministral {}", &["3b", "8b"], 131_072, (40, 40), T),
    fam("mistralai", "pixtral-{}", "Pixtral {}", &["12b", "large-2411"], 131_072, (100, 100), TI),
    // xAI
    fam("x-ai", "grok-{}", "Grok {}", &[ "2-1212", "2-vision-1212", "3", "3-mini", "4", "4-fast", "code-fast-1", ], 256_000, (300, 1_500), TIR),
    fam("x-ai", "grok-4.1-fast{}", "Grok 4.1 Fast{}", &[""], 2_000_000, (200, 500), TIR.with(F)),
    // Qwen
    fam("qwen", "qwen3-{}", "Qwen3 {}", &[ "0.6b-04-28", "1.7b", "4b", "8b", "14b", "32b", "30b-a3b", "235b-a22b", ], 131_072, (30, 120), TRF),
    fam("qwen", "qwen3-{}-instruct-2507", "Qwen3 {} Instruct 2507", &["30b-a3b", "235b-a22b"], 262_144, (80, 330), T),
    fam("qwen", "qwen3-{}-thinking-2507", "Qwen3 {} Thinking 2507", &["30b-a3b", "235b-a22b"], 262_144, (110, 600), TR),
    fam("qwen", "qwen3-coder{}", "Qwen3 Coder{}", &["", "-30b-a3b-instruct", "-plus", "-flash"], 262_144, (220, 950), TF),
    fam("qwen", "qwen3-max{}", "Qwen3 Max{}", &["", "-thinking"], 256_000, (1_200, 6_000), TR),
    fam("qwen", "qwen3-vl-{}-instruct", "Qwen3 VL {} Instruct", &["8b", "30b-a3b", "235b-a22b"], 131_072, (200, 880), TI),
    fam("qwen", "qwen-2.5-{}-instruct", "Qwen2.5 {} Instruct", &["7b", "72b"], 32_768, (40, 100), TF),
    fam("qwen", "qwen2.5-vl-{}-instruct", "Qwen2.5 VL {} Instruct", &["3b", "7b", "32b", "72b"], 32_768, (250, 750), I.with(F)),
    fam("qwen", "qwen-2.5-coder-{}-instruct", "Qwen2.5 Coder {} Instruct", &["7b", "32b"], 32_768, (40, 160), F),
    fam("qwen", "qwen-{}", "Qwen {}", &["turbo", "plus", "max", "vl-plus", "vl-max"], 131_072, (50, 200), TI),
    fam("qwen", "qwq-32b", "QwQ 32B", ONE, 131_072, (150, 400), TRF),
    // DeepSeek
    fam("deepseek", "deepseek-chat{}", "DeepSeek V3{}", &["", "-v3-0324", "-v3.1"], 163_840, (200, 800), TF),
    fam("deepseek", "deepseek-r1{}", "R1{}", &[ "", "-0528", "-distill-llama-70b", "-distill-qwen-32b", "-distill-qwen-14b", "-0528-qwen3-8b", ], 163_840, (400, 1_750), TRF),
    fam("deepseek", "deepseek-v3.1-terminus", "DeepSeek V3.1 Terminus", ONE, 163_840, (230, 900), TR),
    fam("deepseek", "deepseek-v3.2{}", "DeepSeek V3.2{}", &["", "-exp", "-speciale"], 163_840, (270, 410), TR),
    fam("deepseek", "deepseek-prover-v2", "DeepSeek Prover V2", ONE, 163_840, (500, 2_180), N),
    // Moonshot
    fam("moonshotai", "kimi-k2{}", "Kimi K2{}", &["", "-0905", "-thinking"], 262_144, (390, 1_900), TRF),
    fam("moonshotai", "kimi-dev-72b", "Kimi Dev 72B", ONE, 131_072, (290, 1_150), F),
    fam("moonshotai", "kimi-vl-a3b-thinking", "Kimi VL A3B Thinking", ONE, 131_072, (20, 80), I.with(Caps::REASONING)),
    // Cohere
    fam("cohere", "command{}", "Command{}", &[ "", "-r", "-r-plus", "-r7b-12-2024", "-a", "-r-08-2024", "-r-plus-08-2024", ], 128_000, (150, 600), T),
    // NVIDIA
    fam("nvidia", "llama-3.1-nemotron-{}", "Llama 3.1 Nemotron {}", &["70b-instruct", "ultra-253b-v1", "nano-8b-v1"], 131_072, (120, 300), T),
    fam("nvidia", "nemotron-nano-{}", "Nemotron Nano {}", &["9b-v2", "12b-v2-vl"], 128_000, (40, 160), TRF),
    fam("nvidia", "llama-3.3-nemotron-super-49b-v1.5", "Llama 3.3 Nemotron Super 49B v1.5", ONE, 131_072, (100, 400), TR),
    // Microsoft
    fam("microsoft", "phi-{}", "Phi {}", &[ "3-mini-128k-instruct", "3-medium-128k-instruct", "3.5-mini-128k-instruct", "4", "4-multimodal-instruct", "4-reasoning-plus", ], 128_000, (70, 140), N),
    fam("microsoft", "mai-ds-r1", "MAI DS R1", ONE, 163_840, (300, 1_200), TRF),
    fam("microsoft", "wizardlm-2-8x22b", "WizardLM-2 8x22B", ONE, 65_536, (480, 480), N),
    // Amazon
    fam("amazon", "nova-{}-v1", "Nova {} 1.0", &["micro", "lite", "pro", "premier"], 300_000, (35, 140), TI),
    // Z.AI
    fam("z-ai", "glm-4.{}", "GLM 4.{}", &["5", "5-air", "5v", "6", "32b"], 131_072, (350, 1_550), TRF),
    // MiniMax
    fam("minimax", "minimax-{}", "MiniMax {}", &["01", "m1", "m2"], 1_000_192, (300, 1_200), TRF),
    // Others, to make the list as long as the real one
    fam("perplexity", "sonar{}", "Sonar{}", &["", "-pro", "-reasoning", "-reasoning-pro", "-deep-research"], 127_072, (1_000, 1_000), N),
    fam("nousresearch", "hermes-{}", "Hermes {}", &[ "3-llama-3.1-70b", "3-llama-3.1-405b", "4-70b", "4-405b", "2-pro-llama-3-8b", ], 131_072, (120, 300), T),
    fam("ai21", "jamba-{}", "Jamba {}", &["mini-1.7", "large-1.7"], 256_000, (200, 400), T),
    fam("inflection", "inflection-3-{}", "Inflection 3 {}", &["pi", "productivity"], 8_000, (2_500, 10_000), N),
    fam("baidu", "ernie-4.5-{}", "ERNIE 4.5 {}", &["21b-a3b", "300b-a47b", "vl-28b-a3b", "vl-424b-a47b"], 123_000, (70, 280), I),
    fam("tencent", "hunyuan-a13b-instruct", "Hunyuan A13B Instruct", ONE, 32_768, (30, 30), F),
    fam("arcee-ai", "{}", "{}", &[ "virtuoso-large", "coder-large", "maestro-reasoning", "spotlight", "afm-4.5b", ], 131_072, (250, 800), T),
    fam("liquid", "lfm-{}", "LFM {}", &["3b", "7b", "2.2-6b"], 32_768, (10, 20), N),
    fam("thudm", "glm-4.1v-9b-thinking", "GLM 4.1V 9B Thinking", ONE, 65_536, (35, 138), I.with(Caps::REASONING)),
    fam("ibm-granite", "granite-4.0-h-micro", "Granite 4.0 Micro", ONE, 131_000, (17, 110), N),
    fam("bytedance", "ui-tars-1.5-7b", "UI-TARS 7B", ONE, 128_000, (100, 200), I),
    fam("openrouter", "{}", "{}", &["sonoma-dusk-alpha", "sonoma-sky-alpha", "polaris-alpha"], 2_000_000, (0, 0), TI),
];

/// How a vendor's name is shown in a model's display name ("Vendor: Model").
fn vendor_display(vendor: &str) -> &'static str {
    match vendor {
        "openai" => "OpenAI",
        "anthropic" => "Anthropic",
        "google" => "Google",
        "meta-llama" => "Meta",
        "mistralai" => "Mistral",
        "x-ai" => "xAI",
        "qwen" => "Qwen",
        "deepseek" => "DeepSeek",
        "moonshotai" => "MoonshotAI",
        "cohere" => "Cohere",
        "nvidia" => "NVIDIA",
        "microsoft" => "Microsoft",
        "amazon" => "Amazon",
        "z-ai" => "Z.AI",
        "minimax" => "MiniMax",
        "perplexity" => "Perplexity",
        "nousresearch" => "Nous",
        "ai21" => "AI21",
        "inflection" => "Inflection",
        "baidu" => "Baidu",
        "tencent" => "Tencent",
        "arcee-ai" => "Arcee AI",
        "liquid" => "Liquid",
        "thudm" => "THUDM",
        "ibm-granite" => "IBM",
        "bytedance" => "ByteDance",
        "openrouter" => "OpenRouter",
        "mock" => "Mock",
        _ => "Other",
    }
}

/// The `provider` a chunk names for a model of this vendor (the company that served it).
pub(crate) fn provider_for(model: &str) -> &'static str {
    let vendor = model.split('/').next().unwrap_or_default();
    match vendor {
        "meta-llama" | "nousresearch" | "microsoft" => "DeepInfra",
        "qwen" | "tencent" | "thudm" => "Alibaba",
        "nvidia" | "liquid" | "arcee-ai" | "bytedance" => "Together",
        "mistralai" => "Mistral",
        "z-ai" => "Z.AI",
        "openrouter" => "OpenRouter",
        "amazon" => "Amazon Bedrock",
        "ibm-granite" => "Cloudflare",
        _ => vendor_display(vendor),
    }
}

fn tokenizer(vendor: &str, slug: &str) -> &'static str {
    match vendor {
        "openai" => "GPT",
        "anthropic" => "Claude",
        "google" => "Gemini",
        "meta-llama" if slug.starts_with("llama-4") => "Llama4",
        "meta-llama" | "nvidia" | "nousresearch" => "Llama3",
        "mistralai" => "Mistral",
        "x-ai" => "Grok",
        "qwen" if slug.starts_with("qwen3") => "Qwen3",
        "qwen" => "Qwen",
        "deepseek" => "DeepSeek",
        "cohere" => "Cohere",
        "amazon" => "Nova",
        _ => "Other",
    }
}

/// Formats a price given in mills (1/1000 USD) per million tokens as OpenRouter does: a decimal
/// string of USD per token, without trailing zeros ("0.000003"; "0" when free).
fn per_token(mills_per_million: u64) -> String {
    // USD per token = mills / 1e3 / 1e6 = mills × 1e-9.
    const SCALE: u64 = 1_000_000_000;
    if mills_per_million == 0 {
        return "0".to_owned();
    }
    let whole = mills_per_million / SCALE;
    let frac = format!("{:09}", mills_per_million % SCALE);
    let frac = frac.trim_end_matches('0');
    if frac.is_empty() {
        whole.to_string()
    } else {
        format!("{whole}.{frac}")
    }
}

/// Bigger sizes (later in a family's list) cost more; a simple, deterministic rule.
fn price_for(base: u64, size_index: usize) -> u64 {
    base + base * size_index as u64 / 2
}

/// Everything needed to write one catalog entry.
struct Entry {
    id: String,
    name: String,
    context: u64,
    prompt_mills: u64,
    completion_mills: u64,
    caps: Caps,
    created: u64,
}

fn entry_json(entry: &Entry) -> Value {
    let (vendor, slug) = entry.id.split_once('/').unwrap_or(("other", &entry.id));
    let canonical = entry.id.split(':').next().unwrap_or(&entry.id);
    let mut input = vec!["text"];
    if entry.caps.has(Caps::IMAGE) {
        input.extend(["image", "file"]);
    }
    let modality = match (entry.caps.has(Caps::IMAGE), entry.caps.has(Caps::IMAGE_OUT)) {
        (true, true) => "text+image->text+image",
        (true, false) => "text+image->text",
        (false, true) => "text->text+image",
        (false, false) => "text->text",
    };
    let mut params = vec!["max_tokens", "temperature", "top_p", "stop", "seed"];
    if entry.caps.has(Caps::TOOLS) {
        params.extend([
            "tools",
            "tool_choice",
            "structured_outputs",
            "response_format",
        ]);
    }
    if entry.caps.has(Caps::REASONING) {
        params.extend(["reasoning", "include_reasoning"]);
    }
    let free = entry.prompt_mills == 0 && entry.completion_mills == 0;
    let price = |mills: u64| per_token(mills);
    json!({
        "id": entry.id,
        "canonical_slug": canonical,
        "hugging_face_id": "",
        "name": entry.name,
        "created": entry.created,
        "description": format!(
            "{} is a synthesized model entry served by mock-openrouter for tests. It stands in for the real {} model of the same id.",
            entry.name, vendor_display(vendor)
        ),
        "context_length": entry.context,
        "architecture": {
            "modality": modality,
            "input_modalities": input,
            "output_modalities": if entry.caps.has(Caps::IMAGE_OUT) { json!(["text", "image"]) } else { json!(["text"]) },
            "tokenizer": tokenizer(vendor, slug),
            "instruct_type": null,
        },
        "pricing": {
            "prompt": price(entry.prompt_mills),
            "completion": price(entry.completion_mills),
            "request": "0",
            "image": if entry.caps.has(Caps::IMAGE) && !free { price(entry.prompt_mills * 1000) } else { "0".to_owned() },
            "web_search": if free { "0" } else { "0.01" },
            "internal_reasoning": if entry.caps.has(Caps::REASONING) { price(entry.completion_mills) } else { "0".to_owned() },
            "input_cache_read": price(entry.prompt_mills / 10),
        },
        "top_provider": {
            "context_length": entry.context,
            "max_completion_tokens": (entry.context / 4).min(128_000),
            "is_moderated": matches!(vendor, "openai" | "anthropic"),
        },
        "per_request_limits": null,
        "supported_parameters": params,
        "default_parameters": null,
        "supported_voices": null,
        "expiration_date": null,
        "links": { "details": format!("/api/v1/models/{canonical}/endpoints") },
    })
}

/// The `mock/*` scenario models, with what each one advertises.
const MOCK_MODELS: &[(&str, &str, Caps)] = &[
    ("mock/echo", "Echo", Caps::IMAGE),
    ("mock/vision", "Vision", Caps::IMAGE),
    ("mock/reasoning", "Reasoning", Caps::REASONING),
    ("mock/tools", "Tools", Caps::TOOLS),
    ("mock/use-tool", "Use Tool", Caps::TOOLS),
    ("mock/web", "Web", Caps::NONE),
    ("mock/image", "Image", Caps::IMAGE_OUT),
    ("mock/error-midstream", "Error Midstream", Caps::NONE),
    ("mock/error-on-usage", "Error On Usage", Caps::NONE),
    ("mock/slow", "Slow", Caps::NONE),
    ("mock/long", "Long", Caps::NONE),
    ("mock/usage-2025", "Usage 2025", Caps::NONE),
    ("mock/usage-2026", "Usage 2026", Caps::NONE),
    ("mock/usage-merged", "Usage Merged", Caps::NONE),
    ("mock/status-400", "Status 400", Caps::NONE),
    ("mock/status-402", "Status 402", Caps::NONE),
    ("mock/status-403", "Status 403", Caps::NONE),
    ("mock/status-408", "Status 408", Caps::NONE),
    ("mock/status-429", "Status 429", Caps::NONE),
    ("mock/status-500", "Status 500", Caps::NONE),
    ("mock/status-502", "Status 502", Caps::NONE),
    ("mock/status-503", "Status 503", Caps::NONE),
    ("mock/status-524", "Status 524", Caps::NONE),
    ("mock/status-529", "Status 529", Caps::NONE),
];

/// All catalog entries, in a stable order.
fn entries() -> Vec<Entry> {
    // A fixed, plausible "created" clock so the catalog is identical on every run.
    let mut created = 1_690_000_000u64;
    let mut next_created = || {
        created += 86_400 + 3_617;
        created
    };
    let mut out = vec![Entry {
        id: "openrouter/auto".to_owned(),
        name: "Auto Router".to_owned(),
        context: 2_000_000,
        prompt_mills: 0,
        completion_mills: 0,
        caps: TIR,
        created: next_created(),
    }];
    for family in FAMILIES {
        for (index, size) in family.sizes.iter().enumerate() {
            let slug = family.slug.replace("{}", size);
            let id = format!("{}/{}", family.vendor, slug);
            // "-mini" after a name reads " Mini"; a size on its own reads as is.
            let shown = match size.strip_prefix('-') {
                Some(_) => format!(" {}", display_size(size)),
                None => display_size(size),
            };
            let model_name = family.name.replace("{}", &shown);
            let name = format!("{}: {}", vendor_display(family.vendor), model_name.trim());
            let entry = Entry {
                id,
                name,
                context: family.context,
                prompt_mills: price_for(family.prompt_mills, index),
                completion_mills: price_for(family.completion_mills, index),
                caps: family.caps,
                created: next_created(),
            };
            let free = (family.caps.has(Caps::FREE) && !entry.id.contains(':')).then(|| Entry {
                id: format!("{}:free", entry.id),
                name: format!("{} (free)", entry.name),
                prompt_mills: 0,
                completion_mills: 0,
                ..entry
            });
            out.push(entry);
            out.extend(free);
        }
    }
    for (id, name, caps) in MOCK_MODELS {
        out.push(Entry {
            id: (*id).to_owned(),
            name: format!("Mock: {name}"),
            context: 131_072,
            prompt_mills: 1_000,
            completion_mills: 2_000,
            caps: *caps,
            created: next_created(),
        });
    }
    out
}

/// "8b" → "8B", "flash-lite" → "Flash Lite": how OpenRouter's display names spell sizes.
fn display_size(size: &str) -> String {
    let looks_like_date = size.starts_with(|c: char| c.is_ascii_digit())
        && size.contains('-')
        && size.chars().all(|c| c.is_ascii_digit() || c == '-');
    if looks_like_date {
        return size.to_owned();
    }
    size.split('-')
        .filter(|part| !part.is_empty())
        .map(|part| {
            // Parameter counts: "8b" → "8B", "8x7b" → "8x7B", "a22b" → "A22B".
            let number = part.strip_suffix('b').unwrap_or_default();
            let digits = number.strip_prefix(['a', 'e']).unwrap_or(number);
            let is_count = !digits.is_empty()
                && digits
                    .chars()
                    .all(|c| c.is_ascii_digit() || c == '.' || c == 'x');
            if is_count {
                format!("{}B", number.to_ascii_uppercase().replace('X', "x"))
            } else {
                let mut chars = part.chars();
                match chars.next() {
                    Some(first) => first.to_uppercase().chain(chars).collect(),
                    None => String::new(),
                }
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
        .replace(":thinking", " (thinking)")
        .replace(":free", " (free)")
}

/// The full `{"data":[...]}` document, with the list fields OpenRouter's SDK reads.
pub(crate) fn catalog_json() -> Value {
    let data: Vec<Value> = entries().iter().map(entry_json).collect();
    let total = data.len();
    json!({ "data": data, "links": {"next": null}, "total_count": total })
}

/// The providers that serve a model, for `GET /api/v1/models/{author}/{slug}/endpoints`: the
/// model's own vendor at its catalog price, and two hosts beside it (one cheaper and quantized, one
/// dearer and faster), so routing by price, throughput or latency has something to choose.
pub(crate) fn endpoints_json(entry: &Value) -> Value {
    let id = entry["id"].as_str().unwrap_or_default();
    let provider = provider_for(id);
    let price = |key: &str, factor: f64| {
        let base: f64 = entry["pricing"][key]
            .as_str()
            .and_then(|p| p.parse().ok())
            .unwrap_or(0.0);
        // In mills per million tokens (1e9 per USD per token), printed as OpenRouter prints prices.
        per_token((base * factor * 1e9).round() as u64)
    };
    let context = entry["context_length"].as_u64().unwrap_or(0);
    let hosts: [(&str, &str, f64, &str, f64, f64); 3] = [
        (provider, "fp16", 1.0, "", 0.45, 60.0),
        ("DeepInfra", "fp8", 0.8, "deepinfra/fp8", 0.9, 40.0),
        ("Groq", "fp16", 1.5, "groq", 0.2, 250.0),
    ];
    let endpoints: Vec<Value> = hosts
        .iter()
        .enumerate()
        // The vendor first; a host that is the vendor is not listed twice.
        .filter(|(i, (name, ..))| *i == 0 || *name != provider)
        .map(|(_, (name, quantization, factor, tag, latency, throughput))| {
            let tag = if tag.is_empty() {
                name.to_ascii_lowercase().replace(' ', "-")
            } else {
                (*tag).to_owned()
            };
            let stats = |p50: f64| json!({"p50": p50, "p75": p50 * 1.2, "p90": p50 * 1.5, "p99": p50 * 2.0});
            json!({
                "name": format!("{name} | {id}"),
                "model_id": id,
                "model_name": entry["name"],
                "context_length": context,
                "pricing": {
                    "prompt": price("prompt", *factor),
                    "completion": price("completion", *factor),
                    "request": "0",
                    "image": "0",
                },
                "provider_name": name,
                "tag": tag,
                "quantization": quantization,
                "max_completion_tokens": entry["top_provider"]["max_completion_tokens"],
                "max_prompt_tokens": context,
                "supported_parameters": entry["supported_parameters"],
                "status": 0,
                "uptime_last_30m": 99.5,
                "uptime_last_5m": 100.0,
                "uptime_last_1d": 99.8,
                "supports_implicit_caching": false,
                "latency_last_30m": stats(*latency),
                "throughput_last_30m": stats(*throughput),
            })
        })
        .collect();
    json!({
        "id": id,
        "name": entry["name"],
        "created": entry["created"],
        "description": entry["description"],
        "architecture": {
            "tokenizer": entry["architecture"]["tokenizer"],
            "instruct_type": null,
            "modality": entry["architecture"]["modality"],
            "input_modalities": entry["architecture"]["input_modalities"],
            "output_modalities": entry["architecture"]["output_modalities"],
        },
        "endpoints": endpoints,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices_are_exact_decimal_strings() {
        assert_eq!(per_token(3_000), "0.000003");
        assert_eq!(per_token(150), "0.00000015");
        assert_eq!(per_token(75), "0.000000075");
        assert_eq!(per_token(0), "0");
    }

    #[test]
    fn ids_are_unique() {
        let entries = entries();
        let mut ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
        ids.sort_unstable();
        let before = ids.len();
        ids.dedup();
        assert_eq!(before, ids.len(), "duplicate ids in the catalog");
        assert!(before >= 300, "only {before} models");
    }

    #[test]
    fn sizes_display_like_openrouter() {
        assert_eq!(display_size("8b"), "8B");
        assert_eq!(display_size("flash-lite"), "Flash Lite");
        assert_eq!(display_size("8x7b"), "8x7B");
        assert_eq!(display_size("235b-a22b"), "235B A22B");
        assert_eq!(display_size("2024-11-20"), "2024-11-20");
    }
}
