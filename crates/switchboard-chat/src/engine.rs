//! [`ChatEngine`]: what the web layer calls. It owns this instance's identity and lease, the
//! replies it generates, the hubs of the chats browsers follow here, and the tasks behind them —
//! every one tracked, so shutdown is orderly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use switchboard_core::Settings;
use switchboard_core::secret::Secret;
use switchboard_store::{
    Chat, ChatSettings, ChatSnapshot, EventDraft, Message, MessageFinish, MessageStatus,
    NewMessage, NewTurn, PathChange, Role, Store, StoreError, StreamingReply, TurnParent,
};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::bus::{self, Bus, Listener};
use crate::context::ModelLimits;
use crate::error::ChatError;
use crate::generate::{COMPACTED_KINDS, Generation};
use crate::hub::{Hubs, Subscription};
use crate::now_ms;
use crate::view::MessageView;

/// How the engine behaves; from [`Settings`] in production, by hand in tests.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Sent upstream as `X-Title`.
    pub app_name: String,
    /// Sent upstream as `HTTP-Referer`.
    pub site_url: Option<String>,
    pub first_byte_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_reply_bytes: usize,
    pub lease_timeout: Duration,
    pub shutdown_grace: Duration,
    /// `OPENROUTER_PROVIDER`: provider preferences a chat's own are laid over.
    pub provider_default: Option<switchboard_core::routing::ProviderPreferences>,
    /// The MCP servers chats may use (`SWITCHBOARD_MCP_CONFIG`), started by the caller; the
    /// engine stops them at shutdown, after the replies that use them.
    pub mcp: Option<Arc<crate::mcp::Mcp>>,
    /// How long one tool call may run.
    pub tool_timeout: Duration,
    /// Rounds of tool calls one reply may make.
    pub max_tool_steps: u32,
}

impl EngineConfig {
    pub fn from_settings(s: &Settings) -> EngineConfig {
        EngineConfig {
            app_name: s.app_name.clone(),
            site_url: s.site_url.clone(),
            first_byte_timeout: s.upstream_first_byte_timeout,
            idle_timeout: s.upstream_idle_timeout,
            max_reply_bytes: s.max_reply_bytes,
            lease_timeout: s.lease_timeout,
            shutdown_grace: s.shutdown_grace,
            provider_default: s.openrouter_provider.clone(),
            mcp: None,
            tool_timeout: s.tool_timeout,
            max_tool_steps: s.max_tool_steps,
        }
    }

    /// How often the lease is renewed and orphaned replies are looked for: six times per lease
    /// timeout, so a dead instance's replies are closed within about 1.2 timeouts.
    fn sweep_every(&self) -> Duration {
        (self.lease_timeout / 6).clamp(Duration::from_millis(100), Duration::from_secs(5))
    }
}

/// Where a reply's request goes, and with which key.
pub struct Upstream {
    /// The full `…/chat/completions` URL.
    pub url: String,
    /// The shared client, or one pinned to a vetted user-set endpoint.
    pub http: reqwest::Client,
    /// The server's key or the user's own, for this reply only; never stored.
    pub key: Secret,
    /// Held while the reply runs, dropped with it: the caller's count of its calls on `http`.
    pub in_flight: Option<Box<dyn std::any::Any + Send + Sync>>,
}

/// What the user sends in a turn.
#[derive(Clone)]
pub struct UserTurn {
    pub content: String,
    /// Image data URLs.
    pub images: Vec<String>,
    /// Files (PDFs, text) stored with the message and sent with the file parser.
    pub files: Vec<UserFile>,
}

/// A file a user attached, validated by the caller.
#[derive(Clone)]
pub struct UserFile {
    pub name: String,
    pub mime: String,
    /// Base64, as its data URL carried it.
    pub data: String,
    /// Decoded length in bytes.
    pub size: i64,
}

