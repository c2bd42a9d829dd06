//! Markdown to safe HTML, on the server: model output (and user messages) are rendered here and
//! sanitized, so a message can never run script in the browser.
//!
//! The pipeline is pulldown-cmark (GFM tables, task lists, strikethrough, math) → our event
//! rewrites → HTML → ammonia. The rewrites do three things:
//!
//! - **Raw HTML in the source is shown as text**, not interpreted. A chat is full of people and
//!   models talking *about* HTML; showing `<div>` literally is what they mean, and it removes the
//!   largest class of injection before the sanitizer even sees it.
//! - **Fenced code** is highlighted with syntect as `hl-*` CSS classes (the palettes live in
//!   `app.css`) and gets a copy button that `app.js` wires up.
//! - **Math** (`$…$`, `$$…$$`, and the `\(…\)` / `\[…\]` that GPT-4o and DeepSeek write) becomes
//!   MathML via latex2mathml; on failure the source is shown in `<code class="math-error">`. A `$`
//!   before a digit is a price, not math (`$3/$15` stays text).
//!
//! Invariant: *rendered output contains no executable vector*. ammonia runs last over everything,
//! with an allow-list of tags, attributes, classes and URL schemes (http, https, mailto); links get
//! `rel="noopener noreferrer nofollow"` and `target="_blank"`. The tests at the bottom hold a corpus
//! of XSS payloads and assert on the sanitized output.

use std::borrow::Cow;
use std::collections::HashSet;
use std::ops::Range;
use std::sync::LazyLock;

use pulldown_cmark::{CodeBlockKind, Event, Options, Parser, Tag, TagEnd, html};
use syntect::html::{ClassStyle, ClassedHTMLGenerator};
use syntect::parsing::SyntaxSet;
use syntect::util::LinesWithEndings;

/// Code blocks longer than this are shown without highlighting: syntect is linear but not cheap,
/// and a reply is rendered while the user waits for `done`.
const MAX_HIGHLIGHT_BYTES: usize = 64 * 1024;

/// The prefix of every syntax-highlighting class (`hl-keyword`, `hl-string`, …).
const HL: ClassStyle = ClassStyle::SpacedPrefixed { prefix: "hl-" };

static SYNTAXES: LazyLock<SyntaxSet> = LazyLock::new(SyntaxSet::load_defaults_newlines);

static SANITIZER: LazyLock<ammonia::Builder<'static>> = LazyLock::new(sanitizer);

/// Render `markdown` to sanitized HTML.
pub fn render(markdown: &str) -> String {
    let markdown = math_delimiters(markdown);
    let parser = Parser::new_ext(&markdown, options());
    let events = rewrite(parser);
    let mut raw = String::with_capacity(markdown.len() * 3 / 2 + 64);
    html::push_html(&mut raw, events.into_iter());
    SANITIZER.clean(&raw).to_string()
}

/// The Markdown we read: CommonMark with GFM's tables, task lists and strikethrough, and math.
fn options() -> Options {
    Options::ENABLE_TABLES
        | Options::ENABLE_TASKLISTS
        | Options::ENABLE_STRIKETHROUGH
        | Options::ENABLE_MATH
        | Options::ENABLE_GFM
}

/// The source with the math delimiters pulldown-cmark does not know turned into ones it does
/// (`\(…\)` → `$…$`, `\[…\]` → `$$…$$`) and dollars that are prices escaped (a `$` before a
/// digit, as in `$3/$15`), outside code: code blocks and code spans wherever pulldown-cmark
/// reads them, in lists and block quotes too. Borrowed unchanged when there is nothing to do.
fn math_delimiters(markdown: &str) -> Cow<'_, str> {
    // Any backslash, not only `\(` and `\[`: text is rewritten the same whatever the rest of the
    // document holds (a closing `\]` alone is rewritten too).
    if !markdown.contains(['$', '\\']) {
        return Cow::Borrowed(markdown);
    }
    let mut out = String::with_capacity(markdown.len() + 16);
    let mut at = 0;
    for code in code_ranges(markdown) {
        rewrite_math(&markdown[at..code.start], &mut out);
        out.push_str(&markdown[code.clone()]);
        at = code.end;
    }
    rewrite_math(&markdown[at..], &mut out);
    Cow::Owned(out)
}

