//! One line saying why an upstream call failed, for the 502 a client gets, the error a reply
//! ends with, and the log: DNS, a refused connection, TLS (an unknown authority, an expired
//! certificate, a certificate for another name), the proxy, a timeout.

use std::error::Error as StdError;

/// One line saying why an upstream call failed: DNS, a refused connection, TLS (an unknown
/// authority, an expired certificate, a certificate for another name), the proxy, a timeout.
/// Never the URL's path or query, which may carry what a user sent.
pub fn describe(err: &reqwest::Error) -> String {
    let host = err
        .url()
        .and_then(|u| Some(format!("{}:{}", u.host_str()?, u.port_or_known_default()?)))
        .unwrap_or_else(|| "the upstream".into());
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    let mut refused = false;
    while let Some(e) = source {
        if let Some(tls) = tls_error(e) {
            return tls_failure(tls, &host);
        }
        let text = e.to_string();
        if text.starts_with("tunnel error") {
            return format!("the proxy refused the tunnel to {host} ({text})");
        }
        if text.starts_with("dns error") {
            return format!(
                "could not connect: DNS could not resolve {}",
                host_only(&host)
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            refused = true;
        }
        source = e.source();
    }
    if refused {
        return format!("could not connect to {host}: connection refused");
    }
    if err.is_connect() && err.is_timeout() {
        return format!("could not connect to {host}: timed out");
    }
    if err.is_connect() {
        return format!("could not connect to {host}");
    }
    format!("the request to {host} failed")
}

fn host_only(host_port: &str) -> &str {
    host_port.rsplit_once(':').map_or(host_port, |(h, _)| h)
}

/// A rustls error in `e`: tokio-rustls wraps it in an `io::Error`, whose `source` skips it, so the
/// wrapped errors are looked at too.
fn tls_error<'a>(e: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
    let mut e = e;
    loop {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // hyper-rustls wraps tokio-rustls's `io::Error` in another one.
        e = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    }
}

fn tls_failure(e: &rustls::Error, host: &str) -> String {
    use rustls::CertificateError as C;
    let why = match e {
        rustls::Error::InvalidCertificate(c) => match c {
            C::UnknownIssuer => "its certificate is signed by an unknown authority (trust it with SWITCHBOARD_EXTRA_CA or SSL_CERT_FILE)".to_string(),
            C::Expired | C::ExpiredContext { .. } => "its certificate has expired".to_string(),
            C::NotValidYet | C::NotValidYetContext { .. } => "its certificate is not valid yet".to_string(),
            C::NotValidForName | C::NotValidForNameContext { .. } => {
                "its certificate is for another host name".to_string()
            }
            other => format!("its certificate was refused ({other:?})"),
        },
        other => other.to_string(),
    };
    format!("TLS with {host} failed: {why}")
}
