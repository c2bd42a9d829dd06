//! `CUSTOM_MODELS`: NextChat's comma-separated model rules, parsed once into [`CustomModelRules`].
//!
//! The syntax is NextChat's so an existing deployment's value keeps working:
//!
//! - `+name` or `name` enables a model, `-name` disables it;
//! - `all` (`+all`, `-all`) applies to every model known when the entry is reached;
//! - `name=Display Name` also sets the name shown to users (the first `=` splits, so display
//!   names may contain `=`, `@` and spaces);
//! - `name@Provider` scopes the entry to one provider; the *last* `@` splits, so `a@b@c` is model
//!   `a@b` at provider `c`. A name without `@` matches the model under every provider.
//!
//! Where NextChat's parser was sloppy we are strict, and each difference has a named test:
//! entries are trimmed and empty entries skipped (NextChat created junk models from `" gpt-4"`),
//! provider names are case-insensitive, and a malformed entry (no model name, or nothing after
//! `@`) is a start-up error naming `CUSTOM_MODELS` instead of a silently invented model.
//!
//! One small extension: `all@Provider` applies to every known model of that provider (NextChat
//! would have created a model literally called `all`).
//!
//! What the rules *do* to the model table lives in [`super::table`]; this file only knows the
//! syntax, so that parsing and printing can round-trip.

use std::fmt;

use crate::provider::ProviderId;

/// Whether an entry turns models on or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Toggle {
    /// `+name` or a bare `name`.
    Enable,
    /// `-name`.
    Disable,
}

impl Toggle {
    /// `true` for [`Toggle::Enable`]: the `available` flag the entry sets.
    pub fn is_enable(self) -> bool {
        self == Toggle::Enable
    }

    fn sign(self) -> char {
        match self {
            Toggle::Enable => '+',
            Toggle::Disable => '-',
        }
    }
}

/// What one `CUSTOM_MODELS` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleTarget {
    /// `all` or `all@Provider`: every model known at that point (of that provider, if given).
    All { provider: Option<ProviderId> },
    /// One model id, under one provider or (with `provider: None`) under every provider.
    Model {
        /// Never empty; contains `@` only when `provider` is set (`a@b@c`).
        model: String,
        provider: Option<ProviderId>,
        /// Never empty when set.
        display_name: Option<String>,
    },
}

/// One parsed `CUSTOM_MODELS` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub toggle: Toggle,
    pub target: RuleTarget,
}

impl Rule {
    /// Whether this rule names `model` under `provider` (an `all` rule names every model).
    pub fn applies_to(&self, model: &str, provider: &ProviderId) -> bool {
        match &self.target {
            RuleTarget::All { provider: scope } => scope.as_ref().is_none_or(|p| p == provider),
            RuleTarget::Model {
                model: name,
                provider: scope,
                ..
            } => name == model && scope.as_ref().is_none_or(|p| p == provider),
        }
    }
}

/// The parsed value of `CUSTOM_MODELS`: rules applied left to right to the model table.
///
/// ```
/// use switchboard_core::catalog::CustomModelRules;
/// let rules = CustomModelRules::parse("-all, +qwen/qwen3-32b:free@openrouter=Qwen 3").unwrap();
/// assert_eq!(rules.to_string(), "-all,+qwen/qwen3-32b:free@OpenRouter=Qwen 3");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CustomModelRules {
    rules: Vec<Rule>,
}

/// A `CUSTOM_MODELS` entry that cannot mean anything. The message is one line naming the variable
/// and the entry, printed as is at start-up.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RulesError {
    #[error("CUSTOM_MODELS: entry {entry:?} has no model name")]
    NoModelName { entry: String },
    #[error("CUSTOM_MODELS: entry {entry:?} has no provider name after '@'")]
    NoProviderName { entry: String },
    #[error("CUSTOM_MODELS: entry {entry:?} gives `all` a display name")]
    DisplayNameOnAll { entry: String },
}

impl CustomModelRules {
    /// Parse a `CUSTOM_MODELS` value. Empty (or only commas and spaces) gives no rules.
    pub fn parse(raw: &str) -> Result<CustomModelRules, RulesError> {
        let rules = raw
            .split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(parse_entry)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CustomModelRules { rules })
    }

    /// The rules in the order they apply.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// No rules: every model keeps its default availability and nothing is ever refused.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The availability the rules leave a model with that starts out available: what NextChat's
    /// semantics say about a model not (yet) in the table, e.g. before the live catalog loaded.
    pub fn leaves_available(&self, model: &str, provider: &ProviderId) -> bool {
        self.rules
            .iter()
            .rfind(|rule| rule.applies_to(model, provider))
            .is_none_or(|rule| rule.toggle.is_enable())
    }
}

