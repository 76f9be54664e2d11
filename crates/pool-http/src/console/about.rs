//! What the console's Settings page shows about the running gateway beyond what `/health` says:
//! the effective configuration (secrets masked by the binary that loaded it) and the warnings an
//! operator should act on. Filled in once at start; read-only.

use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

#[derive(Clone, Debug, Default)]
pub struct About {
    /// The version of the binary.
    pub version: String,
    /// The effective configuration, every secret masked.
    pub config: Value,
    pub warnings: Vec<Warning>,
}

/// Something about the configuration an operator should fix; `code` is stable (the console
/// translates it), `message` is English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, ToSchema)]
pub struct Warning {
    pub code: &'static str,
    pub message: String,
}
