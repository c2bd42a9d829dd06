//! The markdown renderer on arbitrary model output: it never panics, and nothing it emits can run
//! script (no `<script` tag, no `on…=` event-handler attribute, no `javascript:` URL).

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(markdown) = std::str::from_utf8(data) else {
        return;
    };
    let html = switchboard_server::markdown::render(markdown);
    let lower = html.to_ascii_lowercase();
    // Text is escaped (`&lt;script`), so a raw `<script` can only be a tag.
    assert!(!lower.contains("<script"), "script tag in {html:?}");
    for tag in tags(&lower) {
        // Browsers ignore whitespace and control characters inside a URL scheme.
        let squeezed: String = tag
            .chars()
            .filter(|c| !c.is_whitespace() && !c.is_control())
            .collect();
        assert!(
            !squeezed.contains("javascript:"),
            "javascript: URL in {html:?}"
        );
        assert!(
            !has_event_handler(tag),
            "event handler attribute in {html:?}"
        );
    }
});

/// The inside of every tag (`<…>`). Prose between tags is escaped by the renderer, so a literal
/// "javascript:" or "onclick=" there is only text.
fn tags(html: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        let after = &rest[open + 1..];
        let end = after.find('>').unwrap_or(after.len());
        out.push(&after[..end]);
        rest = &after[end..];
    }
    out
}

/// Whether a tag carries an `on…=` attribute (outside quoted attribute values).
fn has_event_handler(tag: &str) -> bool {
    let mut outside = String::new();
    let mut quote = None;
    for c in tag.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => outside.push('x'),
            None if c == '"' || c == '\'' => quote = Some(c),
            None => outside.push(c),
        }
    }
    let bytes = outside.as_bytes();
    (0..bytes.len().saturating_sub(2)).any(|i| {
        let boundary = bytes[i].is_ascii_whitespace() || bytes[i] == b'/';
        if !(boundary && bytes[i + 1] == b'o' && bytes[i + 2] == b'n') {
            return false;
        }
        let name_len = outside[i + 1..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .unwrap_or(outside.len() - i - 1);
        name_len > 2 && outside[i + 1 + name_len..].trim_start().starts_with('=')
    })
}
