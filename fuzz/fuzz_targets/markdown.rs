//! The markdown renderer on arbitrary model output: it never panics, nothing it emits can run
//! script (no `<script` tag, no `on…=` event-handler attribute, no URL attribute with a scheme
//! other than http, https or mailto), and a streaming reply rendered block by block
//! (`render_streaming`) gets exactly the HTML of the whole.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(markdown) = std::str::from_utf8(data) else {
        return;
    };
    let html = switchboard_server::markdown::render(markdown);
    assert_eq!(
        switchboard_chat::rendered::render_streaming(markdown),
        html,
        "rendered block by block"
    );
    let lower = html.to_ascii_lowercase();
    // Text is escaped (`&lt;script`), so a raw `<script` can only be a tag.
    assert!(!lower.contains("<script"), "script tag in {html:?}");
    for tag in tags(&lower) {
        for (name, value) in attributes(tag) {
            if URL_ATTRIBUTES.contains(&name.as_str()) {
                let scheme = scheme(&value);
                assert!(
                    scheme
                        .as_ref()
                        .is_none_or(|s| SAFE_SCHEMES.contains(&s.as_str())),
                    "{name} with scheme {scheme:?} in {html:?}"
                );
            }
        }
        assert!(
            !has_event_handler(tag),
            "event handler attribute in {html:?}"
        );
    }
});

/// Attributes a browser loads or navigates to.
const URL_ATTRIBUTES: &[&str] = &[
    "href",
    "src",
    "xlink:href",
    "action",
    "formaction",
    "poster",
    "background",
    "srcset",
    "data",
];
/// What the sanitizer allows in a URL; a relative URL has no scheme.
const SAFE_SCHEMES: &[&str] = &["http", "https", "mailto"];

/// `name="value"` / `name='value'` / `name=value` pairs of a tag, values entity-decoded.
fn attributes(tag: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let b = tag.as_bytes();
    let mut i = tag.find(|c: char| c.is_whitespace()).unwrap_or(tag.len());
    while i < b.len() {
        while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'/') {
            i += 1;
        }
        let start = i;
        while i < b.len() && !b[i].is_ascii_whitespace() && b[i] != b'=' && b[i] != b'/' {
            i += 1;
        }
        let name = tag[start..i].to_string();
        if i < b.len() && b[i] == b'=' {
            i += 1;
            let (value, next) = match b.get(i) {
                Some(&q) if q == b'"' || q == b'\'' => {
                    let end = tag[i + 1..].find(q as char).map_or(b.len(), |e| i + 1 + e);
                    (&tag[i + 1..end], (end + 1).min(b.len()))
                }
                _ => {
                    let end = tag[i..]
                        .find(|c: char| c.is_whitespace())
                        .map_or(b.len(), |e| i + e);
                    (&tag[i..end], end)
                }
            };
            out.push((name, decode_entities(value)));
            i = next;
        } else if name.is_empty() {
            i += 1;
        }
    }
    out
}

fn decode_entities(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        rest = &rest[amp..];
        let end = rest.find(';').filter(|e| *e <= 12);
        let decoded = end.and_then(|e| {
            let ent = &rest[1..e];
            let c = match ent {
                "amp" => Some('&'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                "colon" => Some(':'),
                "tab" => Some('\t'),
                "newline" => Some('\n'),
                _ => ent
                    .strip_prefix("#x")
                    .and_then(|h| u32::from_str_radix(h, 16).ok())
                    .or_else(|| ent.strip_prefix('#').and_then(|d| d.parse().ok()))
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, e + 1))
        });
        match decoded {
            Some((c, len)) => {
                out.push(c);
                rest = &rest[len..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The URL's scheme as a browser reads it (whitespace and control characters ignored), or
/// `None` for a relative URL.
fn scheme(url: &str) -> Option<String> {
    let squeezed: String = url
        .chars()
        .filter(|c| !c.is_whitespace() && !c.is_control())
        .collect::<String>()
        .to_ascii_lowercase();
    let colon = squeezed.find(':')?;
    let head = &squeezed[..colon];
    // Only `ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )` is a scheme; anything else before the
    // ':' (a '/', '?', '#', '%', …) makes the URL relative.
    let valid = head.starts_with(|c: char| c.is_ascii_alphabetic())
        && head
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    valid.then(|| head.to_string())
}

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