fn parse_entry(entry: &str) -> Result<Rule, RulesError> {
    let err_entry = || entry.to_string();
    let (toggle, rest) = if let Some(rest) = entry.strip_prefix('-') {
        (Toggle::Disable, rest)
    } else {
        (Toggle::Enable, entry.strip_prefix('+').unwrap_or(entry))
    };
    let (name, display_name) = match rest.split_once('=') {
        Some((name, display)) => (name.trim(), Some(display.trim())),
        None => (rest.trim(), None),
    };
    // `name=` with nothing after it sets no display name, as in NextChat.
    let display_name = display_name.filter(|d| !d.is_empty()).map(str::to_string);
    let (model, provider) = match name.rsplit_once('@') {
        Some((model, provider)) => (model.trim(), Some(provider.trim())),
        None => (name, None),
    };
    if model.is_empty() {
        return Err(RulesError::NoModelName { entry: err_entry() });
    }
    let provider = match provider {
        Some("") => return Err(RulesError::NoProviderName { entry: err_entry() }),
        Some(p) => Some(ProviderId::parse(p)),
        None => None,
    };
    let target = if model == "all" {
        if display_name.is_some() {
            return Err(RulesError::DisplayNameOnAll { entry: err_entry() });
        }
        RuleTarget::All { provider }
    } else {
        RuleTarget::Model {
            model: model.to_string(),
            provider,
            display_name,
        }
    };
    Ok(Rule { toggle, target })
}

impl fmt::Display for Rule {
    /// The canonical form: always a sign, provider by its display name (`@OpenRouter`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.toggle.sign())?;
        let (name, provider, display_name) = match &self.target {
            RuleTarget::All { provider } => ("all", provider, None),
            RuleTarget::Model {
                model,
                provider,
                display_name,
            } => (model.as_str(), provider, display_name.as_deref()),
        };
        f.write_str(name)?;
        if let Some(p) = provider {
            write!(f, "@{}", p.display_name())?;
        }
        if let Some(d) = display_name {
            write!(f, "={d}")?;
        }
        Ok(())
    }
}

