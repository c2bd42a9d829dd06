//! `AppState`: what the router is built with. Built once by [`AppState::new`] from the domain's
//! `Settings` and the server's own [`ServerSettings`].
//!
//! Handlers take only the parts they use, through axum's [`FromRef`]: `State<Store>`,
//! `State<ChatEngine>`, `State<Arc<Settings>>`, `State<Gate>` (admission, which a [`Caller`]
//! extractor also uses), `State<Arc<ModelCatalog>>`, `State<Shutdown>`. Each part is a handle (an
//! `Arc` or a pool), so taking one costs a reference count. The key-spending entry points (proxy,
//! gateway, chat replies), usage and `/metrics` read many parts at once and take the whole
//! `AppState`.
//!
//! [`Caller`]: crate::auth::Caller

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use switchboard_core::Settings;
use switchboard_core::access::{AccessError, AccessPolicy, FailureThrottle};
use switchboard_core::provider::{KeyRotation, ProviderConfig, ProviderId};

use crate::auth::Gate;
use crate::catalog::ModelCatalog;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::outbound::Outbound;
use crate::serving::ServerSettings;
use switchboard_chat::{ChatEngine, EngineConfig};
use switchboard_store::Store;

/// Wrong access codes allowed per client address and window before 429.
const WRONG_CODE_LIMIT: u32 = 10;
const WRONG_CODE_WINDOW: Duration = Duration::from_secs(60);

/// An upstream provider with its key rotation.
pub struct Upstream {
    pub config: ProviderConfig,
    pub rotation: KeyRotation,
    /// `Bearer <key>` for each server key, built once and marked sensitive, so the hot path
    /// formats nothing and no header dump ever shows the key.
    server_auth: Vec<axum::http::HeaderValue>,
    /// The full URL of each of `config.allowed_paths()`, built once: a request clones one
    /// instead of parsing its path onto the base URL again.
    urls: Vec<(&'static str, reqwest::Url)>,
    /// OpenRouter's generation records (`None` for providers without them).
    generation_url: Option<String>,
}

/// Where OpenRouter keeps what a generation cost, below its API's base URL.
const GENERATION_PATH: &str = "v1/generation";

impl Upstream {
    fn new(config: ProviderConfig) -> anyhow::Result<Upstream> {
        let server_auth = config
            .api_keys
            .iter()
            .filter_map(|k| bearer(k.expose()))
            .collect();
        let base = reqwest::Url::parse(&config.base_url).map_err(|e| {
            anyhow::anyhow!(
                "the upstream base URL {} is not usable: {e}",
                config.base_url
            )
        })?;
        let urls: Vec<(&'static str, reqwest::Url)> = config
            .allowed_paths()
            .iter()
            .map(|&path| (path, crate::relay::upstream_url(&base, path, None)))
            .collect();
        // Only OpenRouter has generation records, and so the path among its allowed ones.
        let generation_url = urls
            .iter()
            .find(|(path, _)| *path == GENERATION_PATH)
            .map(|(_, url)| url.to_string());
        Ok(Upstream {
            config,
            rotation: KeyRotation::default(),
            server_auth,
            urls,
            generation_url,
        })
    }

    /// The upstream URL of `path` (below `/api/<provider>/`) with `query`; `None` unless `path`
    /// is one of the provider's allowed paths, exactly.
    pub fn url_of(&self, path: &str, query: Option<&str>) -> Option<reqwest::Url> {
        let (_, url) = self.urls.iter().find(|(p, _)| *p == path)?;
        let mut url = url.clone();
        if query.is_some() {
            url.set_query(query);
        }
        Some(url)
    }

    /// Where to look up what a call paid with `authorization` cost: OpenRouter's generation
    /// record; `None` for other providers, which have none.
    pub fn generation_lookup(
        &self,
        http: &reqwest::Client,
        authorization: &axum::http::HeaderValue,
    ) -> Option<switchboard_chat::GenerationLookup> {
        Some(switchboard_chat::GenerationLookup {
            http: http.clone(),
            url: self.generation_url.clone()?,
            authorization: switchboard_core::secret::Secret::new(
                authorization.to_str().ok()?.to_owned(),
            ),
        })
    }

    /// The `Authorization` value to send upstream for `principal`: their own key, or the next
    /// of the server's keys.
    pub fn authorization(
        &self,
        principal: &switchboard_core::access::Principal,
    ) -> Result<axum::http::HeaderValue, ApiError> {
        if principal.has_own_key() {
            let key = principal.upstream_key(&self.config, &self.rotation)?;
            return bearer(key.expose()).ok_or_else(|| {
                ApiError::bad_request("the API key contains characters that cannot be sent")
            });
        }
        self.rotation
            .pick(&self.server_auth)
            .cloned()
            .ok_or_else(|| {
                AccessError::NoServerKey {
                    var: self.config.key_var,
                }
                .into()
            })
    }
}

/// `Bearer <key>`, marked sensitive. Built by concatenation, without `format!`'s machinery: a
/// user's own key takes this path on every request.
fn bearer(key: &str) -> Option<axum::http::HeaderValue> {
    let mut value = Vec::with_capacity(7 + key.len());
    value.extend_from_slice(b"Bearer ");
    value.extend_from_slice(key.as_bytes());
    let mut v = axum::http::HeaderValue::from_maybe_shared(bytes::Bytes::from(value)).ok()?;
    v.set_sensitive(true);
    Some(v)
}

struct Inner {
    settings: Arc<Settings>,
    /// The address the server was told to bind; the host check answers to it when it is loopback.
    bind_addr: SocketAddr,
    gate: Gate,
    outbound: Outbound,
    site_url_header: Option<axum::http::HeaderValue>,
    app_name_header: axum::http::HeaderValue,
    upstreams: Vec<Upstream>,
    metrics: Arc<Metrics>,
    catalog: Arc<ModelCatalog>,
    store: Store,
    chats: ChatEngine,
    rate_limiter: Option<crate::spend_limits::RateLimiter>,
    budget_clock: crate::spend_limits::BudgetClock,
    imports: crate::quota::Imports,
    quotas: crate::quota::Quotas,
    shutdown: Shutdown,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// Flipped once when the server starts shutting down; what responses that would otherwise never
/// end (the chat event streams) wait on.
#[derive(Clone)]
pub struct Shutdown(Arc<tokio::sync::watch::Sender<bool>>);

impl Shutdown {
    fn new() -> Shutdown {
        Shutdown(Arc::new(tokio::sync::watch::Sender::new(false)))
    }

