//! [`ModelTable`]: every model Switchboard knows, after `CUSTOM_MODELS`, in display order.
//!
//! Built from three sources, in this order: the built-in list ([`BUILTIN_MODELS`]), the live
//! OpenRouter catalog, then the `CUSTOM_MODELS` rules applied left to right. Rebuild the table
//! whenever one of them changes (e.g. each catalog refresh); lookups and queries are then cheap
//! reads of an already ordered `Vec`.
//!
//! Availability follows NextChat exactly: every model starts available when its provider is
//! configured, and the rules only *modify* that. So `+x` adds `x` (or re-enables it) but restricts
//! nothing; restricting takes `-all` (or `-name`). `-all,+x@OpenRouter` allows only `x`, while
//! `+x@OpenRouter,-all` disables `x` too, because `all` means every model known at that point.

use std::collections::HashMap;

use crate::provider::ProviderId;

use super::heuristics::{looks_like_reasoning, looks_like_vision};
use super::model_ref::ModelRef;
use super::openrouter::{CatalogModel, Pricing};
use super::rules::{CustomModelRules, RuleTarget};
use super::vendor::Vendor;

/// A model Switchboard lists even without the live catalog.
#[derive(Debug, Clone, PartialEq)]
pub struct BuiltinModel {
    pub id: &'static str,
    pub provider: ProviderId,
    pub display_name: &'static str,
    pub context_length: Option<u64>,
    pub vision: bool,
    pub reasoning: bool,
    pub tools: bool,
}

const fn builtin(
    id: &'static str,
    provider: ProviderId,
    display_name: &'static str,
    context_length: u64,
    (vision, reasoning): (bool, bool),
) -> BuiltinModel {
    BuiltinModel {
        id,
        provider,
        display_name,
        context_length: Some(context_length),
        vision,
        reasoning,
        tools: true,
    }
}

/// The built-in models: OpenRouter's auto router and a short list for the OpenAI-compatible
/// provider. Catalog data replaces a built-in entry with the same id and provider.
pub const BUILTIN_MODELS: &[BuiltinModel] = &[
    BuiltinModel {
        id: "openrouter/auto",
        provider: ProviderId::OpenRouter,
        display_name: "Auto Router",
        context_length: None,
        vision: true,
        reasoning: false,
        tools: false,
    },
    builtin(
        "gpt-4o",
        ProviderId::OpenAi,
        "GPT-4o",
        128_000,
        (true, false),
    ),
    builtin(
        "gpt-4o-mini",
        ProviderId::OpenAi,
        "GPT-4o mini",
        128_000,
        (true, false),
    ),
    builtin(
        "gpt-4.1",
        ProviderId::OpenAi,
        "GPT-4.1",
        1_047_576,
        (true, false),
    ),
    builtin(
        "gpt-4.1-mini",
        ProviderId::OpenAi,
        "GPT-4.1 mini",
        1_047_576,
        (true, false),
    ),
    builtin(
        "o3-mini",
        ProviderId::OpenAi,
        "o3-mini",
        200_000,
        (false, true),
    ),
    builtin(
        "o4-mini",
        ProviderId::OpenAi,
        "o4-mini",
        200_000,
        (true, true),
    ),
    builtin("gpt-5", ProviderId::OpenAi, "GPT-5", 400_000, (true, true)),
    builtin(
        "gpt-5-mini",
        ProviderId::OpenAi,
        "GPT-5 mini",
        400_000,
        (true, true),
    ),
];

/// The id of OpenRouter's auto router, the default model when OpenRouter is configured.
pub const OPENROUTER_AUTO: &str = "openrouter/auto";

/// What the table needs from the settings besides the rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TableOptions {
    /// Requests can go to OpenRouter (a server key, or users may bring their own).
    pub openrouter_configured: bool,
    /// Requests can go to the OpenAI-compatible provider.
    pub openai_configured: bool,
    /// `VISION_MODELS`, already split (see [`crate::settings::comma_list`]): ids that accept images
    /// whatever the catalog or name says.
    pub vision_models: Vec<String>,
    /// `DEFAULT_MODEL` as written: empty, `model` or `model@Provider`.
    pub default_model: String,
}