impl fmt::Display for CustomModelRules {
    /// The canonical `CUSTOM_MODELS` value: entries joined by `,`, each in [`Rule`]'s form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, rule) in self.rules.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{rule}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(toggle: Toggle, model: &str, provider: Option<&str>, display: Option<&str>) -> Rule {
        Rule {
            toggle,
            target: RuleTarget::Model {
                model: model.to_string(),
                provider: provider.map(ProviderId::parse),
                display_name: display.map(str::to_string),
            },
        }
    }

    fn all(toggle: Toggle, provider: Option<&str>) -> Rule {
        Rule {
            toggle,
            target: RuleTarget::All {
                provider: provider.map(ProviderId::parse),
            },
        }
    }

    use Toggle::{Disable, Enable};

    #[test]
    fn parses_each_entry_form() {
        let cases: Vec<(&str, Vec<Rule>)> = vec![
            ("", vec![]),
            ("gpt-4", vec![model(Enable, "gpt-4", None, None)]),
            ("+gpt-4", vec![model(Enable, "gpt-4", None, None)]),
            ("-gpt-4", vec![model(Disable, "gpt-4", None, None)]),
            ("-all", vec![all(Disable, None)]),
            ("+all", vec![all(Enable, None)]),
            ("all", vec![all(Enable, None)]),
            ("-all@OpenAI", vec![all(Disable, Some("openai"))]),
            (
                "+gpt-4=GPT Four",
                vec![model(Enable, "gpt-4", None, Some("GPT Four"))],
            ),
            (
                "qwen/qwen3-32b:free@OpenRouter=Qwen 3 32B",
                vec![model(
                    Enable,
                    "qwen/qwen3-32b:free",
                    Some("openrouter"),
                    Some("Qwen 3 32B"),
                )],
            ),
            (
                "x=Name with @ and = signs",
                vec![model(Enable, "x", None, Some("Name with @ and = signs"))],
            ),
            ("x=", vec![model(Enable, "x", None, None)]),
            ("a@b@c", vec![model(Enable, "a@b", Some("c"), None)]),
            (
                "-all,+x@OpenRouter",
                vec![
                    all(Disable, None),
                    model(Enable, "x", Some("openrouter"), None),
                ],
            ),
        ];
        for (raw, expected) in cases {
            let rules = CustomModelRules::parse(raw).unwrap_or_else(|e| panic!("{raw:?}: {e}"));
            assert_eq!(rules.rules(), expected.as_slice(), "{raw:?}");
        }
    }

    /// Difference from NextChat: `" gpt-4"` was a model named `" gpt-4"`, `"a,,b"` a model named ``.
    #[test]
    fn entries_are_trimmed_and_empty_entries_skipped() {
        let rules = CustomModelRules::parse(" gpt-4 , ,, - o3 @ OpenAI = O three ,").unwrap();
        assert_eq!(
            rules.rules(),
            [
                model(Enable, "gpt-4", None, None),
                model(Disable, "o3", Some("openai"), Some("O three")),
            ]
        );
        assert!(CustomModelRules::parse(" , ").unwrap().is_empty());
    }

    /// Difference from NextChat: `@OpenRouter` and `@openrouter` were different providers.
    #[test]
    fn provider_names_are_case_insensitive() {
        for raw in ["x@OpenRouter", "x@openrouter", "x@OPENROUTER"] {
            let rules = CustomModelRules::parse(raw).unwrap();
            assert_eq!(
                rules.rules(),
                [model(Enable, "x", Some("openrouter"), None)],
                "{raw}"
            );
            assert_eq!(rules.to_string(), "+x@OpenRouter");
        }
    }

    /// Difference from NextChat: malformed entries are errors, not models with odd names.
    #[test]
    fn malformed_entries_are_errors_naming_the_variable_and_entry() {
        let cases = [
            ("=Foo", r#"CUSTOM_MODELS: entry "=Foo" has no model name"#),
            ("+", r#"CUSTOM_MODELS: entry "+" has no model name"#),
            ("-", r#"CUSTOM_MODELS: entry "-" has no model name"#),
            (
                "ok,@OpenRouter",
                r#"CUSTOM_MODELS: entry "@OpenRouter" has no model name"#,
            ),
            (
                "gpt-4@",
                r#"CUSTOM_MODELS: entry "gpt-4@" has no provider name after '@'"#,
            ),
            (
                "gpt-4@ =Four",
                r#"CUSTOM_MODELS: entry "gpt-4@ =Four" has no provider name after '@'"#,
            ),
            (
                "-all=Everything",
                r#"CUSTOM_MODELS: entry "-all=Everything" gives `all` a display name"#,
            ),
        ];
        for (raw, message) in cases {
            let err = CustomModelRules::parse(raw).expect_err(raw);
            assert_eq!(err.to_string(), message, "{raw:?}");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn prints_canonical_form() {
        let cases = [
            ("", ""),
            (" gpt-4 ", "+gpt-4"),
            ("-all , a@b@c", "-all,+a@b@c"),
            ("x@openai=X  Y", "+x@OpenAI=X  Y"),
            ("-y@DeepSeek", "-y@deepseek"),
            ("all@openrouter", "+all@OpenRouter"),
        ];
        for (raw, printed) in cases {
            let rules = CustomModelRules::parse(raw).unwrap();
            assert_eq!(rules.to_string(), printed, "{raw:?}");
            assert_eq!(CustomModelRules::parse(printed).unwrap(), rules, "{raw:?}");
        }
    }

    #[test]
    fn leaves_available_follows_the_last_applicable_rule() {
        let or = ProviderId::OpenRouter;
        let cases = [
            ("", "m", true),
            ("+x", "m", true),
            ("-m", "m", false),
            ("-m@OpenAI", "m", true),
            ("-all", "m", false),
            ("-all,+m", "m", true),
            ("+m,-all", "m", false),
            ("-all@OpenAI", "m", true),
            ("-all@OpenRouter", "m", false),
        ];
        for (raw, name, expected) in cases {
            let rules = CustomModelRules::parse(raw).unwrap();
            assert_eq!(rules.leaves_available(name, &or), expected, "{raw:?}");
        }
    }

    mod round_trip {
        use super::super::*;
        use proptest::prelude::*;

        /// Text that survives trimming and contains no separator of its own.
        fn word() -> impl Strategy<Value = String> {
            "[a-zA-Z0-9][a-zA-Z0-9._:/-]{0,12}".prop_filter("not `all`", |s| s != "all")
        }

        fn entry() -> impl Strategy<Value = String> {
            let sign = prop_oneof![Just(""), Just("+"), Just("-")];
            let model = prop_oneof![
                word(),
                (word(), word()).prop_map(|(a, b)| format!("{a}@{b}")),
            ];
            let target = prop_oneof![
                1 => Just("all".to_string()),
                1 => word().prop_map(|p| format!("all@{p}")),
                4 => model.clone(),
                4 => (model.clone(), word()).prop_map(|(m, p)| format!("{m}@{p}")),
            ];
            let display = prop_oneof![
                Just(String::new()),
                "[A-Za-z0-9][A-Za-z0-9 @=()._-]{0,15}[A-Za-z0-9)]".prop_map(|d| format!("={d}")),
            ];
            (sign, target, display).prop_map(|(s, t, d)| {
                // `all` takes no display name.
                if t == "all" || t.starts_with("all@") {
                    format!("{s}{t}")
                } else {
                    format!("{s}{t}{d}")
                }
            })
        }

        proptest! {
            #[test]
            fn parse_print_parse_is_identity(
                entries in proptest::collection::vec(entry(), 0..8),
                spaces in "[ ]{0,2}",
            ) {
                let raw = entries.join(&format!("{spaces},{spaces}"));
                let rules = CustomModelRules::parse(&raw).expect("generated entries are valid");
                prop_assert_eq!(rules.rules().len(), entries.len());
                let printed = rules.to_string();
                let again = CustomModelRules::parse(&printed).expect("printed rules parse");
                prop_assert_eq!(&again, &rules);
                prop_assert_eq!(again.to_string(), printed);
            }
        }
    }
}
