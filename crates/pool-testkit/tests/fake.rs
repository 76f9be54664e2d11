//! Black-box tests of the fake upstream: routes, stream framing and every fault.

#![expect(clippy::unwrap_used, reason = "tests fail loudly on unexpected errors")]

use std::time::{Duration, Instant};

use pool_testkit::{FakeUpstream, Fault, Outage};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const WAIT: Duration = Duration::from_secs(2);

async fn upstream() -> FakeUpstream {
    FakeUpstream::start().await.unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().build().unwrap()
}

async fn post(up: &FakeUpstream, key: &str, path: &str, body: Value) -> reqwest::Response {
    client()
        .post(format!("{}{path}", up.url()))
        .bearer_auth(key)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn get(up: &FakeUpstream, key: &str, path: &str) -> reqwest::Response {
    client().get(format!("{}{path}", up.url())).bearer_auth(key).send().await.unwrap()
}

async fn json_of(response: reqwest::Response) -> Value {
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// Every body chunk as received until the end (or the first error, returned too).
async fn chunks(mut response: reqwest::Response) -> (Vec<String>, Option<reqwest::Error>) {
    let mut out = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => out.push(String::from_utf8(chunk.to_vec()).unwrap()),
            Ok(None) => return (out, None),
            Err(error) => return (out, Some(error)),
        }
    }
}

/// The JSON payloads of an SSE body (`[DONE]` kept as a string).
fn sse_events(text: &str) -> Vec<Value> {
    text.split("\n\n")
        .filter(|event| !event.is_empty())
        .map(|event| {
            let data = event.strip_prefix("data: ").unwrap();
            serde_json::from_str(data).unwrap_or_else(|_| Value::String(data.to_owned()))
        })
        .collect()
}

fn chat(stream: bool) -> Value {
    json!({"model": "llama3.2:3b", "stream": stream, "messages": [{"role": "user", "content": "hi"}]})
}

/// Sends a raw HTTP/1.1 request and reads everything until the server closes.
async fn raw_exchange(up: &FakeUpstream, key: &str) -> Vec<u8> {
    let mut stream = TcpStream::connect(up.addr()).await.unwrap();
    let body = chat(false).to_string();
    let request = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    stream.read_to_end(&mut received).await.unwrap();
    received
}

#[tokio::test]
async fn a_non_streaming_chat_gets_the_openai_completion_naming_the_model() {
    let up = upstream().await;

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let body = json_of(response).await;
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["model"], "llama3.2:3b");
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-fake-"));
    assert_eq!(body["choices"][0]["message"]["content"], "Hello from the fake upstream.");
    assert_eq!(body["usage"]["total_tokens"], 18);
}

#[tokio::test]
async fn a_streaming_chat_sends_content_events_then_stop_then_done_without_usage() {
    let up = upstream().await;

    let response = post(&up, "sk-a", "/chat/completions", chat(true)).await;

    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let (received, error) = chunks(response).await;
    assert!(error.is_none());
    let events = sse_events(&received.concat());
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["object"], "chat.completion.chunk");
    assert_eq!(events[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(events[0]["choices"][0]["delta"]["content"], "tok0 ");
    assert!(events[1]["choices"][0]["delta"].get("role").is_none());
    assert_eq!(events[2]["choices"][0]["delta"]["content"], "tok2 ");
    assert_eq!(events[3]["choices"][0]["delta"], json!({}));
    assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[4], "[DONE]");
}

#[tokio::test]
async fn include_usage_adds_a_usage_event_before_done() {
    let up = upstream().await;
    up.set_stream_chunks(4, Duration::ZERO);
    let mut request = chat(true);
    request["stream_options"] = json!({"include_usage": true});

    let response = post(&up, "sk-a", "/v1/chat/completions", request).await;

    let events = sse_events(&chunks(response).await.0.concat());
    assert_eq!(events.len(), 7);
    assert_eq!(events[5]["choices"], json!([]));
    assert_eq!(events[5]["usage"], json!({"prompt_tokens": 11, "completion_tokens": 4, "total_tokens": 15}));
    assert_eq!(events[6], "[DONE]");
}

