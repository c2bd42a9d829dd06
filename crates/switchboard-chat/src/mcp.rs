//! MCP servers: the tools a chat may use, run by the server (never by the browser).
//!
//! The operator lists servers in the JSON file `SWITCHBOARD_MCP_CONFIG` names, in the format other
//! MCP clients use (`{"mcpServers": {NAME: {"command", "args", "env"} | {"url", "headers"}}}`), plus
//! per server `"approval": "ask" | "auto"` and an optional `"tools"` allow-list. [`Mcp::start`]
//! gives each server a supervisor task: it starts a stdio server as a child process (or connects
//! to a streamable-HTTP one) with the official SDK (`rmcp`), lists its tools, waits until the
//! connection ends, and starts it again after a pause that grows while it keeps failing.
//! [`Mcp::shutdown`] ends the tasks, which stops the children.
//!
//! Secrets: a server's `env` and `headers` go to the child or the server and nowhere else; no log
//! line, error or listing carries them (nor the command line or URL, which may embed tokens).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, ContentBlock, Tool};
use rmcp::service::{Peer, RoleClient};
use rmcp::transport::{StreamableHttpClientTransport, TokioChildProcess};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// The first pause before a failed server is started again; doubled per failure up to
/// [`MAX_RESTART_DELAY`].
const FIRST_RESTART_DELAY: Duration = Duration::from_millis(500);
const MAX_RESTART_DELAY: Duration = Duration::from_secs(30);
/// How long starting a server (spawn or connect, initialize, list tools) may take.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// The most of a tool's result kept and handed to the model.
pub const MAX_RESULT_BYTES: usize = 64 * 1024;

/// Whether a server's calls run at once or wait for a person.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Each call waits for Allow or Deny in the chat (the default).
    #[default]
    Ask,
    /// Calls run as soon as the model makes them.
    Auto,
}

/// How to reach one server.
enum Transport {
    Stdio {
        command: String,
        args: Vec<String>,
        env: BTreeMap<String, String>,
        cwd: Option<PathBuf>,
    },
    Http {
        url: String,
        headers: BTreeMap<String, String>,
    },
}

/// One configured server.
pub struct ServerConfig {
    pub name: String,
    transport: Transport,
    pub approval: Approval,
    /// The only tools offered from this server, when set.
    pub allowed: Option<Vec<String>>,
}

impl std::fmt::Debug for ServerConfig {
    // By hand: `env` and `headers` hold secrets.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("transport", &self.transport_name())
            .field("approval", &self.approval)
            .field("allowed", &self.allowed)
            .finish_non_exhaustive()
    }
}

impl ServerConfig {
    fn transport_name(&self) -> &'static str {
        match self.transport {
            Transport::Stdio { .. } => "stdio",
            Transport::Http { .. } => "http",
        }
    }

    /// `text` (an error from the SDK, which may quote the URL it failed to reach) without the
    /// configuration's URL, header or environment values.
    fn redact(&self, text: &str) -> String {
        let secrets: Vec<&str> = match &self.transport {
            Transport::Stdio { env, .. } => env.values().map(String::as_str).collect(),
            Transport::Http { url, headers } => std::iter::once(url.as_str())
                .chain(headers.values().map(String::as_str))
                .collect(),
        };
        let mut text = text.to_string();
        for secret in secrets.into_iter().filter(|s| s.len() >= 4) {
            text = text.replace(secret, "…");
        }
        text
    }

    fn allows(&self, tool: &str) -> bool {
        self.allowed
            .as_ref()
            .is_none_or(|names| names.iter().any(|n| n == tool))
    }
}

/// The parsed `SWITCHBOARD_MCP_CONFIG` file.
#[derive(Debug, Default)]
pub struct McpConfig {
    /// By name.
    pub servers: Vec<ServerConfig>,
}

#[derive(Deserialize)]
struct FileFormat {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<String, EntryFormat>,
}

/// One entry as other MCP clients write it; their extra keys (`type`, `disabled`, …) are ignored
/// except `disabled: true`, which leaves the server out.
#[derive(Deserialize)]
struct EntryFormat {
    command: Option<String>,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    env: BTreeMap<String, String>,
    cwd: Option<PathBuf>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    approval: Approval,
    tools: Option<Vec<String>>,
    #[serde(default)]
    disabled: bool,
}

