//! Markdown to safe HTML, on the server: model output is rendered here and sanitized, so it can
//! never run script in the browser.

/// Render `markdown` to sanitized HTML.
pub fn render(markdown: &str) -> String {
    // Placeholder until the renderer lands: escape everything, keep line breaks.
    let mut out = String::with_capacity(markdown.len() + 16);
    out.push_str("<p>");
    for c in markdown.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            '\n' => out.push_str("<br>"),
            c => out.push(c),
        }
    }
    out.push_str("</p>");
    out
}