    fn begin(&self) {
        self.0.send_replace(true);
    }

    /// Resolves once the server has begun shutting down.
    pub async fn wait(&self) {
        let mut down = self.0.subscribe();
        let _ = down.wait_for(|&down| down).await;
    }
}

/// The parts a handler may take on their own (see the module's docs).
macro_rules! parts {
    ($($ty:ty => $field:ident),* $(,)?) => {$(
        impl FromRef<AppState> for $ty {
            fn from_ref(state: &AppState) -> $ty {
                state.0.$field.clone()
            }
        }
    )*};
}

parts! {
    Store => store,
    ChatEngine => chats,
    Arc<Settings> => settings,
    Gate => gate,
    Arc<ModelCatalog> => catalog,
    Shutdown => shutdown,
    crate::quota::Quotas => quotas,
}

impl AppState {
    /// Connect the database `server` names (creating and migrating it if needed), start the chat
    /// engine (which recovers replies a stopped instance left `streaming`), and build the shared
    /// state.
    pub async fn new(settings: Settings, server: &ServerSettings) -> anyhow::Result<AppState> {
        let store = Store::connect(&server.database_url).await?;
        // Takes this instance's lease and closes the replies no live instance owns.
        let mut config = EngineConfig::from_settings(&settings);
        if let Some(path) = &settings.mcp_config {
            let mcp = switchboard_chat::mcp::McpConfig::load(path)
                .map_err(|e| anyhow::anyhow!("SWITCHBOARD_MCP_CONFIG: {e}"))?;
            config.mcp = Some(switchboard_chat::mcp::Mcp::start(mcp));
        }
        let chats = ChatEngine::start(store.clone(), config).await?;
        let outbound = Outbound::new(&server.outbound)?;
        let upstreams = [settings.openrouter.clone(), settings.openai.clone()]
            .into_iter()
            .map(Upstream::new)
            .collect::<anyhow::Result<_>>()?;
        let metrics = Arc::new(Metrics::default());
        let observed = metrics.clone();
        chats
            .ledger()
            .observe(move |spend| observed.observe_spend(spend));
        let settings = Arc::new(settings);
        let gate = Gate::new(
            AccessPolicy {
                codes: settings.access_codes.clone(),
                hide_user_api_key: settings.hide_user_api_key,
            },
            FailureThrottle::new(WRONG_CODE_LIMIT, WRONG_CODE_WINDOW),
            crate::session::cookie_key(server.cookie_secret.as_ref()),
            settings.clone(),
            store.clone(),
        );
        Ok(AppState(Arc::new(Inner {
            site_url_header: settings
                .site_url
                .as_deref()
                .and_then(|u| axum::http::HeaderValue::from_str(u).ok()),
            app_name_header: axum::http::HeaderValue::from_str(&settings.app_name)
                .unwrap_or_else(|_| axum::http::HeaderValue::from_static("Switchboard")),
            gate,
            outbound,
            upstreams,
            metrics,
            catalog: Arc::new(ModelCatalog::new(&settings, server.catalog_cache_path())),
            quotas: crate::quota::Quotas::new(settings.clone(), store.clone()),
            store,
            chats,
            rate_limiter: settings
                .rate_limit
                .map(crate::spend_limits::RateLimiter::new),
            budget_clock: crate::spend_limits::BudgetClock::default(),
            imports: crate::quota::Imports::default(),
            shutdown: Shutdown::new(),
            bind_addr: server.addr,
            settings,
        })))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    /// `SWITCHBOARD_ADDR` as configured (not the port a test's listener got).
    pub fn bind_addr(&self) -> SocketAddr {
        self.0.bind_addr
    }

    /// The clock budgets are reckoned at (tests may hold it at a time).
    pub fn budget_clock(&self) -> &crate::spend_limits::BudgetClock {
        &self.0.budget_clock
    }

    /// Admission's part (see [`Gate`]).
    pub fn gate(&self) -> &Gate {
        &self.0.gate
    }

    /// The one client for upstream calls (see [`crate::outbound`]).
    pub fn http(&self) -> &reqwest::Client {
        self.0.outbound.client()
    }

    /// The upstream client and its TLS setup, for clients pinned to a vetted endpoint.
    pub fn outbound(&self) -> &Outbound {
        &self.0.outbound
    }

    /// `SWITCHBOARD_SITE_URL` as a header value, for `HTTP-Referer`.
    pub fn site_url_header(&self) -> Option<&axum::http::HeaderValue> {
        self.0.site_url_header.as_ref()
    }

    /// `SWITCHBOARD_APP_NAME` as a header value, for `X-Title`.
    pub fn app_name_header(&self) -> &axum::http::HeaderValue {
        &self.0.app_name_header
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    pub fn upstream(&self, id: &ProviderId) -> Option<&Upstream> {
        self.0.upstreams.iter().find(|u| &u.config.id == id)
    }

    pub fn store(&self) -> &Store {
        &self.0.store
    }

    /// The storage quota check.
    pub fn quotas(&self) -> &crate::quota::Quotas {
        &self.0.quotas
    }

    /// The imports running on this instance, one per workspace at most.
    pub fn imports(&self) -> &crate::quota::Imports {
        &self.0.imports
    }

    /// Tell the responses that would otherwise never end that the server is going down: the chat
    /// event streams close (clients resume them from their last event id), so a graceful
    /// shutdown is not held up by an open browser tab.
    pub fn begin_shutdown(&self) {
        self.0.shutdown.begin();
    }

    /// Per-workspace request limits on the routes that spend the server's key, if configured.
    pub fn rate_limiter(&self) -> Option<&crate::spend_limits::RateLimiter> {
        self.0.rate_limiter.as_ref()
    }

    pub fn chats(&self) -> &ChatEngine {
        &self.0.chats
    }

    pub fn catalog(&self) -> &Arc<ModelCatalog> {
        &self.0.catalog
    }

    /// Whether `model` may be requested from `provider` (the `CUSTOM_MODELS` restriction).
    pub fn model_allowed(&self, provider: &ProviderId, model: &str) -> bool {
        self.0.catalog.table().is_allowed(model, Some(provider))
    }
}
