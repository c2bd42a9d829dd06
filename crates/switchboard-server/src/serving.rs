//! How this process serves the application: where it listens, which database it opens, what signs
//! its login cookies, how many connections it takes, how its upstream calls leave the machine. The binary loads these beside the domain's
//! [`Settings`] from the same [`Sources`] (the variables are in the one
//! [`VARIABLES`](switchboard_core::settings::VARIABLES) list) and hands them to [`AppState::new`]
//! and [`serve`]; nothing below the web layer sees them.
//!
//! [`AppState::new`]: crate::AppState::new
//! [`serve`]: crate::serve

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use switchboard_core::Settings;
use switchboard_core::secret::Secret;
use switchboard_core::settings::{SettingsError, Sources, duration};

use crate::listen::{Limits, default_max_connections};
use crate::outbound::OutboundSettings;

/// The server's own settings.
#[derive(Clone)]
pub struct ServerSettings {
    /// `SWITCHBOARD_ADDR`, or all interfaces on `PORT`.
    pub addr: SocketAddr,
    /// `DATABASE_URL`: SQLite or PostgreSQL.
    pub database_url: String,
    /// Signs the browser's login cookie. Random per start when unset (logins then end on restart).
    pub cookie_secret: Option<Secret>,
    /// `SWITCHBOARD_CATALOG_CACHE`: where the last good catalog is kept, when set.
    pub catalog_cache: Option<PathBuf>,
    /// How long a client may take between two reads of a request body (`SWITCHBOARD_BODY_TIMEOUT`).
    pub body_timeout: Duration,
    /// Client connections served at once (`SWITCHBOARD_MAX_CONNECTIONS`); `None`: derived from
    /// the process's file-descriptor limit.
    pub max_connections: Option<usize>,
    /// How every upstream call leaves this machine: proxy and trusted roots.
    pub outbound: OutboundSettings,
}

impl fmt::Debug for ServerSettings {
    // By hand: the database URL may carry a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerSettings")
            .field("addr", &self.addr)
            .field("database_url", &"<redacted>")
            .field("body_timeout", &self.body_timeout)
            .field("max_connections", &self.max_connections)
            .finish_non_exhaustive()
    }
}

