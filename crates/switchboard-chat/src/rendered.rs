//! Rendered markdown, remembered. Rendering is the costliest thing a page does (syntax
//! highlighting above all: milliseconds for a reply with a few code blocks), and a finished
//! message's text never changes, yet every page load and every device showed it rendered anew.
//!
//! The cache is keyed by the exact source text (compared in full on a hit, not by a hash), so it
//! can only ever give a text its own HTML, whoever asks. It is bounded in bytes: two generations,
//! the young one filling up, the old one dropped when the young one is full and takes its place;
//! a hit in the old generation moves the entry back to the young one (an approximation of LRU at
//! the cost of a hash-map lookup).
//!
//! A streaming reply's text changes with every write, and its followers ask for it rendered
//! several times a second ([`render_streaming`]): its settled blocks are remembered one by one,
//! in a cache of their own (4 MiB), and only the block still growing is rendered each time, so
//! following a reply costs in proportion to its length, not to its length squared.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};

use crate::markdown;

/// Bytes of source text and HTML kept at most, both generations together.
const BUDGET_BYTES: usize = 8 * 1024 * 1024;

static CACHE: LazyLock<Mutex<RenderCache>> =
    LazyLock::new(|| Mutex::new(RenderCache::new(BUDGET_BYTES)));

/// The same for the settled blocks of streaming replies: a cache of its own, so the texts sent to
/// `POST /api/render` can never push finished messages out of [`CACHE`].
const PARTS_BUDGET_BYTES: usize = 4 * 1024 * 1024;

static PARTS: LazyLock<Mutex<RenderCache>> =
    LazyLock::new(|| Mutex::new(RenderCache::new(PARTS_BUDGET_BYTES)));

/// `text` rendered and sanitized ([`markdown::render`]), from the cache when it was rendered
/// before.
pub fn render_remembered(text: &str) -> String {
    remembered_in(&CACHE, text).to_string()
}

fn remembered_in(cache: &Mutex<RenderCache>, text: &str) -> Arc<str> {
    let cached = cache.lock().unwrap_or_else(|e| e.into_inner()).get(text);
    if let Some(html) = cached {
        return html;
    }
    // Rendered outside the lock: two threads may render the same text at once, and the second
    // insert replaces the first with the same HTML.
    let html: Arc<str> = markdown::render(text).into();
    cache
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(text, html.clone());
    html
}

/// A streaming reply's text so far, rendered: its settled parts ([`markdown::settled_ends`])
/// remembered (in [`PARTS`]), the part still growing rendered afresh. The HTML is the one
/// [`markdown::render`] gives for the whole text.
pub fn render_streaming(text: &str) -> String {
    let mut html = String::with_capacity(text.len() * 3 / 2 + 64);
    let mut from = 0;
    for end in markdown::settled_ends(text) {
        html.push_str(&remembered_in(&PARTS, &text[from..end]));
        from = end;
    }
    html.push_str(&markdown::render(&text[from..]));
    html
}

/// Prose up to this many bytes renders in tens of microseconds (measured: 64 words 3 µs, 300
/// bytes with emphasis, a link and a list 43 µs; `examples/render_time.rs`).
const QUICK_PROSE_BYTES: usize = 256;

/// Whether rendering `text` takes only microseconds: it is short prose (a fenced code block is
/// highlighted, and a few lines of code take hundreds of microseconds), or, when `remembered`
/// may be used, its HTML is in the cache.
pub fn is_quick(text: &str, remembered: bool) -> bool {
    let short_prose =
        text.len() <= QUICK_PROSE_BYTES && !text.contains("```") && !text.contains("~~~");
    short_prose
        || remembered
            && CACHE
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .young_or_old_has(text)
}

/// A byte-bounded map from source text to its HTML (see the module docs).
struct RenderCache {
    young: HashMap<Arc<str>, Arc<str>>,
    young_bytes: usize,
    old: HashMap<Arc<str>, Arc<str>>,
    /// Each generation holds at most half of the budget.
    generation_bytes: usize,
}

impl RenderCache {
    fn new(budget_bytes: usize) -> RenderCache {
        RenderCache {
            young: HashMap::new(),
            young_bytes: 0,
            old: HashMap::new(),
            generation_bytes: budget_bytes / 2,
        }
    }

