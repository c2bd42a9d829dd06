//! Where a request comes from, checked at the edge before any handler runs: the `Host` it was sent
//! to (DNS rebinding) and the `Origin` of the page that sent it (cross-site request forgery).
//!
//! Behind a reverse proxy the address and scheme the browser used are in `Forwarded` or
//! `X-Forwarded-Host`/`-Proto`/`-For`; those headers are believed only from a peer in
//! `SWITCHBOARD_TRUSTED_PROXIES`, since anyone else could set them.
//!
//! The rule for origins: a request that changes state or spends a key and is authenticated by the
//! login cookie — or admitted with no credential at all, on an open server — must come from an
//! allowed origin: this server's own, `SWITCHBOARD_SITE_URL`'s, or one listed in
//! `SWITCHBOARD_CORS_ORIGINS`. A request with an `Authorization` or own-key header is not
//! cookie-borne: a browser sends those cross-site only after a CORS preflight we answer, so SDKs
//! and NextChat stay usable from anywhere.

use std::net::{IpAddr, SocketAddr};

use axum::http::{HeaderMap, HeaderName, Method, StatusCode, Uri, header};
use switchboard_core::settings::{AllowedHosts, CorsOrigins, Settings};

use crate::error::ApiError;

/// What the browser addressed, after believing a trusted proxy's headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addressed {
    /// `host[:port]` as sent (lower case), when there was one.
    pub authority: Option<String>,
    /// `http` or `https` when a trusted proxy said so; `None` when the connection is ours and the
    /// scheme is therefore unknown here (plain HTTP, or TLS ended by an untrusted hop).
    pub scheme: Option<String>,
    /// The client's address: the proxy's `X-Forwarded-For`/`Forwarded for=` when trusted.
    pub client_ip: IpAddr,
}

impl Addressed {
    /// Read the request's host, scheme and client address; forwarded ones only from `peer`s in
    /// `trusted`.
    pub fn of(settings: &Settings, headers: &HeaderMap, uri: &Uri, peer: IpAddr) -> Addressed {
        let own_host = headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .or_else(|| uri.authority().map(|a| a.as_str().to_string()));
        let mut addressed = Addressed {
            authority: own_host.map(|h| h.trim().to_ascii_lowercase()),
            scheme: None,
            client_ip: peer,
        };
        if !is_trusted(settings, peer) {
            return addressed;
        }
        let forwarded = Forwarded::parse(headers);
        if let Some(host) = forwarded.host {
            addressed.authority = Some(host.to_ascii_lowercase());
        }
        addressed.scheme = forwarded.proto.map(|p| p.to_ascii_lowercase());
        if let Some(ip) = forwarded.client {
            addressed.client_ip = ip;
        }
        addressed
    }

    /// Whether the browser used https (per a trusted proxy, or `SWITCHBOARD_SITE_URL`).
    pub fn is_https(&self, settings: &Settings) -> bool {
        self.scheme.as_deref() == Some("https")
            || settings
                .site_url
                .as_deref()
                .is_some_and(|u| u.starts_with("https://"))
    }
}

fn is_trusted(settings: &Settings, peer: IpAddr) -> bool {
    let peer = match peer {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
        v4 => v4,
    };
    settings
        .trusted_proxies
        .iter()
        .any(|net| net.contains(&peer))
}

/// The nearest proxy's view, from `Forwarded` (RFC 7239) or else the `X-Forwarded-*` headers.
/// Of several comma-separated values the last is taken: the one our own (trusted) proxy added.
#[derive(Debug, Default)]
struct Forwarded {
    host: Option<String>,
    proto: Option<String>,
    client: Option<IpAddr>,
}

impl Forwarded {
    fn parse(headers: &HeaderMap) -> Forwarded {
        // Names as constants: a `&str` name is parsed again on every lookup.
        const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
        const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
        const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
        let last = |name: HeaderName| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .map(str::trim)
                .rfind(|v| !v.is_empty())
                .map(str::to_string)
        };
        if let Some(element) = last(header::FORWARDED) {
            let mut f = Forwarded::default();
            for pair in element.split(';') {
                let Some((k, v)) = pair.trim().split_once('=') else {
                    continue;
                };
                let v = v.trim().trim_matches('"');
                match k.trim().to_ascii_lowercase().as_str() {
                    "host" => f.host = Some(v.to_string()),
                    "proto" => f.proto = Some(v.to_string()),
                    "for" => f.client = parse_node(v),
                    _ => {}
                }
            }
            return f;
        }
        Forwarded {
            host: last(X_FORWARDED_HOST),
            proto: last(X_FORWARDED_PROTO),
            client: last(X_FORWARDED_FOR).as_deref().and_then(parse_node),
        }
    }
}

/// `192.0.2.1`, `192.0.2.1:4711`, `[2001:db8::1]` or `[2001:db8::1]:4711`.
fn parse_node(v: &str) -> Option<IpAddr> {
    if let Ok(ip) = v.parse() {
        return Some(ip);
    }
    if let Ok(sa) = v.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    v.trim_start_matches('[').trim_end_matches(']').parse().ok()
}

