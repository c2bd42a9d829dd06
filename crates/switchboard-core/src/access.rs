//! Access policy: who may use the server, and with whose key.
//!
//! Every entry point (proxy, gateway, chat API, UI) asks this one module. NextChat's decision table is
//! kept — `Bearer nk-<code>` is an access code, any other bearer token is the user's own provider key —
//! with its holes closed: a wrong code is refused instead of silently falling through, an own key is
//! refused when `HIDE_USER_API_KEY` is set, and a provider with no server key answers with the variable
//! to set instead of forwarding an empty credential.
//!
//! Codes are kept only as SHA-256 hashes and compared in constant time.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::provider::{KeyRotation, ProviderConfig};
use crate::secret::Secret;

/// NextChat's prefix marking an access code in `Authorization: Bearer nk-<code>`.
pub const ACCESS_CODE_PREFIX: &str = "nk-";

fn sha256(s: &str) -> [u8; 32] {
    Sha256::digest(s.as_bytes()).into()
}

/// The workspace of an access code's users, named by its hash, never the code.
fn code_workspace(code_hash: &[u8; 32]) -> String {
    hash_name("code-", code_hash)
}

/// `prefix` and the hex of the hash's first half. Encoded into a buffer rather than with
/// `format!` and `hex::encode`: every metered request names its workspace, and those cost ten
/// times as many instructions.
fn hash_name(prefix: &str, hash: &[u8; 32]) -> String {
    let mut hex = [0u8; 32];
    // 16 bytes always fit 32 hex digits, which are ASCII.
    let _ = hex::encode_to_slice(&hash[..16], &mut hex);
    let mut name = String::with_capacity(prefix.len() + hex.len());
    name.push_str(prefix);
    name.push_str(std::str::from_utf8(&hex).unwrap_or_default());
    name
}

/// The workspace of whoever uses access code `code` (for per-code settings such as budgets).
pub fn workspace_of_code(code: &str) -> String {
    code_workspace(&sha256(code))
}

/// The configured access codes, as hashes only.
#[derive(Clone, Default)]
pub struct AccessCodes {
    hashes: Vec<[u8; 32]>,
}

impl fmt::Debug for AccessCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessCodes({} configured)", self.hashes.len())
    }
}

impl AccessCodes {
    /// From `CODE`'s entries, already trimmed and non-empty.
    pub fn new(codes: &[String]) -> Self {
        AccessCodes {
            hashes: codes.iter().map(|c| sha256(c)).collect(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.hashes.is_empty()
    }

    /// The hash of `code` when it is one of ours. Constant time in the code's content: every stored
    /// hash is compared, with no early exit.
    pub fn check(&self, code: &str) -> Option<[u8; 32]> {
        let candidate = sha256(code);
        let mut found = subtle::Choice::from(0u8);
        for h in &self.hashes {
            found |= h.ct_eq(&candidate);
        }
        bool::from(found).then_some(candidate)
    }

    /// The hash of the configured code whose users' workspace is `workspace` (a login session
    /// names its workspace, never the code). `None` once the code is no longer configured, which
    /// ends its sessions.
    pub fn hash_of_workspace(&self, workspace: &str) -> Option<[u8; 32]> {
        let mut found = None;
        for h in &self.hashes {
            if code_workspace(h)
                .as_bytes()
                .ct_eq(workspace.as_bytes())
                .into()
            {
                found = Some(*h);
            }
        }
        found
    }

    /// Whether `hash` is the hash of one of our codes, constant time.
    pub fn contains_hash(&self, hash: &[u8; 32]) -> bool {
        let mut found = subtle::Choice::from(0u8);
        for h in &self.hashes {
            found |= h.ct_eq(hash);
        }
        bool::from(found)
    }
}

/// What the client presented, classified the way NextChat classifies it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    None,
    /// `Bearer nk-<code>` (or, on the gateway, a bare token that matches a code).
    AccessCode(Secret),
    /// Any other bearer token: the user's own provider key.
    OwnKey(Secret),
}

impl Credential {
    /// NextChat's reading of an `Authorization` header (proxy, chat API), with one hole closed: a
    /// bare token that equals one of `codes` is that code, never an own key, so a code sent
    /// without its `nk-` prefix is not forwarded upstream as an API key. With codes configured, a
    /// token not shaped like a provider key (`sk-…`) is a (wrong) code, as on the gateway.
    pub fn from_authorization(header: Option<&str>, codes: &AccessCodes) -> Credential {
        let token = header.map(bearer_token).unwrap_or("");
        if token.is_empty() {
            Credential::None
        } else if let Some(code) = token.strip_prefix(ACCESS_CODE_PREFIX) {
            Credential::AccessCode(Secret::new(code.to_string()))
        } else if codes.check(token).is_some() {
            Credential::AccessCode(Secret::new(token.to_string()))
        } else if !codes.is_empty() && !token.starts_with("sk-") {
            // As on the gateway: otherwise every wrong guess would go upstream as a key, unthrottled,
            // and the upstream's 401 against our 200 would tell the guesser when they hit the code.
            Credential::AccessCode(Secret::new(token.to_string()))
        } else {
            Credential::OwnKey(Secret::new(token.to_string()))
        }
    }

