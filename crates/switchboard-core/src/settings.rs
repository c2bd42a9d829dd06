//! One typed `Settings`, parsed once at start-up.
//!
//! Sources, strongest first: the process environment, a `.env` file in the working directory, the
//! TOML file given with `--config`, then the defaults. Variable names are NextChat's where NextChat
//! has one (`OPENROUTER_API_KEY`, `CODE`, `CUSTOM_MODELS`, …) so an existing NextChat deployment's
//! environment works unchanged; Switchboard's own start with `SWITCHBOARD_`.
//!
//! Parsing is "parse, don't validate": every value that reaches the rest of the program is already
//! checked, and every failure names the variable it came from ([`SettingsError`]).

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::access::AccessCodes;
use crate::catalog::{CustomModelRules, ModelRef};
use crate::provider::{ProviderConfig, ProviderId};
use crate::secret::Secret;

/// Every variable Switchboard reads, with its default, in the order `.env.template` documents them.
/// The list is the single source for the TOML file's accepted keys and for the template test. Most
/// are parsed into [`Settings`] here; the server's own (bind address, database, cookie secret,
/// connection limits, catalog cache, outbound proxy and trust) are parsed from the same
/// [`Sources`] by the server crate.
pub const VARIABLES: &[(&str, &str)] = &[
    ("OPENROUTER_API_KEY", ""),
    ("OPENROUTER_URL", "https://openrouter.ai/api"),
    ("OPENROUTER_PROVIDER", ""),
    ("OPENAI_API_KEY", ""),
    ("BASE_URL", "https://api.openai.com"),
    ("CODE", ""),
    ("HIDE_USER_API_KEY", "false"),
    ("CUSTOM_MODELS", ""),
    ("DEFAULT_MODEL", ""),
    ("VISION_MODELS", ""),
    ("DISABLE_FAST_LINK", "false"),
    ("ENABLE_BALANCE_QUERY", "false"),
    ("SWITCHBOARD_ADDR", "127.0.0.1:3000"),
    ("PORT", ""),
    ("DATABASE_URL", "sqlite://switchboard.db"),
    ("SWITCHBOARD_SITE_URL", ""),
    ("SWITCHBOARD_APP_NAME", "Switchboard"),
    ("SWITCHBOARD_MAX_BODY_BYTES", "1048576"),
    ("SWITCHBOARD_MAX_UPLOAD_BYTES", "20971520"),
    ("SWITCHBOARD_CATALOG_REFRESH", "1h"),
    ("SWITCHBOARD_CATALOG_CACHE", ""),
    ("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "300s"),
    ("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", "300s"),
    ("SWITCHBOARD_CORS_ORIGINS", ""),
    ("SWITCHBOARD_ALLOWED_HOSTS", ""),
    ("SWITCHBOARD_TRUSTED_PROXIES", "127.0.0.0/8,::1/128"),
    ("SWITCHBOARD_METRICS", "code"),
    ("SWITCHBOARD_TITLE_MODEL", ""),
    ("SWITCHBOARD_COOKIE_SECRET", ""),
    ("SWITCHBOARD_MAX_REPLY_BYTES", "4194304"),
    ("SWITCHBOARD_SHUTDOWN_GRACE", "30s"),
    ("SWITCHBOARD_LEASE_TIMEOUT", "30s"),
    ("SWITCHBOARD_SHARING", "on"),
    ("SWITCHBOARD_BUDGET", ""),
    ("SWITCHBOARD_RATE_LIMIT", ""),
    ("SWITCHBOARD_BUDGETS", ""),
    ("SWITCHBOARD_ADMIN_CODE", ""),
    ("SWITCHBOARD_SESSION_TTL", "30d"),
    ("SWITCHBOARD_WORKSPACE_QUOTA_BYTES", "1073741824"),
    ("SWITCHBOARD_UNVERIFIED_QUOTA_BYTES", "10485760"),
    ("SWITCHBOARD_WORKSPACE_MAX_CHATS", "10000"),
    ("SWITCHBOARD_IMPORT_MAX_BYTES", "67108864"),
    ("SWITCHBOARD_MCP_CONFIG", ""),
    ("SWITCHBOARD_TOOL_TIMEOUT", "60s"),
    ("SWITCHBOARD_MAX_TOOL_STEPS", "8"),
    ("PROXY_URL", ""),
    ("HTTPS_PROXY", ""),
    ("HTTP_PROXY", ""),
    ("ALL_PROXY", ""),
    ("NO_PROXY", ""),
    ("SSL_CERT_FILE", ""),
    ("SSL_CERT_DIR", ""),
    ("SWITCHBOARD_EXTRA_CA", ""),
    ("SWITCHBOARD_BODY_TIMEOUT", "60s"),
    ("SWITCHBOARD_MAX_CONNECTIONS", ""),
];

/// The outbound proxy variables, which tools also read in lower case (curl prefers it).
const LOWER_CASE_TOO: &[&str] = &["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"];

/// A setting that could not be used. The message always starts with the variable's name, so the one
/// line printed at start-up tells the operator what to fix.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{var}: {problem}")]
    Invalid { var: &'static str, problem: String },
    #[error("--config {path}: {problem}")]
    ConfigFile { path: PathBuf, problem: String },
}

impl SettingsError {
    pub fn invalid(var: &'static str, problem: impl Into<String>) -> Self {
        SettingsError::Invalid {
            var,
            problem: problem.into(),
        }
    }
}

/// Who may read `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsAccess {
    Off,
    Open,
    /// Needs an access code when `CODE` is set; open otherwise.
    Code,
}