/// The byte ranges pulldown-cmark reads as code (blocks with their fences, spans with their
/// backticks), in order.
fn code_ranges(markdown: &str) -> Vec<Range<usize>> {
    let mut ranges: Vec<Range<usize>> = Vec::new();
    for (event, range) in Parser::new_ext(markdown, options()).into_offset_iter() {
        // In order and apart, as [`math_delimiters`] slices between them; pulldown-cmark never
        // nests code, so this only guards the slicing.
        if matches!(event, Event::Start(Tag::CodeBlock(_)) | Event::Code(_))
            && ranges.last().is_none_or(|last| last.end <= range.start)
        {
            ranges.push(range);
        }
    }
    ranges
}

/// Where a growing text (a streaming reply) can be cut into parts that each render alone
/// exactly as they render within the whole, whatever text follows: the byte offsets at which
/// each settled part ends, in order. What follows the last offset is not settled.
///
/// A part ends where pulldown-cmark starts a top-level block (so never inside a fence, a list or
/// a raw HTML block) after a blank line, when that block's first line cannot belong to what came
/// before however the text goes on: not indented, not a list item, block quote, table row, raw
/// HTML or link reference ([`starts_a_lone_block`]). A text with a link reference definition
/// (`[x]: url`, used anywhere in the document) is not cut at all.
pub(crate) fn settled_ends(markdown: &str) -> Vec<usize> {
    let mut ends = Vec::new();
    let mut parser = Parser::new_ext(markdown, options()).into_offset_iter();
    if parser.reference_definitions().iter().next().is_some() {
        return ends;
    }
    let mut blocks = Vec::new();
    let mut depth = 0usize;
    for (event, range) in &mut parser {
        match event {
            Event::Start(_) => {
                if depth == 0 {
                    blocks.push(range.start);
                }
                depth += 1;
            }
            Event::End(_) => depth = depth.saturating_sub(1),
            Event::Rule if depth == 0 => blocks.push(range.start),
            _ => {}
        }
    }
    let mut blocks = blocks.into_iter().peekable();
    // A part gets the same math rewrite alone as within the whole: the rewrite skips code as
    // pulldown-cmark reads it, and a cut never falls inside a block.
    let mut after_blank = false;
    let mut at = 0;
    for line in markdown.split_inclusive('\n') {
        let start = at;
        at += line.len();
        while blocks.next_if(|b| *b < start).is_some() {}
        let block_starts_here = blocks.next_if_eq(&start).is_some();
        if block_starts_here && after_blank && starts_a_lone_block(line) {
            ends.push(start);
        }
        // Blank as CommonMark reads it: spaces and tabs only (a form feed or a vertical tab is
        // text).
        after_blank = line
            .bytes()
            .all(|b| matches!(b, b' ' | b'\t' | b'\r' | b'\n'));
    }
    ends
}

/// Whether a line after a blank line starts a block of its own: its first character is not
/// indentation and cannot start a list item, a block quote, a table row, raw HTML or a link
/// reference.
fn starts_a_lone_block(line: &str) -> bool {
    line.bytes().next().is_some_and(|b| {
        (b.is_ascii_graphic() || !b.is_ascii())
            && !b.is_ascii_digit()
            && !matches!(b, b'-' | b'*' | b'+' | b'>' | b'<' | b'|' | b'[')
    })
}

