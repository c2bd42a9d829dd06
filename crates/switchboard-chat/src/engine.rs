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
    NewMessage, NewTurn, Role, Store, StoreError, StreamingReply,
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
}

/// What the user sends in a turn.
pub struct UserTurn {
    pub content: String,
    /// Image data URLs.
    pub images: Vec<String>,
}

/// A reply to start, validated in full by the caller before anything is written: the model is
/// offered, the provider configured, the credential present, the endpoint vetted.
pub struct ReplyPlan {
    pub workspace: String,
    pub chat: Chat,
    /// Replace the messages from this seq on (edit, regenerate), in the same transaction.
    pub truncate_from: Option<i64>,
    /// The user's message; `None` answers the last one again.
    pub user: Option<UserTurn>,
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
    /// By chat id.
    running: Mutex<HashMap<String, Running>>,
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
        let inner = &self.inner;
        if inner.closing.is_cancelled() {
            return Err(ChatError::ShuttingDown);
        }
        let chat_id = plan.chat.id.clone();
        let reply_id = Store::new_message_id();
        let stop = CancellationToken::new();
        // Registered before the reply is stored, so the sweeper never takes a reply being born
        // here for an orphan; unregistered if anything below fails or the caller goes away.
        let registration = Registration::new(inner, &chat_id, &reply_id, &stop)?;
        let mut messages = Vec::with_capacity(2);
        if let Some(u) = &plan.user {
            let mut new = NewMessage::new(Role::User, u.content.clone());
            if !u.images.is_empty() {
                new.attachments = Some(json!(u.images));
            }
            messages.push(new);
        }
        let mut reply = NewMessage::streaming_reply(plan.model.clone());
        reply.id = Some(reply_id.clone());
        reply.provider = Some(plan.provider.clone());
        messages.push(reply);
        let turn = NewTurn {
            truncate_from: plan.truncate_from,
            messages,
            owner: inner.instance.clone(),
            settings: plan.settings.clone(),
        };
        let started = inner
            .store
            .start_turn(&plan.workspace, &chat_id, &turn, describe_turn)
            .await;
        let started = match started {
            Ok(Some(started)) => started,
            Ok(None) => return Err(ChatError::NotFound),
            Err(StoreError::Busy { .. }) => return Err(ChatError::Busy),
            Err(e) => return Err(e.into()),
        };
        inner.hubs.stored(&chat_id, started.events);
        let mut stored = started.messages;
        let reply = stored.pop().expect("the reply was stored");
        let user_message_id = stored.pop().map(|m| m.id);
        let generation = Generation::new(inner.clone(), plan, reply, stop);
        // From here the generation unregisters itself when it ends.
        registration.hand_over();
        inner.generations.spawn_on(generation.run(), &inner.runtime);
        Ok(StartedReply {
            user_message_id,
            assistant_message_id: reply_id,
        })
    }

    /// Asks the chat's running reply to stop, wherever it runs: the owner drops the upstream
    /// request and keeps the text. Nothing to stop is not an error.
    pub async fn stop(&self, workspace: &str, chat_id: &str) -> Result<(), ChatError> {
        self.inner.store.request_stop(workspace, chat_id).await?;
        // Here at once; another instance hears it through the bus (or sees the flag).
        self.inner.stop_local(chat_id);
        Ok(())
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
        let last = store
            .list_messages_page(workspace, chat_id, None, 1)
            .await?;
        let reply = last
            .into_iter()
            .next()
            .filter(|m| m.status == MessageStatus::Streaming)
            .filter(|m| {
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
        self.inner.lock_running().len()
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
        let running = inner.lock_running().len();
        if running > 0 {
            tracing::info!(running, grace = ?inner.config.shutdown_grace, "waiting for running replies to finish");
        }
        if tokio::time::timeout(inner.config.shutdown_grace, inner.generations.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                running = inner.lock_running().len(),
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

/// A reply registered as running here before it is stored; dropped unhanded (an error, or the
/// request's future dropped mid-way when its client left), it unregisters the reply, so the chat
/// is never left claimed by a reply that does not exist.
struct Registration<'a> {
    inner: &'a Inner,
    chat_id: String,
    message_id: String,
    handed_over: bool,
}

impl<'a> Registration<'a> {
    fn new(
        inner: &'a Inner,
        chat_id: &str,
        message_id: &str,
        stop: &CancellationToken,
    ) -> Result<Registration<'a>, ChatError> {
        let mut running = inner.lock_running();
        if running.contains_key(chat_id) {
            return Err(ChatError::Busy);
        }
        running.insert(
            chat_id.to_owned(),
            Running {
                message_id: message_id.to_owned(),
                stop: stop.clone(),
            },
        );
        Ok(Registration {
            inner,
            chat_id: chat_id.to_owned(),
            message_id: message_id.to_owned(),
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
            self.inner.forget(&self.chat_id, &self.message_id);
        }
    }
}

/// The events that announce a turn: the messages it replaced, then each new message.
fn describe_turn(deleted: &[String], messages: &[Message]) -> Vec<EventDraft> {
    let mut events = Vec::with_capacity(messages.len() + 1);
    if !deleted.is_empty() {
        events.push(EventDraft::new(
            "deleted",
            "",
            json!({"message_ids": deleted}).to_string(),
        ));
    }
    for m in messages {
        events.push(EventDraft::new(
            "message",
            &m.id,
            json!({"message": MessageView::new(m)}).to_string(),
        ));
    }
    events
}

impl Inner {
    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The reply `message_id` of `chat_id` is no longer generated here.
    pub(crate) fn forget(&self, chat_id: &str, message_id: &str) {
        let mut running = self.lock_running();
        if running
            .get(chat_id)
            .is_some_and(|r| r.message_id == message_id)
        {
            running.remove(chat_id);
        }
    }

    fn stop_local(&self, chat_id: &str) {
        if let Some(r) = self.lock_running().get(chat_id) {
            r.stop.cancel();
        }
    }

    fn runs(&self, chat_id: &str, message_id: &str) -> bool {
        self.lock_running()
            .get(chat_id)
            .is_some_and(|r| r.message_id == message_id)
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
        let view = MessageView::new(&message);
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
            events: vec![EventDraft::new(
                "done",
                &message.id,
                json!({"message": view}).to_string(),
            )],
            compact: COMPACTED_KINDS.iter().map(|k| k.to_string()).collect(),
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

    fn stop(&self, chat_id: &str) {
        self.stop_local(chat_id);
    }

    fn resync(&self) {
        self.hubs.resync();
        // A stop announced while the bus was down is still flagged on the reply: look.
        let running: Vec<(String, String, CancellationToken)> = self
            .lock_running()
            .iter()
            .map(|(chat, r)| (chat.clone(), r.message_id.clone(), r.stop.clone()))
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