/// A reply to start, validated in full by the caller before anything is written: the model is
/// offered, the provider configured, the credential present, the endpoint vetted.
pub struct ReplyPlan {
    pub workspace: String,
    pub chat: Chat,
    /// Where the turn goes in the chat's tree: after the active path, or beside an earlier
    /// message (edit, regenerate), which moves the path and keeps what it leaves.
    pub parent: TurnParent,
    /// The user's message; `None`: replies alone, under `parent` (a regenerate). Shared: a
    /// compare's plans all carry the same message (its images and files can be megabytes).
    pub user: Option<Arc<UserTurn>>,
    pub model: String,
    pub provider: String,
    pub limits: ModelLimits,
    /// New chat settings, saved with the turn (the model a message was sent with).
    pub settings: Option<ChatSettings>,
    pub upstream: Upstream,
    pub reasoning_effort: Option<String>,
    /// Whether the server's key pays for this reply: then it goes into the spend ledger.
    pub paid_by_server: bool,
    /// Whether a complete reply proves the user's own key (it went to a configured provider, not
    /// an endpoint the user chose): the workspace is then marked verified, for its storage quota.
    pub verifies_key: bool,
    /// Whether the model can call tools (its catalog entry says so): only then are the chat's
    /// MCP tools offered.
    pub tools: bool,
    /// The model that names the chat (`SWITCHBOARD_TITLE_MODEL`, or a small fast one the server
    /// found on the reply's provider); `None`: the reply's own model, with reasoning off.
    pub title_model: Option<String>,
}

/// The messages a started turn stored.
#[derive(Debug, Clone)]
pub struct StartedReply {
    pub user_message_id: Option<String>,
    pub assistant_message_id: String,
}

/// The messages a started turn of several replies (a compare) stored.
#[derive(Debug, Clone)]
pub struct StartedTurn {
    pub user_message_id: Option<String>,
    /// In the order of the plans.
    pub assistant_message_ids: Vec<String>,
}

/// A reply this instance is generating.
struct Running {
    message_id: String,
    stop: CancellationToken,
}

pub(crate) struct Inner {
    pub(crate) store: Store,
    pub(crate) config: EngineConfig,
    /// This process's id: the owner recorded on its replies, the key of its lease.
    pub(crate) instance: String,
    pub(crate) hubs: Hubs,
    /// By chat id: the replies of the chat's running turn (several in a compare).
    running: Mutex<HashMap<String, Vec<Running>>>,
    /// Replies (and their title requests).
    pub(crate) generations: TaskTracker,
    /// The lease, the sweeper and the bus.
    background: TaskTracker,
    /// Set at shutdown: no new replies.
    closing: CancellationToken,
    /// Set when the shutdown grace has run out: running replies end as `interrupted`.
    pub(crate) interrupt: CancellationToken,
    background_stop: CancellationToken,
    /// Whether this process is the database's only user (SQLite): then every reply it does not
    /// run itself is an orphan, whatever its owner's last heartbeat says.
    exclusive: bool,
    /// The spend ledger, written in batches by a background task.
    pub(crate) ledger: crate::ledger::Ledger,
    /// Where running replies write, in groups.
    pub(crate) journal: crate::journal::Journal,
    /// The runtime the engine was started on: replies run there, not on the runtime of the
    /// connection that asked for them, which may be gone before they finish.
    pub(crate) runtime: tokio::runtime::Handle,
}

/// The chat engine of one instance. Cheap to clone.
#[derive(Clone)]
pub struct ChatEngine {
    inner: Arc<Inner>,
}