#[tokio::test]
async fn each_streamed_event_arrives_as_its_own_chunk_after_the_delay() {
    let up = upstream().await;
    up.set_stream_chunks(2, Duration::from_millis(20));
    let started = Instant::now();

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(true)).await;
    let (received, error) = chunks(response).await;

    assert!(error.is_none());
    assert_eq!(received.len(), 4);
    assert!(received.iter().all(|c| c.starts_with("data: ") && c.ends_with("\n\n")));
    assert!(started.elapsed() >= Duration::from_millis(80));
}

#[tokio::test]
async fn streamed_completions_use_text_completion_objects() {
    let up = upstream().await;
    let request = json!({"model": "m1", "prompt": "hi", "stream": true});

    let response = post(&up, "sk-a", "/v1/completions", request).await;

    let events = sse_events(&chunks(response).await.0.concat());
    assert_eq!(events.len(), 5);
    assert_eq!(events[0]["object"], "text_completion");
    assert_eq!(events[1]["choices"][0]["text"], "tok1 ");
    assert_eq!(events[3]["choices"][0]["finish_reason"], "stop");
    assert_eq!(events[4], "[DONE]");
    let plain = json_of(post(&up, "sk-a", "/completions", json!({"model": "m1"})).await).await;
    assert_eq!(plain["choices"][0]["text"], "Hello from the fake upstream.");
}

#[tokio::test]
async fn embeddings_answer_a_fixed_vector_on_both_apis() {
    let up = upstream().await;

    let openai = json_of(post(&up, "k", "/v1/embeddings", json!({"model": "e", "input": "x"})).await).await;
    let native = json_of(post(&up, "k", "/api/embed", json!({"model": "e", "input": "x"})).await).await;

    assert_eq!(openai["data"][0]["embedding"], json!([0.1, 0.2, 0.3]));
    assert_eq!(openai["model"], "e");
    assert_eq!(native, json!({"model": "e", "embeddings": [[0.1, 0.2, 0.3]]}));
}

#[tokio::test]
async fn model_lists_default_to_three_models_and_can_be_set_per_key() {
    let up = upstream().await;
    up.set_models(Some("sk-b"), vec!["only-b".to_owned()]);

    let default = json_of(get(&up, "sk-a", "/v1/models").await).await;
    let for_b = json_of(get(&up, "sk-b", "/models").await).await;
    let tags = json_of(get(&up, "sk-b", "/api/tags").await).await;
    up.set_models(None, vec!["d1".to_owned()]);
    let new_default = json_of(get(&up, "sk-a", "/v1/models").await).await;

    let ids: Vec<&str> = default["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["llama3.2:3b", "qwen2.5:7b", "kimi-k2:1t"]);
    assert_eq!(default["data"][0]["owned_by"], "fake");
    assert_eq!(for_b["data"][0]["id"], "only-b");
    assert_eq!(tags["models"][0]["name"], "only-b");
    assert_eq!(tags["models"][0]["digest"], "sha256:00");
    assert_eq!(
        new_default["data"],
        json!([{"id": "d1", "object": "model", "created": 1700000000, "owned_by": "fake"}])
    );
}

#[tokio::test]
async fn native_chat_streams_ndjson_lines_by_default() {
    let up = upstream().await;

    let response = post(&up, "sk-a", "/api/chat", json!({"model": "llama3.2:3b"})).await;

    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let text = chunks(response).await.0.concat();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(text.ends_with('\n'));
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["message"], json!({"role": "assistant", "content": "tok0 "}));
    assert_eq!(lines[0]["done"], false);
    assert_eq!(lines[3]["done"], true);
    assert_eq!(lines[3]["done_reason"], "stop");
    assert_eq!(lines[3]["eval_count"], 3);
    assert_eq!(lines[3]["prompt_eval_count"], 11);
}

#[tokio::test]
async fn native_non_streaming_answers_carry_the_full_content() {
    let up = upstream().await;

    let chat = json_of(post(&up, "k", "/api/chat", json!({"model": "m", "stream": false})).await).await;
    let generate = json_of(post(&up, "k", "/api/generate", json!({"model": "m", "stream": false})).await).await;

    assert_eq!(chat["message"]["content"], "tok0 tok1 tok2 ");
    assert_eq!(chat["done"], true);
    assert_eq!(generate["response"], "tok0 tok1 tok2 ");
    assert!(generate.get("message").is_none());
}

