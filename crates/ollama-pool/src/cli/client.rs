//! The admin API client: where the gateway is, the admin token, and failures phrased for an
//! operator (the URL it could not reach, a refused token, the server's own error message).
//!
//! The admin token comes from `POOL_ADMIN_TOKEN` (or `admin_token` in the configuration) or from
//! a file, never from an argument: the command lines of running processes are visible to every
//! user of the machine (`ps`).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::Args;
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use crate::config::Config;

/// How long to wait for a TCP connection to the gateway.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the gateway is and how to authenticate, for the commands that call its admin API.
#[derive(Clone, Debug, Args)]
pub struct ClientArgs {
    /// Base URL of the running gateway [default: http:// and the configured `listen` address].
    #[arg(long, env = "POOL_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Read the admin token from this file (default: POOL_ADMIN_TOKEN; never an argument, which
    /// `ps` would show).
    #[arg(long, value_name = "PATH")]
    pub admin_token_file: Option<PathBuf>,
}

impl ClientArgs {
    /// `--url`, or the address the configured server listens on; a wildcard address is reached
    /// on loopback.
    pub fn base_url(&self, config: &Config) -> String {
        let url = match &self.url {
            Some(url) => url.clone(),
            None => {
                let listen = config.listen.replace("0.0.0.0:", "127.0.0.1:").replace("[::]:", "[::1]:");
                format!("http://{listen}")
            }
        };
        url.trim_end_matches('/').to_owned()
    }

    /// The admin token, and where it came from (for error messages; never the token itself).
    fn admin_token(&self, config: &Config) -> anyhow::Result<(SecretString, String)> {
        if let Some(path) = &self.admin_token_file {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let token = text.trim();
            if token.is_empty() {
                bail!("{} is empty; it should hold the admin token", path.display());
            }
            return Ok((SecretString::from(token), path.display().to_string()));
        }
        match &config.admin_token {
            Some(token) => Ok((SecretString::from(token.as_str()), "POOL_ADMIN_TOKEN / admin_token".to_owned())),
            None => bail!("no admin token: set POOL_ADMIN_TOKEN or pass --admin-token-file PATH"),
        }
    }
}

/// Whether anything listens at the gateway's address.
#[derive(Debug, PartialEq, Eq)]
pub enum Reach {
    Up,
    /// The connection was refused: nothing listens there.
    Refused,
}

/// Asks `/health` (no token needed) whether a gateway answers at `base`.
pub async fn reach(base: &str) -> anyhow::Result<Reach> {
    let http = http_client()?;
    match http.get(format!("{base}/health")).send().await {
        Ok(_) => Ok(Reach::Up),
        Err(e) if is_refused(&e) => Ok(Reach::Refused),
        Err(e) => Err(e).with_context(|| unreachable(base)),
    }
}

/// A client of one gateway's admin API.
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    /// Where the token came from, to name in a 401.
    token_source: String,
}

impl AdminClient {
    pub fn new(args: &ClientArgs, config: &Config) -> anyhow::Result<Self> {
        let (token, token_source) = args.admin_token(config)?;
        Ok(Self { http: http_client()?, base: args.base_url(config), token, token_source })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub async fn get(&self, path: &str, query: &[(&str, String)]) -> anyhow::Result<Value> {
        let mut url = Url::parse(&self.url(path)).with_context(|| format!("{} is not a valid URL", self.base))?;
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        json(self.send(self.http.get(url)).await?).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> anyhow::Result<Value> {
        json(self.send(self.http.post(self.url(path)).json(body)).await?).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<Value> {
        json(self.send(self.http.request(Method::DELETE, self.url(path))).await?).await
    }

    /// A `text/event-stream` response, to read as it arrives.
    pub async fn events(&self, path: &str) -> anyhow::Result<Response> {
        self.send(self.http.get(self.url(path)).header(reqwest::header::ACCEPT, "text/event-stream")).await
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Sends with the admin token; any answer but a 2xx becomes an error that says what happened.
    async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        let response =
            request.bearer_auth(self.token.expose_secret()).send().await.with_context(|| unreachable(&self.base))?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::UNAUTHORIZED {
            bail!("the gateway at {} refused the admin token (from {})", self.base, self.token_source);
        }
        let body: Value = response.json().await.unwrap_or(Value::Null);
        match body["error"]["message"].as_str() {
            Some(message) => bail!("the gateway answered {status}: {message}"),
            None => bail!("the gateway answered {status}"),
        }
    }
}

fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .user_agent(concat!("ollama-pool-cli/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

async fn json(response: Response) -> anyhow::Result<Value> {
    response.json().await.context("the gateway's answer is not the expected JSON")
}

fn unreachable(base: &str) -> String {
    format!("could not reach the gateway at {base} (is `ollama-pool serve` running there? set --url or POOL_URL)")
}

/// Whether a request failed because nothing listens at the address.
fn is_refused(error: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::ConnectionRefused) {
            return true;
        }
        source = e.source();
    }
    false
}