impl McpConfig {
    /// Reads and checks the file. The error says what is wrong, never a secret's value.
    pub fn load(path: &Path) -> Result<McpConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        McpConfig::parse(&text)
    }

    /// Parses the file's text.
    pub fn parse(text: &str) -> Result<McpConfig, String> {
        let file: FileFormat = serde_json::from_str(text).map_err(|e| {
            // serde_json's message quotes no input beyond a key name or a type.
            format!("not an {{\"mcpServers\": {{…}}}} JSON object: {e}")
        })?;
        let mut servers = Vec::new();
        for (name, entry) in file.mcp_servers {
            if !valid_name(&name) {
                return Err(format!(
                    "server name `{name}`: use 1 to 64 letters, digits, `_`, `-` or `.`"
                ));
            }
            if entry.disabled {
                continue;
            }
            let transport = match (entry.command, entry.url) {
                (Some(command), None) if !command.trim().is_empty() => Transport::Stdio {
                    command,
                    args: entry.args,
                    env: entry.env,
                    cwd: entry.cwd,
                },
                (None, Some(url)) if url.starts_with("http://") || url.starts_with("https://") => {
                    Transport::Http {
                        url,
                        headers: entry.headers,
                    }
                }
                (None, Some(_)) => {
                    return Err(format!(
                        "server `{name}`: `url` must be http:// or https://"
                    ));
                }
                _ => {
                    return Err(format!(
                        "server `{name}`: give either `command` (stdio) or `url` (streamable HTTP)"
                    ));
                }
            };
            if let Transport::Http { headers, .. } = &transport {
                for (k, v) in headers {
                    if http::HeaderName::try_from(k.as_str()).is_err()
                        || http::HeaderValue::try_from(v.as_str()).is_err()
                    {
                        return Err(format!(
                            "server `{name}`: header `{k}` is not a valid HTTP header"
                        ));
                    }
                }
            }
            servers.push(ServerConfig {
                name,
                transport,
                approval: entry.approval,
                allowed: entry.tools,
            });
        }
        Ok(McpConfig { servers })
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Where a server is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServerState {
    Starting,
    Ready,
    /// It failed to start or its connection ended; it is started again after a pause.
    Failed,
    Stopped,
}

struct Live {
    state: ServerState,
    /// Why it failed (our words, or the SDK's: never the configuration's secrets).
    error: Option<String>,
    peer: Option<Peer<RoleClient>>,
    tools: Vec<Tool>,
    /// A stdio server's process id while it runs.
    pid: Option<u32>,
}

pub(crate) struct Server {
    pub(crate) config: ServerConfig,
    live: tokio::sync::watch::Sender<Live>,
}

impl Server {
    fn live(&self) -> tokio::sync::watch::Ref<'_, Live> {
        self.live.borrow()
    }

    fn set(&self, f: impl FnOnce(&mut Live)) {
        self.live.send_modify(f);
    }
}

/// A server as `GET /api/tools` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: String,
    pub transport: &'static str,
    pub approval: Approval,
    pub state: ServerState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// A stdio server's process id while it runs (not listed: for tests and diagnostics).
    #[serde(skip)]
    pub pid: Option<u32>,
    pub tools: Vec<ToolInfo>,
}

/// A tool as `GET /api/tools` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ToolInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    pub input_schema: Value,
    /// Whether the server's `"tools"` list lets chats use it.
    pub allowed: bool,
}

/// The MCP servers of this instance and their supervisors.
pub struct Mcp {
    servers: Vec<Arc<Server>>,
    stop: CancellationToken,
    tasks: TaskTracker,
}

impl std::fmt::Debug for Mcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .servers
            .iter()
            .map(|s| s.config.name.as_str())
            .collect();
        f.debug_struct("Mcp").field("servers", &names).finish()
    }
}

impl Mcp {
    /// Starts a supervisor per server, on the current runtime. Returns at once: servers become
    /// ready in the background.
    pub fn start(config: McpConfig) -> Arc<Mcp> {
        let mcp = Arc::new(Mcp {
            servers: config
                .servers
                .into_iter()
                .map(|config| {
                    Arc::new(Server {
                        config,
                        live: tokio::sync::watch::Sender::new(Live {
                            state: ServerState::Starting,
                            error: None,
                            peer: None,
                            tools: Vec::new(),
                            pid: None,
                        }),
                    })
                })
                .collect(),
            stop: CancellationToken::new(),
            tasks: TaskTracker::new(),
        });
        for server in &mcp.servers {
            mcp.tasks.spawn(supervise(server.clone(), mcp.stop.clone()));
        }
        mcp.tasks.close();
        mcp
    }

