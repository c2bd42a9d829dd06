//! The live catalog behind `/api/models`: fetch, filters, order, refresh failure, offline restart.

use mock_openrouter::MockOpenRouter;
use serde_json::Value;

use crate::helpers::spawn_app;

fn ids(body: &Value) -> Vec<String> {
    body["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn catalog_from_the_mock_lists_hundreds_of_models() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let (status, body) = app.get_json("/api/models").await;
    assert_eq!(status, 200);
    let models = body["models"].as_array().unwrap();
    assert!(models.len() >= 300, "{}", models.len());
    assert_eq!(body["default"], "openrouter/auto@openrouter");
    assert_eq!(models[0]["id"], "openrouter/auto");
    assert_eq!(models[0]["is_default"], true);
    let qwen = models
        .iter()
        .find(|m| m["id"] == "qwen/qwen3-32b:free")
        .expect("the seed's model is listed");
    assert_eq!(qwen["provider"], "openrouter");
    assert_eq!(qwen["free"], true);
    assert_eq!(qwen["vendor"], "qwen");
    assert_eq!(qwen["pricing"]["prompt_per_mtok"], 0.0);
    for key in [
        "id",
        "provider",
        "display_name",
        "available",
        "is_default",
        "vision",
        "reasoning",
        "tools",
        "free",
        "context_length",
        "pricing",
        "vendor",
    ] {
        assert!(qwen.get(key).is_some(), "missing {key}");
    }
}

#[tokio::test]
async fn filters_and_search() {
    let app = spawn_app(&[]).await;
    app.load_catalog().await;
    let (_, body) = app.get_json("/api/models?q=qwen3%2032b%20free").await;
    assert!(ids(&body).contains(&"qwen/qwen3-32b:free".to_string()));
    for m in body["models"].as_array().unwrap() {
        let text = format!("{} {}", m["id"], m["display_name"]).to_lowercase();
        assert!(text.contains("qwen3") && text.contains("32b") && text.contains("free"));
    }
    for (param, key) in [
        ("free", "free"),
        ("vision", "vision"),
        ("reasoning", "reasoning"),
    ] {
        let (_, body) = app.get_json(&format!("/api/models?{param}=true")).await;
        let models = body["models"].as_array().unwrap();
        assert!(!models.is_empty(), "{param}");
        assert!(models.iter().all(|m| m[key] == true), "{param}");
    }
    let (status, _) = app.get_json("/api/models?free=maybe").await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn custom_models_order_and_all_parameter() {
    let app = spawn_app(&[
        (
            "CUSTOM_MODELS",
            "-all,+mock/echo@OpenRouter,+qwen/qwen3-32b:free@OpenRouter=Qwen Free",
        ),
        ("DEFAULT_MODEL", "qwen/qwen3-32b:free@openrouter"),
    ])
    .await;
    app.load_catalog().await;
    let (_, body) = app.get_json("/api/models").await;
    assert_eq!(ids(&body), ["qwen/qwen3-32b:free", "mock/echo"]);
    assert_eq!(body["default"], "qwen/qwen3-32b:free@openrouter");
    assert_eq!(body["models"][0]["display_name"], "Qwen Free");
    let (_, all) = app.get_json("/api/models?all=true").await;
    let all_ids = ids(&all);
    assert!(all_ids.len() > 300);
    assert_eq!(&all_ids[..2], ["qwen/qwen3-32b:free", "mock/echo"]);
    let hidden = all["models"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["id"] == "openai/gpt-4o")
        .unwrap();
    assert_eq!(hidden["available"], false);
}

#[tokio::test]
async fn seed_rule_without_minus_all_restricts_nothing() {
    let app = spawn_app(&[("CUSTOM_MODELS", "+qwen/qwen3-32b:free@OpenRouter")]).await;
    app.load_catalog().await;
    let (_, body) = app.get_json("/api/models").await;
    let ids = ids(&body);
    assert!(ids.len() >= 300);
    // Named by CUSTOM_MODELS, so it comes right after the default.
    assert_eq!(&ids[..2], ["openrouter/auto", "qwen/qwen3-32b:free"]);
}

#[tokio::test]
async fn models_api_needs_access_when_codes_are_set() {
    let app = spawn_app(&[("CODE", "x")]).await;
    let (status, _) = app.get_json("/api/models").await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn failed_refresh_keeps_the_last_good_copy_and_restart_uses_the_cache() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/sb.db", dir.path().display());
    // The default place of the cache: next to the SQLite database.
    let app = spawn_app(&[("DATABASE_URL", &db), ("SWITCHBOARD_CATALOG_CACHE", "")]).await;
    app.load_catalog().await;
    let before = app.state.catalog().table().entries().len();
    assert!(before > 300);
    assert!(dir.path().join("openrouter-models.json").is_file());

    // The upstream goes away: refresh fails, the table stays.
    let TestAppParts { state, mock } = TestAppParts::from(app);
    drop(mock);
    let err = state.catalog().refresh(state.http()).await.unwrap_err();
    assert!(err.contains("/v1/models"), "{err}");
    assert_eq!(state.catalog().table().entries().len(), before);

    // A restart with no network starts from the cache. (Beside the same cache, on a database file
    // of its own: the first instance, still alive in this process, holds the first one.)
    let restarted_db = format!("sqlite://{}/sb-restarted.db", dir.path().display());
    let offline = spawn_app(&[
        ("DATABASE_URL", &restarted_db),
        ("SWITCHBOARD_CATALOG_CACHE", ""),
        ("OPENROUTER_URL", "http://127.0.0.1:9/api"),
    ])
    .await;
    assert_eq!(offline.state.catalog().table().entries().len(), before);
}

struct TestAppParts {
    state: switchboard_server::AppState,
    mock: MockOpenRouter,
}

impl From<crate::helpers::TestApp> for TestAppParts {
    fn from(app: crate::helpers::TestApp) -> Self {
        TestAppParts {
            state: app.state,
            mock: app.mock,
        }
    }
}

#[tokio::test]
async fn background_refresh_loads_the_catalog_without_blocking_start() {
    let app = spawn_app(&[("SWITCHBOARD_CATALOG_REFRESH", "1h")]).await;
    // Start-up did not fetch: only the built-ins are known.
    assert!(app.state.catalog().table().entries().len() < 50);
    switchboard_server::start_background_tasks(&app.state);
    for _ in 0..200 {
        if app.state.catalog().table().entries().len() > 300 {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("the background refresh did not load the catalog");
}
