//! Use-case tests on SQLite and the key file: here what a path costs in store calls and
//! decryptions; in `scripted` the callback and refresh against a scripted provider.

use super::*;
use crate::adapters::dispatch::Dispatcher;
use crate::adapters::jsonl_events::JsonlEvents;
use crate::adapters::local_key::LocalKeySealer;
use crate::adapters::sqlite::SqliteStore;
use crate::crypto::Sealed;
use crate::domain::events::Event;
use crate::domain::ids::{BrowserKey, LinkId, UserId};
use crate::domain::providers::{ProviderApp, ProviderAppInput, UserInfo};
use crate::domain::token::{
    ConnectSession, Flow, Link, PendingConnection, PendingRevocation, TokenStatus,
};
use crate::ports::{
    BotStore, Connection, FlowStore, OutboxStore, ProviderStore, SaveOutcome, StoreError,
    TokenStore,
};
use crate::ports::{GrantedToken, ProviderClient, ProviderError, RegisteredApp};
use async_trait::async_trait;
use secrecy::SecretString;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::Mutex;

/// Counts every call into the store and every unseal, to pin down what a path costs, and
/// fails the calls it is told to, as if the store or the key service were unreachable.
struct Counting {
    store: SqliteStore,
    sealer: LocalKeySealer,
    store_calls: AtomicUsize,
    opens: AtomicUsize,
    /// Seals still to fail as if the key service were unreachable.
    failing_seals: AtomicUsize,
    /// Store calls, by method name, still to fail.
    failing: Mutex<BTreeMap<&'static str, usize>>,
}

impl Counting {
    /// Fails the next `times` calls of the store method `op`.
    fn fail(&self, op: &'static str, times: usize) {
        self.failing.lock().unwrap().insert(op, times);
    }

    /// Injected failures of `op` not used up yet.
    fn still_failing(&self, op: &'static str) -> usize {
        self.failing.lock().unwrap().get(op).copied().unwrap_or(0)
    }

    fn injected(&self, op: &'static str) -> bool {
        let mut failing = self.failing.lock().unwrap();
        match failing.get_mut(op) {
            Some(n) if *n > 0 => {
                *n -= 1;
                true
            }
            _ => false,
        }
    }
}

struct CountingStore(Arc<Counting>);
struct CountingSealer(Arc<Counting>);

macro_rules! counted {
    ($self:ident . $m:ident ( $($a:expr),* )) => {{
        $self.0.store_calls.fetch_add(1, SeqCst);
        if $self.0.injected(stringify!($m)) {
            return Err(StoreError::Unavailable(
                concat!("store unreachable (injected into ", stringify!($m), ")").into(),
            ));
        }
        $self.0.store.$m($($a),*).await
    }};
}

#[async_trait]
impl BotStore for CountingStore {
    async fn set_confirm_url(&self, b: &BotId, u: Option<&str>) -> Result<bool, StoreError> {
        counted!(self.set_confirm_url(b, u))
    }
    async fn confirm_url(&self, b: &BotId) -> Result<Option<String>, StoreError> {
        counted!(self.confirm_url(b))
    }
    async fn create_bot(&self, b: &BotId, h: &str, n: i64) -> Result<bool, StoreError> {
        counted!(self.create_bot(b, h, n))
    }
    async fn set_bot_key(&self, b: &BotId, h: &str) -> Result<bool, StoreError> {
        counted!(self.set_bot_key(b, h))
    }
    async fn bot_key_hash(&self, b: &BotId) -> Result<Option<String>, StoreError> {
        counted!(self.bot_key_hash(b))
    }
    async fn put_integrations(&self, b: &BotId, l: &[Integration]) -> Result<(), StoreError> {
        counted!(self.put_integrations(b, l))
    }
    async fn integrations(&self, b: &BotId) -> Result<Vec<Integration>, StoreError> {
        counted!(self.integrations(b))
    }
}

