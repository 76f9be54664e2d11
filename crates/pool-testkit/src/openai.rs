//! The OpenAI-shaped answers: chat completions, completions, embeddings and the model list.

use bytes::Bytes;

use crate::ask::Ask;
use crate::body::{Reply, SSE};

/// Prompt tokens reported in every usage block.
const PROMPT_TOKENS: usize = 11;

/// `POST /v1/chat/completions`.
pub(crate) fn chat(ask: &Ask) -> Reply {
    let Ask { id, model: m, .. } = ask;
    if !ask.stream {
        return Reply::ok(format!(
            r#"{{"id":"chatcmpl-fake-{id}","object":"chat.completion","created":1700000000,"model":{m},"choices":[{{"index":0,"message":{{"role":"assistant","content":"Hello from the fake upstream."}},"finish_reason":"stop"}}],"usage":{{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}}}"#
        ));
    }
    let pre = format!(
        r#"data: {{"id":"chatcmpl-fake-{id}","object":"chat.completion.chunk","created":1700000000,"model":{m},"choices":["#
    );
    let mut events = Vec::with_capacity(ask.chunks + 3);
    for i in 0..ask.chunks {
        let role = if i == 0 { r#""role":"assistant","# } else { "" };
        events.push(Bytes::from(
            format!(r#"{pre}{{"index":0,"delta":{{{role}"content":"tok{i} "}},"finish_reason":null}}]}}"#) + "\n\n",
        ));
    }
    events.push(Bytes::from(format!(r#"{pre}{{"index":0,"delta":{{}},"finish_reason":"stop"}}]}}"#) + "\n\n"));
    finish_stream(ask, &pre, events)
}

/// `POST /v1/completions`.
pub(crate) fn completions(ask: &Ask) -> Reply {
    let Ask { id, model: m, .. } = ask;
    if !ask.stream {
        return Reply::ok(format!(
            r#"{{"id":"cmpl-fake-{id}","object":"text_completion","created":1700000000,"model":{m},"choices":[{{"index":0,"text":"Hello from the fake upstream.","finish_reason":"stop"}}],"usage":{{"prompt_tokens":11,"completion_tokens":7,"total_tokens":18}}}}"#
        ));
    }
    let pre = format!(
        r#"data: {{"id":"cmpl-fake-{id}","object":"text_completion","created":1700000000,"model":{m},"choices":["#
    );
    let mut events = Vec::with_capacity(ask.chunks + 3);
    for i in 0..ask.chunks {
        events.push(Bytes::from(format!(r#"{pre}{{"index":0,"text":"tok{i} ","finish_reason":null}}]}}"#) + "\n\n"));
    }
    events.push(Bytes::from(format!(r#"{pre}{{"index":0,"text":"","finish_reason":"stop"}}]}}"#) + "\n\n"));
    finish_stream(ask, &pre, events)
}

/// Appends the optional usage event and `[DONE]`, and makes the SSE reply.
fn finish_stream(ask: &Ask, pre: &str, mut events: Vec<Bytes>) -> Reply {
    if ask.include_usage {
        let n = ask.chunks;
        let total = PROMPT_TOKENS + n;
        events.push(Bytes::from(
            format!(
                r#"{pre}],"usage":{{"prompt_tokens":{PROMPT_TOKENS},"completion_tokens":{n},"total_tokens":{total}}}}}"#
            ) + "\n\n",
        ));
    }
    events.push(Bytes::from_static(b"data: [DONE]\n\n"));
    Reply::Stream { content_type: SSE, events, delay: ask.delay }
}

/// `POST /v1/embeddings`.
pub(crate) fn embeddings(ask: &Ask) -> Reply {
    let m = &ask.model;
    Reply::ok(format!(
        r#"{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[0.1,0.2,0.3]}}],"model":{m},"usage":{{"prompt_tokens":3,"total_tokens":3}}}}"#
    ))
}

/// `GET /v1/models`.
pub(crate) fn models(models: &[String]) -> Reply {
    let mut body = String::from(r#"{"object":"list","data":["#);
    for (i, model) in models.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let m = crate::ask::quote(model);
        body.push_str(&format!(r#"{{"id":{m},"object":"model","created":1700000000,"owned_by":"fake"}}"#));
    }
    body.push_str("]}");
    Reply::ok(body)
}
