//! Fixtures: a fresh store per test on each backend, key and token builders, and `contract!`.

use std::error::Error;
use std::sync::Arc;

use pool_adapters::sql::{self, PgStore};
use pool_core::UnixMs;
use pool_core::ids::{KeyId, TokenId};
use pool_core::limit::Limits;
use pool_core::pool::KeyLimits;
use pool_core::ports::{NewKey, Store, TokenRecord};
use pool_core::secret::{Secret, hash_secret};
use sqlx::{AssertSqlSafe, Connection, PgConnection};
use tempfile::TempDir;
use uuid::Uuid;

/// An instant in the tests' past, in unix milliseconds.
pub const T0: UnixMs = 1_700_000_000_000;

const CI_POSTGRES_URL: &str = "postgres://postgres@127.0.0.1:5432/test";

/// Runs each named story once on SQLite and once on PostgreSQL:
/// `<module>::sqlite::<story>` and `<module>::postgres::<story>`.
macro_rules! contract {
    ($($story:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let db = $crate::support::SqliteDb::open().await;
                    super::$story(&db.store).await;
                }
            )+
        }

        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $story() {
                    let Some(db) = $crate::support::PgDb::open().await else { return };
                    super::$story(&db.store).await;
                    db.drop_schema().await;
                }
            )+
        }
    };
}
pub(crate) use contract;

/// A store on a SQLite file in a fresh temporary directory, opened through `sql::connect`.
pub struct SqliteDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    /// Keeps the directory (and the database) alive for the test.
    _dir: TempDir,
}

impl SqliteDb {
    pub async fn open() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let url = format!("sqlite://{}/pool.db", dir.path().display());
        let store = sql::connect(&url).await.expect("SQLite opens");
        Self { store, url, _dir: dir }
    }
}

/// A store in a fresh PostgreSQL schema, or `None` when no server is configured.
pub struct PgDb {
    pub store: Arc<dyn Store>,
    url: String,
    schema: String,
}

impl PgDb {
    pub async fn open() -> Option<Self> {
        let url = postgres_url()?;
        let schema = format!("t_{}", Uuid::now_v7().simple());
        let store = match PgStore::connect_in_schema(&url, &schema).await {
            Ok(store) => Arc::new(store),
            Err(error) => {
                panic!("PostgreSQL is configured (POOL_TEST_POSTGRES_URL or CI=true) but unusable: {}", chain(&error))
            }
        };
        Some(Self { store, url, schema })
    }

    /// Drops the test's schema; a failing test leaves it behind for inspection.
    pub async fn drop_schema(self) {
        drop(self.store);
        let mut conn = PgConnection::connect(&self.url).await.expect("PostgreSQL reachable for cleanup");
        let drop_schema = format!("DROP SCHEMA \"{}\" CASCADE", self.schema);
        sqlx::query(AssertSqlSafe(drop_schema)).execute(&mut conn).await.expect("schema dropped");
    }
}

fn postgres_url() -> Option<String> {
    if let Some(url) = std::env::var("POOL_TEST_POSTGRES_URL").ok().filter(|url| !url.is_empty()) {
        return Some(url);
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        return Some(CI_POSTGRES_URL.to_owned());
    }
    eprintln!("skipping PostgreSQL: set POOL_TEST_POSTGRES_URL");
    None
}

/// An error and all its causes, on one line.
pub fn chain(error: &dyn Error) -> String {
    let mut parts = vec![error.to_string()];
    let mut source = error.source();
    while let Some(cause) = source {
        parts.push(cause.to_string());
        source = cause.source();
    }
    parts.join(": ")
}

pub fn key(provider: &str, secret: &str) -> NewKey {
    NewKey {
        id: KeyId::from_uuid(Uuid::now_v7()),
        provider: provider.to_owned(),
        secret: Secret::new(secret),
        secret_hash: hash_secret(secret),
        label: None,
        created_at: T0,
        expires_at: None,
        limits: KeyLimits::default(),
    }
}

/// `count` keys of one provider with distinct secrets.
pub fn keys(provider: &str, count: usize) -> Vec<NewKey> {
    (0..count).map(|i| key(provider, &format!("sk-{provider}-{i:06}"))).collect()
}

pub fn token(name: &str, secret: &str) -> TokenRecord {
    TokenRecord {
        id: TokenId::from_uuid(Uuid::now_v7()),
        name: name.to_owned(),
        prefix: secret.chars().take(9).collect(),
        hash: hash_secret(secret),
        providers: None,
        created_at: T0,
        expires_at: None,
        requests: 0,
        last_used: None,
        limits: Limits::default(),
        models: None,
    }
}
