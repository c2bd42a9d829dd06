//! `<think>…</think>` in content, as local models (DeepSeek-R1 distills, Qwen3, …) send their
//! reasoning: the text inside the tags becomes `Reasoning`, the rest `Content`.
//!
//! Only a `<think>` that opens the content (after optional whitespace) counts: an answer that merely
//! mentions the tag later must stay content. Tags may be split anywhere across deltas (`<th` +
//! `ink>`), so a possible partial tag at the end of a delta is held back until the next one.

use super::event::StreamEvent;

const OPEN: &str = "<think>";
const CLOSE: &str = "</think>";

#[derive(Debug, Default)]
pub(crate) enum ThinkSplitter {
    /// Nothing but whitespace (or a prefix of `<think>`) seen yet; held in the string.
    #[default]
    Start,
    StartHeld(String),
    /// Inside the tags; the string is a held-back possible prefix of `</think>`.
    Inside(String),
    /// Plain content from here on.
    Outside,
}

impl ThinkSplitter {
    /// Splits one content delta into `Content`/`Reasoning` events.
    pub(crate) fn push(&mut self, text: String, out: &mut Vec<StreamEvent>) {
        if text.is_empty() {
            return;
        }
        match std::mem::take(self) {
            ThinkSplitter::Outside => {
                *self = ThinkSplitter::Outside;
                out.push(StreamEvent::Content(text));
            }
            ThinkSplitter::Start => self.start(text, out),
            ThinkSplitter::StartHeld(mut held) => {
                held.push_str(&text);
                self.start(held, out);
            }
            ThinkSplitter::Inside(mut held) => {
                let buf = if held.is_empty() {
                    text
                } else {
                    held.push_str(&text);
                    held
                };
                self.inside(buf, out);
            }
        }
    }

    /// The content is over (or the turn finished): release anything held back.
    pub(crate) fn flush(&mut self, out: &mut Vec<StreamEvent>) {
        match std::mem::take(self) {
            ThinkSplitter::StartHeld(held) => {
                *self = ThinkSplitter::Outside;
                out.push(StreamEvent::Content(held));
            }
            ThinkSplitter::Inside(held) => {
                *self = ThinkSplitter::Inside(String::new());
                if !held.is_empty() {
                    out.push(StreamEvent::Reasoning(held));
                }
            }
            other => *self = other,
        }
    }

    fn start(&mut self, buf: String, out: &mut Vec<StreamEvent>) {
        let trimmed = buf.trim_start();
        if let Some(rest) = trimmed.strip_prefix(OPEN) {
            let rest = rest.to_owned();
            *self = ThinkSplitter::Inside(String::new());
            if !rest.is_empty() {
                self.inside(rest, out);
            }
        } else if OPEN.starts_with(trimmed) {
            *self = ThinkSplitter::StartHeld(buf);
        } else {
            *self = ThinkSplitter::Outside;
            out.push(StreamEvent::Content(buf));
        }
    }

    fn inside(&mut self, mut buf: String, out: &mut Vec<StreamEvent>) {
        if let Some(at) = buf.find(CLOSE) {
            let content = buf.split_off(at + CLOSE.len());
            buf.truncate(at);
            *self = ThinkSplitter::Outside;
            if !buf.is_empty() {
                out.push(StreamEvent::Reasoning(buf));
            }
            if !content.is_empty() {
                out.push(StreamEvent::Content(content));
            }
            return;
        }
        // Hold back the longest tail that could still grow into `</think>`. The tag is ASCII and
        // starts with `<`, so the cut is always on a character boundary.
        let keep = (1..CLOSE.len().min(buf.len() + 1))
            .rev()
            .find(|&n| buf.ends_with(&CLOSE[..n]))
            .unwrap_or(0);
        let held = buf.split_off(buf.len() - keep);
        if !buf.is_empty() {
            out.push(StreamEvent::Reasoning(buf));
        }
        *self = ThinkSplitter::Inside(held);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `deltas` through a splitter and coalesces the output into (reasoning, content).
    fn split(deltas: &[&str]) -> (String, String, Vec<StreamEvent>) {
        let mut splitter = ThinkSplitter::default();
        let mut out = Vec::new();
        for delta in deltas {
            splitter.push((*delta).to_owned(), &mut out);
        }
        splitter.flush(&mut out);
        let (mut reasoning, mut content) = (String::new(), String::new());
        for event in &out {
            match event {
                StreamEvent::Reasoning(t) => reasoning.push_str(t),
                StreamEvent::Content(t) => content.push_str(t),
                other => panic!("unexpected {other:?}"),
            }
        }
        (reasoning, content, out)
    }

    #[test]
    fn think_tags_split_at_every_position_still_split_reasoning_from_content() {
        let text = "<think>plan é</think>answer";
        for cut in (0..=text.len()).filter(|&c| text.is_char_boundary(c)) {
            for cut2 in (cut..=text.len()).filter(|&c| text.is_char_boundary(c)) {
                let deltas = [&text[..cut], &text[cut..cut2], &text[cut2..]];
                let (reasoning, content, _) = split(&deltas);
                assert_eq!((reasoning.as_str(), content.as_str()), ("plan é", "answer"));
            }
        }
    }

    #[test]
    fn reasoning_is_streamed_before_the_closing_tag_arrives() {
        let (_, _, events) = split(&["<think>one ", "two </th", "ink>three"]);
        assert_eq!(
            events,
            vec![
                StreamEvent::Reasoning("one ".into()),
                StreamEvent::Reasoning("two ".into()),
                StreamEvent::Content("three".into()),
            ]
        );
    }

    #[test]
    fn a_tag_later_in_the_answer_is_content() {
        let (reasoning, content, _) = split(&["Use ", "<think>x</think> tags"]);
        assert_eq!(reasoning, "");
        assert_eq!(content, "Use <think>x</think> tags");
    }

    #[test]
    fn leading_whitespace_before_the_tag_is_dropped_and_plain_whitespace_kept() {
        assert_eq!(split(&["\n", "<think>r</think>c"]).1, "c");
        assert_eq!(split(&["\n\n", "Of course"]).1, "\n\nOf course");
        assert_eq!(split(&["<thi"]).1, "<thi");
    }

    #[test]
    fn an_unterminated_think_is_all_reasoning() {
        let (reasoning, content, _) = split(&["<think>cut off </thi"]);
        assert_eq!(
            (reasoning.as_str(), content.as_str()),
            ("cut off </thi", "")
        );
    }
}
