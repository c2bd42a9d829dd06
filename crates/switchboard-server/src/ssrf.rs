//! A user-set upstream endpoint, vetted so the server cannot be turned against its own network
//! (NextChat's CVE-2023-49785 and CVE-2024-38514 were exactly that).
//!
//! Rules: only with the user's own key (the server's keys go only to configured providers); http or
//! https only; the host is resolved once and *every* address must be public — loopback, private,
//! link-local (which holds the cloud metadata service), shared, multicast and reserved ranges are
//! refused; the request is then pinned to the vetted address, so a second DNS answer cannot
//! rebind it; redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
pub async fn vet_endpoint(
    outbound: &crate::outbound::Outbound,
    raw: &str,
) -> Result<VettedEndpoint, ApiError> {
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
    // Pinned to the vetted address, and never through the proxy (which would resolve the name
    // again, from where it is).
    let client = outbound
        .pinned(&host, addrs[0])
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

/// Whether `ip` is an address on the public internet. IPv6 forms that carry an IPv4 address are
/// judged by that address (IPv4-mapped, NAT64) or refused outright where the embedding is a
/// deprecated or tunnelling form a router may still forward (IPv4-compatible `::a.b.c.d`, 6to4
/// `2002::/16`, Teredo `2001::/32`), as are site-local `fec0::/10` and the other special ranges.
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
                || seg[0] < 0x0100 // ::/8 bar the forms above: IPv4-compatible ::a.b.c.d, local NAT64
                || seg[0] == 0x0100 && seg[1..4].iter().all(|s| *s == 0) // discard-only 100::/64
                || seg[0] == 0x2002 // 6to4, embeds an IPv4 address
                || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF special: Teredo 2001::/32, benchmarking, ORCHID
                || (seg[0] & 0xfe00) == 0xfc00 // unique local, incl. fd00:ec2::254 metadata
                || (seg[0] & 0xffc0) == 0xfe80 // link-local
                || (seg[0] & 0xffc0) == 0xfec0 // site-local (deprecated, still routed by some)
                || (seg[0] == 0x2001 && seg[1] == 0x0db8) // documentation
                || seg[0] == 0x3fff && seg[1] < 0x1000) // documentation 3fff::/20
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
    use std::net::Ipv6Addr;

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
            // Issue 20, item 7: each of these was accepted.
            "::127.0.0.1",
            "::ffff:0:7f00:1",
            "fec0::1",
            "2002:7f00:1::",
            "2001::1",
            // and their neighbours
            "::8.8.8.8",
            "2002:808:808::1",
            "2001:0:4136:e378:8000:63bf:3fff:fdd2",
            "64:ff9b:1::a00:1",
            "64:ff9b::7f00:1",
            "100::1",
            "feff::1",
            "3fff::1",
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

    fn embedded_forms(v4: Ipv4Addr) -> [(&'static str, Ipv6Addr); 4] {
        let [a, b, c, d] = v4.octets();
        let hi = u16::from_be_bytes([a, b]);
        let lo = u16::from_be_bytes([c, d]);
        [
            ("IPv4-compatible", Ipv6Addr::new(0, 0, 0, 0, 0, 0, hi, lo)),
            ("6to4", Ipv6Addr::new(0x2002, hi, lo, 0, 0, 0, 0, 1)),
            // Teredo carries the client's address inverted in the last 32 bits.
            ("Teredo", Ipv6Addr::new(0x2001, 0, hi, lo, 0, 0, !hi, !lo)),
            ("site-local", Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, hi, lo)),
        ]
    }

    proptest::proptest! {
        /// The vetting never admits what `ip_network` classifies as not globally routable, and
        /// admits every IPv4 address it calls global (bar the two IETF anycast exceptions).
        #[test]
        fn ipv4_vetting_agrees_with_ip_network(bits: u32) {
            let v4 = Ipv4Addr::from(bits);
            let global = ip_network::Ipv4Network::new(v4, 32).unwrap().is_global()
                && !v4.is_multicast()
                && !matches!(v4.octets(), [192, 0, 0, 9 | 10]);
            proptest::prop_assert_eq!(is_public(IpAddr::V4(v4)), global, "{}", v4);
            proptest::prop_assert_eq!(is_public(IpAddr::V6(v4.to_ipv6_mapped())), global);
            for (form, v6) in embedded_forms(v4) {
                proptest::prop_assert!(!is_public(IpAddr::V6(v6)), "{} form {} admitted", form, v6);
            }
        }

        #[test]
        fn ipv6_vetting_is_never_wider_than_ip_network(bits: u128) {
            let v6 = Ipv6Addr::from(bits);
            if is_public(IpAddr::V6(v6)) {
                let net = ip_network::Ipv6Network::new(v6, 128).unwrap();
                proptest::prop_assert!(net.is_unicast_global() && !net.is_multicast(), "{}", v6);
            }
        }

        #[test]
        fn ipv6_in_special_prefixes_is_refused(prefix in proptest::sample::select(vec![
            0x0000u16, 0x0064, 0x2002, 0xfc00, 0xfd00, 0xfe80, 0xfec0, 0xff02,
        ]), rest: u128) {
            let bits = (u128::from(prefix) << 112) | (rest >> 16);
            let v6 = Ipv6Addr::from(bits);
            // ::ffff:a.b.c.d and 64:ff9b::a.b.c.d are judged by their IPv4 address instead.
            if v6.to_ipv4_mapped().is_none() && !(prefix == 0x0064 && v6.segments()[1] == 0xff9b) {
                proptest::prop_assert!(!is_public(IpAddr::V6(v6)), "{}", v6);
            }
        }
    }

    #[tokio::test]
    async fn endpoints_are_vetted() {
        let outbound = crate::outbound::Outbound::new(&Default::default()).unwrap();
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
            "http://[::127.0.0.1]/",
            "http://[::ffff:0:7f00:1]/",
            "http://[fec0::1]/",
            "http://[2002:7f00:1::]/",
            "http://[2001::1]/",
        ] {
            let err = vet_endpoint(&outbound, bad)
                .await
                .err()
                .unwrap_or_else(|| panic!("{bad} passed"));
            assert_eq!(err.status.as_u16(), 400, "{bad}");
        }
        let ok = vet_endpoint(&outbound, "https://93.184.216.34/api/")
            .await
            .unwrap();
        assert_eq!(ok.base_url, "https://93.184.216.34/api");
    }
}