impl ServerSettings {
    /// Parse the server's variables; the first invalid one stops with an error naming it.
    pub fn load(src: &Sources) -> Result<ServerSettings, SettingsError> {
        let addr = match (src.non_empty("SWITCHBOARD_ADDR"), src.non_empty("PORT")) {
            (Some(a), _) => a.parse::<SocketAddr>().map_err(|_| {
                SettingsError::invalid(
                    "SWITCHBOARD_ADDR",
                    format!("`{a}` is not an address like 127.0.0.1:3000"),
                )
            })?,
            (None, Some(p)) => {
                let port = p.parse::<u16>().map_err(|_| {
                    SettingsError::invalid("PORT", format!("`{p}` is not a port number (0-65535)"))
                })?;
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
            }
            (None, None) => SocketAddr::from(([127, 0, 0, 1], 3000)),
        };
        let database_url = src
            .non_empty("DATABASE_URL")
            .unwrap_or(switchboard_store::DEFAULT_DATABASE_URL)
            .to_string();
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(SettingsError::invalid(
                "DATABASE_URL",
                "must start with sqlite: or postgres://",
            ));
        }
        Ok(ServerSettings {
            addr,
            database_url,
            cookie_secret: src
                .non_empty("SWITCHBOARD_COOKIE_SECRET")
                .map(|s| Secret::new(s.to_string())),
            catalog_cache: src
                .non_empty("SWITCHBOARD_CATALOG_CACHE")
                .map(PathBuf::from),
            body_timeout: match duration(src, "SWITCHBOARD_BODY_TIMEOUT", 60)? {
                d if d.is_zero() => {
                    return Err(SettingsError::invalid(
                        "SWITCHBOARD_BODY_TIMEOUT",
                        "must be more than 0s".to_string(),
                    ));
                }
                d => d,
            },
            max_connections: match src.non_empty("SWITCHBOARD_MAX_CONNECTIONS") {
                None => None,
                Some(v) => Some(v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                    SettingsError::invalid(
                        "SWITCHBOARD_MAX_CONNECTIONS",
                        format!("`{v}` is not a number of at least 1"),
                    )
                })?),
            },
            outbound: OutboundSettings::load(src)?,
        })
    }

    /// Where the last good OpenRouter catalog is cached: `SWITCHBOARD_CATALOG_CACHE`, else next to
    /// the SQLite database, or in the working directory for PostgreSQL.
    pub fn catalog_cache_path(&self) -> PathBuf {
        if let Some(path) = &self.catalog_cache {
            return path.clone();
        }
        let name = "openrouter-models.json";
        let db_path = self
            .database_url
            .strip_prefix("sqlite://")
            .or_else(|| self.database_url.strip_prefix("sqlite:"))
            .map(|p| p.split('?').next().unwrap_or(p))
            .filter(|p| !p.is_empty() && !p.starts_with(":memory:"));
        match db_path.and_then(|p| Path::new(p).parent()) {
            Some(dir) if !dir.as_os_str().is_empty() => dir.join(name),
            _ => PathBuf::from(name),
        }
    }

    /// How many connections to serve and how long a body may pause (see [`crate::listen`]).
    pub fn limits(&self) -> Limits {
        Limits {
            max_connections: self.max_connections.unwrap_or_else(default_max_connections),
            body_timeout: self.body_timeout,
            http2_idle_timeout: crate::listen::HTTP2_IDLE_TIMEOUT,
            connection_threads: crate::connection_threads::default_count(),
        }
    }

    /// The warning printed at start when anyone who reaches the address can spend the keys.
    pub fn open_bind_warning(&self, settings: &Settings) -> Option<String> {
        if settings.access_codes.is_empty() && !self.addr.ip().is_loopback() {
            Some(format!(
                "listening on {} with no CODE set: anyone who can reach this address can spend \
                 the configured API keys; set CODE to require an access code",
                self.addr
            ))
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(pairs: &[(&str, &str)]) -> Result<ServerSettings, SettingsError> {
        ServerSettings::load(&Sources::from_pairs(pairs.iter().copied()))
    }

    fn domain(pairs: &[(&str, &str)]) -> Settings {
        Settings::load(&Sources::from_pairs(pairs.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_and_every_variable() {
        let s = load(&[]).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:3000");
        assert_eq!(s.database_url, "sqlite://switchboard.db");
        assert!(s.cookie_secret.is_none());
        assert_eq!(s.body_timeout, Duration::from_secs(60));
        assert_eq!(s.max_connections, None);
        assert!(s.open_bind_warning(&domain(&[])).is_none());

        let s = load(&[
            ("SWITCHBOARD_ADDR", "0.0.0.0:8080"),
            ("DATABASE_URL", "postgres://u@h/db"),
            ("SWITCHBOARD_COOKIE_SECRET", "xyz"),
            ("SWITCHBOARD_BODY_TIMEOUT", "5s"),
            ("SWITCHBOARD_MAX_CONNECTIONS", "7"),
        ])
        .unwrap();
        assert_eq!(s.addr.to_string(), "0.0.0.0:8080");
        assert_eq!(s.database_url, "postgres://u@h/db");
        assert_eq!(s.cookie_secret.as_ref().map(Secret::expose), Some("xyz"));
        assert_eq!(s.limits().body_timeout, Duration::from_secs(5));
        assert_eq!(s.limits().max_connections, 7);
        // Codes are set, so binding everywhere is fine.
        assert!(s.open_bind_warning(&domain(&[("CODE", "one")])).is_none());
    }

    #[test]
    fn port_binds_all_interfaces_when_addr_unset() {
        let s = load(&[("PORT", "8080")]).unwrap();
        assert_eq!(s.addr.to_string(), "0.0.0.0:8080");
        let w = s
            .open_bind_warning(&domain(&[]))
            .expect("warns without CODE");
        assert!(w.contains("CODE"), "{w}");
        let s = load(&[("PORT", "8080"), ("SWITCHBOARD_ADDR", "127.0.0.1:9")]).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:9");
    }

    #[test]
    fn catalog_cache_lives_next_to_the_database() {
        let s = load(&[("DATABASE_URL", "sqlite:///var/lib/sb/chats.db?mode=rwc")]).unwrap();
        assert_eq!(
            s.catalog_cache_path(),
            Path::new("/var/lib/sb/openrouter-models.json")
        );
        let s = load(&[]).unwrap();
        assert_eq!(s.catalog_cache_path(), Path::new("openrouter-models.json"));
        // Set, it wins (PostgreSQL servers, tests that must not write to their working directory).
        let s = load(&[
            ("DATABASE_URL", "postgres://db/sb"),
            ("SWITCHBOARD_CATALOG_CACHE", "/var/cache/sb/models.json"),
        ])
        .unwrap();
        assert_eq!(
            s.catalog_cache_path(),
            Path::new("/var/cache/sb/models.json")
        );
    }

    #[test]
    fn invalid_values_name_their_variable() {
        let cases = [
            ("SWITCHBOARD_ADDR", "localhost"),
            ("PORT", "99999"),
            ("DATABASE_URL", "mysql://x"),
            ("SWITCHBOARD_BODY_TIMEOUT", "0"),
            ("SWITCHBOARD_BODY_TIMEOUT", "soon"),
            ("SWITCHBOARD_MAX_CONNECTIONS", "0"),
            ("PROXY_URL", "ftp://proxy.example"),
            ("HTTPS_PROXY", "http://"),
        ];
        for (var, value) in cases {
            let err = load(&[(var, value)]).expect_err(&format!("{var}={value} must fail"));
            let msg = err.to_string();
            assert!(msg.starts_with(&format!("{var}: ")), "{var}={value}: {msg}");
        }
    }

    #[test]
    fn debug_output_never_shows_the_database_password_or_the_cookie_secret() {
        let s = load(&[
            ("DATABASE_URL", "postgres://user:dbsecret@h/db"),
            ("SWITCHBOARD_COOKIE_SECRET", "cookiesecret"),
        ])
        .unwrap();
        let dbg = format!("{s:?}");
        assert!(
            !dbg.contains("dbsecret") && !dbg.contains("cookiesecret"),
            "{dbg}"
        );
    }
}
