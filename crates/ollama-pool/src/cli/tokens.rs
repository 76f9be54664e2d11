//! `ollama-pool tokens create|list|revoke`: client tokens, through the running gateway.
//!
//! `create` prints the new token alone on stdout (and what it is on stderr), so that
//! `TOKEN=$(ollama-pool tokens create --name app)` works; it is the only time the token is shown.

use anyhow::Context;
use clap::{Args, Subcommand};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::client::{AdminClient, ClientArgs};
use super::output::{table, text, when};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum TokensCommand {
    /// Create a client token; it is printed this once.
    Create(CreateArgs),
    /// List the client tokens (never the tokens themselves).
    List(ListArgs),
    /// Revoke a client token: its next request fails.
    Revoke(RevokeArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    /// A name to recognise the token by.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// The token expires after this many seconds (default: never).
    #[arg(long, value_name = "SECS")]
    expires_in: Option<u64>,
    /// Allow only this provider; repeat for several (default: every provider).
    #[arg(long = "provider", value_name = "PROVIDER")]
    providers: Vec<String>,
    /// Requests per minute (a burst of N, then one every 60/N s).
    #[arg(long, value_name = "N")]
    rpm: Option<u32>,
    /// Requests per UTC day.
    #[arg(long, value_name = "N")]
    rpd: Option<u64>,
    /// Tokens (prompt + completion) per UTC day.
    #[arg(long, value_name = "N")]
    tpd: Option<u64>,
    /// Requests in flight at once.
    #[arg(long, value_name = "N")]
    max_concurrent: Option<u32>,
    /// Allow only this model (`prefix*` for a family); repeat for several (default: every model).
    #[arg(long = "model", value_name = "MODEL")]
    models: Vec<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The token's id (from `tokens list`).
    #[arg(value_name = "ID")]
    id: String,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn run(command: TokensCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        TokensCommand::Create(args) => create(config, &args).await,
        TokensCommand::List(args) => list(config, &args).await,
        TokensCommand::Revoke(args) => revoke(config, &args).await,
    }
}

async fn create(config: &Config, args: &CreateArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let mut body = Map::new();
    if let Some(name) = &args.name {
        body.insert("name".into(), json!(name));
    }
    if let Some(seconds) = args.expires_in {
        body.insert("expiresIn".into(), json!(seconds));
    }
    if !args.providers.is_empty() {
        body.insert("providers".into(), json!(args.providers));
    }
    let limits = [
        ("rpm", args.rpm.map(u64::from)),
        ("rpd", args.rpd),
        ("tpd", args.tpd),
        ("maxConcurrent", args.max_concurrent.map(u64::from)),
    ];
    for (field, value) in limits {
        if let Some(value) = value {
            body.insert(field.into(), json!(value));
        }
    }
    if !args.models.is_empty() {
        body.insert("models".into(), json!(args.models));
    }
    let created = client.post("/admin/tokens", &Value::Object(body)).await?;
    eprintln!(
        "Created token {} ({}), providers: {}, expires: {}. It is shown this once; store it now:",
        text(&created["id"]),
        text(&created["name"]),
        providers(&created["providers"]),
        when(&created["expiresAt"], "never"),
    );
    println!("{}", text(&created["token"]));
    Ok(())
}

async fn list(config: &Config, args: &ListArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let answer = client.get("/admin/tokens", &[]).await?;
    if args.json {
        println!("{answer:#}");
        return Ok(());
    }
    let tokens = answer["tokens"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = tokens.iter().map(token_row).collect();
    print!("{}", table(&["ID", "NAME", "PREFIX", "PROVIDERS", "EXPIRES", "REQUESTS", "LAST USED"], &rows));
    Ok(())
}

fn token_row(token: &Value) -> Vec<String> {
    let expires = if token["expired"] == true { "expired".to_owned() } else { when(&token["expiresAt"], "never") };
    vec![
        text(&token["id"]),
        text(&token["name"]),
        text(&token["prefix"]),
        providers(&token["providers"]),
        expires,
        text(&token["requestCount"]),
        when(&token["lastUsedAt"], "never"),
    ]
}

/// A token's providers: `all`, or their names.
fn providers(value: &Value) -> String {
    match value.as_array() {
        Some(names) => names.iter().map(text).collect::<Vec<_>>().join(","),
        None => "all".to_owned(),
    }
}

async fn revoke(config: &Config, args: &RevokeArgs) -> anyhow::Result<()> {
    let id: Uuid =
        args.id.parse().with_context(|| format!("'{}' is not a token id (a UUID, as `tokens list` shows)", args.id))?;
    let client = AdminClient::new(&args.client, config)?;
    client.delete(&format!("/admin/tokens/{id}")).await?;
    println!("Revoked token {id}.");
    Ok(())
}
