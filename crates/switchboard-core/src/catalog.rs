//! The model catalog: which models exist, which are allowed, and what each can do.
//!
//! The proxy, the gateway, the chat engine and the UI all ask this one module, so they never
//! disagree about a model. It is pure data: fetching the catalog and reading settings happen
//! elsewhere, and the result of those is handed to [`ModelTable::build`].
//!
//! Data flows in one direction:
//!
//! 1. [`CatalogModel::parse_list`] decodes OpenRouter's `GET /v1/models` body (leniently: one bad
//!    model is skipped, not the list).
//! 2. [`CustomModelRules::parse`] parses `CUSTOM_MODELS` once at start-up: NextChat's syntax, with
//!    its parsing bugs fixed (trimming, case-insensitive providers, errors for malformed entries).
//! 3. [`ModelTable::build`] merges [`BUILTIN_MODELS`], the catalog and the rules into ordered
//!    [`ModelEntry`]s with capabilities ([`Vendor`], vision, reasoning, tools, free) and picks the
//!    default model (`DEFAULT_MODEL`).
//! 4. Request paths ask [`ModelTable::is_allowed`] / [`ModelTable::resolve`] (with a
//!    [`ModelRef`] parsed from `model@Provider`); `GET /api/models` asks [`ModelTable::query`].
//!
//! Availability keeps NextChat's semantics: a model is available when its provider is configured,
//! and `CUSTOM_MODELS` only modifies that, left to right. `+x` adds or re-enables `x` but hides
//! nothing; hiding takes `-all` or `-name`. See [`ModelTable`] for the details.

mod heuristics;
mod model_ref;
mod openrouter;
mod rules;
mod table;
mod vendor;

pub use model_ref::{ModelRef, ModelRefError};
pub use openrouter::{CatalogError, CatalogModel, Pricing};
pub use rules::{CustomModelRules, Rule, RuleTarget, RulesError, Toggle};
pub use table::{
    BUILTIN_MODELS, BuiltinModel, ModelEntry, ModelQuery, ModelTable, OPENROUTER_AUTO, TableOptions,
};
pub use vendor::Vendor;