    /// Stops every server and waits until their supervisors have ended.
    pub async fn shutdown(&self) {
        self.stop.cancel();
        self.tasks.wait().await;
    }

    /// Whether a server of this name is configured.
    pub fn has_server(&self, name: &str) -> bool {
        self.servers.iter().any(|s| s.config.name == name)
    }

    /// Every server, its state and its tools.
    pub fn servers(&self) -> Vec<ServerInfo> {
        self.servers
            .iter()
            .map(|s| {
                let live = s.live();
                ServerInfo {
                    name: s.config.name.clone(),
                    transport: s.config.transport_name(),
                    approval: s.config.approval,
                    state: live.state,
                    error: live.error.clone(),
                    pid: live.pid,
                    tools: live
                        .tools
                        .iter()
                        .map(|t| ToolInfo {
                            name: t.name.to_string(),
                            description: t.description.as_ref().map(|d| d.to_string()),
                            input_schema: Value::Object((*t.input_schema).clone()),
                            allowed: s.config.allows(&t.name),
                        })
                        .collect(),
                }
            })
            .collect()
    }

    /// Waits until every server has been started once (ready or failed); for tests and start-up.
    pub async fn wait_started(&self) {
        for server in &self.servers {
            let mut rx = server.live.subscribe();
            let _ = rx.wait_for(|l| l.state != ServerState::Starting).await;
        }
    }

    /// Waits until the server `name` is in a state `ready` accepts (for tests and start-up).
    pub async fn wait_until(
        &self,
        name: &str,
        mut ready: impl FnMut(ServerState, Option<u32>) -> bool,
    ) {
        let Some(server) = self.servers.iter().find(|s| s.config.name == name) else {
            return;
        };
        let mut rx = server.live.subscribe();
        let _ = rx.wait_for(|l| ready(l.state, l.pid)).await;
    }

    /// The tools the servers `names` offer a chat: allowed tools of ready servers, the first
    /// server in `names` winning a name two servers share.
    pub(crate) fn toolbox(&self, names: &[String]) -> Toolbox {
        let mut entries: Vec<ToolEntry> = Vec::new();
        let mut servers = Vec::new();
        for name in names {
            let Some(server) = self.servers.iter().find(|s| &s.config.name == name) else {
                continue;
            };
            servers.push(server.clone());
            for tool in &server.live().tools {
                if server.config.allows(&tool.name) && !entries.iter().any(|e| e.name == tool.name)
                {
                    entries.push(ToolEntry {
                        name: tool.name.to_string(),
                        description: tool.description.as_ref().map(|d| d.to_string()),
                        schema: Value::Object((*tool.input_schema).clone()),
                        server: server.clone(),
                    });
                }
            }
        }
        Toolbox { entries, servers }
    }
}

/// One offered tool.
pub(crate) struct ToolEntry {
    pub(crate) name: String,
    description: Option<String>,
    schema: Value,
    pub(crate) server: Arc<Server>,
}

/// The tools offered in one reply.
pub(crate) struct Toolbox {
    pub(crate) entries: Vec<ToolEntry>,
    /// The chat's servers, for telling "not allowed" from "unknown".
    servers: Vec<Arc<Server>>,
}

impl Toolbox {
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The `tools` of a `chat/completions` request.
    pub(crate) fn definitions(&self) -> Value {
        Value::Array(
            self.entries
                .iter()
                .map(|e| {
                    let mut function = json!({"name": e.name, "parameters": e.schema});
                    if let Some(d) = &e.description {
                        function["description"] = json!(d);
                    }
                    json!({"type": "function", "function": function})
                })
                .collect(),
        )
    }

    pub(crate) fn find(&self, name: &str) -> Option<&ToolEntry> {
        self.entries.iter().find(|e| e.name == name)
    }

    /// Why `name` is not offered, in words for the model.
    pub(crate) fn refusal(&self, name: &str) -> String {
        let listed = self
            .servers
            .iter()
            .any(|s| s.live().tools.iter().any(|t| t.name == name) && !s.config.allows(name));
        if listed {
            format!("refused: the tool `{name}` is not allowed on this server")
        } else {
            format!("refused: there is no tool `{name}` in this chat")
        }
    }
}

/// What a call gave back: the text handed to the model, and whether the tool said it failed.
pub(crate) struct CallOutput {
    pub(crate) text: String,
    pub(crate) is_error: bool,
}

