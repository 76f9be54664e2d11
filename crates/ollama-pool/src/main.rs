//! The `ollama-pool` command line. This file should remain minimal: parse, then hand over to
//! the library.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};
use ollama_pool::admin_token::{self, AdminTokenSource};
use ollama_pool::app::App;
use ollama_pool::cli::tokens::{self, TokensCommand};
use ollama_pool::config::{self, Config};
use ollama_pool::keys_cli::{self, KeysCommand};
use ollama_pool::telemetry;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "ollama-pool", version, about = "Self-hosted LLM API key-pool gateway")]
struct Cli {
    /// TOML configuration file (every option: `ollama-pool config example`).
    #[arg(long, global = true, env = "POOL_CONFIG")]
    config: Option<PathBuf>,
    /// Log format: text or json (overrides log.format).
    #[arg(long, global = true)]
    log_format: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway.
    Serve,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Admin credential helpers.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Upstream keys: import, list, check, enable, disable (through the running gateway's admin
    /// API); export, master key rotation (on the database).
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Client tokens: create, list, revoke (through the running gateway's admin API).
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print an example configuration with every option documented.
    Example,
    /// Load and validate the configuration, then print where it points (no secrets).
    Check,
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Generate a new admin token, store its hash in the database, and print it once.
    ResetToken,
}

/// mimalloc instead of the C library's allocator: a proxied request allocates and frees many
/// small buffers on two worker threads, and glibc's arenas spent about a sixth of the gateway's
/// CPU on it (measured with `pool-bench` and `perf`). Blocks of 1 MiB or more go to the kernel
/// and back directly, so memory a burst of large bodies took is returned (see `pool-alloc`).
#[global_allocator]
static ALLOCATOR: pool_alloc::PoolAllocator = pool_alloc::PoolAllocator;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Config { command: ConfigCommand::Example } = cli.command {
        print!("{}", config::EXAMPLE);
        return Ok(());
    }
    if let Command::Keys { command: KeysCommand::GenerateMasterKey } = cli.command {
        return keys_cli::generate_master_key();
    }
    let mut config = Config::load(cli.config.as_deref())?;
    if let Some(format) = cli.log_format {
        config.log.format = format;
    }
    telemetry::init(&config.log.format, &config.log.level);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Config { .. } => {
            println!(
                "configuration is valid: listen {}, database {}",
                config.listen,
                pool_adapters::sql::backend_name(&config.database.url)
            );
            Ok(())
        }
        Command::Keys { command } => keys_cli::run(command, &config).await,
        Command::Tokens { command } => tokens::run(command, &config).await,
        Command::Admin { command: AdminCommand::ResetToken } => {
            let store = pool_adapters::sql::connect(&config.database.url).await.context("opening the database")?;
            let token = admin_token::reset(store.as_ref()).await?;
            println!("New admin token (shown once, store it now):\n\n    {token}\n");
            if config.admin_token.is_some() {
                println!("Note: admin_token / POOL_ADMIN_TOKEN is set and takes precedence over the stored token.");
            }
            Ok(())
        }
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let app = App::build(&config).await?;
    let listener = TcpListener::bind(&config.listen).await.with_context(|| format!("binding {}", config.listen))?;
    let addr = listener.local_addr()?;
    print_banner(&app, addr, &config);
    let shutdown = CancellationToken::new();
    let serving = app.serve(listener, shutdown.clone());
    tokio::pin!(serving);
    tokio::select! {
        stopped = &mut serving => return stopped,
        () = wait_for_signal() => tracing::info!("shutdown requested; draining in-flight requests"),
    }
    shutdown.cancel();
    serving.await
}

fn print_banner(app: &App, addr: std::net::SocketAddr, config: &Config) {
    let base = format!("http://{addr}");
    println!("ollama-pool {} is listening on {base}", env!("CARGO_PKG_VERSION"));
    println!("  Web console:           {base}/dashboard   (sign in with the admin token)");
    println!("  OpenAI-compatible API: {base}/v1   (Authorization: Bearer <client token>)");
    println!("  Admin API:             {base}/admin/   Health: {base}/health");
    println!("  Database:              {}", pool_adapters::sql::backend_name(&config.database.url));
    match &app.admin_token {
        AdminTokenSource::Generated(token) => {
            println!(
                "\n  A new admin token was generated. It is shown this once; only its hash is stored:\n\n      {token}\n"
            );
            println!("  Lost it? Stop the server and run `ollama-pool admin reset-token`.");
        }
        AdminTokenSource::Stored => {
            println!("  Admin token: the one generated on first start (reset: `ollama-pool admin reset-token`).")
        }
        AdminTokenSource::Configured => {
            println!("  Admin token: from admin_token / POOL_ADMIN_TOKEN.")
        }
    }
}

async fn wait_for_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