impl ChatEngine {
    /// Takes a lease for this instance, finishes the replies that no live instance owns, and
    /// starts the lease renewal, the sweeper and the bus.
    pub async fn start(store: Store, config: EngineConfig) -> Result<ChatEngine, StoreError> {
        let exclusive = store.backend() == switchboard_store::Backend::Sqlite;
        let instance = format!(
            "i{}_{}",
            std::process::id(),
            Store::new_message_id().trim_start_matches("m_")
        );
        store.heartbeat(&instance).await?;
        let bus: Box<dyn Bus> = match bus::Postgres::connect(&store).await? {
            Some(pg) => Box::new(pg),
            None => Box::new(bus::InProcess),
        };
        let background_stop = CancellationToken::new();
        let (ledger, write_ledger) =
            crate::ledger::Ledger::new(store.clone(), background_stop.clone());
        let (journal, write_journal) = crate::journal::Journal::new(
            store.clone(),
            crate::generate::WRITE_EVERY,
            background_stop.clone(),
        );
        let inner = Arc::new(Inner {
            store,
            config,
            instance,
            hubs: Hubs::default(),
            running: Mutex::new(HashMap::new()),
            generations: TaskTracker::new(),
            background: TaskTracker::new(),
            closing: CancellationToken::new(),
            interrupt: CancellationToken::new(),
            background_stop,
            exclusive,
            ledger,
            journal,
            runtime: tokio::runtime::Handle::current(),
        });
        let recovered = inner.sweep().await?;
        if recovered > 0 {
            tracing::warn!(
                recovered,
                "replies left unfinished by a stopped instance were marked interrupted"
            );
        }
        let listener: Arc<dyn Listener> = inner.clone();
        inner
            .background
            .spawn(bus.run(listener, inner.background_stop.clone()));
        inner.background.spawn(inner.clone().keep_lease());
        inner.background.spawn(write_ledger);
        inner.background.spawn(write_journal);
        Ok(ChatEngine { inner })
    }

    /// Where paid calls record what they cost (written in batches).
    pub fn ledger(&self) -> &crate::ledger::Ledger {
        &self.inner.ledger
    }

