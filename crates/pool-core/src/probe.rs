//! Probing a key: does the upstream accept it, and which models may it use?
//!
//! A probe makes two small calls with the key: the provider's model list (which discovers what
//! this key may use), then a one-token chat completion (which proves the upstream accepts the key:
//! some model lists are public). The verdict drives the key's health the way a real request
//! would, except that a passing probe also brings back a key that was failed or auto-disabled.
//! Timeouts belong to the `Upstream` the prober is given (a client with short probe timeouts).

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::header::CONTENT_TYPE;
use http::{HeaderMap, HeaderValue, Method, StatusCode};

use crate::key::{FailurePolicy, KeyEvent, Recent};
use crate::model_name;
use crate::models::to_openai_list;
use crate::outcome;
use crate::pool::{ModelSet, PoolKey, Pools};
use crate::ports::{Clock, Upstream, UpstreamRequest};
use crate::provider::ProviderSpec;
use crate::quota::QuotaRest;
use crate::secret::Secret;

/// What a probe concluded about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Healthy,
    /// The upstream knows the key but it is at its limit now: rest it this long.
    RateLimited {
        rest_ms: i64,
        reason: String,
    },
    /// The upstream refuses the key (401/402/403).
    Rejected {
        status: u16,
    },
    /// No usable answer (5xx, timeout, connection error).
    Unreachable,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    pub verdict: Verdict,
    /// What the upstream said, for an operator: "HTTP 401: invalid key", "timed out"…
    pub detail: String,
    /// The models the key may use, when the list could be read.
    pub models: Option<Vec<String>>,
}

impl Report {
    pub fn healthy(&self) -> bool {
        self.verdict == Verdict::Healthy
    }
}

pub struct Prober {
    pub upstream: Arc<dyn Upstream>,
    /// Where discovered model lists go ([`Pools::set_models`]), so routing and model lists see
    /// them.
    pub pools: Arc<Pools>,
    pub clock: Arc<dyn Clock>,
    pub policy: FailurePolicy,
    pub quota: QuotaRest,
}

/// Who asked: an operator's explicit check lifts any hold, a routine one never a manual disable;
/// a recovery probe decides whether a half-open key serves again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Asker {
    Operator,
    Routine,
    Recovery,
}

impl Prober {
    /// Probes a secret that may not be in the pool yet (validated import).
    pub async fn probe(&self, spec: &ProviderSpec, secret: &Secret) -> Report {
        let models = match self.call(spec, Method::GET, spec.models_url(), secret, Bytes::new()).await {
            Ok(answer) if answer.status.is_success() => model_ids(spec, &answer.body),
            Ok(answer) => match self.failing(&answer) {
                Some(verdict) => return report(verdict, answer.describe(), None),
                None => None,
            },
            Err(cause) => return report(Verdict::Unreachable, cause, None),
        };
        let Some(model) = choose_model(spec, models.as_deref()) else {
            return report(Verdict::Healthy, "model list read; no model to test".into(), models);
        };
        let body = serde_json::json!({"model": model, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 1, "stream": false});
        let url = spec.openai_url("chat/completions");
        match self.call(spec, Method::POST, url, secret, Bytes::from(body.to_string())).await {
            Ok(answer) => match self.failing(&answer) {
                Some(verdict) => report(verdict, answer.describe(), models),
                None => report(Verdict::Healthy, format!("HTTP {} from {model}", answer.status.as_u16()), models),
            },
            Err(cause) => report(Verdict::Unreachable, cause, models),
        }
    }

    /// Probes a pooled key and applies the verdict to it.
    pub async fn check(&self, spec: &ProviderSpec, key: &PoolKey, asker: Asker) -> Report {
        let report = self.probe(spec, &key.secret).await;
        self.apply(key, &report, asker);
        report
    }

    pub fn apply(&self, key: &PoolKey, report: &Report, asker: Asker) {
        let now = self.clock.now_ms();
        if let Some(names) = &report.models {
            self.pools.set_models(key, Some(ModelSet { names: names.iter().cloned().collect(), discovered_at: now }));
        }
        let policy = &self.policy;
        match &report.verdict {
            Verdict::Healthy => key.update_health(|h| if asker == Asker::Operator { h.enable() } else { h.recover() }),
            Verdict::RateLimited { rest_ms, reason } => {
                let event = KeyEvent::RateLimited { rest_ms: *rest_ms, reason: reason.clone() };
                key.update_health(|h| {
                    h.apply(&event, Recent::default(), policy, now);
                });
            }
            // A half-open key that fails its probe stays out, twice as long as the last time.
            Verdict::Rejected { .. } | Verdict::Unreachable
                if key.health().hold.as_ref().is_some_and(|h| h.awaiting_probe(now)) =>
            {
                key.update_health(|h| h.probe_failed(&report.detail, policy, now));
            }
            Verdict::Rejected { status } => key.update_health(|h| {
                h.apply(&KeyEvent::Rejected { status: *status }, Recent::default(), policy, now);
            }),
            // One unreachable probe is no evidence against a key that serves clients.
            Verdict::Unreachable => {}
        }
    }

