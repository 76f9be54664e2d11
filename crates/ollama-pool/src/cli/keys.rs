//! `ollama-pool keys list|check|enable|disable`: the pool as the running gateway sees it.
//!
//! Keys are only ever shown masked, as the admin API returns them. A key named on the command
//! line would show in `ps`, so `enable` and `disable` also read it from stdin (`-`).

use std::io::BufRead;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::client::{AdminClient, ClientArgs};
use super::output::{clip, table, text, when};
use crate::config::Config;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only the keys of this provider.
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    /// all, active, cooling, failed, disabled or expired.
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    /// A username (substring) or an id prefix; a whole key matches too, but shows in `ps`.
    #[arg(long, value_name = "TEXT")]
    search: Option<String>,
    /// The page to show.
    #[arg(long, value_name = "N")]
    page: Option<usize>,
    /// Keys per page (1-200; 50 by default).
    #[arg(long, value_name = "N")]
    page_size: Option<usize>,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Only the keys of this provider.
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    /// Print the server's JSON as it is.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct EnableArgs {
    /// The key's id, the whole key, or `-` to read the key from stdin.
    #[arg(value_name = "KEY_OR_ID")]
    key: String,
    /// Look for the key in this provider only.
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Args)]
pub struct DisableArgs {
    /// The key's id, the whole key, or `-` to read the key from stdin.
    #[arg(value_name = "KEY_OR_ID")]
    key: String,
    /// Disable for this many seconds (default: until enabled).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Look for the key in this provider only.
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    #[command(flatten)]
    client: ClientArgs,
}

pub async fn list(config: &Config, args: &ListArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let given = [
        ("provider", args.provider.clone()),
        ("status", args.status.clone()),
        ("search", args.search.clone()),
        ("page", args.page.map(|n| n.to_string())),
        ("pageSize", args.page_size.map(|n| n.to_string())),
    ];
    let query: Vec<(&str, String)> = given.into_iter().filter_map(|(name, value)| Some((name, value?))).collect();
    let page = client.get("/admin/keys/stats", &query).await?;
    if args.json {
        println!("{page:#}");
        return Ok(());
    }
    let keys = page["stats"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = keys.iter().map(key_row).collect();
    let header = ["ID", "PROVIDER", "KEY", "USERNAME", "STATUS", "REASON / UNTIL", "REQUESTS", "SUCCESS", "LAST USED"];
    print!("{}", table(&header, &rows));
    println!("Page {} of {} ({} keys).", text(&page["page"]), text(&page["totalPages"]), text(&page["total"]));
    Ok(())
}

fn key_row(key: &Value) -> Vec<String> {
    let hold = match (key["reason"].as_str(), key["until"].is_string()) {
        (Some(reason), true) => format!("{} until {}", clip(reason, 40), when(&key["until"], "")),
        (Some(reason), false) => clip(reason, 40),
        (None, _) => "-".to_owned(),
    };
    let rate = key["successRate"].as_f64().map_or_else(|| "-".to_owned(), |r| format!("{r}%"));
    vec![
        text(&key["id"]),
        text(&key["provider"]),
        text(&key["apiKey"]),
        clip(&text(&key["username"]), 24),
        text(&key["status"]),
        hold,
        text(&key["totalRequests"]),
        rate,
        when(&key["lastUsed"], "never"),
    ]
}

pub async fn check(config: &Config, args: &CheckArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let report = client.post("/admin/keys/health-check", &json!({"provider": args.provider})).await?;
    if args.json {
        println!("{report:#}");
        return Ok(());
    }
    println!(
        "Checked {} keys: {} healthy, {} unhealthy.",
        text(&report["total"]),
        text(&report["healthy"]),
        text(&report["unhealthy"])
    );
    let results = report["results"].as_array().map(Vec::as_slice).unwrap_or_default();
    let rows: Vec<Vec<String>> = results
        .iter()
        .filter(|r| r["valid"] != true)
        .map(|r| {
            let cells = [&r["id"], &r["provider"], &r["apiKey"], &r["status"]];
            let mut row: Vec<String> = cells.into_iter().map(text).collect();
            row.push(clip(&text(&r["error"]), 80));
            row
        })
        .collect();
    if !rows.is_empty() {
        print!("{}", table(&["ID", "PROVIDER", "KEY", "STATUS", "ERROR"], &rows));
    }
    Ok(())
}

pub async fn enable(config: &Config, args: &EnableArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let body = target(&args.key, args.provider.as_deref(), None)?;
    let answer = client.post("/admin/keys/enable", &body).await?;
    println!("Enabled {} key(s).", text(&answer["count"]));
    Ok(())
}

pub async fn disable(config: &Config, args: &DisableArgs) -> anyhow::Result<()> {
    let client = AdminClient::new(&args.client, config)?;
    let body = target(&args.key, args.provider.as_deref(), args.duration)?;
    let answer = client.post("/admin/keys/disable", &body).await?;
    let until = when(&answer["until"], "enabled again");
    println!("Disabled {} key(s) until {until}.", text(&answer["count"]));
    Ok(())
}

/// The body naming one key: `id` when the argument is a UUID, else `apiKey` (`-`: from stdin).
fn target(key: &str, provider: Option<&str>, duration: Option<u64>) -> anyhow::Result<Value> {
    let mut body = Map::new();
    if key.parse::<Uuid>().is_ok() {
        body.insert("id".into(), json!(key));
    } else {
        let secret = if key == "-" { read_stdin_line()? } else { key.to_owned() };
        body.insert("apiKey".into(), json!(secret));
    }
    if let Some(provider) = provider {
        body.insert("provider".into(), json!(provider));
    }
    if let Some(duration) = duration {
        body.insert("duration".into(), json!(duration));
    }
    Ok(Value::Object(body))
}

fn read_stdin_line() -> anyhow::Result<String> {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("reading the key from stdin")?;
    let key = line.trim();
    if key.is_empty() {
        bail!("no key on stdin");
    }
    Ok(key.to_owned())
}