/// Calls `tool` on `server` with `arguments`. Dropping the future cancels the request (the SDK
/// tells the server).
pub(crate) async fn call(
    server: &Server,
    tool: &str,
    arguments: Map<String, Value>,
) -> Result<CallOutput, String> {
    let peer = {
        let live = server.live();
        match (&live.peer, live.state) {
            (Some(peer), ServerState::Ready) => peer.clone(),
            _ => {
                return Err(format!(
                    "the tool server `{}` is not running",
                    server.config.name
                ));
            }
        }
    };
    let params = CallToolRequestParams::new(tool.to_owned()).with_arguments(arguments);
    let result = peer.call_tool(params).await.map_err(|e| {
        let e = server.config.redact(&e.to_string());
        format!("the tool server `{}` failed: {e}", server.config.name)
    })?;
    let mut parts: Vec<String> = Vec::new();
    for block in &result.content {
        match block {
            ContentBlock::Text(t) => parts.push(t.text.clone()),
            ContentBlock::Image(_) => parts.push("[image]".into()),
            ContentBlock::Audio(_) => parts.push("[audio]".into()),
            other => parts.push(serde_json::to_string(other).unwrap_or_default()),
        }
    }
    if parts.is_empty()
        && let Some(structured) = &result.structured_content
    {
        parts.push(structured.to_string());
    }
    let mut text = parts.join("\n");
    if text.len() > MAX_RESULT_BYTES {
        let mut end = MAX_RESULT_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        text.push_str("\n[result cut at 64 KiB]");
    }
    Ok(CallOutput {
        text,
        is_error: result.is_error == Some(true),
    })
}

/// Keeps one server running until `stop`.
async fn supervise(server: Arc<Server>, stop: CancellationToken) {
    let name = server.config.name.clone();
    let mut delay = FIRST_RESTART_DELAY;
    loop {
        server.set(|l| l.state = ServerState::Starting);
        let started = tokio::select! {
            () = stop.cancelled() => break,
            r = tokio::time::timeout(START_TIMEOUT, connect(&server.config)) => r,
        };
        let running = match started {
            Ok(Ok((running, pid))) => {
                server.set(|l| l.pid = pid);
                running
            }
            Ok(Err(error)) => {
                let error = server.config.redact(&error);
                tracing::warn!(server = %name, %error, "an MCP server could not be started");
                server.set(|l| {
                    l.state = ServerState::Failed;
                    l.error = Some(error);
                });
                if pause(&stop, &mut delay).await {
                    break;
                }
                continue;
            }
            Err(_) => {
                tracing::warn!(server = %name, "an MCP server did not start in time");
                server.set(|l| {
                    l.state = ServerState::Failed;
                    l.error = Some("it did not start in time".into());
                });
                if pause(&stop, &mut delay).await {
                    break;
                }
                continue;
            }
        };
        let tools = tokio::select! {
            () = stop.cancelled() => {
                let _ = running.cancel().await;
                break;
            }
            t = tokio::time::timeout(START_TIMEOUT, running.peer().list_all_tools()) => t,
        };
        match tools {
            Ok(Ok(tools)) => {
                tracing::info!(server = %name, tools = tools.len(), "MCP server ready");
                let peer = running.peer().clone();
                server.set(|l| {
                    l.state = ServerState::Ready;
                    l.error = None;
                    l.peer = Some(peer);
                    l.tools = tools;
                });
                delay = FIRST_RESTART_DELAY;
            }
            Ok(Err(e)) => {
                let e = server.config.redact(&e.to_string());
                tracing::warn!(server = %name, error = %e, "listing an MCP server's tools failed");
                server.set(|l| {
                    l.state = ServerState::Failed;
                    l.error = Some(format!("listing its tools failed: {e}"));
                });
                let _ = running.cancel().await;
                if pause(&stop, &mut delay).await {
                    break;
                }
                continue;
            }
            Err(_) => {
                server.set(|l| {
                    l.state = ServerState::Failed;
                    l.error = Some("listing its tools took too long".into());
                });
                let _ = running.cancel().await;
                if pause(&stop, &mut delay).await {
                    break;
                }
                continue;
            }
        }
        let token = running.cancellation_token();
        let ended = running.waiting();
        tokio::pin!(ended);
        let stopping = tokio::select! {
            _ = &mut ended => false,
            () = stop.cancelled() => true,
        };
        server.set(|l| {
            l.peer = None;
            l.pid = None;
            l.state = if stopping {
                ServerState::Stopped
            } else {
                ServerState::Failed
            };
            if !stopping {
                l.error = Some("the connection ended; starting it again".into());
            }
        });
        if stopping {
            token.cancel();
            let _ = ended.await;
            break;
        }
        tracing::warn!(server = %name, "an MCP server's connection ended; restarting it");
        if pause(&stop, &mut delay).await {
            break;
        }
    }
    server.set(|l| {
        l.state = ServerState::Stopped;
        l.peer = None;
        l.pid = None;
    });
}

