//! Files that travel with messages: data URLs taken apart into what the store keeps, and the
//! references a message's `attachments` carries to them.

use serde_json::{Value, json};
use switchboard_store::NewFile;

/// `data:<mime>;base64,<data>` → the MIME type, the base64 text and the decoded length. `None`
/// for anything else, and for base64 with characters outside the standard alphabet.
pub fn parse_data_url(url: &str) -> Option<(&str, &str, i64)> {
    let rest = url.strip_prefix("data:")?;
    let (mime, data) = rest.split_once(";base64,")?;
    let valid_mime = !mime.is_empty()
        && mime.contains('/')
        && mime
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/+-.".contains(&b));
    let body = data.trim_end_matches('=');
    let valid_data = !body.is_empty()
        && data.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    if !valid_mime || !valid_data {
        return None;
    }
    let size = (body.len() * 3 / 4) as i64;
    Some((mime, data, size))
}

/// What a message's `attachments` says of a stored file.
pub fn reference(file: &NewFile) -> Value {
    json!({"file": file.id, "name": file.name, "mime": file.mime, "size": file.size})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_urls_are_taken_apart_or_refused() {
        assert_eq!(
            parse_data_url("data:application/pdf;base64,JVBERi0="),
            Some(("application/pdf", "JVBERi0=", 5))
        );
        assert_eq!(
            parse_data_url("data:text/plain;base64,aGk="),
            Some(("text/plain", "aGk=", 2))
        );
        for bad in [
            "data:text/plain,hi",
            "data:;base64,aGk=",
            "data:text/plain;base64,",
            "data:text/plain;base64,a b",
            "data:text/html\"><script>;base64,aGk=",
            "https://example.com/x.png",
            "data:text/plain;base64,aGk====",
        ] {
            assert_eq!(parse_data_url(bad), None, "{bad}");
        }
    }
}
