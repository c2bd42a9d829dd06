//! The UI's message catalog: every visible string, per language.
//!
//! One JSON file per language in `i18n/`, registered in [`LANGUAGES`]; adding a language is one
//! file plus one line there. English is complete by definition and is the fallback for any key a
//! translation lacks (a test checks that every shipped language has every key).
//!
//! The page's language comes from the `sb_lang` cookie the settings dialog sets, else from
//! `Accept-Language`, else English. Templates read strings with [`Catalog::get`]; the browser
//! script gets the whole catalog as a JSON block in the page.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use axum::http::{HeaderMap, header};

/// `(tag, name in its own language, catalog JSON)`. The first entry is the fallback.
pub const LANGUAGES: &[(&str, &str, &str)] = &[
    ("en", "English", include_str!("../../i18n/en.json")),
    ("zh-CN", "简体中文", include_str!("../../i18n/zh-CN.json")),
    ("da", "Dansk", include_str!("../../i18n/da.json")),
];

/// The cookie the settings dialog sets to choose a language.
pub const LANG_COOKIE: &str = "sb_lang";

/// One language's strings, with English filled in for missing keys.
pub struct Catalog {
    pub tag: &'static str,
    pub name: &'static str,
    strings: BTreeMap<String, String>,
}

static CATALOGS: LazyLock<Vec<Catalog>> = LazyLock::new(|| {
    let english = parse(LANGUAGES[0].2);
    LANGUAGES
        .iter()
        .map(|(tag, name, json)| {
            let mut strings = english.clone();
            strings.extend(parse(json));
            Catalog { tag, name, strings }
        })
        .collect()
});

fn parse(json: &str) -> BTreeMap<String, String> {
    serde_json::from_str(json).expect("i18n catalogs are valid JSON objects of strings")
}

impl Catalog {
    /// The string for `key`; the key itself when it is missing everywhere, so a typo shows.
    pub fn get<'a>(&'a self, key: &'a str) -> &'a str {
        self.strings.get(key).map(String::as_str).unwrap_or(key)
    }

    /// `value` with `digits` decimals, written with the language's decimal separator
    /// (`decimal_separator`: Danish writes 1,5).
    pub fn decimal(&self, value: f64, digits: usize) -> String {
        let text = format!("{value:.digits$}");
        match self.get("decimal_separator") {
            "." | "decimal_separator" => text,
            sep => text.replacen('.', sep, 1),
        }
    }

    /// The string for `key` with `{name}` replaced by `value`.
    pub fn fmt(&self, key: &str, name: &str, value: &str) -> String {
        self.get(key).replace(&format!("{{{name}}}"), value)
    }

    /// All strings as one JSON object, for the browser script.
    pub fn json(&self) -> serde_json::Value {
        serde_json::to_value(&self.strings).expect("strings serialize")
    }
}

/// The catalog for `tag`, if it is one we ship.
pub fn catalog(tag: &str) -> Option<&'static Catalog> {
    CATALOGS.iter().find(|c| c.tag.eq_ignore_ascii_case(tag))
}

/// Every shipped catalog, in [`LANGUAGES`] order.
pub fn all() -> &'static [Catalog] {
    &CATALOGS
}

/// The language for this request: the `sb_lang` cookie, else `Accept-Language`, else English.
pub fn negotiate(headers: &HeaderMap) -> &'static Catalog {
    if let Some(c) = read_cookie(headers, LANG_COOKIE).and_then(catalog) {
        return c;
    }
    let accept = headers
        .get(header::ACCEPT_LANGUAGE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let mut wanted: Vec<(f32, &str)> = accept
        .split(',')
        .filter_map(|part| {
            let mut it = part.trim().split(';');
            let tag = it.next()?.trim();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            (!tag.is_empty() && q > 0.0).then_some((q, tag))
        })
        .collect();
    // Stable sort keeps the header's order among equal weights.
    wanted.sort_by(|a, b| b.0.total_cmp(&a.0));
    for (_, tag) in wanted {
        if let Some(c) = best_match(tag) {
            return c;
        }
    }
    &CATALOGS[0]
}

/// `da-DK` → `da`, `zh`/`zh-Hans`/`zh-SG` → `zh-CN`: exact tag first, then same primary language.
fn best_match(tag: &str) -> Option<&'static Catalog> {
    if let Some(c) = catalog(tag) {
        return Some(c);
    }
    let primary = tag.split(['-', '_']).next()?.to_ascii_lowercase();
    CATALOGS.iter().find(|c| {
        c.tag
            .split('-')
            .next()
            .unwrap_or("")
            .eq_ignore_ascii_case(&primary)
    })
}

/// A cookie's value by name (the theme cookie, the language cookie).
pub fn read_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    crate::session::cookie(headers, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        h
    }

    #[test]
    fn every_language_has_every_english_key() {
        let english = parse(LANGUAGES[0].2);
        for (tag, _, json) in LANGUAGES {
            let strings = parse(json);
            let missing: Vec<_> = english
                .keys()
                .filter(|k| !strings.contains_key(*k))
                .collect();
            assert!(missing.is_empty(), "{tag} lacks {missing:?}");
            let extra: Vec<_> = strings
                .keys()
                .filter(|k| !english.contains_key(*k))
                .collect();
            assert!(extra.is_empty(), "{tag} has keys English lacks: {extra:?}");
            for (k, v) in &strings {
                assert!(!v.trim().is_empty(), "{tag}: {k} is empty");
            }
        }
    }

    #[test]
    fn danish_writes_a_decimal_comma() {
        let by_tag = |tag: &str| all().iter().find(|c| c.tag == tag).unwrap();
        assert_eq!(by_tag("da").decimal(1.25, 1), "1,2");
        assert_eq!(by_tag("da").decimal(0.00123, 4), "0,0012");
        assert_eq!(by_tag("en").decimal(1.25, 1), "1.2");
        assert_eq!(by_tag("zh-CN").decimal(3.0, 2), "3.00");
    }

    #[test]
    fn placeholders_survive_translation() {
        let english = parse(LANGUAGES[0].2);
        for (tag, _, json) in LANGUAGES {
            for (k, v) in parse(json) {
                let en = &english[&k];
                for part in en.split('{').skip(1) {
                    let name = part.split('}').next().unwrap();
                    assert!(
                        v.contains(&format!("{{{name}}}")),
                        "{tag}: {k} lost {{{name}}}"
                    );
                }
            }
        }
    }

    #[test]
    fn negotiation_table() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "en"),
            (&[("accept-language", "da-DK,da;q=0.9,en;q=0.8")], "da"),
            (&[("accept-language", "zh-CN,zh;q=0.9")], "zh-CN"),
            (&[("accept-language", "zh-Hans")], "zh-CN"),
            (&[("accept-language", "fr-FR, da;q=0.5")], "da"),
            (&[("accept-language", "en;q=0.5, da;q=0.9")], "da"),
            (&[("accept-language", "fr")], "en"),
            (
                &[("accept-language", "da"), ("cookie", "sb_lang=zh-CN")],
                "zh-CN",
            ),
            (&[("cookie", "a=b; sb_lang=da")], "da"),
            (&[("cookie", "sb_lang=xx"), ("accept-language", "da")], "da"),
        ];
        for (h, want) in cases {
            assert_eq!(negotiate(&headers(h)).tag, *want, "{h:?}");
        }
    }

    #[test]
    fn fmt_fills_a_placeholder() {
        let en = catalog("en").unwrap();
        assert!(en.fmt("cannot_see_images", "model", "x/y").contains("x/y"));
    }
}