#[async_trait]
impl ProviderStore for CountingStore {
    async fn put_provider(&self, a: &ProviderApp, s: Option<&Sealed>) -> Result<(), StoreError> {
        counted!(self.put_provider(a, s))
    }
    async fn provider(
        &self,
        n: &ProviderName,
    ) -> Result<Option<(ProviderApp, Option<Sealed>)>, StoreError> {
        counted!(self.provider(n))
    }
    async fn providers(&self) -> Result<Vec<ProviderApp>, StoreError> {
        counted!(self.providers())
    }
}

#[async_trait]
impl FlowStore for CountingStore {
    async fn put_link(&self, l: &Link) -> Result<(), StoreError> {
        counted!(self.put_link(l))
    }
    async fn link(&self, i: &LinkId) -> Result<Option<Link>, StoreError> {
        counted!(self.link(i))
    }
    async fn claim_link(
        &self,
        b: &BotId,
        k: &str,
        c: &str,
        u: i64,
        n: i64,
    ) -> Result<bool, StoreError> {
        counted!(self.claim_link(b, k, c, u, n))
    }
    async fn start_flow(&self, l: &LinkId, f: &Flow, max: i64) -> Result<bool, StoreError> {
        counted!(self.start_flow(l, f, max))
    }
    async fn take_flow(&self, b: &BotId, h: &str) -> Result<Option<Flow>, StoreError> {
        counted!(self.take_flow(b, h))
    }
    async fn put_connect_session(&self, s: &ConnectSession) -> Result<(), StoreError> {
        counted!(self.put_connect_session(s))
    }
    async fn connect_session(&self, i: &LinkId) -> Result<Option<ConnectSession>, StoreError> {
        counted!(self.connect_session(i))
    }
    async fn put_pending(
        &self,
        p: &PendingConnection,
        k: &str,
        c: &str,
    ) -> Result<bool, StoreError> {
        counted!(self.put_pending(p, k, c))
    }
    async fn pendings_of(
        &self,
        b: &BotId,
        u: &UserId,
    ) -> Result<Vec<PendingConnection>, StoreError> {
        counted!(self.pendings_of(b, u))
    }
    async fn drop_pending(&self, p: &PendingConnection, e: &[Event]) -> Result<bool, StoreError> {
        counted!(self.drop_pending(p, e))
    }
    async fn pending_by_flow(
        &self,
        b: &BotId,
        h: &str,
    ) -> Result<Option<PendingConnection>, StoreError> {
        counted!(self.pending_by_flow(b, h))
    }
    async fn count_wrong_code(
        &self,
        b: &BotId,
        u: &UserId,
        id: &str,
    ) -> Result<Option<i64>, StoreError> {
        counted!(self.count_wrong_code(b, u, id))
    }
}