/// [`math_delimiters`] for text outside code.
fn rewrite_math(text: &str, out: &mut String) {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' if matches!(bytes.get(i + 1), Some(b'(' | b')' | b'[' | b']')) => {
                out.push_str(match bytes[i + 1] {
                    b'(' | b')' => "$",
                    _ => "$$",
                });
                i += 2;
            }
            b'\\' if bytes.get(i + 1) == Some(&b'$') => {
                out.push_str("\\$");
                i += 2;
            }
            b'$' => {
                let run = bytes[i..].iter().take_while(|b| **b == b'$').count();
                if run == 1 && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                    out.push_str("\\$");
                } else {
                    out.push_str(&text[i..i + run]);
                }
                i += run;
            }
            _ => {
                let next = text[i..]
                    .find(['\\', '$'])
                    .map_or(text.len(), |n| i + n.max(1));
                out.push_str(&text[i..next]);
                i = next;
            }
        }
    }
}

/// Apply the rewrites described in the module doc.
fn rewrite<'a>(parser: Parser<'a>) -> Vec<Event<'a>> {
    let mut out = Vec::new();
    let mut code: Option<(String, String)> = None; // (language, text) of the open code block
    for event in parser {
        if let Some((_, text)) = code.as_mut() {
            match event {
                Event::Text(t) => text.push_str(&t),
                Event::End(TagEnd::CodeBlock) => {
                    let (lang, text) = code.take().expect("inside a code block");
                    out.push(Event::Html(code_block(&lang, &text).into()));
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Start(Tag::CodeBlock(kind)) => {
                let lang = match kind {
                    CodeBlockKind::Fenced(info) => {
                        info.split_whitespace().next().unwrap_or("").to_string()
                    }
                    CodeBlockKind::Indented => String::new(),
                };
                code = Some((lang, String::new()));
            }
            // Raw HTML is shown as the text it is; a block keeps its line breaks (`raw-html`).
            Event::Start(Tag::HtmlBlock) => {
                out.push(Event::Html("<p class=\"raw-html\">".into()));
            }
            // Ended by a line break, as pulldown-cmark ends its own blocks: the HTML of a text is
            // then the same whether its blocks are rendered together or one by one.
            Event::End(TagEnd::HtmlBlock) => out.push(Event::Html("</p>\n".into())),
            Event::Html(h) | Event::InlineHtml(h) => out.push(Event::Text(h)),
            Event::InlineMath(tex) => out.push(Event::InlineHtml(math(&tex, false).into())),
            Event::DisplayMath(tex) => out.push(Event::Html(math(&tex, true).into())),
            other => out.push(other),
        }
    }
    if let Some((lang, text)) = code {
        // An unterminated fence at the end of a streaming reply.
        out.push(Event::Html(code_block(&lang, &text).into()));
    }
    out
}

fn math(tex: &str, block: bool) -> String {
    let style = if block {
        latex2mathml::DisplayStyle::Block
    } else {
        latex2mathml::DisplayStyle::Inline
    };
    // latex2mathml reports some errors inline as `[PARSE ERROR: …]` text: treat those as failures.
    match latex2mathml::latex_to_mathml(tex, style) {
        Ok(mathml) if !mathml.contains("[PARSE ERROR") => mathml,
        _ => {
            let (open, close) = if block { ("$$", "$$") } else { ("$", "$") };
            format!(
                "<code class=\"math-error\">{}</code>",
                escape(&format!("{open}{tex}{close}"))
            )
        }
    }
}

/// A highlighted code block with its header: the language and a copy button; ended by a line
/// break like every block (see [`rewrite`]).
fn code_block(lang: &str, text: &str) -> String {
    let lang_class: String = lang
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '#'))
        .take(32)
        .collect();
    let body = highlight(&lang_class, text).unwrap_or_else(|| escape(text));
    format!(
        "<div class=\"code\"><div class=\"code-head\"><span class=\"code-lang\">{}</span>\
         <button type=\"button\" class=\"copy-code\">Copy</button></div>\
         <pre><code class=\"language-{}\">{}</code></pre></div>\n",
        escape(&lang_class),
        escape(&lang_class),
        body
    )
}