#[tokio::test]
async fn a_request_without_a_bearer_token_gets_401_counted_under_the_empty_key() {
    let up = upstream().await;

    let response = client().get(format!("{}/v1/models", up.url())).send().await.unwrap();

    assert_eq!(response.status(), 401);
    assert_eq!(up.calls(""), 1);
}

#[tokio::test]
async fn unknown_routes_get_404_and_invalid_json_gets_400() {
    let up = upstream().await;

    let unknown = get(&up, "k", "/nope").await;
    let invalid = client()
        .post(format!("{}/v1/chat/completions", up.url()))
        .bearer_auth("k")
        .body("{not json")
        .send()
        .await
        .unwrap();

    assert_eq!(unknown.status(), 404);
    assert_eq!(json_of(unknown).await["error"]["type"], "not_found_error");
    assert_eq!(invalid.status(), 400);
    assert_eq!(json_of(invalid).await["error"]["message"], "invalid json");
}

#[tokio::test]
async fn a_status_fault_answers_that_status_with_retry_after_and_the_default_body() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::rate_limited(Some("7")));

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;

    assert_eq!(response.status(), 429);
    assert_eq!(response.headers()["retry-after"], "7");
    assert_eq!(
        json_of(response).await,
        json!({"error": {"message": "fake upstream error 429", "type": "upstream_error", "code": 429}})
    );
}

#[tokio::test]
async fn a_status_fault_can_carry_its_own_body_and_applies_to_model_lists() {
    let up = upstream().await;
    let fault = Fault::Status { status: 503, retry_after: None, body: Some(r#"{"x":1}"#.to_owned()) };
    up.set_fault("sk-a", fault);

    let response = get(&up, "sk-a", "/v1/models").await;

    assert_eq!(response.status(), 503);
    assert!(response.headers().get("retry-after").is_none());
    assert_eq!(json_of(response).await, json!({"x": 1}));
}

#[tokio::test]
async fn a_slow_first_byte_delays_the_headers_then_answers_normally() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::SlowFirstByte(Duration::from_millis(150)));
    let started = Instant::now();

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;

    assert!(started.elapsed() >= Duration::from_millis(150));
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn drop_before_headers_closes_the_connection_without_any_response() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::DropBeforeHeaders);

    let received = raw_exchange(&up, "sk-a").await;
    let via_client = client()
        .post(format!("{}/v1/chat/completions", up.url()))
        .bearer_auth("sk-a")
        .body(chat(false).to_string())
        .send()
        .await;

    assert!(received.is_empty(), "got {:?}", String::from_utf8_lossy(&received));
    assert!(via_client.is_err());
    assert_eq!(up.calls("sk-a"), 2);
    assert!(raw_exchange(&up, "sk-other").await.starts_with(b"HTTP/1.1 200"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drop_mid_stream_sends_n_events_then_a_body_error() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::DropMidStream { after_events: 2 });

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(true)).await;

    assert_eq!(response.status(), 200);
    let (received, error) = chunks(response).await;
    let events = sse_events(&received.concat());
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["choices"][0]["delta"]["content"], "tok1 ");
    assert!(error.is_some());
}

#[tokio::test]
async fn drop_mid_stream_on_a_non_streaming_answer_cuts_the_body() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::DropMidStream { after_events: 0 });

    let response = post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;

    assert_eq!(response.status(), 200);
    assert!(response.bytes().await.is_err());
}

#[tokio::test]
async fn stall_mid_stream_sends_n_events_then_holds_the_connection_until_the_client_leaves() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::StallMidStream { after_events: 1 });
    let http = client();
    let mut response = http
        .post(format!("{}/v1/chat/completions", up.url()))
        .bearer_auth("sk-a")
        .body(chat(true).to_string())
        .send()
        .await
        .unwrap();

    let first = response.chunk().await.unwrap().unwrap();
    let more = tokio::time::timeout(Duration::from_millis(100), response.chunk()).await;
    let open_while_stalled = up.open_connections();
    drop(response);
    drop(http);

    assert!(String::from_utf8_lossy(&first).contains("tok0 "));
    assert!(more.is_err(), "nothing more should arrive");
    assert_eq!(open_while_stalled, 1);
    assert!(up.wait_for_open_connections(0, WAIT).await);
}