#[async_trait]
impl TokenStore for CountingStore {
    async fn token(&self, b: &BotId, i: &TokenId) -> Result<Option<TokenRecord>, StoreError> {
        counted!(self.token(b, i))
    }
    async fn token_id_for(
        &self,
        b: &BotId,
        o: &Owner,
        a: &Alias,
    ) -> Result<Option<TokenId>, StoreError> {
        counted!(self.token_id_for(b, o, a))
    }
    async fn tokens_of(
        &self,
        b: &BotId,
        o: &Owner,
    ) -> Result<BTreeMap<Alias, TokenId>, StoreError> {
        counted!(self.tokens_of(b, o))
    }
    async fn save_connected(&self, c: &Connection<'_>) -> Result<SaveOutcome, StoreError> {
        counted!(self.save_connected(c))
    }
    async fn bot_connections(&self, b: &BotId) -> Result<Vec<TokenRecord>, StoreError> {
        counted!(self.bot_connections(b))
    }
    async fn delete_token(
        &self,
        r: &TokenRecord,
        e: &[Event],
        p: Option<&PendingRevocation>,
    ) -> Result<bool, StoreError> {
        counted!(self.delete_token(r, e, p))
    }
    async fn set_upkeep(
        &self,
        r: &TokenRecord,
        n: &TokenRecord,
        e: &[Event],
    ) -> Result<bool, StoreError> {
        counted!(self.set_upkeep(r, n, e))
    }
    async fn due_tokens(&self, now: i64, l: u32) -> Result<Vec<TokenRecord>, StoreError> {
        counted!(self.due_tokens(now, l))
    }
    async fn due_revocations(
        &self,
        now: i64,
        l: u32,
    ) -> Result<Vec<PendingRevocation>, StoreError> {
        counted!(self.due_revocations(now, l))
    }
    async fn settle_revocation(
        &self,
        r: &PendingRevocation,
        n: Option<&PendingRevocation>,
        e: &[Event],
    ) -> Result<bool, StoreError> {
        counted!(self.settle_revocation(r, n, e))
    }
    async fn acquire_lease(
        &self,
        b: &BotId,
        i: &TokenId,
        h: &str,
        u: i64,
        n: i64,
    ) -> Result<bool, StoreError> {
        counted!(self.acquire_lease(b, i, h, u, n))
    }
    async fn commit_refresh(
        &self,
        r: &TokenRecord,
        v: i64,
        h: &str,
        e: &[Event],
    ) -> Result<bool, StoreError> {
        counted!(self.commit_refresh(r, v, h, e))
    }
    async fn release_lease(
        &self,
        b: &BotId,
        i: &TokenId,
        h: &str,
        settled: bool,
    ) -> Result<(), StoreError> {
        counted!(self.release_lease(b, i, h, settled))
    }
}

#[async_trait]
impl OutboxStore for CountingStore {
    async fn record_events(&self, e: &[Event]) -> Result<(), StoreError> {
        counted!(self.record_events(e))
    }
    async fn undelivered(&self, id: &str) -> Result<bool, StoreError> {
        counted!(self.undelivered(id))
    }
}

#[async_trait]
impl Sealer for CountingSealer {
    async fn prepare(&self, c: SealContext<'_>) -> Result<crate::ports::PreparedSeal, SealError> {
        let failing = &self.0.failing_seals;
        if failing
            .fetch_update(SeqCst, SeqCst, |n| n.checked_sub(1))
            .is_ok()
        {
            return Err(SealError::Unavailable(
                "key service unreachable (injected)".into(),
            ));
        }
        self.0.sealer.prepare(c).await
    }
    async fn open(
        &self,
        s: &Sealed,
        c: SealContext<'_>,
    ) -> Result<zeroize::Zeroizing<Vec<u8>>, SealError> {
        self.0.opens.fetch_add(1, SeqCst);
        self.0.sealer.open(s, c).await
    }
}

fn events_path(dir: &std::path::Path) -> std::path::PathBuf {
    dir.join("events.jsonl")
}

struct Setup {
    dir: tempfile::TempDir,
    counts: Arc<Counting>,
    /// Delivers the outbox to `events.jsonl` when a test reads the events.
    dispatcher: Dispatcher,
    service: Service,
    bot: BotId,
    key: String,
}

/// A service whose provider calls go to a closed loopback port: any call fails.
async fn setup() -> Setup {
    let dev = crate::domain::network::OutboundPolicy {
        allow_loopback: true,
    };
    setup_with(crate::wiring::provider_client(dev).unwrap()).await
}