fn highlight(lang: &str, text: &str) -> Option<String> {
    if lang.is_empty() || text.len() > MAX_HIGHLIGHT_BYTES {
        return None;
    }
    let syntax = SYNTAXES
        .find_syntax_by_token(lang)
        .or_else(|| SYNTAXES.find_syntax_by_extension(lang))?;
    let mut generator = ClassedHTMLGenerator::new_with_class_style(syntax, &SYNTAXES, HL);
    for line in LinesWithEndings::from(text) {
        generator
            .parse_html_for_line_which_includes_newline(line)
            .ok()?;
    }
    Some(generator.finalize())
}

/// Escape text for HTML element content and double-quoted attribute values.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// MathML presentation elements latex2mathml emits. None of them can carry a link or script.
const MATHML_TAGS: &[&str] = &[
    "math",
    "mi",
    "mn",
    "mo",
    "ms",
    "mrow",
    "msup",
    "msub",
    "msubsup",
    "mfrac",
    "msqrt",
    "mroot",
    "mtext",
    "mspace",
    "mtable",
    "mtr",
    "mtd",
    "mover",
    "munder",
    "munderover",
    "mstyle",
    "mpadded",
    "mphantom",
    "menclose",
    "merror",
    "mfenced",
];

const MATHML_ATTRIBUTES: &[&str] = &[
    "display",
    "mathvariant",
    "stretchy",
    "fence",
    "separator",
    "accent",
    "accentunder",
    "columnalign",
    "lspace",
    "rspace",
    "width",
    "height",
    "depth",
    "linethickness",
    "displaystyle",
    "scriptlevel",
    "form",
    "movablelimits",
    "largeop",
    "symmetric",
    "notation",
    "open",
    "close",
    "separators",
];

fn sanitizer() -> ammonia::Builder<'static> {
    let mut b = ammonia::Builder::default();
    b.add_tags(["div", "span", "button", "input"])
        .add_tags(MATHML_TAGS.iter().copied())
        .add_tag_attributes("button", ["type"])
        .add_tag_attributes("input", ["type", "checked", "disabled"])
        .add_tag_attributes("math", MATHML_ATTRIBUTES.iter().copied())
        .add_generic_attributes(["class"])
        .add_generic_attributes(
            MATHML_ATTRIBUTES
                .iter()
                .copied()
                .filter(|a| *a != "display"),
        )
        .url_schemes(HashSet::from(["http", "https", "mailto"]))
        .link_rel(Some("noopener noreferrer nofollow"))
        .set_tag_attribute_value("a", "target", "_blank")
        .attribute_filter(filter_attribute);
    b
}