    /// The gateway's reading: SDKs always send *some* bearer token, so a bare token that is one of the
    /// codes counts as a code; with codes configured, any other token not shaped like a provider key
    /// (`sk-…`) is a wrong code; with none configured, such a token is ignored.
    pub fn from_gateway_authorization(header: Option<&str>, codes: &AccessCodes) -> Credential {
        let token = header.map(bearer_token).unwrap_or("");
        if token.is_empty() {
            return Credential::None;
        }
        if let Some(code) = token.strip_prefix(ACCESS_CODE_PREFIX) {
            return Credential::AccessCode(Secret::new(code.to_string()));
        }
        if token.starts_with("sk-") {
            return Credential::OwnKey(Secret::new(token.to_string()));
        }
        if codes.is_empty() {
            Credential::None
        } else {
            Credential::AccessCode(Secret::new(token.to_string()))
        }
    }
}

/// The token of `Bearer <token>` (scheme case-insensitive), or the whole value trimmed.
fn bearer_token(header: &str) -> &str {
    let h = header.trim();
    match h.get(..7) {
        Some(p) if p.eq_ignore_ascii_case("bearer ") => h[7..].trim(),
        _ if h.eq_ignore_ascii_case("bearer") => "",
        _ => h,
    }
}

/// Who is asking, once admitted. Also names the workspace their chats live in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    /// No `CODE` configured: everyone shares the `default` workspace and the server's keys.
    Anonymous,
    /// Admitted by an access code; the server's keys are used.
    Code { code_hash: [u8; 32] },
    /// Brought their own provider key, which is forwarded instead of the server's.
    OwnKey { key: Secret },
    /// The web UI's user, known by their login cookie (or as anonymous), who also brought their
    /// own provider key: chats stay in `base`'s workspace, the user's key pays upstream.
    WithOwnKey { base: Box<Principal>, key: Secret },
}

impl Principal {
    /// Whether requests go upstream with the user's own key (which may then go to a user-set
    /// endpoint; the server's keys never do).
    pub fn has_own_key(&self) -> bool {
        matches!(
            self,
            Principal::OwnKey { .. } | Principal::WithOwnKey { .. }
        )
    }

    /// The workspace this principal's chats live in: `default`, or a hash — never the code or key.
    pub fn workspace(&self) -> String {
        match self {
            Principal::Anonymous => "default".to_string(),
            Principal::Code { code_hash } => code_workspace(code_hash),
            Principal::OwnKey { key } => hash_name("key-", &sha256(key.expose())),
            Principal::WithOwnKey { base, .. } => base.workspace(),
        }
    }

    /// The key to send upstream to `provider`: the user's own, or one of the server's.
    pub fn upstream_key<'a>(
        &'a self,
        provider: &'a ProviderConfig,
        rotation: &KeyRotation,
    ) -> Result<&'a Secret, AccessError> {
        match self {
            Principal::OwnKey { key } | Principal::WithOwnKey { key, .. } => Ok(key),
            _ => rotation
                .pick(&provider.api_keys)
                .ok_or(AccessError::NoServerKey {
                    var: provider.key_var,
                }),
        }
    }
}

/// Why a request was refused. Each maps to one status and message (see [`AccessError::status`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessError {
    #[error("wrong access code")]
    WrongCode,
    #[error("access code required")]
    CodeRequired,
    #[error("this server does not accept own API keys; use an access code")]
    OwnKeyNotAccepted,
    #[error("no server API key is configured for this provider: set {var}")]
    NoServerKey { var: &'static str },
    #[error("too many wrong access codes; try again in {} s", retry_after.as_secs().max(1))]
    Throttled { retry_after: Duration },
}

impl AccessError {
    pub fn status(&self) -> u16 {
        match self {
            AccessError::Throttled { .. } => 429,
            _ => 401,
        }
    }
}

