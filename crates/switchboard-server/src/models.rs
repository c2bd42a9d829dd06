//! Which models this server serves: the restriction check every entry point shares.

use serde::Deserialize;
use switchboard_core::provider::ProviderId;

use crate::error::ApiError;
use crate::state::AppState;

/// The only fields of a completion request the restriction looks at; the body itself is forwarded
/// untouched.
#[derive(Deserialize)]
struct RequestedModels {
    model: Option<String>,
    #[serde(default)]
    models: Vec<String>,
}

/// Refuse a completion request whose `model` or any `models[]` entry is not available (403), when
/// `CUSTOM_MODELS` restricts the list.
pub fn check_request_models(
    state: &AppState,
    provider: &ProviderId,
    body: &[u8],
) -> Result<(), ApiError> {
    if state.settings().custom_models.is_empty() {
        return Ok(());
    }
    let req: RequestedModels = serde_json::from_slice(body)
        .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
    for m in req.model.iter().chain(req.models.iter()) {
        if !state.model_allowed(provider, m) {
            return Err(ApiError::model_not_available(m));
        }
    }
    Ok(())
}
