//! Statistics rollups: increments add up across flushes, reads see what was written, retention.

use std::sync::Arc;

use pool_core::ids::{KeyId, TokenId};
use pool_core::ports::{Store, UsageQuery, UsageSubject};
use pool_core::provider::ProviderName;
use pool_core::stats::{DAY_MS, Dims, HOUR_MS, Kind, MINUTE_MS, Outcome, Recorder, StatsSummary, Timing, hour_of};
use pool_core::usage::Usage;
use uuid::Uuid;

use crate::keys::HOSTILE;
use crate::support::{T0, contract};

contract!(
    flushes_add_up_in_every_rollup,
    usage_series_are_per_subject_and_bucket,
    pruning_keeps_totals_and_recent_rows,
    hostile_model_names_are_stored_as_data,
    todays_token_usage_counts_admitted_requests_only,
);

fn provider(name: &str) -> ProviderName {
    ProviderName::parse(name).expect("provider name")
}

fn key(n: u128) -> KeyId {
    KeyId::from_uuid(Uuid::from_u128(n))
}

fn token(n: u128) -> TokenId {
    TokenId::from_uuid(Uuid::from_u128(n))
}

/// Records one served request (a request row and its attempt row).
fn serve(recorder: &Recorder, at: i64, provider_name: &str, model: &str, key_n: u128, token_n: u128, tokens: u64) {
    let dims = |kind| Dims {
        kind,
        provider: provider(provider_name),
        model: model.into(),
        key: Some(key(key_n)),
        token: Some(token(token_n)),
        status: 200,
        outcome: Outcome::Success,
    };
    let usage = Usage { prompt: tokens / 2, completion: tokens - tokens / 2, total: tokens };
    recorder.attempt(at, dims(Kind::Attempt), 1000);
    recorder.request(at, dims(Kind::Request), Timing::default(), Some(usage), false);
}

async fn flush(recorder: &Recorder, store: &Arc<dyn Store>) {
    pool_core::accounting::flush_stats(recorder, store.as_ref(), T0).await.expect("flush");
}

async fn flushes_add_up_in_every_rollup(store: &Arc<dyn Store>) {
    // Arrange: two flushes over the same rows, two providers.
    let recorder = Recorder::new(1000);
    for round in 0..2 {
        for i in 0..10 {
            serve(&recorder, T0 + i * 1000, "ollama", "llama3", 1, 1, 10);
        }
        serve(&recorder, T0 + round, "openrouter", "gpt", 2, 2, 4);
        flush(&recorder, store).await;
    }
    // Act
    let all = store.stats_totals(None).await.expect("totals");
    let ollama = store.stats_totals(Some("ollama")).await.expect("totals");
    let recent = store.stats_hours(None, hour_of(T0)).await.expect("hours");
    // Assert
    let summary = StatsSummary::build(&all, &recent, T0);
    assert_eq!(summary.requests.tally.events, 22);
    assert_eq!(summary.attempts.tally.events, 22);
    assert_eq!(summary.requests.tally.total_tokens, 208);
    assert_eq!(summary.requests.tally.prompt_tokens + summary.requests.tally.completion_tokens, 208);
    assert_eq!(summary.requests_today, 22);
    assert_eq!(StatsSummary::build(&ollama, &[], T0).requests.tally.events, 20);
    assert_eq!(summary.top_models[0].model, "llama3");
    assert_eq!(summary.hourly.iter().map(|h| h.requests).sum::<u64>(), 22);
}