async fn setup_with(provider: Arc<dyn ProviderClient>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let counts = Arc::new(Counting {
        store: SqliteStore::open(&dir.path().join("db")).unwrap(),
        sealer: LocalKeySealer::open_or_create(&dir.path().join("key")).unwrap(),
        store_calls: AtomicUsize::new(0),
        opens: AtomicUsize::new(0),
        failing_seals: AtomicUsize::new(0),
        failing: Mutex::default(),
    });
    let config = crate::Config {
        public_url: Url::parse("https://svc.example").unwrap(),
        admin_key: AdminKeyHash::of_key("ADMIN_KEY", &"a".repeat(32)).unwrap(),
        event_source: "t".into(),
        backend: crate::Backend::Embedded {
            data_dir: dir.path().to_owned(),
        },
        webhook: None,
        outbound: crate::domain::network::OutboundPolicy {
            allow_loopback: true,
        },
        upkeep: Default::default(),
        proxy: Default::default(),
    };
    let service = crate::wiring::assemble(
        &config,
        Arc::new(CountingStore(Arc::clone(&counts))),
        Arc::new(CountingSealer(Arc::clone(&counts))),
        provider,
    );
    let dispatcher = Dispatcher {
        queue: Arc::new(counts.store.clone()),
        file: Arc::new(JsonlEvents::new(&events_path(dir.path()), "t")),
        webhook: None,
    };
    let bot = BotId::parse("acme").unwrap();
    let key = service.create_bot(bot.clone()).await.unwrap().api_key;
    // Endpoints on a closed loopback port: any provider call would fail the test.
    let input: ProviderAppInput = serde_json::from_value(serde_json::json!({
        "client_id": "c", "client_secret": "s",
        "authorize_url": "http://127.0.0.1:9/authorize", "token_url": "http://127.0.0.1:9/token"
    }))
    .unwrap();
    service
        .put_provider(&ProviderName::parse("acme_idp").unwrap(), input)
        .await
        .unwrap();
    service
        .put_integrations(&bot, "- provider: acme_idp\n  context: user\n")
        .await
        .unwrap();
    Setup {
        dir,
        counts,
        dispatcher,
        service,
        bot,
        key,
    }
}

async fn stored_token(s: &Setup, expires_at: Option<i64>, refresh: Option<&str>) -> TokenId {
    let id = TokenId::generate();
    let secrets = TokenSecrets {
        access_token: "at-1".into(),
        refresh_token: refresh.map(str::to_owned),
        token_type: "Bearer".into(),
        scopes: vec![],
        other: Default::default(),
        uid: None,
        info: UserInfo::default(),
        raw_info: Value::Null,
    };
    let sealed = s
        .counts
        .sealer
        .seal(
            &serde_json::to_vec(&secrets).unwrap(),
            token_ctx(&s.bot, &id),
        )
        .await
        .unwrap();
    let record = TokenRecord {
        bot_id: s.bot.clone(),
        token_id: id.clone(),
        alias: Alias::parse("acme_idp").unwrap(),
        provider: ProviderName::parse("acme_idp").unwrap(),
        owner: Owner::User(UserId::parse(&format!("u-{id}")).unwrap()),
        status: TokenStatus::Active,
        expires_at,
        sealed,
        version: 0,
        created_at: 0,
        updated_at: 0,
        refresh_unsettled: None,
        upkeep: Default::default(),
        due_at: None,
    };
    insert_token(s, &record).await;
    id
}

/// A fresh link of the bot, claimed by the flow "setup"; answers its key.
async fn claimed_link(s: &Setup, owner: &Owner) -> String {
    let link = Link {
        link_id: LinkId::generate(&s.bot),
        bot_id: s.bot.clone(),
        alias: Alias::parse("acme_idp").unwrap(),
        owner: owner.clone(),
        expires_at: i64::MAX / 2,
        created_at: 0,
        integration: None,
    };
    s.counts.store.put_link(&link).await.unwrap();
    let key = link.link_id.key();
    assert!(s
        .counts
        .store
        .claim_link(&s.bot, &key, "setup", i64::MAX / 2, 0)
        .await
        .unwrap());
    key
}

/// Writes a token as a finished sign-in from a fresh link would.
async fn insert_token(s: &Setup, record: &TokenRecord) {
    let key = claimed_link(s, &record.owner).await;
    let saved = s
        .counts
        .store
        .save_connected(&Connection {
            record,
            spend: crate::ports::Spend::Link {
                key: &key,
                claimant: "setup",
            },
            events: &[],
        })
        .await
        .unwrap();
    assert_eq!(saved, SaveOutcome::Saved);
}