    /// This instance's id (the owner recorded on its replies).
    pub fn instance_id(&self) -> &str {
        &self.inner.instance
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Claims the chat and stores the turn (one transaction), then generates the reply in a task
    /// of its own. Nothing is written when the chat is busy, gone or the instance is closing.
    pub async fn start_reply(&self, plan: ReplyPlan) -> Result<StartedReply, ChatError> {
        let started = self.start_replies(vec![plan]).await?;
        Ok(StartedReply {
            user_message_id: started.user_message_id,
            assistant_message_id: started
                .assistant_message_ids
                .into_iter()
                .next()
                .expect("one plan, one reply"),
        })
    }

    /// One turn answered by several replies at once (a compare), siblings in the chat's tree:
    /// the turn (workspace, chat, where it goes, the user's message, new settings) is the first
    /// plan's; each plan brings its model, provider, credential and upstream. The turn is one
    /// transaction and each reply a detached generation of its own, stoppable alone.
    pub async fn start_replies(&self, plans: Vec<ReplyPlan>) -> Result<StartedTurn, ChatError> {
        let inner = &self.inner;
        if inner.closing.is_cancelled() {
            return Err(ChatError::ShuttingDown);
        }
        let Some(first) = plans.first() else {
            return Err(ChatError::NoReplies);
        };
        let chat_id = first.chat.id.clone();
        let replies: Vec<(String, CancellationToken)> = plans
            .iter()
            .map(|_| (Store::new_message_id(), CancellationToken::new()))
            .collect();
        // Registered before the replies are stored, so the sweeper never takes a reply being
        // born here for an orphan; unregistered if anything below fails or the caller goes away.
        let registration = Registration::new(inner, &chat_id, &replies)?;
        let mut messages = Vec::with_capacity(plans.len() + 1);
        let mut files = Vec::new();
        if let Some(u) = &first.user {
            let mut new = NewMessage::new(Role::User, u.content.clone());
            let user_id = Store::new_message_id();
            new.id = Some(user_id.clone());
            let mut attachments: Vec<serde_json::Value> =
                u.images.iter().map(|i| json!(i)).collect();
            for f in &u.files {
                let file = switchboard_store::NewFile {
                    id: switchboard_store::NewFile::new_id(),
                    message_id: user_id.clone(),
                    name: f.name.clone(),
                    mime: f.mime.clone(),
                    data: f.data.clone(),
                    size: f.size,
                };
                attachments.push(crate::files::reference(&file));
                files.push(file);
            }
            if !attachments.is_empty() {
                new.attachments = Some(serde_json::Value::Array(attachments));
            }
            messages.push(new);
        }
        for (plan, (id, _)) in plans.iter().zip(&replies) {
            let mut reply = NewMessage::streaming_reply(plan.model.clone());
            reply.id = Some(id.clone());
            reply.provider = Some(plan.provider.clone());
            messages.push(reply);
        }
        let turn = NewTurn {
            parent: first.parent.clone(),
            messages,
            owner: inner.instance.clone(),
            settings: first.settings.clone(),
            files,
        };
        // Rendered before the transaction: it holds the chat (and on SQLite, every writer).
        let htmls =
            crate::view::render_texts(turn.messages.iter().map(|m| m.content.clone()).collect())
                .await;
        let started = inner
            .store
            .start_turn(&first.workspace, &chat_id, &turn, |replaced, messages| {
                describe_turn(replaced, messages, htmls)
            })
            .await;
        let started = match started {
            Ok(Some(started)) => started,
            Ok(None) => return Err(ChatError::NotFound),
            Err(StoreError::Busy { .. }) => return Err(ChatError::Busy),
            Err(e) => return Err(e.into()),
        };
        inner.hubs.stored(&chat_id, started.events);
        let mut stored = started.messages.into_iter();
        let user_message_id = first
            .user
            .as_ref()
            .and_then(|_| stored.next())
            .map(|m| m.id);
        // From here each generation unregisters itself when it ends.
        registration.hand_over();
        let assistant_message_ids = replies.iter().map(|(id, _)| id.clone()).collect();
        for (i, ((plan, reply), (_, stop))) in
            plans.into_iter().zip(stored).zip(replies).enumerate()
        {
            let mut generation = Generation::new(inner.clone(), plan, reply, stop);
            generation.names_chat = i == 0;
            inner.generations.spawn_on(generation.run(), &inner.runtime);
        }
        Ok(StartedTurn {
            user_message_id,
            assistant_message_ids,
        })
    }

    /// Asks the chat's running replies to stop — all of them, or only `message_id` — wherever
    /// they run: the owner drops the upstream request and keeps the text. Nothing to stop is not
    /// an error.
    pub async fn stop(
        &self,
        workspace: &str,
        chat_id: &str,
        message_id: Option<&str>,
    ) -> Result<(), ChatError> {
        self.inner
            .store
            .request_stop(workspace, chat_id, message_id)
            .await?;
        // Here at once; another instance hears it through the bus (or sees the flag).
        self.inner.stop_local(chat_id, message_id);
        Ok(())
    }

    /// Makes `message_id` part of the chat's active path (a branch switch, or "continue with
    /// this" after a compare) and announces the change as a `branch` event.
    pub async fn select(
        &self,
        workspace: &str,
        chat_id: &str,
        message_id: &str,
    ) -> Result<PathChange, ChatError> {
        let change = self
            .inner
            .store
            .select_message(workspace, chat_id, message_id, |joined, left| {
                vec![EventDraft::new(
                    "branch",
                    message_id,
                    json!({"selected": message_id, "joined": joined, "left": left}).to_string(),
                )]
            })
            .await?
            .ok_or(ChatError::MessageNotFound)?;
        self.inner.hubs.stored(chat_id, change.events.clone());
        Ok(change)
    }

    /// The MCP servers chats may use, when configured.
    pub fn mcp(&self) -> Option<&Arc<crate::mcp::Mcp>> {
        self.inner.config.mcp.as_ref()
    }

    /// Allows or denies a tool call that waits in the chat's running reply, from any device and
    /// any instance: the decision is stored as a `tool_decision` event, which the generation
    /// (wherever it runs) follows. The first decision counts.
    pub async fn decide_tool_call(
        &self,
        workspace: &str,
        chat_id: &str,
        call_id: &str,
        approve: bool,
    ) -> Result<(), ChatError> {
        let store = &self.inner.store;
        if store.get_chat(workspace, chat_id).await?.is_none() {
            return Err(ChatError::NotFound);
        }
        // The waiting call is in one of the running turn's replies: the path's last message or a
        // compare's reply beside it.
        let Some(snapshot) = store.chat_snapshot(workspace, chat_id, None, 1).await? else {
            return Err(ChatError::NotFound);
        };
        let mut candidates = snapshot.messages;
        for sibling in snapshot
            .siblings
            .iter()
            .filter(|s| s.status == MessageStatus::Streaming)
        {
            candidates.extend(store.get_message(workspace, chat_id, &sibling.id).await?);
        }
        let reply = candidates
            .into_iter()
            .filter(|m| m.status == MessageStatus::Streaming)
            .find(|m| {
                m.tool_calls
                    .as_ref()
                    .and_then(|c| c.as_array())
                    .is_some_and(|calls| {
                        calls
                            .iter()
                            .any(|c| c["id"] == call_id && c["state"] == "waiting")
                    })
            })
            .ok_or(ChatError::NoWaitingToolCall)?;
        let data = json!({"message_id": reply.id, "call_id": call_id, "approve": approve});
        self.inner
            .emit(chat_id, "tool_decision", &reply.id, data.to_string())
            .await?;
        Ok(())
    }

    /// Stores an event that belongs to no reply (a new title, deleted messages) and announces it.
    pub async fn emit(
        &self,
        chat_id: &str,
        kind: &str,
        message_id: &str,
        data: String,
    ) -> Result<(), StoreError> {
        self.inner.emit(chat_id, kind, message_id, data).await
    }

    /// Follow the chat's events after `after` (the caller has checked the chat is theirs).
    pub fn subscribe(&self, chat_id: &str, after: i64) -> Subscription {
        Subscription::new(
            self.inner.store.clone(),
            self.inner.hubs.hub(chat_id),
            after,
        )
    }

    /// The chat and its latest messages in one snapshot.
    pub async fn snapshot(
        &self,
        workspace: &str,
        chat_id: &str,
        before_seq: Option<i64>,
        limit: u32,
    ) -> Result<Option<ChatSnapshot>, StoreError> {
        self.inner
            .store
            .chat_snapshot(workspace, chat_id, before_seq, limit)
            .await
    }

    /// How many replies this instance is generating.
    pub fn running(&self) -> usize {
        self.inner.lock_running().values().map(Vec::len).sum()
    }

    /// How many chats browsers follow on this instance.
    pub fn followed(&self) -> usize {
        self.inner.hubs.len()
    }

    /// Graceful shutdown: start no new reply, let running ones finish for up to the grace period,
    /// then end the rest as `interrupted` with their text, stop the background tasks and give up
    /// the lease, so other instances need not wait for it to expire.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        inner.closing.cancel();
        inner.generations.close();
        let running: usize = inner.lock_running().values().map(Vec::len).sum();
        if running > 0 {
            tracing::info!(running, grace = ?inner.config.shutdown_grace, "waiting for running replies to finish");
        }
        if tokio::time::timeout(inner.config.shutdown_grace, inner.generations.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = inner.lock_running().values().map(Vec::len).sum::<usize>(),
                "shutdown grace is over; interrupting the replies still running"
            );
            inner.interrupt.cancel();
            // Each one only writes its final state now.
            let _ = tokio::time::timeout(Duration::from_secs(15), inner.generations.wait()).await;
        }
        // Lookups of what stopped calls cost record what they know now, before the ledger's
        // last batch is written.
        inner.ledger.finish_lookups().await;
        if let Some(mcp) = &inner.config.mcp {
            mcp.shutdown().await;
        }
        inner.background_stop.cancel();
        inner.background.close();
        inner.background.wait().await;
        if let Err(e) = inner.store.release_lease(&inner.instance).await {
            tracing::warn!(error = %e, "could not release this instance's lease");
        }
    }
}