/// Waits before the next start; `true` when told to stop meanwhile.
async fn pause(stop: &CancellationToken, delay: &mut Duration) -> bool {
    let wait = *delay;
    *delay = (*delay * 2).min(MAX_RESTART_DELAY);
    tokio::select! {
        () = stop.cancelled() => true,
        () = tokio::time::sleep(wait) => false,
    }
}

type Running = rmcp::service::RunningService<RoleClient, ()>;

/// The running client, and a stdio server's process id.
async fn connect(config: &ServerConfig) -> Result<(Running, Option<u32>), String> {
    match &config.transport {
        Transport::Stdio {
            command,
            args,
            env,
            cwd,
        } => {
            let mut cmd = tokio::process::Command::new(command);
            cmd.args(args).envs(env).kill_on_drop(true);
            if let Some(cwd) = cwd {
                cmd.current_dir(cwd);
            }
            // The server's own log is not ours to keep: it may echo what it was sent.
            let (child, _) = TokioChildProcess::builder(cmd)
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("could not start its command: {e}"))?;
            let pid = child.id();
            let running = ().serve(child).await.map_err(|e| format!("it did not initialize: {e}"))?;
            Ok((running, pid))
        }
        Transport::Http { url, headers } => {
            install_crypto();
            let mut custom = std::collections::HashMap::new();
            for (k, v) in headers {
                let (Ok(k), Ok(mut v)) = (
                    http::HeaderName::try_from(k.as_str()),
                    http::HeaderValue::try_from(v.as_str()),
                ) else {
                    continue;
                };
                v.set_sensitive(true);
                custom.insert(k, v);
            }
            let config = rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url.as_str())
                .custom_headers(custom);
            let transport = StreamableHttpClientTransport::from_config(config);
            let running =
                ().serve(transport)
                    .await
                    .map_err(|e| format!("it did not initialize: {e}"))?;
            Ok((running, None))
        }
    }
}

/// The SDK's HTTP client brings no TLS crypto of its own: use the one the rest of the server
/// uses (ring). Installing twice is harmless.
fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_files_parse_and_bad_ones_say_why_without_secrets() {
        let config = McpConfig::parse(
            r#"{"mcpServers": {
                "files": {"command": "npx", "args": ["x"], "env": {"TOKEN": "s3cret"}, "approval": "auto", "tools": ["read"]},
                "web": {"type": "http", "url": "https://example.com/mcp", "headers": {"Authorization": "Bearer s3cret"}},
                "off": {"command": "nothing", "disabled": true}
            }}"#,
        )
        .unwrap();
        assert_eq!(config.servers.len(), 2);
        assert_eq!(config.servers[0].name, "files");
        assert_eq!(config.servers[0].approval, Approval::Auto);
        assert_eq!(config.servers[1].approval, Approval::Ask);
        assert!(config.servers[0].allows("read") && !config.servers[0].allows("write"));
        assert!(config.servers[1].allows("anything"));
        assert!(!format!("{config:?}").contains("s3cret"));
        let said = config.servers[1].redact(
            "error sending request for url (https://example.com/mcp): Bearer s3cret refused",
        );
        assert!(
            !said.contains("example.com") && !said.contains("s3cret"),
            "{said}"
        );

        for (bad, says) in [
            (r#"{"mcpServers": {"a": {}}}"#, "either `command`"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "url": "https://e"}}}"#,
                "either `command`",
            ),
            (
                r#"{"mcpServers": {"a b": {"command": "x"}}}"#,
                "server name",
            ),
            (r#"{"mcpServers": {"a": {"url": "ftp://e"}}}"#, "http://"),
            (
                r#"{"mcpServers": {"a": {"command": "x", "approval": "sometimes"}}}"#,
                "JSON",
            ),
            (
                r#"{"mcpServers": {"a": {"url": "https://e", "headers": {"X": "s3cret\n"}}}}"#,
                "header `X`",
            ),
        ] {
            let e = McpConfig::parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("s3cret"), "{e}");
        }
    }
}
