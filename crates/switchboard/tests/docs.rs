//! README.md and README_CN.md say the same things where it matters: the same commands, and the same
//! variables in the configuration table.

const EN: &str = include_str!("../../../README.md");
const CN: &str = include_str!("../../../README_CN.md");

/// Every fenced code block, in order.
fn code_blocks(text: &str) -> Vec<&str> {
    text.split("```").skip(1).step_by(2).collect()
}

/// The `UPPER_CASE` names in the README's table rows.
fn table_variables(text: &str) -> std::collections::BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with('|'))
        .flat_map(|l| l.split('`').skip(1).step_by(2))
        .filter(|w| {
            w.len() > 2
                && w.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn both_readmes_give_the_same_commands() {
    let en = code_blocks(EN);
    assert!(en.len() >= 4, "{en:?}");
    assert_eq!(en, code_blocks(CN));
    assert!(
        en.iter()
            .any(|b| b.contains("cargo run --release -p switchboard"))
    );
    assert!(en.iter().any(|b| b.contains("bash .ci/run")));
}

#[test]
fn both_readmes_list_the_same_variables() {
    let en = table_variables(EN);
    assert!(
        en.contains("OPENROUTER_API_KEY") && en.contains("DATABASE_URL"),
        "{en:?}"
    );
    assert_eq!(en, table_variables(CN));
}