#[tokio::test]
async fn a_client_giving_up_during_a_slow_first_byte_closes_the_upstream_connection() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::SlowFirstByte(Duration::from_millis(300)));
    let started = Instant::now();
    let http = client();
    let request =
        http.post(format!("{}/v1/chat/completions", up.url())).bearer_auth("sk-a").body(chat(false).to_string()).send();

    let gave_up = tokio::time::timeout(Duration::from_millis(50), request).await;
    drop(http);

    assert!(gave_up.is_err());
    assert!(up.wait_for_open_connections(0, Duration::from_millis(150)).await);
    assert!(started.elapsed() < Duration::from_millis(300));
}

#[tokio::test]
async fn model_not_found_names_the_requested_model() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::ModelNotFound);

    let response = post(&up, "sk-a", "/v1/chat/completions", json!({"model": "ghost:1b"})).await;

    assert_eq!(response.status(), 404);
    assert_eq!(
        json_of(response).await,
        json!({"error": {"message": "model \"ghost:1b\" not found", "type": "not_found_error", "code": "model_not_found"}})
    );
}

#[tokio::test]
async fn calls_count_every_request_per_key_including_faulted_ones() {
    let up = upstream().await;
    up.set_fault("sk-b", Fault::status(500));

    post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;
    get(&up, "sk-a", "/nope").await;
    post(&up, "sk-b", "/v1/chat/completions", chat(false)).await;

    assert_eq!(up.calls("sk-a"), 2);
    assert_eq!(up.calls("sk-b"), 1);
    assert_eq!(up.calls("sk-c"), 0);
    assert_eq!(up.total_calls(), 3);
}

#[tokio::test]
async fn fail_next_faults_n_requests_then_answers_normally() {
    let up = upstream().await;
    up.fail_next("sk-a", Fault::status(502), 2);

    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(post(&up, "sk-a", "/v1/chat/completions", chat(false)).await.status().as_u16());
    }

    assert_eq!(statuses, [502, 502, 200]);
}

#[tokio::test]
async fn clear_fault_restores_normal_answers() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::status(500));
    up.fail_next("sk-a", Fault::status(503), 5);

    up.clear_fault("sk-a");
    let response = post(&up, "sk-a", "/v1/chat/completions", chat(false)).await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn last_request_records_method_path_lowercased_headers_and_body_even_when_faulted() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::DropBeforeHeaders);
    let body = chat(false).to_string();

    let _ = client()
        .post(format!("{}/v1/chat/completions?x=1", up.url()))
        .bearer_auth("sk-a")
        .header("X-Trace-Id", "abc")
        .body(body.clone())
        .send()
        .await;

    let recorded = up.last_request("sk-a").unwrap();
    assert_eq!(recorded.method, "POST");
    assert_eq!(recorded.path, "/v1/chat/completions");
    assert!(recorded.headers.contains(&("x-trace-id".to_owned(), "abc".to_owned())));
    assert!(recorded.headers.contains(&("authorization".to_owned(), "Bearer sk-a".to_owned())));
    assert_eq!(recorded.body, body.as_bytes());
    assert!(up.last_request("sk-none").is_none());
}

#[tokio::test]
async fn connections_are_kept_alive_and_counted_until_the_client_goes_away() {
    let up = upstream().await;
    let http = client();

    for _ in 0..3 {
        let response = http.get(format!("{}/v1/models", up.url())).bearer_auth("k").send().await.unwrap();
        response.bytes().await.unwrap();
    }
    let open_with_client = up.open_connections();
    drop(http);

    assert_eq!(open_with_client, 1);
    assert!(up.wait_for_open_connections(0, WAIT).await);
}

#[tokio::test]
async fn shutdown_closes_open_connections_and_stops_accepting() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::StallMidStream { after_events: 0 });
    let addr = up.addr();
    let mut response = post(&up, "sk-a", "/v1/chat/completions", chat(true)).await;

    up.shutdown();

    assert!(response.chunk().await.is_err());
    assert!(TcpStream::connect(addr).await.is_err());
}

