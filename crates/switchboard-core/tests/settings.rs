//! Settings: every variable, its default, and an error naming the variable for every invalid value.

use std::time::Duration;

use switchboard_core::settings::{CorsOrigins, MetricsAccess, Settings, SettingsError, Sources};

fn load(pairs: &[(&str, &str)]) -> Result<Settings, SettingsError> {
    Settings::load(&Sources::from_pairs(pairs.iter().copied()))
}

#[test]
fn defaults() {
    let s = load(&[]).unwrap();
    assert_eq!(s.openrouter.base_url, "https://openrouter.ai/api");
    assert!(s.openrouter.api_keys.is_empty());
    assert_eq!(s.openai.base_url, "https://api.openai.com");
    assert!(s.access_codes.is_empty());
    assert!(!s.hide_user_api_key);
    assert_eq!(s.custom_models, "");
    assert_eq!(s.site_url, None);
    assert_eq!(s.app_name, "Switchboard");
    assert_eq!(s.max_body_bytes, 1024 * 1024);
    assert_eq!(s.max_upload_bytes, 20 * 1024 * 1024);
    assert_eq!(s.catalog_refresh, Duration::from_secs(3600));
    assert_eq!(s.upstream_first_byte_timeout, Duration::from_secs(300));
    assert_eq!(s.upstream_idle_timeout, Duration::from_secs(300));
    assert_eq!(s.cors_origins, CorsOrigins::SameOrigin);
    assert_eq!(s.metrics, MetricsAccess::Code);
    assert_eq!(s.title_model, None);
}

#[test]
fn every_variable_is_read() {
    let s = load(&[
        ("OPENROUTER_API_KEY", " sk-or-a, ,sk-or-b "),
        ("OPENROUTER_URL", "openrouter.example.com/api/"),
        ("OPENAI_API_KEY", "sk-x"),
        ("BASE_URL", "http://localhost:8000/"),
        ("CODE", "one, two,,"),
        ("HIDE_USER_API_KEY", "1"),
        ("CUSTOM_MODELS", " -all,+x@OpenRouter "),
        ("DEFAULT_MODEL", "x@OpenRouter"),
        ("VISION_MODELS", "a,b"),
        ("DISABLE_FAST_LINK", "true"),
        ("ENABLE_BALANCE_QUERY", "yes"),
        ("SWITCHBOARD_SITE_URL", "https://chat.example.com/"),
        ("SWITCHBOARD_APP_NAME", "My Chat"),
        ("SWITCHBOARD_MAX_BODY_BYTES", "2048"),
        ("SWITCHBOARD_CATALOG_REFRESH", "5m"),
        ("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "500ms"),
        ("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", "90"),
        (
            "SWITCHBOARD_CORS_ORIGINS",
            "https://a.example, http://b.example:8080/",
        ),
        ("SWITCHBOARD_METRICS", "open"),
        ("SWITCHBOARD_TITLE_MODEL", "openai/gpt-4o-mini"),
    ])
    .unwrap();
    let keys: Vec<&str> = s.openrouter.api_keys.iter().map(|k| k.expose()).collect();
    assert_eq!(keys, ["sk-or-a", "sk-or-b"]);
    assert_eq!(s.openrouter.base_url, "https://openrouter.example.com/api");
    assert_eq!(s.openai.api_keys.len(), 1);
    assert_eq!(s.openai.base_url, "http://localhost:8000");
    assert!(s.access_codes.check("one").is_some());
    assert!(s.access_codes.check("two").is_some());
    assert!(s.access_codes.check("").is_none());
    assert!(s.hide_user_api_key);
    assert_eq!(s.custom_models, "-all,+x@OpenRouter");
    assert_eq!(s.default_model, "x@OpenRouter");
    assert_eq!(s.vision_models, "a,b");
    assert!(s.disable_fast_link && s.enable_balance_query);
    assert_eq!(s.site_url.as_deref(), Some("https://chat.example.com"));
    assert_eq!(s.app_name, "My Chat");
    assert_eq!(s.max_body_bytes, 2048);
    assert_eq!(s.catalog_refresh, Duration::from_secs(300));
    assert_eq!(s.upstream_first_byte_timeout, Duration::from_millis(500));
    assert_eq!(s.upstream_idle_timeout, Duration::from_secs(90));
    assert_eq!(
        s.cors_origins,
        CorsOrigins::List(vec![
            "https://a.example".into(),
            "http://b.example:8080".into()
        ])
    );
    assert_eq!(s.metrics, MetricsAccess::Open);
    assert_eq!(s.title_model.as_deref(), Some("openai/gpt-4o-mini"));
}

#[test]
fn malformed_custom_models_entry_is_named() {
    let err = load(&[("CUSTOM_MODELS", "+ok, x@ ")])
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("CUSTOM_MODELS: ") && err.contains("x@"),
        "{err}"
    );
}