/// Which cross-origin callers the API answers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CorsOrigins {
    /// Same-origin only: no CORS headers at all.
    #[default]
    SameOrigin,
    Any,
    List(Vec<String>),
}

/// Which `Host` names the server answers (the DNS-rebinding defence).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum AllowedHosts {
    /// Loopback names and the bind address when bound to loopback, any host otherwise; plus the
    /// host of `SWITCHBOARD_SITE_URL`.
    #[default]
    Default,
    Any,
    /// These host names (lower case, no port), plus the host of `SWITCHBOARD_SITE_URL`.
    List(Vec<String>),
}

/// What the application is configured with: providers, access, models, limits, chats. How the process
/// serves it (address, database, cookie key, connections) is the server crate's `ServerSettings`.
#[derive(Clone)]
pub struct Settings {
    pub openrouter: ProviderConfig,
    pub openai: ProviderConfig,
    pub access_codes: AccessCodes,
    pub hide_user_api_key: bool,
    /// `CUSTOM_MODELS` as written (echoed by `/api/config`) and parsed.
    pub custom_models: String,
    pub custom_model_rules: CustomModelRules,
    /// `DEFAULT_MODEL` as written, and parsed when set.
    pub default_model: String,
    pub default_model_ref: Option<ModelRef>,
    pub vision_models: String,
    pub disable_fast_link: bool,
    pub enable_balance_query: bool,
    pub site_url: Option<String>,
    pub app_name: String,
    pub max_body_bytes: usize,
    /// The largest body the chat API takes (`SWITCHBOARD_MAX_UPLOAD_BYTES`): a message carries its
    /// images. The proxy and the gateway keep `max_body_bytes`.
    pub max_upload_bytes: usize,
    pub catalog_refresh: Duration,
    pub upstream_first_byte_timeout: Duration,
    pub upstream_idle_timeout: Duration,
    pub cors_origins: CorsOrigins,
    pub allowed_hosts: AllowedHosts,
    /// Peers whose `Forwarded`/`X-Forwarded-*` headers are believed (the reverse proxy).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub metrics: MetricsAccess,
    pub title_model: Option<String>,
    /// Provider preferences every chat request starts from (`OPENROUTER_PROVIDER`, JSON); a chat's
    /// own `provider` setting is laid over them.
    pub openrouter_provider: Option<crate::routing::ProviderPreferences>,
    /// What each workspace that spends the server's key may spend per period (`SWITCHBOARD_BUDGET`).
    pub budget: Option<crate::budget::Budget>,
    /// Budgets for the users of particular access codes (`SWITCHBOARD_BUDGETS`, or the config
    /// file's `[budgets]` table), by workspace: the codes themselves are not kept.
    pub code_budgets: Vec<(String, crate::budget::Budget)>,
    /// The workspace of `SWITCHBOARD_ADMIN_CODE`: its users may read every workspace's usage.
    pub admin_workspace: Option<String>,
    /// Requests per workspace on the routes that spend the server's key (`SWITCHBOARD_RATE_LIMIT`).
    pub rate_limit: Option<crate::budget::RateLimit>,
    /// Whether chats may be shared by link (`SWITCHBOARD_SHARING`, on by default).
    pub sharing: bool,
    /// A reply longer than this (text and reasoning) is ended as `error`, keeping its text.
    pub max_reply_bytes: usize,
    /// How long running replies may take to finish after SIGTERM before they are interrupted.
    pub shutdown_grace: Duration,
    /// An instance that has not renewed its lease for this long is presumed dead, and its
    /// streaming replies are finished as `interrupted` by the others.
    pub lease_timeout: Duration,
    /// How long a login lasts without use (`SWITCHBOARD_SESSION_TTL`); each use within it renews
    /// it (the cookie is re-issued once a tenth of it has passed).
    pub session_ttl: Duration,
    /// The most a workspace may store: its chats' messages and events, in bytes.
    pub workspace_quota_bytes: u64,
    /// The quota of a workspace known only by an own key that has not yet paid for a reply.
    pub unverified_quota_bytes: u64,
    /// The most chats a workspace may hold.
    pub workspace_max_chats: u64,
    /// The largest NextChat backup an import takes.
    pub import_max_bytes: usize,
    /// The JSON file listing the MCP servers whose tools chats may use (`SWITCHBOARD_MCP_CONFIG`).
    pub mcp_config: Option<PathBuf>,
    /// How long one tool call may run (`SWITCHBOARD_TOOL_TIMEOUT`).
    pub tool_timeout: Duration,
    /// Rounds of tool calls one reply may make (`SWITCHBOARD_MAX_TOOL_STEPS`).
    pub max_tool_steps: u32,
}