/// The replies of a turn registered as running here before they are stored; dropped unhanded
/// (an error, or the request's future dropped mid-way when its client left), it unregisters
/// them, so the chat is never left claimed by replies that do not exist.
struct Registration<'a> {
    inner: &'a Inner,
    chat_id: String,
    message_ids: Vec<String>,
    handed_over: bool,
}

impl<'a> Registration<'a> {
    fn new(
        inner: &'a Inner,
        chat_id: &str,
        replies: &[(String, CancellationToken)],
    ) -> Result<Registration<'a>, ChatError> {
        let mut running = inner.lock_running();
        // One turn per chat on this instance; the store checks across instances.
        if running.contains_key(chat_id) {
            return Err(ChatError::Busy);
        }
        running.insert(
            chat_id.to_owned(),
            replies
                .iter()
                .map(|(id, stop)| Running {
                    message_id: id.clone(),
                    stop: stop.clone(),
                })
                .collect(),
        );
        Ok(Registration {
            inner,
            chat_id: chat_id.to_owned(),
            message_ids: replies.iter().map(|(id, _)| id.clone()).collect(),
            handed_over: false,
        })
    }

    fn hand_over(mut self) {
        self.handed_over = true;
    }
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        if !self.handed_over {
            for id in &self.message_ids {
                self.inner.forget(&self.chat_id, id);
            }
        }
    }
}

