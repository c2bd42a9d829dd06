//! `CUSTOM_MODELS` rules: parsing never panics, and what parses prints (Display) to a value that
//! parses back to the same rules.

#![no_main]

use libfuzzer_sys::fuzz_target;
use switchboard_core::catalog::CustomModelRules;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(rules) = CustomModelRules::parse(raw) else {
        return;
    };
    let printed = rules.to_string();
    let reparsed = CustomModelRules::parse(&printed)
        .unwrap_or_else(|e| panic!("{raw:?} printed as {printed:?}, which does not parse: {e}"));
    assert_eq!(rules, reparsed, "{raw:?} printed as {printed:?}");
});