/// Keep only values we could have produced ourselves: class tokens from a safe alphabet (so CSS
/// stays ours to decide), checkboxes as the only input, buttons that submit nothing.
fn filter_attribute<'u>(element: &str, attribute: &str, value: &'u str) -> Option<Cow<'u, str>> {
    match (element, attribute) {
        (_, "class") => {
            let ok = |t: &str| {
                t.len() <= 64
                    && t.chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '+' | '#'))
            };
            let kept: Vec<&str> = value.split_whitespace().filter(|t| ok(t)).collect();
            (!kept.is_empty()).then(|| Cow::Owned(kept.join(" ")))
        }
        ("input", "type") => (value == "checkbox").then_some(Cow::Borrowed(value)),
        ("button", "type") => Some(Cow::Borrowed("button")),
        _ => Some(Cow::Borrowed(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    /// Every way we know for markup to run script or navigate somewhere dangerous.
    const XSS: &[&str] = &[
        "<script>alert(1)</script>",
        "<SCRIPT SRC=//evil.example/x.js></SCRIPT>",
        "<img src=x onerror=alert(1)>",
        "<img src=\"x\" onerror=\"window.__xss=1\">",
        "<svg onload=alert(1)>",
        "<svg><script>alert(1)</script></svg>",
        "<iframe src=\"javascript:alert(1)\"></iframe>",
        "<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>",
        "<style>body{background:url(javascript:alert(1))}</style>",
        "<object data=\"javascript:alert(1)\"></object>",
        "<embed src=\"javascript:alert(1)\">",
        "<a href=\"javascript:alert(1)\">x</a>",
        "<a href=\"jav&#x09;ascript:alert(1)\">x</a>",
        "<body onload=alert(1)>",
        "<details open ontoggle=alert(1)>",
        "<form action=\"javascript:alert(1)\"><button>x</button></form>",
        "<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">",
        "<base href=\"javascript:alert(1)//\">",
        "<link rel=stylesheet href=\"javascript:alert(1)\">",
        "<div style=\"background:url(javascript:alert(1))\">x</div>",
        "<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>",
        "<math href=\"javascript:alert(1)\"><mi>x</mi></math>",
        "<math><maction actiontype=\"statusline\" xlink:href=\"javascript:alert(1)\">x</maction></math>",
        "<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">",
        "<!--<img src=x onerror=alert(1)>-->",
        "[click](javascript:alert(1))",
        "[click](JaVaScRiPt:alert(1))",
        "[click](jav&#x61;script:alert(1))",
        "[click](&#106;avascript:alert(1))",
        "[click](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
        "[click](vbscript:msgbox(1))",
        "![x](javascript:alert(1))",
        "![x](x\" onerror=\"alert(1))",
        "![x](data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+)",
        "[x]: javascript:alert(1)\n\n[x]",
        "<javascript:alert(1)>",
        "[a](<javascript:alert(1)>)",
        "```html\n<script>alert(1)</script>\n```",
        "```\"><script>alert(1)</script>\nx\n```",
        "`<script>alert(1)</script>`",
        "<div>\n\n<script>alert(1)</script>\n\n</div>",
        "$x</math><img src=x onerror=alert(1)>$",
        "$$\\href{javascript:alert(1)}{x}$$",
        "$\\text{<img src=x onerror=alert(1)>}$",
        "&lt;script&gt;alert(1)&lt;/script&gt;",
        "<scr<script>ipt>alert(1)</script>",
        "<<img src=x onerror=alert(1)>",
        "<a href=\"https://ok.example\" onclick=\"alert(1)\">x</a>",
        "<input autofocus onfocus=alert(1)>",
        "<video><source onerror=alert(1)></video>",
        "<button formaction=\"javascript:alert(1)\">x</button>",
    ];

    /// What must never appear in rendered output, as markup (escaped text is fine).
    fn executable_vectors(html: &str) -> Vec<&'static str> {
        let lower = html.to_ascii_lowercase();
        let mut found = Vec::new();
        for tag in [
            "<script",
            "<iframe",
            "<style",
            "<object",
            "<embed",
            "<svg",
            "<form",
            "<meta",
            "<base",
            "<link",
            "<body",
            "<video",
            "<source",
            "<noscript",
            "<maction",
        ] {
            if lower.contains(tag) {
                found.push(tag);
            }
        }
        for attr in [
            " on",
            "javascript:",
            "vbscript:",
            "data:",
            "style=",
            "srcdoc",
            "href=\"jav",
            "xlink:href",
            "formaction",
            "autofocus",
            "<input ",
        ] {
            // Attributes only count inside a tag: look at the text between `<` and `>`.
            if lower
                .split('<')
                .skip(1)
                .filter_map(|t| t.split('>').next())
                .any(|tag| {
                    tag.contains(attr) && !tag.starts_with("input disabled=\"\" type=\"checkbox\"")
                })
            {
                found.push(attr);
            }
        }
        found
    }

    #[test]
    fn xss_corpus_renders_without_executable_vectors() {
        for payload in XSS {
            let html = render(payload);
            let found = executable_vectors(&html);
            assert!(
                found.is_empty(),
                "payload {payload:?} rendered to {html:?}, which contains {found:?}"
            );
        }
    }

    /// Defence in depth: even if a rewrite let raw HTML through, the sanitizer alone stops it.
    #[test]
    fn the_sanitizer_alone_removes_every_vector() {
        for payload in XSS {
            let html = super::SANITIZER.clean(payload).to_string();
            let found = executable_vectors(&html);
            assert!(
                found.is_empty(),
                "{payload:?} sanitized to {html:?}: {found:?}"
            );
        }
        let html = super::SANITIZER
            .clean("<a href=\"https://ok.example\" onclick=\"x()\">x</a>")
            .to_string();
        assert!(html.contains("href=\"https://ok.example\""), "{html}");
        assert!(!html.contains("onclick"), "{html}");
    }

    #[test]
    fn raw_html_blocks_keep_their_lines_as_text() {
        let html = render("<div>\n<b>x</b>\n</div>");
        assert!(
            html.starts_with("<p class=\"raw-html\">&lt;div&gt;"),
            "{html}"
        );
    }

    #[test]
    fn xss_corpus_inside_lists_quotes_and_tables_is_still_safe() {
        for payload in XSS {
            for wrapped in [
                format!("- {payload}"),
                format!("> {payload}"),
                format!("| a |\n|---|\n| {payload} |"),
                format!("**{payload}**"),
            ] {
                let html = render(&wrapped);
                let found = executable_vectors(&html);
                assert!(found.is_empty(), "{wrapped:?} → {html:?}: {found:?}");
            }
        }
    }

    #[test]
    fn raw_html_is_shown_as_text() {
        let html = render("<script>window.__xss=1</script>");
        assert!(
            html.contains("&lt;script&gt;window.__xss=1&lt;/script&gt;"),
            "{html}"
        );
        let html = render("hi <img src=x onerror=\"window.__xss=1\"> there");
        assert!(html.contains("&lt;img src=x"), "{html}");
    }

    #[test]
    fn links_open_in_a_new_tab_without_referrer() {
        let html = render("[site](https://example.com/a?b=1)");
        assert!(
            html.contains("href=\"https://example.com/a?b=1\""),
            "{html}"
        );
        assert!(
            html.contains("rel=\"noopener noreferrer nofollow\""),
            "{html}"
        );
        assert!(html.contains("target=\"_blank\""), "{html}");
        let html = render("<https://example.com>");
        assert!(html.contains("target=\"_blank\""), "{html}");
    }

    #[test]
    fn gfm_tables_task_lists_and_strikethrough() {
        let html = render("| a | b |\n|---|:-:|\n| 1 | 2 |\n\n- [x] done\n- [ ] todo\n\n~~gone~~");
        assert!(html.contains("<table>"), "{html}");
        assert!(html.contains("<td"), "{html}");
        assert!(html.contains("type=\"checkbox\""), "{html}");
        assert!(html.contains("checked"), "{html}");
        assert!(html.contains("<del>gone</del>"), "{html}");
    }

    #[test]
    fn code_blocks_are_highlighted_with_classes_and_get_a_copy_button() {
        let html = render("```rust\nfn main() { let x = \"hi\"; }\n```");
        assert!(html.contains("class=\"copy-code\""), "{html}");
        assert!(html.contains("<button type=\"button\""), "{html}");
        assert!(html.contains("language-rust"), "{html}");
        assert!(
            html.contains("hl-keyword") || html.contains("hl-storage"),
            "{html}"
        );
        assert!(html.contains("hl-string"), "{html}");
        assert!(!html.contains("style="), "{html}");
    }

    #[test]
    fn unknown_languages_and_indented_code_are_escaped_plain() {
        let html = render("```nosuchlang\n<b>x</b>\n```");
        assert!(html.contains("&lt;b&gt;x&lt;/b&gt;"), "{html}");
        let html = render("    <i>indented</i>");
        assert!(html.contains("&lt;i&gt;indented&lt;/i&gt;"), "{html}");
    }

    #[test]
    fn an_unterminated_fence_still_renders_as_code() {
        let html = render("text\n```python\nprint(1)");
        assert!(html.contains("language-python"), "{html}");
        assert!(html.contains("print"), "{html}");
    }

    #[test]
    fn math_becomes_mathml() {
        let html = render("Euler: $e^{i\\pi} + 1 = 0$\n\n$$\\frac{a}{b}$$");
        assert!(html.contains("<math"), "{html}");
        assert!(html.contains("<mfrac>"), "{html}");
        assert!(html.contains("display=\"block\""), "{html}");
        assert!(html.contains("display=\"inline\""), "{html}");
    }

    /// Real-world texts around dollars and math delimiters: prices and shell variables stay text,
    /// LaTeX in every common delimiter becomes MathML, code is never touched.
    #[test]
    fn dollars_are_prices_unless_they_are_math() {
        let text = |md: &str| {
            let html = render(md);
            assert!(!html.contains("<math"), "{md:?} became math: {html}");
            html
        };
        let math = |md: &str| {
            let html = render(md);
            assert!(html.contains("<math"), "{md:?} is math: {html}");
            html
        };
        assert!(text("GPT-4o costs $3/$15 per million tokens").contains("$3/$15"));
        assert!(text("between $5 and $10").contains("$5 and $10"));
        assert!(text("$HOME and $PATH are set").contains("$HOME and $PATH"));
        assert!(text("run `echo $HOME $PATH` first").contains("echo $HOME $PATH"));
        let code = text("```\nexport A=$1\necho $A $B\n```");
        assert!(
            code.contains("A=$1\necho $A $B"),
            "code is untouched: {code}"
        );
        assert!(text("~~~\n\\(not math\\)\n~~~").contains("\\(not math\\)"));
        assert!(text("escaped \\$x$ stays").contains("$x$"));
        math("Euler: $e^{i\\pi} + 1 = 0$");
        math("inline \\(x^2 + y^2 = z^2\\) from GPT-4o");
        let block = math("display:\n\\[\n\\int_0^1 x\\,dx\n\\]\n");
        assert!(block.contains("display=\"block\""), "{block}");
        let block = math("$$\\frac{1}{2}$$");
        assert!(block.contains("<mfrac>"), "{block}");
        // A price next to real math: both right.
        let both = math("costs $5, and $a^2$ is the area");
        assert!(both.contains("$5"), "{both}");
    }

    /// Code is left exactly as written wherever pulldown-cmark reads it: fences in nested list
    /// items and block quotes, indented blocks, spans over two lines. (The rewrite used to read
    /// fences at the top level only: a script in a nested list item showed `\$1` for `$1`.)
    #[test]
    fn code_in_lists_and_quotes_keeps_its_dollars_and_backslashes() {
        let code = |md: &str, expected: &str| {
            let html = render(md);
            assert!(!html.contains("<math"), "{md:?} became math: {html}");
            assert!(html.contains(expected), "{md:?} lost {expected:?}: {html}");
        };
        code(
            "1. Install\n   - then run:\n     ```\n     echo $1 \\(x\\) \\$2\n     ```",
            "echo $1 \\(x\\) \\$2",
        );
        code("- ```\n  export A=$1\n  ```", "export A=$1");
        code("> ```\n> cost $5 \\[y\\]\n> ```", "cost $5 \\[y\\]");
        code("    indented $1 \\(z\\)", "indented $1 \\(z\\)");
        // (A span's line break is a space, as CommonMark reads it.)
        code("run `echo\n$1 \\(w\\)` now", "echo $1 \\(w\\)");
        // Outside the code, the same text is still rewritten.
        let html = render("- ```\n  $1\n  ```\n- \\(x^2\\) costs $1");
        assert!(html.contains("<math"), "{html}");
        assert!(html.contains("costs $1"), "{html}");
    }

    #[test]
    fn math_that_fails_to_convert_shows_its_source() {
        let html = render("$\\frac{a}$ and $\\nosuchcommand{x}$");
        assert!(html.contains("math-error"), "{html}");
        assert!(html.contains("\\nosuchcommand"), "{html}");
    }

    #[test]
    #[ignore = "prints renderings to eyeball"]
    fn show() {
        for p in super::tests::XSS {
            println!("{p}\n  => {}", render(p));
        }
    }

    #[test]
    fn plain_text_keeps_its_meaning() {
        assert_eq!(render("hello"), "<p>hello</p>\n");
        assert!(render("a & b < c").contains("a &amp; b &lt; c"));
    }
}
