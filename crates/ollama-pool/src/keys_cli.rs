//! `ollama-pool keys …`: commands on the upstream keys.
//!
//! The ones here work offline, on the configured database, with no server running: `export`
//! writes a backup in the importer's format, `rotate-master-key` re-encrypts every key under a new
//! master key, `generate-master-key` prints one. The ones that talk to a running gateway (`import`,
//! `list`, `check`, `enable`, `disable`) live in [`crate::cli`]; each is one more [`KeysCommand`]
//! variant with its own arguments struct and one more arm in [`run`].
//!
//! No command prints a key: they print counts, keys masked, and only a master key they generated
//! themselves.

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use pool_adapters::cipher::{self, MasterKey};
use pool_core::import::parse_text;
use pool_core::ports::NewKey;
use serde_json::json;

use crate::app;
use crate::cli;
use crate::cli::import::ImportArgs;
use crate::cli::keys::{CheckArgs, DisableArgs, EnableArgs, ListArgs};
use crate::config::Config;

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Import keys from a text file through the running gateway, with a progress bar; with no
    /// gateway listening at --url, straight into the configured database.
    Import(ImportArgs),
    /// List the keys with their state and counters (masked).
    List(ListArgs),
    /// Probe every key now; failing ones are marked, recovered ones come back.
    Check(CheckArgs),
    /// Put a key back in rotation.
    Enable(EnableArgs),
    /// Take a key out of rotation, for a while or until enabled.
    Disable(DisableArgs),
    /// Write the upstream keys to a new file (mode 0600), one per line in the importer's format,
    /// for backup. Works on the database directly; no server needed.
    Export(ExportArgs),
    /// Re-encrypt every upstream key under a new master key, in one transaction. Stop the
    /// gateways first, and start them again with the new POOL_MASTER_KEY.
    RotateMasterKey(RotateArgs),
    /// Print a fresh random master key (base64), for POOL_MASTER_KEY.
    GenerateMasterKey,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The file to create.
    #[arg(long, value_name = "FILE")]
    out: PathBuf,
    /// Only the keys of this provider (the file does not say which provider a key belongs to).
    #[arg(long, value_name = "PROVIDER")]
    provider: Option<String>,
    /// Replace FILE if it exists.
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct RotateArgs {
    /// The new master key: base64 of 32 bytes.
    #[arg(long, value_name = "B64", env = "POOL_NEW_MASTER_KEY", hide_env_values = true)]
    new_key: Option<String>,
    /// Generate the new master key, and print it once.
    #[arg(long)]
    generate: bool,
}

pub async fn run(command: KeysCommand, config: &Config) -> anyhow::Result<()> {
    match command {
        KeysCommand::Import(args) => cli::import::run(config, &args).await,
        KeysCommand::List(args) => cli::keys::list(config, &args).await,
        KeysCommand::Check(args) => cli::keys::check(config, &args).await,
        KeysCommand::Enable(args) => cli::keys::enable(config, &args).await,
        KeysCommand::Disable(args) => cli::keys::disable(config, &args).await,
        KeysCommand::Export(args) => export(config, &args).await,
        KeysCommand::RotateMasterKey(args) => rotate_master_key(config, args).await,
        KeysCommand::GenerateMasterKey => generate_master_key(),
    }
}

pub fn generate_master_key() -> anyhow::Result<()> {
    let key = MasterKey::generate().context("the OS random source failed")?;
    println!("{}", key.expose_base64());
    Ok(())
}

