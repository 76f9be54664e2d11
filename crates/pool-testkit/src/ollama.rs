//! The Ollama-native answers: `/api/chat`, `/api/generate`, `/api/embed` and `/api/tags`.

use bytes::Bytes;

use crate::ask::Ask;
use crate::body::{NDJSON, Reply};

const CREATED_AT: &str = "2025-01-01T00:00:00Z";

/// Which native generation endpoint is answered.
#[derive(Clone, Copy)]
pub(crate) enum Native {
    /// `/api/chat`: content under `message`.
    Chat,
    /// `/api/generate`: content under `response`.
    Generate,
}

impl Native {
    /// The JSON member carrying `content` (already escaped), without braces around it.
    fn content(self, content: &str) -> String {
        match self {
            Native::Chat => format!(r#""message":{{"role":"assistant","content":"{content}"}}"#),
            Native::Generate => format!(r#""response":"{content}""#),
        }
    }
}

/// `POST /api/chat` or `POST /api/generate`; streams (ndjson) unless `stream` is false.
pub(crate) fn generate(ask: &Ask, kind: Native) -> Reply {
    let m = &ask.model;
    let n = ask.chunks;
    let last = |content: &str| {
        let part = kind.content(content);
        format!(
            r#"{{"model":{m},"created_at":"{CREATED_AT}",{part},"done":true,"done_reason":"stop","prompt_eval_count":11,"eval_count":{n}}}"#
        )
    };
    if !ask.stream {
        let full: String = (0..n).map(|i| format!("tok{i} ")).collect();
        return Reply::ok(last(&full));
    }
    let mut events = Vec::with_capacity(n + 1);
    for i in 0..n {
        let part = kind.content(&format!("tok{i} "));
        events.push(Bytes::from(format!("{{\"model\":{m},\"created_at\":\"{CREATED_AT}\",{part},\"done\":false}}\n")));
    }
    events.push(Bytes::from(last("") + "\n"));
    Reply::Stream { content_type: NDJSON, events, delay: ask.delay }
}

/// `POST /api/embed`.
pub(crate) fn embed(ask: &Ask) -> Reply {
    let m = &ask.model;
    Reply::ok(format!(r#"{{"model":{m},"embeddings":[[0.1,0.2,0.3]]}}"#))
}

/// `GET /api/tags`.
pub(crate) fn tags(models: &[String]) -> Reply {
    let mut body = String::from(r#"{"models":["#);
    for (i, model) in models.iter().enumerate() {
        if i > 0 {
            body.push(',');
        }
        let m = crate::ask::quote(model);
        body.push_str(&format!(
            r#"{{"name":{m},"model":{m},"modified_at":"{CREATED_AT}","size":1000,"digest":"sha256:00"}}"#
        ));
    }
    body.push_str("]}");
    Reply::ok(body)
}