    fn get(&mut self, text: &str) -> Option<Arc<str>> {
        if let Some(html) = self.young.get(text) {
            return Some(html.clone());
        }
        let (text, html) = self.old.remove_entry(text)?;
        self.keep(text, html.clone());
        Some(html)
    }

    fn young_or_old_has(&self, text: &str) -> bool {
        self.young.contains_key(text) || self.old.contains_key(text)
    }

    fn insert(&mut self, text: &str, html: Arc<str>) {
        self.keep(Arc::from(text), html);
    }

    fn keep(&mut self, text: Arc<str>, html: Arc<str>) {
        let bytes = text.len() + html.len();
        // One text that large would push out everything else for one entry.
        if bytes > self.generation_bytes / 2 {
            return;
        }
        if self.young_bytes + bytes > self.generation_bytes {
            self.old = std::mem::take(&mut self.young);
            self.young_bytes = 0;
        }
        self.young_bytes += bytes;
        self.young.insert(text, html);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_text_gets_its_own_html_back_and_nothing_else() {
        let mut cache = RenderCache::new(1024);
        cache.insert("**a**", "<p><strong>a</strong></p>".into());
        assert_eq!(
            cache.get("**a**").as_deref(),
            Some("<p><strong>a</strong></p>")
        );
        assert_eq!(cache.get("**a** "), None);
        assert_eq!(cache.get("**b**"), None);
    }

    #[test]
    fn the_bytes_kept_stay_within_the_budget_and_recent_texts_stay() {
        // 100 bytes per entry, 400 per generation: at most 8 entries in all.
        let mut cache = RenderCache::new(800);
        let texts: Vec<String> = (0..50).map(|i| format!("{i:0>50}")).collect();
        for text in &texts {
            cache.insert(text, "h".repeat(50).into());
            assert!(cache.len() <= 8, "{} entries", cache.len());
        }
        assert!(cache.get(&texts[49]).is_some(), "the last text is kept");
        assert!(cache.get(&texts[0]).is_none(), "the first text is gone");
    }

    #[test]
    fn a_hit_in_the_old_generation_survives_the_next_turnover() {
        let mut cache = RenderCache::new(800);
        cache.insert("keep me", "h".repeat(93).into());
        for i in 0..4 {
            cache.insert(&format!("{i:0>50}"), "h".repeat(50).into());
        }
        // "keep me" is now in the old generation; reading it brings it back to the young one.
        assert!(cache.get("keep me").is_some());
        for i in 4..7 {
            cache.insert(&format!("{i:0>50}"), "h".repeat(50).into());
        }
        assert!(cache.get("keep me").is_some(), "a text in use is kept");
        assert!(cache.get(&format!("{:0>50}", 0)).is_none());
    }

    #[test]
    fn a_text_larger_than_a_quarter_of_the_budget_is_not_kept() {
        let mut cache = RenderCache::new(800);
        cache.insert("small", "<p>small</p>".into());
        cache.insert(&"x".repeat(150), "y".repeat(150).into());
        assert_eq!(cache.get(&"x".repeat(150)), None);
        assert!(
            cache.get("small").is_some(),
            "nothing was pushed out for it"
        );
    }

    #[test]
    fn a_remembered_text_renders_as_the_renderer_renders_it() {
        let text = "remembered *once*\n\n```rust\nfn main() {}\n```";
        assert!(!is_quick(text, true), "code is highlighted: not quick");
        let first = render_remembered(text);
        assert_eq!(first, markdown::render(text));
        assert!(is_quick(text, true), "remembered now");
        assert!(!is_quick(text, false), "unless the cache may not be used");
        assert_eq!(render_remembered(text), first);
    }

    /// Replies as models write them, and the constructs that reach across blocks.
    const STREAMED: &[&str] = &[
        "# Plan\n\nFirst, *read* the file.\n\n```rust\nfn main() {\n\n    println!(\"hi\");\n}\n```\n\nThen:\n\n- one\n- two\n\n  still two\n- three\n\nDone. $x^2$ costs $3.\n",
        "Steps:\n\n1. a\n\n2. b\n\n   ```\n   code in a list\n\n   more code\n   ```\n3. c\n\nAfter the list.\n\n> quoted\n>\n> still quoted\n\nlazy\ncontinued\n",
        "| a | b |\n|---|---|\n| 1 | 2 |\n\nText under the table.\n\n~~~~\n```\nnot the end\n```\n\n~~~~\n\nTitle\n=====\n\n---\n\n    indented code\n\n    more\n\nend",
        "See [the docs][d] and [x].\n\nMore text.\n\n[d]: https://example.com/docs\n[x]: https://example.com/x\n",
        "Before.\n\nMore before.\n\n<pre>\nkept\n\nas one block\n</pre>\n\nAfter the pre.\n\n<!-- a comment\n\nspanning -->\n\nend",
        "```py`\nnot a fence\n\ntext\n```\n\ncode?\n\nmore\n",
        // A vertical tab is not blank (found by the fuzzer).
        "|\n\u{b}\n\0mmo\n\nnext",
        "0`\n`s`\r```$\n\n`s`\r`@\n$``",
        "`\\](\n\n\\(\n\nms$$S\r",
        "- a\n  ```\n  x $y$\n\nnext $z$\n```\n\ninside $w$\n\nmore",
        "1.  a\n    ```\n    x $y$\n\nnext $z$\n```\n\ninside $w$\n\nmore",
        "- [ ] task\n- [x] done\n\nWindows\r\n\r\nline endings\r\n\r\n\\[\nx = 1\n\\]\n\nThat was math.",
        "1. Run\n   - this:\n     ```sh\n     echo $1 \\(x\\)\n\n     ```\n\n> ```\n> cost $5\n> ```\n\nA span `over\n$2` lines, $3.\n\n    indented $4\n\nend $5",
    ];

    #[test]
    fn a_streaming_reply_renders_at_every_length_as_the_whole_text_does() {
        for doc in STREAMED {
            for (at, _) in doc.char_indices().chain([(doc.len(), ' ')]) {
                let prefix = &doc[..at];
                assert_eq!(
                    render_streaming(prefix),
                    markdown::render(prefix),
                    "rendering {prefix:?} in parts"
                );
            }
        }
    }

    #[test]
    fn a_streaming_reply_is_cut_into_parts_between_blocks() {
        // The property above holds trivially without cuts: show where they fall.
        let starts = |doc: &str| -> Vec<String> {
            markdown::settled_ends(doc)
                .into_iter()
                .map(|at| doc[at..].chars().take(6).collect())
                .collect()
        };
        // The list stays with "Then:" (a list item could still follow it).
        assert_eq!(
            starts(STREAMED[0]),
            ["First,", "```rus", "Then:\n", "Done. "]
        );
        assert_eq!(
            starts(STREAMED[3]),
            Vec::<String>::new(),
            "a reference is used anywhere"
        );
        // Never inside the <pre> block or the comment, both of which hold blank lines.
        assert_eq!(starts(STREAMED[4]), ["More b", "After ", "end"]);
        // A fence in a list item ends with the item, and the fence after "next" runs to the
        // end: cut at "next", never at "inside" or "more".
        let doc = "- a\n  ```\n  x\n\nnext\n```\n\ninside\n\nmore";
        assert_eq!(starts(doc), ["next\n`"]);
        let doc = "1.  a\n    ```\n    x\n\nnext\n```\n\ninside\n\nmore";
        assert_eq!(starts(doc), ["next\n`"]);
    }

    #[test]
    fn streaming_parts_are_remembered_apart_from_finished_messages() {
        let doc = "A part only a streaming reply has.\n\nAnd the growing one";
        let part = &doc[..markdown::settled_ends(doc)[0]];
        render_streaming(doc);
        let held = |cache: &Mutex<RenderCache>| {
            cache
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .young_or_old_has(part)
        };
        assert!(held(&PARTS), "the settled part is remembered");
        assert!(!held(&CACHE), "but not among finished messages");
    }

    #[test]
    fn short_prose_is_quick_and_code_or_long_text_is_not() {
        assert!(is_quick(
            "Hello **there**, see [this](https://example.com).",
            false
        ));
        assert!(!is_quick("~~~\nplain\n~~~", false));
        assert!(!is_quick(&"word ".repeat(60), false));
    }
}