impl TableOptions {
    fn configured(&self, provider: &ProviderId) -> bool {
        match provider {
            ProviderId::OpenRouter => self.openrouter_configured,
            ProviderId::OpenAi => self.openai_configured,
            // Custom providers exist only through `CUSTOM_MODELS`, whose rules decide.
            ProviderId::Custom(_) => true,
        }
    }

    /// Where a `CUSTOM_MODELS` model without `@Provider` goes: OpenRouter when configured, else
    /// the OpenAI-compatible provider.
    fn default_provider(&self) -> ProviderId {
        if self.openrouter_configured {
            ProviderId::OpenRouter
        } else {
            ProviderId::OpenAi
        }
    }
}

/// One model under one provider, with everything the UI and the request paths ask about it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelEntry {
    /// The id sent upstream, e.g. `qwen/qwen3-32b:free` or `gpt-4o`.
    pub id: String,
    pub provider: ProviderId,
    /// The catalog's name, the built-in name, or a `CUSTOM_MODELS` `=Display Name`.
    pub display_name: String,
    /// May be requested (and is listed by default).
    pub available: bool,
    /// Accepts images.
    pub vision: bool,
    /// Reasons before answering (and can stream its reasoning).
    pub reasoning: bool,
    /// Accepts `tools`.
    pub tools: bool,
    /// Can answer with images (`output_modalities` has `image`): asked with `modalities`.
    pub image_output: bool,
    /// Costs nothing: a `:free` id, or both prices zero.
    pub free: bool,
    pub context_length: Option<u64>,
    pub max_completion_tokens: Option<u64>,
    pub pricing: Option<Pricing>,
    pub vendor: Vendor,
    /// Index of the first `CUSTOM_MODELS` entry that named this model, which orders the list.
    pub custom_order: Option<usize>,
    /// Created by a `CUSTOM_MODELS` entry: neither built in nor in the catalog.
    pub added_by_rules: bool,
    /// The table's default model (see [`ModelTable::default_entry`]).
    pub is_default: bool,
    /// Lower-cased `id` and `display_name`, precomputed for [`ModelTable::query`].
    search_text: String,
}

impl ModelEntry {
    fn new(id: &str, provider: ProviderId, display_name: &str) -> ModelEntry {
        ModelEntry {
            id: id.to_string(),
            provider,
            display_name: display_name.to_string(),
            available: true,
            vision: false,
            reasoning: false,
            tools: false,
            image_output: false,
            free: id.ends_with(":free"),
            context_length: None,
            max_completion_tokens: None,
            pricing: None,
            vendor: Vendor::from_model_id(id),
            custom_order: None,
            added_by_rules: false,
            is_default: false,
            search_text: String::new(),
        }
    }

    fn from_builtin(b: &BuiltinModel) -> ModelEntry {
        ModelEntry {
            context_length: b.context_length,
            vision: b.vision,
            reasoning: b.reasoning,
            tools: b.tools,
            ..ModelEntry::new(b.id, b.provider.clone(), b.display_name)
        }
    }

    /// Overwrite what the catalog knows; keeps availability and list position.
    fn describe_from_catalog(&mut self, c: &CatalogModel) {
        let has = |list: &[String], name: &str| list.iter().any(|s| s == name);
        self.display_name = c.name.clone();
        self.vision = has(&c.input_modalities, "image");
        self.reasoning = has(&c.supported_parameters, "reasoning")
            || has(&c.supported_parameters, "include_reasoning");
        self.tools = has(&c.supported_parameters, "tools");
        self.image_output = has(&c.output_modalities, "image");
        self.free = c.id.ends_with(":free") || c.pricing.is_some_and(|p| p.is_free());
        self.context_length = c.context_length;
        self.max_completion_tokens = c.max_completion_tokens;
        self.pricing = c.pricing;
    }

    fn from_rule(id: &str, provider: ProviderId, display_name: Option<&str>) -> ModelEntry {
        ModelEntry {
            vision: looks_like_vision(id),
            reasoning: looks_like_reasoning(id),
            added_by_rules: true,
            ..ModelEntry::new(id, provider, display_name.unwrap_or(id))
        }
    }

    fn names(&self, model: &str, provider: Option<&ProviderId>) -> bool {
        self.id == model && provider.is_none_or(|p| *p == self.provider)
    }
}