/// The host name of `host[:port]` (brackets kept off IPv6 literals), lower case, without a
/// trailing dot.
fn host_name(authority: &str) -> &str {
    let name = if let Some(rest) = authority.strip_prefix('[') {
        rest.split(']').next().unwrap_or(rest)
    } else {
        authority.rsplit_once(':').map_or(authority, |(h, _)| h)
    };
    name.trim_end_matches('.')
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The host name of `SWITCHBOARD_SITE_URL`, when set.
fn site_host(settings: &Settings) -> Option<String> {
    let url = url::Url::parse(settings.site_url.as_deref()?).ok()?;
    Some(host_name(&url.host_str()?.to_ascii_lowercase()).to_string())
}

/// 421 unless `addressed` names a host this server answers to; `bound` is the configured bind
/// address's IP. A request with no host at all (HTTP/1.0) cannot come from a browser and passes.
pub fn check_host(
    settings: &Settings,
    bound: IpAddr,
    addressed: &Addressed,
) -> Result<(), ApiError> {
    let Some(authority) = addressed.authority.as_deref() else {
        return Ok(());
    };
    let name = host_name(authority);
    if site_host(settings).as_deref() == Some(name) {
        return Ok(());
    }
    let allowed = match &settings.allowed_hosts {
        AllowedHosts::Any => true,
        AllowedHosts::List(list) => list.iter().any(|h| host_name(h) == name),
        AllowedHosts::Default if bound.is_loopback() => {
            is_loopback_name(name) || name.parse::<IpAddr>().ok() == Some(bound)
        }
        AllowedHosts::Default => true,
    };
    if allowed {
        return Ok(());
    }
    Err(ApiError::new(
        StatusCode::MISDIRECTED_REQUEST,
        format!(
            "this server does not answer to the host `{name}`; add it to \
             SWITCHBOARD_ALLOWED_HOSTS or set SWITCHBOARD_SITE_URL"
        ),
    ))
}

/// `scheme://host[:port]` with the scheme's default port dropped, lower case.
fn normalise_origin(scheme: &str, authority: &str) -> String {
    let scheme = scheme.to_ascii_lowercase();
    let authority = authority.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => ":443",
        _ => ":80",
    };
    let authority = authority
        .strip_suffix(default_port)
        .unwrap_or(&authority)
        .to_string();
    format!("{scheme}://{authority}")
}

fn parse_origin(origin: &str) -> Option<(String, String)> {
    let (scheme, authority) = origin.trim().split_once("://")?;
    if authority.is_empty() || authority.contains('/') {
        return None;
    }
    Some((scheme.to_ascii_lowercase(), authority.to_ascii_lowercase()))
}

/// Whether the page at `origin` may send cookie-borne or credential-less writes here.
fn origin_allowed(settings: &Settings, addressed: &Addressed, origin: &str) -> bool {
    let Some((scheme, authority)) = parse_origin(origin) else {
        return false; // `null` (sandboxed frames, file: pages) and anything malformed
    };
    let origin = normalise_origin(&scheme, &authority);
    if let Some(own) = addressed.authority.as_deref() {
        // Our own origin; the scheme is compared only when a trusted proxy told us it.
        let scheme_ok = addressed.scheme.as_deref().is_none_or(|s| s == scheme);
        if scheme_ok && normalise_origin(&scheme, own) == origin {
            return true;
        }
    }
    if let Some((s, a)) = settings.site_url.as_deref().and_then(|u| {
        let u = url::Url::parse(u).ok()?;
        Some((u.scheme().to_string(), u.authority().to_string()))
    }) && normalise_origin(&s, &a) == origin
    {
        return true;
    }
    match &settings.cors_origins {
        // `*` opens the API to SDKs in any page, not the cookie or the server's key.
        CorsOrigins::SameOrigin | CorsOrigins::Any => false,
        CorsOrigins::List(list) => list
            .iter()
            .any(|o| parse_origin(o).is_some_and(|(s, a)| normalise_origin(&s, &a) == origin)),
    }
}

/// Whether the request carries a credential a browser cannot attach cross-site on its own.
fn explicitly_authenticated(headers: &HeaderMap) -> bool {
    headers.contains_key(header::AUTHORIZATION)
        || headers.contains_key(crate::extract::USER_KEY_HEADER)
}