/// The events that announce a turn: the messages that left the active path (an edit or a
/// regenerate branches off), then each new message.
/// `htmls`: each message's content rendered, in order.
fn describe_turn(replaced: &[String], messages: &[Message], htmls: Vec<String>) -> Vec<EventDraft> {
    let mut events = Vec::with_capacity(messages.len() + 1);
    if !replaced.is_empty()
        && let Some(first) = messages.first()
    {
        events.push(EventDraft::new(
            "branch",
            &first.id,
            json!({"selected": first.id, "joined": [], "left": replaced}).to_string(),
        ));
    }
    let mut htmls = htmls.into_iter();
    for m in messages {
        let html = htmls.next().unwrap_or_default();
        events.push(EventDraft::new(
            "message",
            &m.id,
            json!({"message": MessageView::with_html(m, html)}).to_string(),
        ));
    }
    events
}

impl Inner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<Running>>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply `message_id` of `chat_id` is no longer generated here.
    pub(crate) fn forget(&self, chat_id: &str, message_id: &str) {
        let mut running = self.lock_running();
        if let Some(turn) = running.get_mut(chat_id) {
            turn.retain(|r| r.message_id != message_id);
            if turn.is_empty() {
                running.remove(chat_id);
            }
        }
    }

    /// Stops the chat's replies running here: all, or only `message_id`.
    fn stop_local(&self, chat_id: &str, message_id: Option<&str>) {
        if let Some(turn) = self.lock_running().get(chat_id) {
            for r in turn
                .iter()
                .filter(|r| message_id.is_none_or(|id| r.message_id == id))
            {
                r.stop.cancel();
            }
        }
    }

    fn runs(&self, chat_id: &str, message_id: &str) -> bool {
        self.lock_running()
            .get(chat_id)
            .is_some_and(|turn| turn.iter().any(|r| r.message_id == message_id))
    }

    pub(crate) async fn emit(
        &self,
        chat_id: &str,
        kind: &str,
        message_id: &str,
        data: String,
    ) -> Result<(), StoreError> {
        let stored = self
            .store
            .append_chat_events(chat_id, &[EventDraft::new(kind, message_id, data)])
            .await?;
        self.hubs.stored(chat_id, stored);
        Ok(())
    }

    /// Renew the lease and close orphaned replies, until shutdown.
    async fn keep_lease(self: Arc<Self>) {
        let every = self.config.sweep_every();
        loop {
            tokio::select! {
                () = self.background_stop.cancelled() => return,
                () = tokio::time::sleep(every) => {}
            }
            if let Err(e) = self.store.heartbeat(&self.instance).await {
                tracing::warn!(error = %e, "could not renew this instance's lease");
                continue;
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "looking for orphaned replies failed");
            }
        }
    }

    /// Finish as `interrupted` every streaming reply that no live instance is generating: its
    /// owner's lease expired, it was stored by an older version, or it is this instance's own
    /// but nothing here runs it any more (its final write failed). Returns how many.
    async fn sweep(&self) -> Result<usize, StoreError> {
        let replies = self
            .store
            .streaming_replies(self.config.lease_timeout)
            .await?;
        let mut finished = 0;
        for reply in replies {
            let orphan = match &reply.owner {
                Some(owner) if *owner == self.instance => {
                    !self.runs(&reply.chat_id, &reply.message_id)
                }
                Some(_) => self.exclusive || !reply.owner_alive,
                None => true,
            };
            if orphan && self.finish_orphan(&reply).await? {
                finished += 1;
            }
        }
        Ok(finished)
    }

    async fn finish_orphan(&self, orphan: &StreamingReply) -> Result<bool, StoreError> {
        let Some(mut message) = self.store.reply(&orphan.message_id).await? else {
            return Ok(false);
        };
        if message.status != MessageStatus::Streaming {
            return Ok(false);
        }
        message.status = MessageStatus::Interrupted;
        message.finished_at = Some(now_ms());
        let view = MessageView::event_json(message.clone()).await;
        let finish = MessageFinish {
            chat_id: message.chat_id.clone(),
            message_id: message.id.clone(),
            owner: orphan.owner.clone(),
            status: MessageStatus::Interrupted,
            content: message.content.clone(),
            reasoning: message.reasoning.clone(),
            reasoning_details: None,
            tool_calls: None,
            annotations: None,
            usage: Default::default(),
            finish_reason: None,
            error_code: None,
            error_message: None,
            finished_at: message.finished_at.unwrap_or_else(now_ms),
            generation_id: None,
            provider: None,
            model: None,
            first_token_at: None,
            reasoning_ended_at: None,
            events: vec![EventDraft::new("done", &message.id, view)],
            compact: COMPACTED_KINDS.iter().map(|k| k.to_string()).collect(),
            attachments: None,
            files: Vec::new(),
        };
        match self.store.finish_message(&finish).await? {
            Some(events) => {
                tracing::info!(message_id = %message.id, "a reply whose instance stopped was marked interrupted");
                self.hubs.stored(&message.chat_id, events);
                Ok(true)
            }
            None => Ok(false),
        }
    }
}

impl Listener for Inner {
    fn stored(&self, chat_id: &str, seq: i64) {
        self.hubs.advance(chat_id, seq, None);
    }

    fn stop(&self, chat_id: &str, message_id: Option<&str>) {
        self.stop_local(chat_id, message_id);
    }

    fn resync(&self) {
        self.hubs.resync();
        // A stop announced while the bus was down is still flagged on the reply: look.
        let running: Vec<(String, String, CancellationToken)> = self
            .lock_running()
            .iter()
            .flat_map(|(chat, turn)| {
                turn.iter()
                    .map(|r| (chat.clone(), r.message_id.clone(), r.stop.clone()))
            })
            .collect();
        let store = self.store.clone();
        self.background.spawn_on(
            async move {
                for (_, message_id, stop) in running {
                    if store.stop_requested(&message_id).await.unwrap_or(false) {
                        stop.cancel();
                    }
                }
            },
            &self.runtime,
        );
    }
}