    /// Reads a key's model list again (after a client's 404 put it in doubt); only this changes
    /// a key's models. Returns whether the list was read.
    pub async fn rediscover(&self, spec: &ProviderSpec, key: &PoolKey) -> bool {
        match self.call(spec, Method::GET, spec.models_url(), &key.secret, Bytes::new()).await {
            Ok(answer) if answer.status.is_success() => match model_ids(spec, &answer.body) {
                Some(names) => {
                    let now = self.clock.now_ms();
                    self.pools
                        .set_models(key, Some(ModelSet { names: names.into_iter().collect(), discovered_at: now }));
                    true
                }
                None => false,
            },
            Ok(_) | Err(_) => false,
        }
    }

    async fn call(
        &self,
        spec: &ProviderSpec,
        method: Method,
        url: String,
        secret: &Secret,
        body: Bytes,
    ) -> Result<Answer, String> {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        for (name, value) in &spec.headers {
            headers.insert(name.clone(), value.clone());
        }
        let request = UpstreamRequest { method, url, bearer: secret.clone(), headers, body };
        let response = self.upstream.send(request).await.map_err(|e| e.to_string())?;
        let headers = response.headers;
        let mut stream = response.body;
        let mut body = Vec::new();
        while let Some(chunk) = stream.next().await {
            body.extend_from_slice(&chunk.map_err(|e| e.to_string())?);
            if body.len() > MAX_PROBE_BODY {
                break;
            }
        }
        Ok(Answer { status: response.status, headers, body })
    }

    /// The verdict of an answer that is not a success, if it condemns (or rests) the key: the
    /// proxy's own table decides.
    fn failing(&self, answer: &Answer) -> Option<Verdict> {
        let status = answer.status.as_u16();
        let upstream =
            outcome::Answer::Status { status, headers: &answer.headers, body: &answer.body, model_listed: false };
        match outcome::classify(upstream, &self.quota, self.clock.now_ms()).verdict {
            outcome::Verdict::Deliver | outcome::Verdict::PassThrough => None,
            outcome::Verdict::Retry { event: KeyEvent::RateLimited { rest_ms, reason }, .. } => {
                Some(Verdict::RateLimited { rest_ms, reason })
            }
            outcome::Verdict::Retry { event: KeyEvent::Rejected { status }, .. } => Some(Verdict::Rejected { status }),
            // 400, 404 (no such model)…: the upstream accepted the key and disliked the request.
            outcome::Verdict::Retry { event: KeyEvent::Neutral | KeyEvent::Success, .. } => None,
            outcome::Verdict::Retry { event: KeyEvent::Transient { .. }, .. } | outcome::Verdict::Fail => {
                Some(Verdict::Unreachable)
            }
        }
    }
}

/// Model lists can be large (OpenRouter's is ~1 MB); bigger answers are not read further.
const MAX_PROBE_BODY: usize = 8 * 1024 * 1024;

/// One upstream answer to a probe call.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    /// "HTTP 401: invalid key": the upstream's message, cut short and stripped of control characters.
    fn describe(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| {
                v.pointer("/error/message").or_else(|| v.get("error")).and_then(|m| m.as_str().map(str::to_owned))
            })
            .unwrap_or_else(|| text.into_owned());
        let message: String = message.chars().filter(|c| !c.is_control()).take(200).collect();
        format!("HTTP {}: {message}", self.status.as_u16())
    }
}

fn report(verdict: Verdict, detail: String, models: Option<Vec<String>>) -> Report {
    Report { verdict, detail, models }
}

/// The canonical names of the models a key's list holds.
fn model_ids(spec: &ProviderSpec, body: &[u8]) -> Option<Vec<String>> {
    let list = to_openai_list(spec.kind, body, "", 0).ok()?;
    let ids = list["data"].as_array()?.iter().filter_map(|m| m["id"].as_str());
    Some(ids.map(|id| model_name::canonical(spec.kind, id).into_owned()).collect())
}

/// The configured probe model when the key has it (or its list is unknown), else the key's first.
fn choose_model<'a>(spec: &'a ProviderSpec, models: Option<&'a [String]>) -> Option<&'a str> {
    match (spec.probe_model.as_deref(), models) {
        (Some(m), None) => Some(m),
        (Some(m), Some(list)) if list.iter().any(|x| model_name::names(spec.kind, m, x)) => Some(m),
        (_, Some(list)) => list.first().map(String::as_str),
        (None, None) => None,
    }
}

#[cfg(test)]
mod tests;