impl fmt::Debug for Settings {
    // Written by hand so that no field that could hold a secret is ever formatted by accident.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Settings")
            .field("openrouter", &self.openrouter)
            .field("openai", &self.openai)
            .field("access_codes", &self.access_codes)
            .field("hide_user_api_key", &self.hide_user_api_key)
            .field("custom_models", &self.custom_models)
            .field("default_model", &self.default_model)
            .finish_non_exhaustive()
    }
}

/// Where settings come from. Tests build one from a map; the binary uses [`Sources::from_process`].
#[derive(Debug, Default, Clone)]
pub struct Sources {
    values: HashMap<String, String>,
}

impl Sources {
    /// Sources from plain `NAME=value` pairs (strongest source only; for tests and embedding).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        Sources {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
        }
    }

    /// The process environment over `.env` in `dir` over the TOML `config` file.
    pub fn from_process(dir: &Path, config: Option<&Path>) -> Result<Self, SettingsError> {
        let mut values = match config {
            Some(path) => read_toml(path)?,
            None => HashMap::new(),
        };
        let dotenv = dir.join(".env");
        if dotenv.is_file() {
            let iter = dotenvy::from_path_iter(&dotenv).map_err(|e| SettingsError::ConfigFile {
                path: dotenv.clone(),
                problem: e.to_string(),
            })?;
            let mut lower_case = Vec::new();
            for item in iter {
                let (k, v) = item.map_err(|e| SettingsError::ConfigFile {
                    path: dotenv.clone(),
                    problem: e.to_string(),
                })?;
                match lower_case_proxy_var(&k) {
                    Some(name) => lower_case.push((name, v)),
                    None => {
                        values.insert(k, v);
                    }
                }
            }
            // The lower-case form wins, as in curl and as in the environment below.
            for (name, v) in lower_case {
                values.insert(name.to_string(), v);
            }
        }
        for (name, _) in VARIABLES {
            if let Ok(v) = std::env::var(name) {
                values.insert((*name).to_string(), v);
            }
        }
        for name in LOWER_CASE_TOO {
            // The lower-case form wins, as in curl.
            if let Ok(v) = std::env::var(name.to_ascii_lowercase()) {
                values.insert((*name).to_string(), v);
            }
        }
        // RUST_LOG and the like are read by their own crates; only our names are kept here.
        Ok(Sources { values })
    }

    fn get(&self, var: &str) -> Option<&str> {
        self.values.get(var).map(String::as_str)
    }

    /// The value, trimmed, or `None` when unset or blank.
    pub fn non_empty(&self, var: &str) -> Option<&str> {
        self.get(var).map(str::trim).filter(|v| !v.is_empty())
    }
}