/// The policy: configured codes and whether own keys are accepted.
#[derive(Debug, Clone)]
pub struct AccessPolicy {
    pub codes: AccessCodes,
    pub hide_user_api_key: bool,
}

impl AccessPolicy {
    pub fn needs_code(&self) -> bool {
        !self.codes.is_empty()
    }

    /// NextChat's decision table, holes closed. Throttling is the caller's (it knows the client IP).
    pub fn admit(&self, cred: &Credential) -> Result<Principal, AccessError> {
        match cred {
            Credential::OwnKey(_) if self.hide_user_api_key => Err(AccessError::OwnKeyNotAccepted),
            Credential::OwnKey(key) => Ok(Principal::OwnKey { key: key.clone() }),
            Credential::AccessCode(code) if self.needs_code() => {
                match self.codes.check(code.expose()) {
                    Some(code_hash) => Ok(Principal::Code { code_hash }),
                    None => Err(AccessError::WrongCode),
                }
            }
            // A code sent to a server that needs none is harmless: admit as anonymous.
            Credential::AccessCode(_) | Credential::None if !self.needs_code() => {
                Ok(Principal::Anonymous)
            }
            Credential::AccessCode(_) | Credential::None => Err(AccessError::CodeRequired),
        }
    }
}

/// Throttles access-code guessing per client: `limit` wrong codes per `window`, then *every*
/// credential attempt from that client is refused until the window ends — a right code too, or the
/// difference between 429 and 200 would still tell a guesser when they hit. Clients are IPv4
/// addresses or IPv6 /64 networks (one host usually holds a whole /64).
#[derive(Debug)]
pub struct FailureThrottle {
    limit: u32,
    window: Duration,
    state: Mutex<HashMap<ClientKey, (Instant, u32)>>,
}

/// Who the throttle counts: an IPv4 address, or the /64 network of an IPv6 one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKey {
    V4(std::net::Ipv4Addr),
    V6Net64(u64),
}

impl ClientKey {
    pub fn of(ip: IpAddr) -> ClientKey {
        match ip {
            IpAddr::V4(v4) => ClientKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientKey::V4(v4),
                None => ClientKey::V6Net64((u128::from(v6) >> 64) as u64),
            },
        }
    }
}

