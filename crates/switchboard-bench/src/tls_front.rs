//! The mock behind TLS, as openrouter.ai is: a CA made for the run signs `localhost`'s
//! certificate, Switchboard trusts the CA (`SWITCHBOARD_EXTRA_CA`), and each connection's bytes,
//! after the handshake, go to the plain mock unchanged (it speaks HTTP/1.1 and HTTP/2 alike). The
//! protocols offered by ALPN choose the upstream's HTTP version.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use tokio::net::TcpListener;

/// Which HTTP version the TLS upstream offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum UpstreamMode {
    /// The mock over plain HTTP/1.1 (no TLS).
    Http,
    /// TLS, ALPN `http/1.1` only.
    H1,
    /// TLS, ALPN `h2` (and `http/1.1`).
    H2,
}

/// A running TLS front; stops with the process.
pub struct TlsFront {
    /// `https://localhost:<port>`, without a trailing slash.
    pub url: String,
    /// The CA's certificate (PEM), for `SWITCHBOARD_EXTRA_CA`.
    pub ca_file: PathBuf,
}

pub async fn start(
    mode: UpstreamMode,
    backend: SocketAddr,
    dir: &Path,
) -> anyhow::Result<TlsFront> {
    let ca_key = rcgen::KeyPair::generate()?;
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "switchboard-bench CA");
    let ca = rcgen::CertifiedIssuer::self_signed(ca_params, ca_key)?;
    let leaf_key = rcgen::KeyPair::generate()?;
    let leaf =
        rcgen::CertificateParams::new(vec!["localhost".to_string()])?.signed_by(&leaf_key, &ca)?;
    let key = rustls::pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der())
        .map_err(|e| anyhow::anyhow!("the test key: {e}"))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(vec![leaf.der().clone(), ca.der().clone()], key)?;
    config.alpn_protocols = match mode {
        UpstreamMode::H2 => vec![b"h2".to_vec(), b"http/1.1".to_vec()],
        _ => vec![b"http/1.1".to_vec()],
    };
    let ca_file = dir.join("upstream-ca.pem");
    std::fs::write(&ca_file, ca.pem()).context("writing the upstream CA")?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                crate::floor::pipe_to(tls, backend).await;
            });
        }
    });
    Ok(TlsFront {
        url: format!("https://localhost:{port}"),
        ca_file,
    })
}