/// Every event delivered so far, after delivering what the outbox holds.
async fn delivered_events(s: &Setup) -> Vec<Value> {
    while s.dispatcher.round().await.unwrap() > 0 {}
    std::fs::read_to_string(events_path(s.dir.path()))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn reset(s: &Setup) {
    s.counts.store_calls.store(0, SeqCst);
    s.counts.opens.store(0, SeqCst);
}

#[tokio::test]
async fn a_warm_access_token_costs_one_store_read_and_one_decryption() {
    let s = setup().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let id = stored_token(&s, Some(now + 3600), Some("rt-1")).await;
    s.service.authenticate_bot("acme", &s.key).await.unwrap();
    reset(&s);

    s.service.authenticate_bot("acme", &s.key).await.unwrap();
    let view = s.service.access_token(&s.bot, &id).await.unwrap();
    assert_eq!(
        (view.status, view.access_token.as_deref()),
        ("valid", Some("at-1"))
    );
    assert_eq!(s.counts.store_calls.load(SeqCst), 1, "store calls");
    assert_eq!(s.counts.opens.load(SeqCst), 1, "decryptions");
}

#[tokio::test]
async fn tokens_that_cannot_be_refreshed_say_why_without_a_provider_call() {
    let s = setup().await;
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let expired = stored_token(&s, Some(now - 10), None).await;
    let view = s.service.access_token(&s.bot, &expired).await.unwrap();
    assert_eq!((view.status, view.access_token), ("expired", None));

    // Inside the refresh margin but not expired, with nothing to refresh with: still usable.
    let closing = stored_token(&s, Some(now + 30), None).await;
    let view = s.service.access_token(&s.bot, &closing).await.unwrap();
    assert_eq!(
        (view.status, view.access_token.as_deref()),
        ("valid", Some("at-1"))
    );

    let forever = stored_token(&s, None, None).await;
    let view = s.service.access_token(&s.bot, &forever).await.unwrap();
    assert_eq!((view.status, view.expires_at), ("valid", None));

    // Due with a refresh token, but the provider is unreachable: 503, nothing changed.
    let due = stored_token(&s, Some(now + 30), Some("rt-1")).await;
    let before = s.counts.store.token(&s.bot, &due).await.unwrap();
    let err = s.service.access_token(&s.bot, &due).await.unwrap_err();
    assert!(
        matches!(err, ServiceError::ProviderUnavailable { .. }),
        "{err:?}"
    );
    let (before, after) = (
        before.unwrap(),
        s.counts.store.token(&s.bot, &due).await.unwrap().unwrap(),
    );
    assert_eq!(
        (&before.sealed, before.version, before.expires_at),
        (&after.sealed, after.version, after.expires_at)
    );
    assert_eq!(
        after.upkeep.last_refresh_error.as_deref(),
        Some("provider_unavailable")
    );
    // The lease was released: the next caller can try at once.
    assert!(s
        .counts
        .store
        .acquire_lease(&s.bot, &due, "next", now + 30, now)
        .await
        .unwrap());
}

#[tokio::test]
async fn bot_keys_name_their_bot() {
    let s = setup().await;
    assert_eq!(
        s.service.authenticate_bot("acme", &s.key).await,
        Ok(s.bot.clone())
    );
    assert_eq!(
        s.service.authenticate_bot("beta", &s.key).await,
        Err(AuthError::OtherBot)
    );
    let forged = s.key.replacen("bk.acme.", "bk.beta.", 1);
    assert_eq!(
        s.service.authenticate_bot("beta", &forged).await,
        Err(AuthError::Unauthorized)
    );
    assert_eq!(
        s.service.authenticate_bot("acme", "bk.acme.x").await,
        Err(AuthError::Unauthorized)
    );
    let rotated = s.service.rotate_bot_key(&s.bot).await.unwrap();
    assert_eq!(
        s.service.authenticate_bot("acme", &s.key).await,
        Err(AuthError::Unauthorized)
    );
    assert_eq!(
        s.service.authenticate_bot("acme", &rotated).await,
        Ok(s.bot.clone())
    );
}

mod faults;
mod recorded;
mod scripted;
