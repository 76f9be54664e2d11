//! `ollama-pool keys import FILE`: through the running gateway, or into the database when none
//! listens at `--url`.
//!
//! Online, the file goes to `/admin/api-keys/import-from-txt` in chunks of at most 10,000 lines
//! (one store transaction each, and a progress bar that moves); the server numbers lines per
//! chunk, so each chunk's offset is added back to report true file lines. `--validate` sends the
//! whole file to `/admin/api-keys/import-with-validation` at once, since the server dedupes it
//! as one batch, and follows the job's event stream.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::{Value, json};

use super::client::{AdminClient, ClientArgs, Reach, reach};
use super::events::EventReader;
use super::import_offline;
use super::import_summary::{Summary, detail};
use super::output::{Detail, count, print_details, progress};
use crate::config::Config;

/// Most lines per request, and per store transaction offline.
pub const CHUNK_LINES: usize = 10_000;

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A text file: one key per line (`key`, `username----key`, 4 or 5 `----` fields, or a JSON
    /// object); blank lines and `#` comments are skipped.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// The provider the keys belong to (default: the default provider).
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,
    /// Probe every key upstream first and add only the ones that work (needs a running server).
    #[arg(long)]
    pub validate: bool,
    /// Probes at once with --validate (1-64; the server's default is 8).
    #[arg(long, value_name = "N", requires = "validate", value_parser = clap::value_parser!(u16).range(1..=64))]
    pub concurrency: Option<u16>,
    /// Lines per request (and per transaction offline).
    #[arg(long, hide = true, default_value_t = CHUNK_LINES, value_parser = chunk_lines)]
    pub chunk_lines: usize,
    #[command(flatten)]
    pub client: ClientArgs,
}

fn chunk_lines(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n) if (1..=CHUNK_LINES).contains(&n) => Ok(n),
        _ => Err(format!("expected a number of lines from 1 to {CHUNK_LINES}")),
    }
}

pub async fn run(config: &Config, args: &ImportArgs) -> anyhow::Result<()> {
    let content = std::fs::read_to_string(&args.file).with_context(|| format!("reading {}", args.file.display()))?;
    let base = args.client.base_url(config);
    if reach(&base).await? == Reach::Refused {
        if args.validate {
            bail!("--validate needs a running server (probes use its upstream client); none listens at {base}");
        }
        let summary = import_offline::run(config, args.provider.as_deref(), args.chunk_lines, &content).await?;
        summary.print(&args.file);
        println!(
            "Note: no gateway listens at {base}, so the keys were written to the database ({}) directly; \
             a gateway already running on it elsewhere sees them after a restart.",
            pool_adapters::sql::backend_name(&config.database.url)
        );
        return Ok(());
    }
    let client = AdminClient::new(&args.client, config)?;
    if args.validate {
        return validated(&client, args, &content).await;
    }
    online(&client, args, &content).await?.print(&args.file);
    Ok(())
}

async fn online(client: &AdminClient, args: &ImportArgs, content: &str) -> anyhow::Result<Summary> {
    let lines: Vec<&str> = content.lines().collect();
    let chunks: Vec<&[&str]> = if lines.is_empty() { vec![&[]] } else { lines.chunks(args.chunk_lines).collect() };
    let bar = progress(lines.len(), "lines");
    let mut summary = Summary::default();
    for (i, chunk) in chunks.into_iter().enumerate() {
        let offset = i * args.chunk_lines;
        let body = json!({"content": chunk.join("\n"), "provider": args.provider});
        let report = client.post("/admin/api-keys/import-from-txt", &body).await.with_context(|| {
            format!(
                "importing from line {} on (the lines before it are imported: {} keys added)",
                offset + 1,
                summary.added
            )
        })?;
        summary.absorb(&report, offset)?;
        bar.inc(count(chunk.len()));
    }
    bar.finish_and_clear();
    Ok(summary)
}

async fn validated(client: &AdminClient, args: &ImportArgs, content: &str) -> anyhow::Result<()> {
    let body = json!({"content": content, "provider": args.provider, "concurrency": args.concurrency});
    let started = client.post("/admin/api-keys/import-with-validation", &body).await?;
    let id = started["id"].as_str().context("the gateway's answer has no job id")?;
    let total = started["total"].as_u64().and_then(|n| usize::try_from(n).ok()).unwrap_or(0);
    let bar = progress(total, "keys checked");
    let result = follow_job(client, id, |done| bar.set_position(done)).await;
    bar.finish_and_clear();
    print_validation(&args.file, &result?);
    Ok(())
}

/// Reads the job's event stream until its `done` event, reporting progress; returns the result.
async fn follow_job(client: &AdminClient, id: &str, on_progress: impl Fn(u64)) -> anyhow::Result<Value> {
    let mut response = client.events(&format!("/admin/jobs/{id}")).await?;
    let mut reader = EventReader::default();
    while let Some(chunk) = response.chunk().await.context("reading the job's progress")? {
        for event in reader.push(&chunk) {
            let value: Value = serde_json::from_str(&event.data).context("unexpected job progress event")?;
            on_progress(value["done"].as_u64().unwrap_or(0));
            if event.name == "done" {
                return Ok(value);
            }
        }
    }
    bail!("the gateway closed the progress stream before job {id} finished (it may have stopped)")
}

fn print_validation(file: &Path, result: &Value) {
    let entries = |field: &str| result[field].as_array().cloned().unwrap_or_default();
    let (valid, invalid) = (entries("valid"), entries("invalid"));
    let mut details: Vec<Detail> = invalid.iter().map(|entry| detail(entry, 0)).collect();
    details.sort_by_key(|d| d.line);
    println!("Validated {}:", file.display());
    println!("  total:   {}", valid.len() + invalid.len());
    println!("  valid:   {} (added to the pool)", valid.len());
    println!("  invalid: {}", invalid.len());
    print_details("Not added", &details);
}