async fn export(config: &Config, args: &ExportArgs) -> anyhow::Result<()> {
    let store = app::open_store(config).await?;
    let records = store.load_keys().await.context("reading the upstream keys")?;
    let keys: Vec<&NewKey> =
        records.iter().map(|r| &r.key).filter(|k| args.provider.as_ref().is_none_or(|p| *p == k.provider)).collect();
    let text: String = keys.iter().map(|k| export_line(k.secret.expose_secret(), k.label.as_deref()) + "\n").collect();
    write_private(&args.out, text.as_bytes(), args.force)?;
    println!("Wrote {} upstream keys to {}.", keys.len(), args.out.display());
    let providers = count_by_provider(&keys);
    if providers.len() > 1 {
        let counts: Vec<String> = providers.iter().map(|(p, n)| format!("{p}: {n}")).collect();
        println!("They belong to several providers ({}); --provider exports one at a time.", counts.join(", "));
    }
    Ok(())
}

/// One key as the importer reads it: `username----key`, or the bare key. Where that form would
/// read back differently (a `----` inside, a leading `#`…), a JSON line, which it reads too.
fn export_line(secret: &str, label: Option<&str>) -> String {
    let line = match label {
        Some(label) => format!("{label}----{secret}"),
        None => secret.to_owned(),
    };
    let parsed = parse_text(&line);
    let reads_back = matches!(parsed.keys.as_slice(), [key] if key.secret == secret && key.label.as_deref() == label);
    if reads_back { line } else { json!({"api_key": secret, "username": label}).to_string() }
}

fn count_by_provider<'a>(keys: &[&'a NewKey]) -> BTreeMap<&'a str, usize> {
    let mut counts = BTreeMap::new();
    for key in keys {
        *counts.entry(key.provider.as_str()).or_default() += 1;
    }
    counts
}

/// Creates `path` readable by its owner only. With `force`, an existing file is removed first,
/// so the keys land in a new file whatever the old one's permissions or open handles.
fn write_private(path: &Path, contents: &[u8], force: bool) -> anyhow::Result<()> {
    if force {
        match std::fs::remove_file(path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                return Err(e).with_context(|| format!("replacing {}", path.display()));
            }
            _ => {}
        }
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = match options.open(path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("{} already exists; pass --force to replace it", path.display())
        }
        opened => opened.with_context(|| format!("creating {}", path.display()))?,
    };
    file.write_all(contents).and_then(|()| file.sync_all()).with_context(|| format!("writing {}", path.display()))
}

async fn rotate_master_key(config: &Config, args: RotateArgs) -> anyhow::Result<()> {
    let new = match args.new_key {
        Some(text) => MasterKey::parse(&text).context("--new-key is invalid")?,
        None => {
            let key = MasterKey::generate().context("the OS random source failed")?;
            let shown = key.expose_base64();
            println!("New master key (shown once; in use only if the rotation below succeeds):\n\n    {shown}\n");
            key
        }
    };
    let current = app::master_key(config)?;
    let store = pool_adapters::sql::connect(&config.database.url).await.context("opening the database")?;
    let count = cipher::rotate(store.as_ref(), current.as_ref(), &new).await?;
    println!("Re-encrypted {count} upstream keys under the new master key.");
    println!(
        "Set POOL_MASTER_KEY (or master_key) to the new key before the next start: \
         with the old one, the gateway refuses to start."
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exported_line_reads_back_as_the_same_key_and_username() {
        let cases = [
            ("sk-plain", None),
            ("sk-labelled", Some("alice@example.com")),
            ("sk-dashes----inside", None),
            ("sk-key", Some("team----a")),
            ("#sk-hash", None),
            ("{sk-brace", Some("{user")),
            ("-sk-leading-dash", Some("bob-")),
            ("sk-key", Some("# not a comment")),
        ];
        for (secret, label) in cases {
            let parsed = parse_text(&export_line(secret, label));
            assert_eq!(parsed.keys.len(), 1, "{secret} {label:?}");
            assert_eq!((parsed.keys[0].secret.as_str(), parsed.keys[0].label.as_deref()), (secret, label));
        }
    }

    #[test]
    fn a_plain_key_and_a_labelled_key_use_the_short_forms() {
        assert_eq!(export_line("sk-plain", None), "sk-plain");
        assert_eq!(export_line("sk-key", Some("alice")), "alice----sk-key");
    }
}