#[test]
fn invalid_values_name_their_variable() {
    let cases = [
        ("OPENROUTER_URL", "ftp://x"),
        ("OPENROUTER_URL", "http://"),
        ("BASE_URL", "https://x/?q=1"),
        ("HIDE_USER_API_KEY", "maybe"),
        ("DISABLE_FAST_LINK", "2"),
        ("ENABLE_BALANCE_QUERY", "nope"),
        ("SWITCHBOARD_SITE_URL", "not a url"),
        ("SWITCHBOARD_MAX_BODY_BYTES", "12"),
        ("SWITCHBOARD_MAX_BODY_BYTES", "lots"),
        ("SWITCHBOARD_CATALOG_REFRESH", "0"),
        ("SWITCHBOARD_CATALOG_REFRESH", "1d"),
        ("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "-1"),
        ("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", "soon"),
        ("SWITCHBOARD_UPSTREAM_IDLE_TIMEOUT", "18446744073709551615"),
        ("SWITCHBOARD_UPSTREAM_FIRST_BYTE_TIMEOUT", "721h"),
        ("SWITCHBOARD_CORS_ORIGINS", "example.com"),
        ("SWITCHBOARD_METRICS", "maybe"),
        ("CUSTOM_MODELS", "+gpt-4o,=Nameless"),
        ("CUSTOM_MODELS", "qwen/qwen3-32b:free@"),
        ("DEFAULT_MODEL", "gpt-4o@"),
        ("DEFAULT_MODEL", "@OpenRouter"),
        ("SWITCHBOARD_SESSION_TTL", "0"),
        ("SWITCHBOARD_SESSION_TTL", "400d"),
        ("SWITCHBOARD_SESSION_TTL", "soon"),
        ("SWITCHBOARD_WORKSPACE_QUOTA_BYTES", "12"),
        ("SWITCHBOARD_UNVERIFIED_QUOTA_BYTES", "lots"),
        ("SWITCHBOARD_WORKSPACE_MAX_CHATS", "0"),
        ("SWITCHBOARD_IMPORT_MAX_BYTES", "-1"),
    ];
    for (var, value) in cases {
        let err = load(&[(var, value)]).expect_err(&format!("{var}={value} must fail"));
        let msg = err.to_string();
        assert!(msg.starts_with(&format!("{var}: ")), "{var}={value}: {msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }
}

#[test]
fn toml_file_then_dotenv_then_environment() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("switchboard.toml");
    std::fs::write(
        &toml,
        "app_name = \"From TOML\"\nCODE = [\"a\", \"b\"]\nSWITCHBOARD_MAX_BODY_BYTES = 4096\nSWITCHBOARD_SITE_URL = \"https://toml.example\"\n",
    )
    .unwrap();
    let src = Sources::from_process(dir.path(), Some(&toml));
    // `app_name` is not a variable name: unknown keys are refused, naming the file.
    let err = src.unwrap_err().to_string();
    assert!(
        err.contains("switchboard.toml") && err.contains("app_name"),
        "{err}"
    );

    std::fs::write(
        &toml,
        "SWITCHBOARD_APP_NAME = \"From TOML\"\ncode = [\"a\", \"b\"]\nSWITCHBOARD_MAX_BODY_BYTES = 4096\nSWITCHBOARD_SITE_URL = \"https://toml.example\"\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "SWITCHBOARD_MAX_BODY_BYTES=8192\nSWITCHBOARD_SITE_URL=https://dotenv.example\n",
    )
    .unwrap();
    let s = Settings::load(&Sources::from_process(dir.path(), Some(&toml)).unwrap()).unwrap();
    assert_eq!(s.app_name, "From TOML");
    assert!(s.access_codes.check("b").is_some());
    assert_eq!(s.max_body_bytes, 8192, ".env wins over the TOML file");
    // The process environment wins over both; SWITCHBOARD_SITE_URL is set by no other test.
    // SAFETY: this test is the only one in this binary touching this variable.
    unsafe { std::env::set_var("SWITCHBOARD_SITE_URL", "https://env.example") };
    let s = Settings::load(&Sources::from_process(dir.path(), Some(&toml)).unwrap()).unwrap();
    unsafe { std::env::remove_var("SWITCHBOARD_SITE_URL") };
    assert_eq!(s.site_url.as_deref(), Some("https://env.example"));
}

#[test]
fn debug_output_never_shows_secrets() {
    let s = load(&[
        ("OPENROUTER_API_KEY", "sk-or-verysecret"),
        ("CODE", "codesecret"),
    ])
    .unwrap();
    let dbg = format!("{s:?}");
    for secret in ["verysecret", "codesecret"] {
        assert!(!dbg.contains(secret), "{dbg}");
    }
}

#[test]
fn env_template_documents_every_variable_with_its_default() {
    let template = include_str!("../../../.env.template");
    for (var, default) in switchboard_core::settings::VARIABLES {
        let line = format!("\n{var}={default}\n");
        assert!(
            template.contains(&line),
            ".env.template lacks `{var}={default}`"
        );
    }
}

#[test]
fn the_configuration_page_documents_every_variable_with_its_default() {
    let page = include_str!("../../../docs/configuration.md");
    for (var, default) in switchboard_core::settings::VARIABLES {
        let shown = if default.is_empty() {
            "–".to_string()
        } else {
            format!("`{default}`")
        };
        let row = format!("| `{var}` | {shown} |");
        assert!(
            page.contains(&row),
            "docs/configuration.md lacks the row `{row}`"
        );
    }
}

#[test]
fn a_config_file_s_budgets_table_sets_budgets_per_code_without_keeping_the_codes() {
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("switchboard.toml");
    std::fs::write(
        &toml,
        "CODE = \"team-a,team-b\"\nSWITCHBOARD_BUDGET = \"1/day\"\n[budgets]\n\"team-a\" = \"20/month\"\n",
    )
    .unwrap();
    let s = Settings::load(&Sources::from_process(dir.path(), Some(&toml)).unwrap()).unwrap();
    let a = switchboard_core::access::workspace_of_code("team-a");
    let b = switchboard_core::access::workspace_of_code("team-b");
    assert_eq!(
        s.budget_for(&a),
        Some(switchboard_core::budget::Budget {
            limit: 20.0,
            period: switchboard_core::budget::Period::Month
        })
    );
    assert_eq!(s.budget_for(&b).map(|b| b.limit), Some(1.0), "the default");
    assert!(
        !format!("{s:?}").contains("team-a"),
        "codes are never kept in settings' Debug"
    );
    let bad = Settings::load(&Sources::from_pairs([(
        "SWITCHBOARD_BUDGETS",
        "team-a=lots",
    )]));
    let err = bad.unwrap_err().to_string();
    assert!(
        err.starts_with("SWITCHBOARD_BUDGETS") && !err.contains("team-a"),
        "{err}"
    );
    let not_a_code = Settings::load(&Sources::from_pairs([
        ("CODE", "x"),
        ("SWITCHBOARD_ADMIN_CODE", "y"),
    ]));
    assert!(
        not_a_code
            .unwrap_err()
            .to_string()
            .starts_with("SWITCHBOARD_ADMIN_CODE")
    );
}

#[test]
fn lower_case_proxy_variables_are_read_from_dotenv_and_toml_too() {
    // The process environment wins over both files: a machine that sets these itself cannot show it.
    let names = ["HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "NO_PROXY"];
    if names.iter().any(|n| {
        std::env::var_os(n).is_some() || std::env::var_os(n.to_ascii_lowercase()).is_some()
    }) {
        eprintln!("skipped: the environment sets a proxy variable");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let toml = dir.path().join("switchboard.toml");
    std::fs::write(&toml, "all_proxy = \"socks5://127.0.0.1:1080\"\n").unwrap();
    std::fs::write(
        dir.path().join(".env"),
        "https_proxy=http://lower.example:3128\nHTTPS_PROXY=http://upper.example:3128\nno_proxy=internal.example\n",
    )
    .unwrap();
    let src = Sources::from_process(dir.path(), Some(&toml)).unwrap();
    assert_eq!(
        src.non_empty("HTTPS_PROXY"),
        Some("http://lower.example:3128"),
        "the lower-case form wins, as in curl"
    );
    assert_eq!(src.non_empty("NO_PROXY"), Some("internal.example"));
    assert_eq!(src.non_empty("ALL_PROXY"), Some("socks5://127.0.0.1:1080"));
}
