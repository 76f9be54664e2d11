//! Reading a server-sent event stream (a job's progress) from chunks as they arrive.
//!
//! Only what the gateway sends is understood: `event:` and `data:` lines, blocks ending in a
//! blank line, and comment lines (keep-alives), which are skipped.

/// Collects bytes and hands out complete events.
#[derive(Debug, Default)]
pub struct EventReader {
    buffer: Vec<u8>,
}

/// One event: its name (`message` when unnamed) and its data.
#[derive(Debug, PartialEq, Eq)]
pub struct Event {
    pub name: String,
    pub data: String,
}

impl EventReader {
    /// Adds a chunk and returns the events it completed. A chunk may end mid-event, or even
    /// mid-character; the rest waits for the next chunk.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<Event> {
        self.buffer.extend_from_slice(chunk);
        let mut events = Vec::new();
        while let Some(end) = self.buffer.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = self.buffer.drain(..end + 2).collect();
            events.extend(parse_block(&String::from_utf8_lossy(&block)));
        }
        events
    }
}

fn parse_block(block: &str) -> Option<Event> {
    let mut name = "message".to_owned();
    let mut data = Vec::new();
    for line in block.lines() {
        if let Some(value) = line.strip_prefix("event:") {
            name = value.trim_start().to_owned();
        } else if let Some(value) = line.strip_prefix("data:") {
            data.push(value.strip_prefix(' ').unwrap_or(value));
        }
    }
    (!data.is_empty()).then(|| Event { name, data: data.join("\n") })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_split_across_chunks_are_put_back_together() {
        let mut reader = EventReader::default();
        assert!(reader.push(b"event: progress\nda").is_empty());
        let events = reader.push(b"ta: {\"done\":1}\n\n:\n\nevent: done\ndata: {}\n\n");
        assert_eq!(
            events,
            vec![
                Event { name: "progress".into(), data: "{\"done\":1}".into() },
                Event { name: "done".into(), data: "{}".into() },
            ]
        );
    }

    #[test]
    fn an_unnamed_event_with_several_data_lines_is_a_message_joined_by_newlines() {
        let mut reader = EventReader::default();
        let events = reader.push(b"data: a\ndata:b\n\n");
        assert_eq!(events, vec![Event { name: "message".into(), data: "a\nb".into() }]);
    }
}