/// The statuses of `n` non-streaming chats of `key`, one after the other (0: no answer).
async fn statuses(up: &FakeUpstream, key: &str, n: usize) -> Vec<u16> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let sent = client()
            .post(format!("{}/v1/chat/completions", up.url()))
            .bearer_auth(key)
            .body(chat(false).to_string())
            .send()
            .await;
        out.push(sent.map_or(0, |response| response.status().as_u16()));
    }
    out
}

#[tokio::test]
async fn a_random_fault_fails_about_its_ratio_of_requests_and_repeats_with_its_seed() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::random(0.3, Fault::status(500)));

    up.set_seed(7);
    let first = statuses(&up, "sk-a", 200).await;
    up.set_seed(7);
    let again = statuses(&up, "sk-a", 200).await;

    let failed = first.iter().filter(|s| **s == 500).count();
    assert!((40..=80).contains(&failed), "{failed} of 200 failed");
    assert!(first.iter().all(|s| *s == 500 || *s == 200));
    assert_eq!(first, again, "the same seed draws the same faults");
    assert_eq!(statuses(&up, "sk-b", 5).await, [200; 5], "other keys are untouched");
}

#[tokio::test]
async fn random_ratios_of_zero_and_one_never_and_always_fail() {
    let up = upstream().await;
    up.set_fault("sk-never", Fault::random(0.0, Fault::status(500)));
    up.set_fault("sk-always", Fault::random(1.0, Fault::status(502)));

    assert_eq!(statuses(&up, "sk-never", 20).await, [200; 20]);
    assert_eq!(statuses(&up, "sk-always", 20).await, [502; 20]);
}

#[tokio::test]
async fn one_of_picks_among_its_faults_including_a_dropped_connection() {
    let up = upstream().await;
    let mix = Fault::OneOf(vec![Fault::status(500), Fault::status(503), Fault::DropBeforeHeaders]);
    up.set_fault("sk-a", Fault::random(1.0, mix));
    up.set_seed(1);

    let seen = statuses(&up, "sk-a", 60).await;

    for status in [500, 503, 0] {
        assert!(seen.contains(&status), "{status} never drawn in {seen:?}");
    }
    assert!(!seen.contains(&200));
    assert_eq!(statuses(&up, "sk-b", 1).await, [200]);
}

#[tokio::test]
async fn an_outage_answers_503_to_every_key_then_service_returns() {
    let up = upstream().await;
    up.set_fault("sk-a", Fault::status(401));

    up.set_outage(Outage::Unavailable);
    let during = [
        statuses(&up, "sk-a", 2).await,
        statuses(&up, "sk-b", 2).await,
        vec![get(&up, "sk-b", "/v1/models").await.status().as_u16()],
    ];
    up.set_outage(Outage::Off);

    assert_eq!(during.concat(), [503; 5]);
    assert_eq!(statuses(&up, "sk-b", 2).await, [200, 200]);
    assert_eq!(statuses(&up, "sk-a", 1).await, [401], "per-key faults apply again");
    assert_eq!(up.calls("sk-b"), 5);
}

#[tokio::test]
async fn a_dropping_outage_closes_connections_old_and_new_without_answering() {
    let up = upstream().await;
    let kept_alive = client();
    let send = |client: &reqwest::Client| {
        client
            .post(format!("{}/v1/chat/completions", up.url()))
            .bearer_auth("sk-a")
            .body(chat(false).to_string())
            .send()
    };
    assert_eq!(send(&kept_alive).await.unwrap().status(), 200);

    up.set_outage(Outage::Drop);
    let on_the_old_connection = send(&kept_alive).await;
    let on_new_ones = statuses(&up, "sk-b", 3).await;
    up.set_outage(Outage::Off);

    assert!(on_the_old_connection.is_err());
    assert_eq!(on_new_ones, [0, 0, 0]);
    assert!(up.wait_for_open_connections(0, WAIT).await);
    assert_eq!(statuses(&up, "sk-b", 1).await, [200]);
}