async fn usage_series_are_per_subject_and_bucket(store: &Arc<dyn Store>) {
    // Arrange: token 1 in two hours, token 2 once; key 7 serves everything, key 8 was tried once.
    let recorder = Recorder::new(1000);
    serve(&recorder, T0, "ollama", "m", 7, 1, 10);
    serve(&recorder, T0 + MINUTE_MS, "ollama", "m", 7, 1, 10);
    serve(&recorder, T0 + HOUR_MS, "ollama", "m", 7, 1, 5);
    serve(&recorder, T0, "ollama", "other", 7, 2, 1);
    let failed_first = Dims {
        kind: Kind::Attempt,
        provider: provider("ollama"),
        model: "m".into(),
        key: Some(key(8)),
        token: Some(token(1)),
        status: 429,
        outcome: Outcome::RateLimited,
    };
    recorder.attempt(T0, failed_first, 1000);
    flush(&recorder, store).await;
    let query = |subject, per_minute| UsageQuery {
        subject,
        provider: None,
        per_minute,
        since: hour_of(T0),
        until: hour_of(T0) + DAY_MS,
    };
    // Act
    let hours = store.usage_series(&query(UsageSubject::Token(token(1)), false)).await.expect("series");
    let minutes = store.usage_series(&query(UsageSubject::Token(token(1)), true)).await.expect("series");
    let by_key = store.usage_series(&query(UsageSubject::Key(key(7)), false)).await.expect("series");
    let by_key_minutes = store.usage_series(&query(UsageSubject::Key(key(7)), true)).await.expect("series");
    let passed_over = store.usage_series(&query(UsageSubject::Key(key(8)), false)).await.expect("series");
    let by_model = store.usage_series(&query(UsageSubject::Model("other".into()), false)).await.expect("series");
    let elsewhere = UsageQuery { provider: Some("openrouter".into()), ..query(UsageSubject::Key(key(7)), false) };
    let elsewhere = store.usage_series(&elsewhere).await.expect("series");
    // Assert
    assert_eq!(
        hours.iter().map(|p| (p.bucket, p.events, p.total_tokens)).collect::<Vec<_>>(),
        [(hour_of(T0), 2, 20), (hour_of(T0) + HOUR_MS, 1, 5)]
    );
    assert_eq!(minutes.len(), 3, "one point per minute with traffic");
    assert_eq!(by_key.iter().map(|p| p.events).sum::<u64>(), 4, "a key's series counts its attempts");
    assert_eq!(by_key.iter().map(|p| p.successes).sum::<u64>(), 4);
    let tokens = |points: &[pool_core::stats::UsagePoint]| {
        points.iter().fold((0, 0, 0), |(p, c, t), u| (p + u.prompt_tokens, c + u.completion_tokens, t + u.total_tokens))
    };
    assert_eq!(tokens(&by_key), (12, 14, 26), "a key's series carries the usage of the requests it served");
    assert_eq!(tokens(&by_key_minutes), (12, 14, 26));
    assert_eq!(passed_over.iter().map(|p| (p.events, p.successes, p.total_tokens)).collect::<Vec<_>>(), [(1, 0, 0)]);
    assert_eq!(by_model.iter().map(|p| p.events).sum::<u64>(), 1);
    assert!(elsewhere.is_empty());
}

async fn pruning_keeps_totals_and_recent_rows(store: &Arc<dyn Store>) {
    // Arrange: one request three days ago, one now.
    let recorder = Recorder::new(1000);
    serve(&recorder, T0 - 3 * DAY_MS, "ollama", "m", 1, 1, 1);
    serve(&recorder, T0, "ollama", "m", 1, 1, 1);
    flush(&recorder, store).await;
    // Act: minutes kept 48 h, hours kept 2 days.
    let deleted = store.prune_stats(T0 - 2 * DAY_MS, T0 - 2 * DAY_MS).await.expect("prune");
    // Assert
    assert_eq!(deleted, 2 * 3, "the old request and attempt, from minutes, hours and the hourly summary");
    let hours = store.stats_hours(None, 0).await.expect("hours");
    assert_eq!(hours.iter().map(|r| r.tally.events).sum::<u64>(), 1, "the recent request remains");
    let totals = store.stats_totals(None).await.expect("totals");
    assert_eq!(totals.iter().filter(|r| r.kind == Kind::Request).map(|r| r.tally.events).sum::<u64>(), 2);
}

async fn hostile_model_names_are_stored_as_data(store: &Arc<dyn Store>) {
    // Arrange
    let recorder = Recorder::new(1000);
    for model in HOSTILE {
        serve(&recorder, T0, "ollama", model, 1, 1, 1);
    }
    flush(&recorder, store).await;
    // Act
    let totals = store.stats_totals(None).await.expect("totals");
    // Assert
    let mut models: Vec<&str> = totals.iter().filter(|r| r.kind == Kind::Request).map(|r| r.model.as_str()).collect();
    models.sort_unstable();
    let mut expected = HOSTILE.to_vec();
    expected.sort_unstable();
    assert_eq!(models, expected);
    assert!(store.load_tokens().await.is_ok(), "the tokens table is still there");
}

async fn todays_token_usage_counts_admitted_requests_only(store: &Arc<dyn Store>) {
    // Arrange: token 1 served twice today and once yesterday; token 2 refused once.
    let recorder = Recorder::new(1000);
    serve(&recorder, T0, "ollama", "m", 1, 1, 10);
    serve(&recorder, T0 + HOUR_MS, "ollama", "m", 1, 1, 5);
    serve(&recorder, T0 - DAY_MS, "ollama", "m", 1, 1, 100);
    let refused = Dims {
        kind: Kind::Request,
        provider: provider("ollama"),
        model: "".into(),
        key: None,
        token: Some(token(2)),
        status: 429,
        outcome: Outcome::Rejected,
    };
    recorder.request(T0, refused, Timing::default(), None, false);
    flush(&recorder, store).await;
    // Act
    let used = store.token_usage_since(hour_of(T0)).await.expect("usage");
    // Assert
    assert_eq!(used, vec![pool_core::ports::TokenUsage { token: token(1), requests: 2, tokens: 15 }]);
}