/// 403 for a state-changing request borne by the cookie (or by no credential) from a page that is
/// not an allowed origin. Without `Origin` (old browsers on same-origin requests, curl), a
/// `Sec-Fetch-Site` naming another site still refuses it.
pub fn check_origin(
    settings: &Settings,
    method: &Method,
    headers: &HeaderMap,
    addressed: &Addressed,
) -> Result<(), ApiError> {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        || explicitly_authenticated(headers)
    {
        return Ok(());
    }
    match headers.get(header::ORIGIN).map(|o| o.to_str()) {
        Some(Ok(origin)) if origin_allowed(settings, addressed, origin) => Ok(()),
        Some(_) => Err(ApiError::forbidden(
            "cross-site request refused: this page's origin may not use this server; \
             set SWITCHBOARD_SITE_URL to the address you open it at",
        )),
        None => match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
            Some("cross-site" | "same-site") => {
                Err(ApiError::forbidden("cross-site request refused"))
            }
            _ => Ok(()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_core::Sources;

    fn settings(env: &[(&str, &str)]) -> Settings {
        Settings::load(&Sources::from_pairs(env.iter().copied())).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    fn addressed(s: &Settings, h: &HeaderMap, peer: &str) -> Addressed {
        Addressed::of(s, h, &Uri::from_static("/"), peer.parse().unwrap())
    }

    #[test]
    fn hosts_on_loopback_and_elsewhere() {
        let local = settings(&[]);
        let loopback: IpAddr = [127, 0, 0, 1].into();
        let everywhere: IpAddr = [0, 0, 0, 0].into();
        for (host, ok) in [
            ("127.0.0.1:3000", true),
            ("localhost:3000", true),
            ("[::1]:3000", true),
            ("app.localhost", true),
            ("attacker.example:3000", false),
            ("10.0.0.5:3000", false),
        ] {
            let h = headers(&[("host", host)]);
            let a = addressed(&local, &h, "127.0.0.1");
            assert_eq!(check_host(&local, loopback, &a).is_ok(), ok, "{host}");
        }
        let public = settings(&[]);
        let h = headers(&[("host", "anything.example")]);
        assert!(check_host(&public, everywhere, &addressed(&public, &h, "10.0.0.1")).is_ok());
        let listed = settings(&[
            ("SWITCHBOARD_ALLOWED_HOSTS", "chat.example"),
            ("SWITCHBOARD_SITE_URL", "https://site.example"),
        ]);
        for (host, ok) in [
            ("chat.example", true),
            ("site.example:443", true),
            ("other.example", false),
        ] {
            let h = headers(&[("host", host)]);
            let a = addressed(&listed, &h, "10.0.0.1");
            assert_eq!(check_host(&listed, everywhere, &a).is_ok(), ok, "{host}");
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_trusted_proxies() {
        let s = settings(&[]);
        let h = headers(&[
            ("host", "127.0.0.1:3000"),
            ("x-forwarded-host", "chat.example:8443"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-for", "203.0.113.9, 198.51.100.7"),
        ]);
        let via_proxy = addressed(&s, &h, "127.0.0.1");
        assert_eq!(via_proxy.authority.as_deref(), Some("chat.example:8443"));
        assert_eq!(via_proxy.scheme.as_deref(), Some("https"));
        assert_eq!(
            via_proxy.client_ip,
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        let direct = addressed(&s, &h, "203.0.113.50");
        assert_eq!(direct.authority.as_deref(), Some("127.0.0.1:3000"));
        assert_eq!(direct.scheme, None);
        assert_eq!(direct.client_ip, "203.0.113.50".parse::<IpAddr>().unwrap());
        let rfc = headers(&[
            ("host", "127.0.0.1:3000"),
            (
                "forwarded",
                r#"for=192.0.2.60;proto=https;host="chat.example""#,
            ),
        ]);
        let a = addressed(&s, &rfc, "::1");
        assert_eq!(a.authority.as_deref(), Some("chat.example"));
        assert!(a.is_https(&s));
        assert_eq!(a.client_ip, "192.0.2.60".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn origins_allowed_for_cookie_borne_writes() {
        let s = settings(&[
            ("SWITCHBOARD_SITE_URL", "https://chat.example"),
            ("SWITCHBOARD_CORS_ORIGINS", "https://app.example"),
        ]);
        let post = Method::POST;
        let check = |pairs: &[(&str, &str)]| {
            let h = headers(pairs);
            let a = addressed(&s, &h, "203.0.113.1");
            check_origin(&s, &post, &h, &a).is_ok()
        };
        let host = ("host", "127.0.0.1:3000");
        assert!(check(&[host, ("origin", "http://127.0.0.1:3000")]));
        assert!(check(&[host, ("origin", "https://chat.example")]));
        assert!(check(&[host, ("origin", "https://chat.example:443")]));
        assert!(check(&[host, ("origin", "https://app.example")]));
        assert!(!check(&[host, ("origin", "http://127.0.0.1:5173")]));
        assert!(!check(&[host, ("origin", "http://chat.example")]));
        assert!(!check(&[host, ("origin", "null")]));
        assert!(!check(&[host, ("sec-fetch-site", "same-site")]));
        assert!(check(&[host]));
        // Explicit credentials are not cookie-borne.
        assert!(check(&[
            host,
            ("origin", "http://evil.example"),
            ("authorization", "Bearer sk-x")
        ]));
        assert!(check(&[
            host,
            ("origin", "http://evil.example"),
            ("x-switchboard-user-key", "sk-x")
        ]));
        // `*` opens SDK requests only.
        let any = settings(&[("SWITCHBOARD_CORS_ORIGINS", "*")]);
        let h = headers(&[host, ("origin", "https://evil.example")]);
        let a = addressed(&any, &h, "127.0.0.1");
        assert!(check_origin(&any, &post, &h, &a).is_err());
    }
}
