//! A user-set upstream endpoint, vetted so the server cannot be turned against its own network
//! (NextChat's CVE-2023-49785 and CVE-2024-38514 were exactly that).
//!
//! Rules: only with the user's own key (the server's keys go only to configured providers); http or
//! https only; the host is resolved once and *every* address must be public — loopback, private,
//! link-local (which holds the cloud metadata service), shared, multicast and reserved ranges are
//! refused; the request is then pinned to the vetted address, so a second DNS answer cannot
//! rebind it; redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use crate::error::ApiError;

/// The request header carrying a user-set endpoint (the browser keeps it, never the server).
pub const ENDPOINT_HEADER: &str = "x-switchboard-endpoint";

/// An endpoint that passed the checks, with a client pinned to its vetted address.
pub struct VettedEndpoint {
    /// Normalised base URL (no trailing slash); the API is under `{base_url}/v1/…`.
    pub base_url: String,
    pub client: reqwest::Client,
}

/// Check `raw` and resolve it; see the module doc for the rules.
pub async fn vet_endpoint(raw: &str) -> Result<VettedEndpoint, ApiError> {
    let refuse = |why: &str| ApiError::bad_request(format!("endpoint refused: {why}"));
    let url = url::Url::parse(raw.trim()).map_err(|_| refuse("not a URL"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(refuse("only http and https are allowed"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(refuse("credentials in the URL are not allowed"));
    }
    let host = url
        .host_str()
        .ok_or_else(|| refuse("no host"))?
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = url
        .port_or_known_default()
        .ok_or_else(|| refuse("no port"))?;
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => tokio::time::timeout(
            Duration::from_secs(5),
            tokio::net::lookup_host((host.as_str(), port)),
        )
        .await
        .map_err(|_| refuse("the host name did not resolve in time"))?
        .map_err(|_| refuse("the host name does not resolve"))?
        .collect(),
    };
    if addrs.is_empty() {
        return Err(refuse("the host name does not resolve"));
    }
    if let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
        return Err(refuse(&format!(
            "{} resolves to a non-public address ({})",
            host,
            bad.ip()
        )));
    }
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(10))
        .resolve(&host, addrs[0])
        .build()
        .map_err(|_| ApiError::internal("could not build an HTTP client"))?;
    let mut base = url.to_string();
    while base.ends_with('/') {
        base.pop();
    }
    Ok(VettedEndpoint {
        base_url: base,
        client,
    })
}

/// Whether `ip` is an address on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let seg = v6.segments();
            // NAT64 (64:ff9b::/96) embeds an IPv4 address.
            if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0) {
                let v4 = Ipv4Addr::new(
                    (seg[6] >> 8) as u8,
                    seg[6] as u8,
                    (seg[7] >> 8) as u8,
                    seg[7] as u8,
                );
                return is_public_v4(v4);
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (seg[0] & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254 metadata
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || v6 == Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 1))
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local() // 169.254/16: cloud metadata lives here
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_classes() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fe80::1",
            "fc00::1",
            "fd00:ec2::254",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "192.0.0.1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
        for ip in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip} is public");
        }
    }

    #[tokio::test]
    async fn endpoints_are_vetted() {
        for bad in [
            "http://127.0.0.1:8080/api",
            "http://localhost/api",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "file:///etc/passwd",
            "gopher://example.com",
            "ftp://93.184.216.34/",
            "http://user:pass@93.184.216.34/",
            "not a url",
            "http://0x7f000001/",
            "http://2130706433/",
        ] {
            let err = vet_endpoint(bad)
                .await
                .err()
                .unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
        let ok = vet_endpoint("https://93.184.216.34/api/").await.unwrap();
        assert_eq!(ok.base_url, "https://93.184.216.34/api");
    }
}