/// What [`ModelTable::query`] filters by; the default lists every available model.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ModelQuery {
    /// Search words: each must occur (case-insensitively) in the id or the display name, so
    /// `qwen3 32b free` finds `qwen/qwen3-32b:free`.
    pub q: Option<String>,
    /// Only free models.
    pub free: bool,
    /// Only models that accept images.
    pub vision: bool,
    /// Only reasoning models.
    pub reasoning: bool,
    /// Only models that can answer with images.
    pub image_output: bool,
    /// Also list models the rules or an unconfigured provider made unavailable.
    pub include_unavailable: bool,
}

/// The model table: built once per change of its inputs, then only read.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelTable {
    /// In display order: the default, then `CUSTOM_MODELS` models, then by vendor and name.
    entries: Vec<ModelEntry>,
    /// Where each id sits in `entries` (one id can be offered by several providers), so resolving
    /// the model of every relayed request is a hash lookup, not a scan of hundreds of entries.
    by_id: HashMap<String, Vec<usize>>,
    rules: CustomModelRules,
    default_provider: ProviderId,
    default_unmatched: bool,
}

impl ModelTable {
    /// Build the table from the built-in models, the live catalog (possibly empty, e.g. before
    /// the first fetch), the `CUSTOM_MODELS` rules and the options.
    pub fn build(
        builtins: &[BuiltinModel],
        catalog: &[CatalogModel],
        rules: &CustomModelRules,
        opts: &TableOptions,
    ) -> ModelTable {
        let mut entries: Vec<ModelEntry> = builtins.iter().map(ModelEntry::from_builtin).collect();
        for model in catalog {
            let openrouter = Some(&ProviderId::OpenRouter);
            match entries.iter_mut().find(|e| e.names(&model.id, openrouter)) {
                Some(existing) => existing.describe_from_catalog(model),
                None => {
                    let mut entry = ModelEntry::new(&model.id, ProviderId::OpenRouter, "");
                    entry.describe_from_catalog(model);
                    entries.push(entry);
                }
            }
        }
        for entry in &mut entries {
            entry.available = opts.configured(&entry.provider);
        }
        apply_rules(&mut entries, rules, opts);
        for entry in &mut entries {
            entry.vision |= opts.vision_models.contains(&entry.id);
            entry.search_text = format!("{}\n{}", entry.id, entry.display_name).to_lowercase();
        }
        entries.sort_by_cached_key(|e| {
            (
                e.custom_order.is_none(),
                e.custom_order,
                e.vendor == Vendor::Other,
                e.vendor.slug(),
                e.display_name.to_lowercase(),
                e.id.clone(),
                e.provider.clone(),
            )
        });
        let (default, default_unmatched) = find_default(&entries, opts);
        if let Some(i) = default {
            entries[i].is_default = true;
            entries[..=i].rotate_right(1);
        }
        let mut by_id: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, entry) in entries.iter().enumerate() {
            by_id.entry(entry.id.clone()).or_default().push(i);
        }
        ModelTable {
            entries,
            by_id,
            rules: rules.clone(),
            default_provider: opts.default_provider(),
            default_unmatched,
        }
    }

    /// Every entry, available or not, in display order.
    pub fn entries(&self) -> &[ModelEntry] {
        &self.entries
    }

    /// The model a new chat starts with: `DEFAULT_MODEL` when it names an available model, else
    /// `openrouter/auto` when OpenRouter is configured, else the first available OpenAI model,
    /// else the first available model. `None` only when nothing is available.
    pub fn default_entry(&self) -> Option<&ModelEntry> {
        self.entries.first().filter(|e| e.is_default)
    }

    /// A non-empty `DEFAULT_MODEL` named no available model, so the fallback was used. The server
    /// warns about it (best once the catalog has loaded, as the model may be a catalog one).
    pub fn default_unmatched(&self) -> bool {
        self.default_unmatched
    }

    /// The first available entry with this id, under `provider` or (with `None`) any provider.
    pub fn resolve(&self, model: &str, provider: Option<&ProviderId>) -> Option<&ModelEntry> {
        self.named(model, provider).find(|e| e.available)
    }

    /// The entries with this id, under `provider` or (with `None`) any provider, in display order.
    fn named<'a, 'p>(
        &'a self,
        model: &str,
        provider: Option<&'p ProviderId>,
    ) -> impl Iterator<Item = &'a ModelEntry> + use<'a, 'p> {
        self.by_id
            .get(model)
            .map_or(&[][..], Vec::as_slice)
            .iter()
            .map(|&i| &self.entries[i])
            .filter(move |e| provider.is_none_or(|p| *p == e.provider))
    }

    /// Whether a request for this model may go upstream.
    ///
    /// Always when `CUSTOM_MODELS` is empty: the catalog may not have loaded yet, and a model we
    /// do not know is the provider's to refuse. Otherwise when the model resolves to an available
    /// entry, or, for a model the table does not list at all, when the rules would have left it
    /// available (only `-all` or `-name` refuse a model never seen).
    pub fn is_allowed(&self, model: &str, provider: Option<&ProviderId>) -> bool {
        if self.rules.is_empty() || self.resolve(model, provider).is_some() {
            return true;
        }
        if self.named(model, provider).next().is_some() {
            return false;
        }
        let provider = provider.unwrap_or(&self.default_provider);
        self.rules.leaves_available(model, provider)
    }

    /// The entries `GET /api/models` lists, in display order.
    pub fn query(&self, q: &ModelQuery) -> Vec<&ModelEntry> {
        let words: Vec<String> =
            q.q.as_deref()
                .unwrap_or("")
                .split_whitespace()
                .map(str::to_lowercase)
                .collect();
        self.entries
            .iter()
            .filter(|e| q.include_unavailable || e.available)
            .filter(|e| !q.free || e.free)
            .filter(|e| !q.vision || e.vision)
            .filter(|e| !q.reasoning || e.reasoning)
            .filter(|e| !q.image_output || e.image_output)
            .filter(|e| words.iter().all(|w| e.search_text.contains(w.as_str())))
            .collect()
    }
}

