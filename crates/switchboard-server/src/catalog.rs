//! The live model table: OpenRouter's catalog fetched in the background, cached on disk, merged
//! with the built-ins and `CUSTOM_MODELS` into a [`ModelTable`] that request paths read without
//! waiting.
//!
//! Start-up never waits for the network: the table starts from the disk cache (or the built-ins
//! alone) and is swapped for a fresh one after each successful refresh. A failed refresh keeps the
//! last good copy and is logged once, not at every retry.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use switchboard_core::Settings;
use switchboard_core::catalog::{BUILTIN_MODELS, CatalogModel, ModelTable, TableOptions};
use switchboard_core::settings::comma_list;

/// The current model table, shared by every handler.
pub struct ModelCatalog {
    table: RwLock<Arc<ModelTable>>,
    settings: Settings,
    cache_path: PathBuf,
}

impl ModelCatalog {
    /// A catalog built from the disk cache at `cache_path`, if any, without touching the network.
    pub fn new(settings: &Settings, cache_path: PathBuf) -> ModelCatalog {
        let cached = std::fs::read(&cache_path)
            .ok()
            .and_then(|bytes| CatalogModel::parse_list(&bytes).ok())
            .unwrap_or_default();
        if !cached.is_empty() {
            tracing::info!(models = cached.len(), path = %cache_path.display(), "model catalog loaded from cache");
        }
        let catalog = ModelCatalog {
            table: RwLock::new(Arc::new(build(settings, &cached))),
            settings: settings.clone(),
            cache_path,
        };
        catalog.warn_if_default_unmatched(!cached.is_empty());
        catalog
    }

    /// The table as of now. Cheap: one `Arc` clone under a read lock.
    pub fn table(&self) -> Arc<ModelTable> {
        self.table.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Fetch `{OPENROUTER_URL}/v1/models` once; on success swap the table and rewrite the cache.
    pub async fn refresh(&self, http: &reqwest::Client) -> Result<usize, String> {
        let url = format!("{}/v1/models", self.settings.openrouter.base_url);
        let resp = http
            .get(&url)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| format!("fetching {url}: {}", crate::outbound::failure(&e)))?;
        if !resp.status().is_success() {
            return Err(format!("fetching {url}: HTTP {}", resp.status()));
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| format!("reading {url}: {}", e.without_url()))?;
        let models = CatalogModel::parse_list(&body).map_err(|e| format!("{url}: {e}"))?;
        if models.is_empty() {
            return Err(format!("{url}: the catalog is empty"));
        }
        *self.table.write().unwrap_or_else(|e| e.into_inner()) =
            Arc::new(build(&self.settings, &models));
        if let Err(e) = write_atomically(&self.cache_path, &body) {
            tracing::warn!(path = %self.cache_path.display(), error = %e, "could not cache the model catalog");
        }
        Ok(models.len())
    }

    /// Refresh now and then every `SWITCHBOARD_CATALOG_REFRESH`, forever.
    pub fn spawn_refresh(self: &Arc<Self>, http: reqwest::Client) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut failing = false;
            let mut first = true;
            loop {
                match this.refresh(&http).await {
                    Ok(n) => {
                        tracing::info!(models = n, "model catalog refreshed");
                        if first {
                            this.warn_if_default_unmatched(true);
                        }
                        failing = false;
                    }
                    Err(e) if !failing => {
                        tracing::warn!(error = %e, "model catalog refresh failed; keeping the last good copy");
                        failing = true;
                    }
                    Err(e) => tracing::debug!(error = %e, "model catalog refresh still failing"),
                }
                first = false;
                tokio::time::sleep(this.settings.catalog_refresh).await;
            }
        })
    }

    fn warn_if_default_unmatched(&self, catalog_loaded: bool) {
        let table = self.table();
        // Before the catalog loads, a catalog model cannot match yet: wait for it.
        if catalog_loaded && table.default_unmatched() {
            tracing::warn!(
                default_model = %self.settings.default_model,
                fallback = table.default_entry().map(|e| e.id.as_str()).unwrap_or("none"),
                "DEFAULT_MODEL matches no available model; using the fallback"
            );
        }
    }
}

fn build(settings: &Settings, catalog: &[CatalogModel]) -> ModelTable {
    let opts = TableOptions {
        // Usable with the server's key, or with users' own keys when those are accepted.
        openrouter_configured: settings.openrouter.has_server_key() || !settings.hide_user_api_key,
        openai_configured: settings.openai.has_server_key(),
        vision_models: comma_list(&settings.vision_models),
        default_model: settings.default_model.clone(),
    };
    ModelTable::build(BUILTIN_MODELS, catalog, &settings.custom_model_rules, &opts)
}

fn write_atomically(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