impl FailureThrottle {
    pub fn new(limit: u32, window: Duration) -> Self {
        FailureThrottle {
            limit,
            window,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// `Err` with the time to wait when `ip`'s client has used up its failures; asked before every
    /// credential attempt, right or wrong.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), AccessError> {
        let state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        match state.get(&ClientKey::of(ip)) {
            Some((start, n)) if *n >= self.limit && now.duration_since(*start) < self.window => {
                Err(AccessError::Throttled {
                    retry_after: self.window - now.duration_since(*start),
                })
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, ip: IpAddr, now: Instant) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        // Bound memory under a spray of addresses: drop windows that have ended.
        if state.len() > 10_000 {
            let window = self.window;
            state.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = state.entry(ClientKey::of(ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        entry.1 += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(codes: &[&str], hide: bool) -> AccessPolicy {
        AccessPolicy {
            codes: AccessCodes::new(&codes.iter().map(|c| c.to_string()).collect::<Vec<_>>()),
            hide_user_api_key: hide,
        }
    }

    fn cred(h: &str) -> Credential {
        Credential::from_authorization(Some(h), &AccessCodes::default())
    }

    #[test]
    fn decision_table() {
        let open = policy(&[], false);
        let coded = policy(&["s3cret", "other"], false);
        let hidden = policy(&["s3cret"], true);

        assert_eq!(open.admit(&Credential::None), Ok(Principal::Anonymous));
        assert!(matches!(
            coded.admit(&cred("Bearer nk-s3cret")),
            Ok(Principal::Code { .. })
        ));
        assert!(matches!(
            coded.admit(&cred("Bearer nk-other")),
            Ok(Principal::Code { .. })
        ));
        assert_eq!(
            coded.admit(&cred("Bearer nk-wrong")),
            Err(AccessError::WrongCode)
        );
        assert_eq!(
            coded.admit(&Credential::None),
            Err(AccessError::CodeRequired)
        );
        assert_eq!(
            coded.admit(&cred("Bearer ")),
            Err(AccessError::CodeRequired)
        );
        assert_eq!(
            hidden.admit(&cred("Bearer sk-or-mine")),
            Err(AccessError::OwnKeyNotAccepted)
        );
        assert!(matches!(
            coded.admit(&cred("Bearer sk-or-mine")),
            Ok(Principal::OwnKey { .. })
        ));
        assert!(matches!(
            open.admit(&cred("Bearer sk-or-mine")),
            Ok(Principal::OwnKey { .. })
        ));
    }

    #[test]
    fn workspaces_hash_and_differ() {
        let p = policy(&["alpha-code", "bravo-code"], false);
        let wa = p.admit(&cred("Bearer nk-alpha-code")).unwrap().workspace();
        let wb = p.admit(&cred("Bearer nk-bravo-code")).unwrap().workspace();
        assert_ne!(wa, wb);
        assert!(wa.starts_with("code-") && !wa.contains("alpha"), "{wa}");
        assert_eq!(Principal::Anonymous.workspace(), "default");
        let k = p.admit(&cred("Bearer sk-or-k")).unwrap().workspace();
        assert!(k.starts_with("key-") && !k.contains("sk-or-k"));
    }

    /// Workspace names are stored with every chat and spend row: the name of a code or key must
    /// never change between versions.
    #[test]
    fn workspace_names_are_the_hex_of_the_hash_as_stored_before() {
        assert_eq!(
            workspace_of_code("alpha-code"),
            format!("code-{}", hex::encode(&sha256("alpha-code")[..16]))
        );
        assert_eq!(
            Principal::OwnKey {
                key: Secret::new("sk-or-k".into())
            }
            .workspace(),
            format!("key-{}", hex::encode(&sha256("sk-or-k")[..16]))
        );
        // A fixed value, so the test does not only compare the code with itself.
        assert_eq!(
            workspace_of_code("alpha-code"),
            "code-b2c1f12508816d80031c7f5645aa0b93"
        );
    }

    #[test]
    fn a_bare_code_is_a_code_on_every_entry_point() {
        let codes = AccessCodes::new(&["secret123".to_string()]);
        assert_eq!(
            Credential::from_authorization(Some("Bearer secret123"), &codes),
            Credential::AccessCode(Secret::new("secret123".into()))
        );
        assert_eq!(
            Credential::from_authorization(Some("Bearer sk-or-mine"), &codes),
            Credential::OwnKey(Secret::new("sk-or-mine".into()))
        );
        assert_eq!(
            Credential::from_authorization(Some("Bearer guess"), &codes),
            Credential::AccessCode(Secret::new("guess".into()))
        );
        assert_eq!(
            Credential::from_authorization(Some("Bearer guess"), &AccessCodes::default()),
            Credential::OwnKey(Secret::new("guess".into()))
        );
    }

    #[test]
    fn gateway_accepts_bare_codes() {
        let codes = AccessCodes::new(&["abc".to_string()]);
        assert_eq!(
            Credential::from_gateway_authorization(Some("Bearer abc"), &codes),
            Credential::AccessCode(Secret::new("abc".into()))
        );
        assert_eq!(
            Credential::from_gateway_authorization(Some("Bearer sk-or-1"), &codes),
            Credential::OwnKey(Secret::new("sk-or-1".into()))
        );
        assert_eq!(
            Credential::from_gateway_authorization(
                Some("Bearer anything"),
                &AccessCodes::default()
            ),
            Credential::None
        );
    }

    #[test]
    fn throttle_counts_failures_per_ip() {
        let t = FailureThrottle::new(3, Duration::from_secs(60));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let now = Instant::now();
        for _ in 0..3 {
            assert!(t.check(ip, now).is_ok());
            t.record_failure(ip, now);
        }
        assert!(matches!(
            t.check(ip, now),
            Err(AccessError::Throttled { .. })
        ));
        assert!(t.check(other, now).is_ok());
        assert!(t.check(ip, now + Duration::from_secs(61)).is_ok());
    }

    #[test]
    fn throttle_keys_ipv6_by_its_64() {
        let t = FailureThrottle::new(2, Duration::from_secs(60));
        let now = Instant::now();
        // One host rotating through its /64 is one client.
        for a in ["2001:db8:1:2::1", "2001:db8:1:2::2"] {
            t.record_failure(a.parse().unwrap(), now);
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let next_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(matches!(
            t.check(same_64, now),
            Err(AccessError::Throttled { .. })
        ));
        assert!(t.check(next_64, now).is_ok());
        // An IPv4-mapped address is its IPv4 client.
        t.record_failure("10.0.0.1".parse().unwrap(), now);
        t.record_failure("::ffff:10.0.0.1".parse().unwrap(), now);
        assert!(t.check("10.0.0.1".parse().unwrap(), now).is_err());
    }
}
