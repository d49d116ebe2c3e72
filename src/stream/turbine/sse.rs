//! Reading `text/event-stream` bytes as they come: the payloads of the
//! unnamed events, which is where the Hystrix stream puts its objects.
//!
//! Follows the event-stream rules as far as a Hystrix stream needs them:
//! lines end in `\n` (a `\r` before it is dropped); `data:` lines add to
//! the event (several join with `\n`), a blank line ends it; `:` lines
//! are comments; named events (`event: x`) are skipped, as the dashboard
//! skips them; other fields (`ping:`, `id:`, `retry:`) are ignored. A line
//! or an event larger than the bound is skipped whole, so a peer cannot
//! grow the reader's memory.

/// The largest event taken in: a Hystrix object is a few kilobytes.
pub(crate) const MAX_EVENT: usize = 1 << 20;

#[derive(Debug, Default)]
pub(crate) struct SseReader {
    /// The line being read, up to its `\n`.
    line: Vec<u8>,
    /// The data of the event being read.
    data: Vec<u8>,
    has_data: bool,
    /// The event has a name other than `message`: it is not ours.
    named: bool,
    /// The event (or one of its lines) outgrew the bound: skip it whole.
    oversized: bool,
    /// The line being read outgrew the bound: drop it up to its `\n`.
    skip_line: bool,
}

impl SseReader {
    pub(crate) fn new() -> Self {
        SseReader::default()
    }

    /// Reads `chunk`, calling `event` with the data of each unnamed event
    /// it completes.
    pub(crate) fn feed(&mut self, chunk: &[u8], mut event: impl FnMut(&[u8])) {
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let (head, tail) = rest.split_at(end);
            rest = &tail[1..];
            if self.skip_line {
                self.skip_line = false;
                self.line.clear();
            } else if self.line.is_empty() {
                // The whole line is in this chunk: no copy.
                self.line_done(head, &mut event);
            } else {
                self.push_line(head);
                let line = std::mem::take(&mut self.line);
                self.line_done(&line, &mut event);
                self.line = line;
                self.line.clear();
            }
        }
        self.push_line(rest);
    }

    fn push_line(&mut self, bytes: &[u8]) {
        if self.skip_line {
            return;
        }
        if self.line.len() + bytes.len() > MAX_EVENT {
            self.oversized = true;
            self.skip_line = true;
            self.line.clear();
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn line_done(&mut self, line: &[u8], event: &mut impl FnMut(&[u8])) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            if self.has_data && !self.named && !self.oversized {
                event(&self.data);
            } else if self.oversized {
                tracing::debug!(
                    bound = MAX_EVENT,
                    "turbine: skipped an event over the size bound"
                );
            }
            self.data.clear();
            self.has_data = false;
            self.named = false;
            self.oversized = false;
            return;
        }
        if line[0] == b':' {
            return;
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                if self.oversized {
                    return;
                }
                if self.data.len() + value.len() + 1 > MAX_EVENT {
                    self.oversized = true;
                    self.data.clear();
                    return;
                }
                if self.has_data {
                    self.data.push(b'\n');
                }
                self.data.extend_from_slice(value);
                self.has_data = true;
            }
            b"event" => self.named = !value.is_empty() && value != b"message",
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(chunks: &[&[u8]]) -> Vec<String> {
        let mut reader = SseReader::new();
        let mut out = Vec::new();
        for chunk in chunks {
            reader.feed(chunk, |e| out.push(String::from_utf8(e.to_vec()).unwrap()));
        }
        out
    }

    #[test]
    fn reads_hystrix_frames() {
        let frame = b"data: {\"a\":1}\n\ndata: {\"b\":2}\n\nping: \n\n";
        assert_eq!(events(&[frame]), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn events_split_anywhere_across_chunks() {
        let frame: &[u8] = b"data: {\"a\":1}\r\n\r\n: comment\n\ndata:{\"b\":2}\n\n";
        for cut in 0..frame.len() {
            let (a, b) = frame.split_at(cut);
            assert_eq!(events(&[a, b]), ["{\"a\":1}", "{\"b\":2}"], "cut at {cut}");
        }
        let bytes: Vec<&[u8]> = frame.chunks(1).collect();
        assert_eq!(events(&bytes), ["{\"a\":1}", "{\"b\":2}"]);
    }

    #[test]
    fn several_data_lines_join() {
        assert_eq!(events(&[b"data: a\ndata: b\n\n"]), ["a\nb"]);
    }

    #[test]
    fn named_events_comments_and_other_fields_are_skipped() {
        let frame = b"event: meta\ndata: {\"x\":1}\n\n: hi\nid: 3\nretry: 10\n\nevent: message\ndata: ok\n\n";
        assert_eq!(events(&[frame]), ["ok"]);
    }

    #[test]
    fn an_event_without_data_is_nothing() {
        assert!(events(&[b"\n\n\nping: \n\n"]).is_empty());
    }

    #[test]
    fn an_unfinished_event_waits_for_its_blank_line() {
        assert!(events(&[b"data: {\"a\":1}\n"]).is_empty());
    }

    #[test]
    fn oversized_events_are_skipped_whole() {
        let big = vec![b'x'; MAX_EVENT + 10];
        let mut reader = SseReader::new();
        let mut out = Vec::new();
        let mut take = |e: &[u8]| out.push(e.len());
        reader.feed(b"data: ", &mut take);
        reader.feed(&big, &mut take);
        reader.feed(b"\n\ndata: small\n\n", &mut take);
        // Many data lines that add up past the bound.
        let line = vec![b'y'; 1000];
        for _ in 0..(MAX_EVENT / 1000 + 2) {
            reader.feed(b"data: ", &mut take);
            reader.feed(&line, &mut take);
            reader.feed(b"\n", &mut take);
        }
        reader.feed(b"\ndata: again\n\n", &mut take);
        assert_eq!(out, [5, 5]);
    }
}