/// Apply the rules left to right, as NextChat's `collectModelTable` does.
fn apply_rules(entries: &mut Vec<ModelEntry>, rules: &CustomModelRules, opts: &TableOptions) {
    for (order, rule) in rules.rules().iter().enumerate() {
        let available = rule.toggle.is_enable();
        let display_name = match &rule.target {
            RuleTarget::Model { display_name, .. } => display_name.as_deref(),
            RuleTarget::All { .. } => None,
        };
        let mut matched = false;
        for entry in entries.iter_mut() {
            if !rule.applies_to(&entry.id, &entry.provider) {
                continue;
            }
            matched = true;
            entry.available = available;
            if let RuleTarget::Model { .. } = rule.target {
                entry.custom_order.get_or_insert(order);
            }
            if let Some(name) = display_name {
                entry.display_name = name.to_string();
            }
        }
        // An enabling entry for an unknown model adds it; disabling the unknown does nothing.
        if matched || !available {
            continue;
        }
        if let RuleTarget::Model {
            model, provider, ..
        } = &rule.target
        {
            let provider = provider.clone().unwrap_or_else(|| opts.default_provider());
            let mut entry = ModelEntry::from_rule(model, provider, display_name);
            entry.custom_order = Some(order);
            entries.push(entry);
        }
    }
}

/// The index of the default entry in the sorted entries, and whether `DEFAULT_MODEL` was set but
/// matched nothing.
fn find_default(entries: &[ModelEntry], opts: &TableOptions) -> (Option<usize>, bool) {
    let first =
        |pred: &dyn Fn(&ModelEntry) -> bool| entries.iter().position(|e| e.available && pred(e));
    let wanted = opts.default_model.trim();
    if !wanted.is_empty() {
        let found = ModelRef::parse(wanted)
            .ok()
            .and_then(|r| first(&|e| e.names(&r.model, r.provider.as_ref())));
        if found.is_some() {
            return (found, false);
        }
    }
    let auto = opts
        .openrouter_configured
        .then(|| first(&|e| e.names(OPENROUTER_AUTO, Some(&ProviderId::OpenRouter))))
        .flatten();
    let fallback = auto
        .or_else(|| first(&|e| e.provider == ProviderId::OpenAi))
        .or_else(|| first(&|_| true));
    (fallback, !wanted.is_empty())
}

#[cfg(test)]
mod tests;
