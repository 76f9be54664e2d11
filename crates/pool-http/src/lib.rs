//! The HTTP face of ollama-pool: thin axum handlers over `pool-core`'s use cases.
//!
//! Every error leaves in the OpenAI shape (`{"error":{"message","type","param","code"}}`, see
//! [`error`]), including the ones axum would otherwise answer in plain text: bodies are read and
//! parsed by our own extractors ([`extract`]). The full route table is in [`routes`].

pub mod attempts;
pub mod cache;
pub mod capacity;
pub mod console;
mod cors;
pub mod edge;
pub mod error;
pub mod extract;
pub mod jobs;
pub mod pace;
pub mod request_id;
pub mod routes;
pub mod state;
mod wire;

pub use routes::{metrics_router, router};
pub use state::{
    AdminCredential, AppState, ConsoleSettings, Flushed, HttpSettings, ProviderRuntime, Providers, Services,
    StatsRetention,
};