/// `https_proxy` and the like: the upper-case name of a proxy variable written in lower case.
fn lower_case_proxy_var(name: &str) -> Option<&'static str> {
    LOWER_CASE_TOO
        .iter()
        .copied()
        .find(|upper| name != *upper && name.eq_ignore_ascii_case(upper))
}

fn read_toml(path: &Path) -> Result<HashMap<String, String>, SettingsError> {
    let err = |problem: String| SettingsError::ConfigFile {
        path: path.to_path_buf(),
        problem,
    };
    let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| err(e.to_string()))?;
    let mut out = HashMap::new();
    for (key, value) in table {
        if key == "budgets"
            && let toml::Value::Table(budgets) = &value
        {
            let entries = budgets
                .iter()
                .map(|(code, budget)| match budget {
                    toml::Value::String(b) => Ok(format!("{code}={b}")),
                    _ => Err(err(
                        "`budgets`: each budget is a string like \"5/day\"".into()
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.insert("SWITCHBOARD_BUDGETS".to_string(), entries.join(","));
            continue;
        }
        let name = key.to_ascii_uppercase();
        if !VARIABLES.iter().any(|(v, _)| *v == name) {
            return Err(err(format!("unknown key `{key}`")));
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Float(f) => f.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Array(items) => items
                .iter()
                .map(|i| match i {
                    toml::Value::String(s) => Ok(s.clone()),
                    other => Err(err(format!(
                        "`{key}`: list items must be strings, got {other}"
                    ))),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join(","),
            other => return Err(err(format!("`{key}`: unsupported value {other}"))),
        };
        out.insert(name, text);
    }
    Ok(out)
}

impl Settings {
    /// The budget of `workspace`: its code's own (`SWITCHBOARD_BUDGETS`), else the default one.
    pub fn budget_for(&self, workspace: &str) -> Option<crate::budget::Budget> {
        self.code_budgets
            .iter()
            .find(|(w, _)| w == workspace)
            .map(|(_, b)| *b)
            .or(self.budget)
    }

    /// Parse every variable; the first invalid one stops with an error naming it.
    pub fn load(src: &Sources) -> Result<Settings, SettingsError> {
        let openrouter = ProviderConfig {
            id: ProviderId::OpenRouter,
            base_url: base_url(src, "OPENROUTER_URL", "https://openrouter.ai/api")?,
            api_keys: key_list(src, "OPENROUTER_API_KEY"),
            key_var: "OPENROUTER_API_KEY",
        };
        let openai = ProviderConfig {
            id: ProviderId::OpenAi,
            base_url: base_url(src, "BASE_URL", "https://api.openai.com")?,
            api_keys: key_list(src, "OPENAI_API_KEY"),
            key_var: "OPENAI_API_KEY",
        };
        let codes: Vec<String> = comma_list(src.get("CODE").unwrap_or(""));
        let site_url = match src.non_empty("SWITCHBOARD_SITE_URL") {
            Some(u) => Some(
                url::Url::parse(u)
                    .map_err(|e| {
                        SettingsError::invalid("SWITCHBOARD_SITE_URL", format!("`{u}`: {e}"))
                    })?
                    .as_str()
                    .trim_end_matches('/')
                    .to_string(),
            ),
            None => None,
        };
        let cors_origins = match src.non_empty("SWITCHBOARD_CORS_ORIGINS") {
            None => CorsOrigins::SameOrigin,
            Some("*") => CorsOrigins::Any,
            Some(list) => {
                let origins = comma_list(list);
                for o in &origins {
                    let ok = url::Url::parse(o)
                        .map(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .unwrap_or(false);
                    if !ok {
                        return Err(SettingsError::invalid(
                            "SWITCHBOARD_CORS_ORIGINS",
                            format!("`{o}` is not an origin like https://chat.example.com, or *"),
                        ));
                    }
                }
                CorsOrigins::List(
                    origins
                        .into_iter()
                        .map(|o| o.trim_end_matches('/').to_string())
                        .collect(),
                )
            }
        };
        let allowed_hosts = match src.non_empty("SWITCHBOARD_ALLOWED_HOSTS") {
            None => AllowedHosts::Default,
            Some("*") => AllowedHosts::Any,
            Some(list) => {
                let hosts = comma_list(list);
                for h in &hosts {
                    if url::Host::parse(h.trim_start_matches('[').trim_end_matches(']')).is_err()
                        || h.contains(':') && !h.starts_with('[')
                    {
                        return Err(SettingsError::invalid(
                            "SWITCHBOARD_ALLOWED_HOSTS",
                            format!(
                                "`{h}` is not a host name like chat.example.com (no port), or *"
                            ),
                        ));
                    }
                }
                AllowedHosts::List(hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect())
            }
        };
        let trusted_proxies = comma_list(
            src.get("SWITCHBOARD_TRUSTED_PROXIES")
                .unwrap_or("127.0.0.0/8,::1/128"),
        )
        .into_iter()
        .map(|c| {
            c.parse::<ipnet::IpNet>()
                .or_else(|_| c.parse::<IpAddr>().map(ipnet::IpNet::from))
                .map_err(|_| {
                    SettingsError::invalid(
                        "SWITCHBOARD_TRUSTED_PROXIES",
                        format!("`{c}` is not an address or CIDR like 10.0.0.0/8"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
        let metrics = match src
            .non_empty("SWITCHBOARD_METRICS")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("code") => MetricsAccess::Code,
            Some("open") => MetricsAccess::Open,
            Some("off") => MetricsAccess::Off,
            Some(other) => {
                return Err(SettingsError::invalid(
                    "SWITCHBOARD_METRICS",
                    format!("`{other}` is not one of off, open, code"),
                ));
            }
        };
        let max_body_bytes = match src.non_empty("SWITCHBOARD_MAX_BODY_BYTES") {
            None => 1024 * 1024,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1024 => n,
                _ => {
                    return Err(SettingsError::invalid(
                        "SWITCHBOARD_MAX_BODY_BYTES",
                        format!("`{v}` is not a byte count of at least 1024"),
                    ));
                }
            },
        };
        let max_reply_bytes = match src.non_empty("SWITCHBOARD_MAX_REPLY_BYTES") {
            None => 4 * 1024 * 1024,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n >= 1024 => n,
                _ => {
                    return Err(SettingsError::invalid(
                        "SWITCHBOARD_MAX_REPLY_BYTES",
                        format!("`{v}` is not a byte count of at least 1024"),
                    ));
                }
            },
        };
        let openrouter_provider = match src.non_empty("OPENROUTER_PROVIDER") {
            None => None,
            Some(raw) => {
                let value: serde_json::Value = serde_json::from_str(raw).map_err(|e| {
                    SettingsError::invalid("OPENROUTER_PROVIDER", format!("not JSON: {e}"))
                })?;
                Some(
                    crate::routing::ProviderPreferences::parse(&value)
                        .map_err(|e| SettingsError::invalid("OPENROUTER_PROVIDER", e))?,
                )
            }
        };
        let lease_timeout = duration(src, "SWITCHBOARD_LEASE_TIMEOUT", 30)?;
        if lease_timeout < Duration::from_secs(1) {
            return Err(SettingsError::invalid(
                "SWITCHBOARD_LEASE_TIMEOUT",
                "must be at least 1s".to_string(),
            ));
        }
        let custom_models = src.get("CUSTOM_MODELS").unwrap_or("").trim().to_string();
        let custom_model_rules = CustomModelRules::parse(&custom_models).map_err(|e| {
            let msg = e.to_string();
            let problem = msg
                .strip_prefix("CUSTOM_MODELS: ")
                .unwrap_or(&msg)
                .to_string();
            SettingsError::invalid("CUSTOM_MODELS", problem)
        })?;
        let default_model = src.get("DEFAULT_MODEL").unwrap_or("").trim().to_string();
        let default_model_ref = match default_model.as_str() {
            "" => None,
            raw => Some(
                ModelRef::parse(raw)
                    .map_err(|e| SettingsError::invalid("DEFAULT_MODEL", e.to_string()))?,
            ),
        };
        Ok(Settings {
            openrouter,
            openai,
            access_codes: AccessCodes::new(&codes),
            hide_user_api_key: flag(src, "HIDE_USER_API_KEY")?,
            custom_models,
            custom_model_rules,
            default_model,
            default_model_ref,
            vision_models: src.get("VISION_MODELS").unwrap_or("").trim().to_string(),
            disable_fast_link: flag(src, "DISABLE_FAST_LINK")?,
            enable_balance_query: flag(src, "ENABLE_BALANCE_QUERY")?,
            site_url,
            app_name: src
                .non_empty("SWITCHBOARD_APP_NAME")
                .unwrap_or("Switchboard")
                .to_string(),
            max_body_bytes,
            max_upload_bytes: count(src, "SWITCHBOARD_MAX_UPLOAD_BYTES", 20 << 20, 1024)? as usize,
            catalog_refresh: duration(src, "SWITCHBOARD_CATALOG_REFRESH", 3600)?,
            upstream_first_byte_timeout: duration(
                src,
                "SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT",
                300,
            )?,
            upstream_idle_timeout: duration(src, "SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", 300)?,
            cors_origins,
            allowed_hosts,
            trusted_proxies,
            metrics,
            title_model: src.non_empty("SWITCHBOARD_TITLE_MODEL").map(str::to_string),
            openrouter_provider,
            sharing: flag_or(src, "SWITCHBOARD_SHARING", true)?,
            budget: src
                .non_empty("SWITCHBOARD_BUDGET")
                .map(crate::budget::Budget::parse)
                .transpose()
                .map_err(|e| SettingsError::invalid("SWITCHBOARD_BUDGET", e))?,
            code_budgets: code_budgets(src)?,
            admin_workspace: match src.non_empty("SWITCHBOARD_ADMIN_CODE") {
                None => None,
                Some(code) if codes.iter().any(|c| c == code.trim()) => {
                    Some(crate::access::workspace_of_code(code.trim()))
                }
                Some(_) => {
                    return Err(SettingsError::invalid(
                        "SWITCHBOARD_ADMIN_CODE",
                        "must be one of the codes in CODE".to_string(),
                    ));
                }
            },
            rate_limit: src
                .non_empty("SWITCHBOARD_RATE_LIMIT")
                .map(crate::budget::RateLimit::parse)
                .transpose()
                .map_err(|e| SettingsError::invalid("SWITCHBOARD_RATE_LIMIT", e))?,
            max_reply_bytes,
            shutdown_grace: duration(src, "SWITCHBOARD_SHUTDOWN_GRACE", 30)?,
            lease_timeout,
            session_ttl: session_ttl(src)?,
            workspace_quota_bytes: count(src, "SWITCHBOARD_WORKSPACE_QUOTA_BYTES", 1 << 30, 1024)?,
            unverified_quota_bytes: count(
                src,
                "SWITCHBOARD_UNVERIFIED_QUOTA_BYTES",
                10 << 20,
                1024,
            )?,
            workspace_max_chats: count(src, "SWITCHBOARD_WORKSPACE_MAX_CHATS", 10_000, 1)?,
            import_max_bytes: count(src, "SWITCHBOARD_IMPORT_MAX_BYTES", 64 << 20, 1024)?
                .try_into()
                .unwrap_or(usize::MAX),
            mcp_config: src.non_empty("SWITCHBOARD_MCP_CONFIG").map(PathBuf::from),
            tool_timeout: match duration(src, "SWITCHBOARD_TOOL_TIMEOUT", 60)? {
                d if d.is_zero() => {
                    return Err(SettingsError::invalid(
                        "SWITCHBOARD_TOOL_TIMEOUT",
                        "must be more than 0s".to_string(),
                    ));
                }
                d => d,
            },
            max_tool_steps: match src.non_empty("SWITCHBOARD_MAX_TOOL_STEPS") {
                None => 8,
                Some(v) => v
                    .trim()
                    .parse::<u32>()
                    .ok()
                    .filter(|n| *n <= 100)
                    .ok_or_else(|| {
                        SettingsError::invalid(
                            "SWITCHBOARD_MAX_TOOL_STEPS",
                            format!("`{v}` is not a number from 0 to 100"),
                        )
                    })?,
            },
        })
    }
}

/// Split a comma list, trimming entries and dropping empty ones.
pub fn comma_list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn key_list(src: &Sources, var: &'static str) -> Vec<Secret> {
    comma_list(src.get(var).unwrap_or(""))
        .into_iter()
        .map(Secret::new)
        .collect()
}

/// NextChat's URL normalisation: `https://` added when no scheme, trailing `/` removed.
fn base_url(src: &Sources, var: &'static str, default: &str) -> Result<String, SettingsError> {
    let raw = src.non_empty(var).unwrap_or(default);
    let with_scheme = if raw.contains("://") {
        raw.to_string()
    } else {
        format!("https://{raw}")
    };
    let parsed = url::Url::parse(&with_scheme)
        .map_err(|e| SettingsError::invalid(var, format!("`{raw}` is not a URL: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(SettingsError::invalid(
            var,
            format!("`{raw}`: only http and https URLs are supported"),
        ));
    }
    if parsed.host().is_none() {
        return Err(SettingsError::invalid(var, format!("`{raw}` has no host")));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(SettingsError::invalid(
            var,
            format!("`{raw}` must not have a query or fragment"),
        ));
    }
    Ok(with_scheme.trim_end_matches('/').to_string())
}

/// `SWITCHBOARD_BUDGETS`: `code=5/day,other=100/month` (the config file's `[budgets]` table becomes
/// this). Errors name the variable, never the code.
fn code_budgets(src: &Sources) -> Result<Vec<(String, crate::budget::Budget)>, SettingsError> {
    let Some(raw) = src.non_empty("SWITCHBOARD_BUDGETS") else {
        return Ok(Vec::new());
    };
    raw.split(',')
        .filter(|e| !e.trim().is_empty())
        .enumerate()
        .map(|(i, entry)| {
            let (code, budget) = entry.rsplit_once('=').ok_or_else(|| {
                SettingsError::invalid(
                    "SWITCHBOARD_BUDGETS",
                    format!("entry {} is not CODE=AMOUNT/PERIOD", i + 1),
                )
            })?;
            let budget = crate::budget::Budget::parse(budget).map_err(|e| {
                SettingsError::invalid("SWITCHBOARD_BUDGETS", format!("entry {}: {e}", i + 1))
            })?;
            Ok((crate::access::workspace_of_code(code.trim()), budget))
        })
        .collect()
}

/// A boolean that defaults to `default` when unset.
fn flag_or(src: &Sources, var: &'static str, default: bool) -> Result<bool, SettingsError> {
    match src.non_empty(var) {
        None => Ok(default),
        Some(_) => flag(src, var),
    }
}

fn flag(src: &Sources, var: &'static str) -> Result<bool, SettingsError> {
    match src.non_empty(var).map(str::to_ascii_lowercase).as_deref() {
        None | Some("0" | "false" | "no" | "off") => Ok(false),
        Some("1" | "true" | "yes" | "on") => Ok(true),
        Some(other) => Err(SettingsError::invalid(
            var,
            format!("`{other}` is not a boolean (use 1/0, true/false, yes/no, on/off)"),
        )),
    }
}

/// A whole number of at least `min` (bytes or items), `default` when unset.
fn count(src: &Sources, var: &'static str, default: u64, min: u64) -> Result<u64, SettingsError> {
    let Some(v) = src.non_empty(var) else {
        return Ok(default);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if n >= min => Ok(n),
        _ => Err(SettingsError::invalid(
            var,
            format!("`{v}` is not a whole number of at least {min}"),
        )),
    }
}

/// `SWITCHBOARD_SESSION_TTL`: a duration (`30d`, `12h`, …) of at least a minute and at most a
/// year.
fn session_ttl(src: &Sources) -> Result<Duration, SettingsError> {
    const VAR: &str = "SWITCHBOARD_SESSION_TTL";
    let Some(v) = src.non_empty(VAR) else {
        return Ok(Duration::from_secs(30 * 24 * 3600));
    };
    let parsed = match v.trim().strip_suffix('d') {
        Some(days) => days
            .trim()
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(24 * 3600))
            .map(Duration::from_secs),
        None => parse_duration(v),
    };
    match parsed {
        Some(d) if d >= Duration::from_secs(60) && d <= Duration::from_secs(366 * 24 * 3600) => {
            Ok(d)
        }
        _ => Err(SettingsError::invalid(
            VAR,
            format!("`{v}` is not a duration between 1m and 366d (e.g. 30d, 12h)"),
        )),
    }
}

/// A duration variable (see [`parse_duration`]), at most 30 days; `default_secs` when unset.
pub fn duration(
    src: &Sources,
    var: &'static str,
    default_secs: u64,
) -> Result<Duration, SettingsError> {
    let Some(v) = src.non_empty(var) else {
        return Ok(Duration::from_secs(default_secs));
    };
    let d = parse_duration(v).ok_or_else(|| {
        SettingsError::invalid(
            var,
            format!("`{v}` is not a duration (e.g. 90, 90s, 500ms, 5m, 1h)"),
        )
    })?;
    if d > MAX_DURATION {
        return Err(SettingsError::invalid(
            var,
            format!("`{v}` is longer than the longest allowed, 30 days (720h)"),
        ));
    }
    Ok(d)
}

/// Every duration here is a timeout or an interval that gets added to a clock reading; a huge one
/// would overflow the clock (a panic mid-request), and none needs more than a month.
const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 3600);

/// `90` (seconds), `90s`, `500ms`, `5m`, `1h`. Zero is refused: every duration here is a timeout or
/// an interval, where zero would mean "never wait" or "spin".
pub fn parse_duration(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    let (num, unit) = v.split_at(split);
    let n: u64 = num.parse().ok()?;
    let d = match unit.trim() {
        "" | "s" => Duration::from_secs(n),
        "ms" => Duration::from_millis(n),
        "m" => Duration::from_secs(n.checked_mul(60)?),
        "h" => Duration::from_secs(n.checked_mul(3600)?),
        _ => return None,
    };
    (!d.is_zero()).then_some(d)
}
