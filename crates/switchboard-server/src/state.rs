//! `AppState`: what every handler shares. Built once from `Settings` by [`AppState::new`].

use std::sync::Arc;
use std::time::Duration;

use switchboard_core::Settings;
use switchboard_core::access::{AccessPolicy, FailureThrottle};
use switchboard_core::provider::{KeyRotation, ProviderConfig, ProviderId};

use crate::catalog::ModelCatalog;
use crate::chats::engine::ChatEngine;
use crate::metrics::Metrics;

/// Wrong access codes allowed per client address and window before 429.
const WRONG_CODE_LIMIT: u32 = 10;
const WRONG_CODE_WINDOW: Duration = Duration::from_secs(60);

/// An upstream provider with its key rotation.
pub struct Upstream {
    pub config: ProviderConfig,
    pub rotation: KeyRotation,
}

struct Inner {
    settings: Settings,
    policy: AccessPolicy,
    throttle: FailureThrottle,
    http: reqwest::Client,
    upstreams: Vec<Upstream>,
    metrics: Arc<Metrics>,
    cookie_key: Vec<u8>,
    catalog: Arc<ModelCatalog>,
    store: switchboard_store::Store,
    chats: ChatEngine,
}

/// Shared state; cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl AppState {
    /// Connect the database (creating and migrating it if needed), recover replies a previous
    /// process left `streaming`, and build the shared state.
    pub async fn new(settings: Settings) -> anyhow::Result<AppState> {
        let store = switchboard_store::Store::connect(&settings.database_url).await?;
        let interrupted = store.mark_streaming_interrupted().await?;
        if interrupted > 0 {
            tracing::warn!(
                interrupted,
                "replies left streaming by the previous process were marked interrupted"
            );
        }
        let http = reqwest::Client::builder()
            // The server's keys must go only where configured: never follow a redirect elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(10))
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(1024)
            .build()?;
        let policy = AccessPolicy {
            codes: settings.access_codes.clone(),
            hide_user_api_key: settings.hide_user_api_key,
        };
        let upstreams = [settings.openrouter.clone(), settings.openai.clone()]
            .into_iter()
            .map(|config| Upstream {
                config,
                rotation: KeyRotation::default(),
            })
            .collect();
        let cookie_key = crate::session::cookie_key(settings.cookie_secret.as_ref());
        Ok(AppState(Arc::new(Inner {
            policy,
            throttle: FailureThrottle::new(WRONG_CODE_LIMIT, WRONG_CODE_WINDOW),
            http,
            upstreams,
            metrics: Arc::new(Metrics::default()),
            cookie_key,
            catalog: Arc::new(ModelCatalog::new(&settings)),
            store,
            chats: ChatEngine::default(),
            settings,
        })))
    }

    pub fn settings(&self) -> &Settings {
        &self.0.settings
    }

    pub fn policy(&self) -> &AccessPolicy {
        &self.0.policy
    }

    pub fn throttle(&self) -> &FailureThrottle {
        &self.0.throttle
    }

    pub fn http(&self) -> &reqwest::Client {
        &self.0.http
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.0.metrics
    }

    pub fn cookie_key(&self) -> &[u8] {
        &self.0.cookie_key
    }

    pub fn upstream(&self, id: &ProviderId) -> Option<&Upstream> {
        self.0.upstreams.iter().find(|u| &u.config.id == id)
    }

    pub fn store(&self) -> &switchboard_store::Store {
        &self.0.store
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

    /// Whether the OpenRouter provider can serve requests with the server's own key.
    pub fn openrouter_configured(&self) -> bool {
        self.0.settings.openrouter.has_server_key()
    }
}
