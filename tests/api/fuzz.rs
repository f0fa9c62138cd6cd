//! Property-based fuzzing of the parsers that take a client's or marketer's
//! bytes (cargo-fuzz needs a nightly toolchain; proptest runs in CI): the
//! campaign YAML loader and the header parsers never panic, and answer every
//! input with either a value or positioned, bounded diagnostics.

use prizewheel::campaign::parse_campaign;
use prizewheel::domain::{IdempotencyKey, UserId};
use prizewheel::http::auth::Verifier;
use proptest::prelude::*;

const EXAMPLE: &str = include_str!("../../config/campaigns/diwali-2026.yaml");

/// The example with `len` bytes at `at` (clamped to a char boundary) replaced
/// by `with`: mostly-valid files broken in one place, where loaders crash.
fn mutated(at: usize, len: usize, with: &str) -> String {
    let mut start = at % EXAMPLE.len();
    while !EXAMPLE.is_char_boundary(start) {
        start -= 1;
    }
    let mut end = (start + len).min(EXAMPLE.len());
    while !EXAMPLE.is_char_boundary(end) {
        end += 1;
    }
    format!("{}{}{}", &EXAMPLE[..start], with, &EXAMPLE[end..])
}

fn loads_or_explains(text: &str) {
    match parse_campaign(text) {
        Ok(_) => {}
        Err(diagnostics) => {
            assert!(!diagnostics.is_empty(), "an error with no diagnostic");
            // Lines as YAML counts them: "\r\n", "\r" and "\n" each end one.
            let breaks = text.replace("\r\n", "\n").matches(['\r', '\n']).count();
            let lines = breaks as u64 + 1;
            for d in &diagnostics {
                assert!(d.line >= 1 && d.line <= lines, "{d:?} outside the file");
                assert!(d.column >= 1, "{d:?}");
                assert!(!d.message.is_empty() && d.message.len() < 1000, "{d:?}");
            }
        }
    }
}

proptest! {
    // Failing cases are kept in the project's one folder for them.
    #![proptest_config(ProptestConfig {
        cases: 1500,
        failure_persistence: Some(Box::new(
            proptest::test_runner::FileFailurePersistence::Direct("proptest-regressions/api-fuzz.txt"),
        )),
        ..ProptestConfig::default()
    })]

    #[test]
    fn the_campaign_loader_explains_any_text(text in "(?s).{0,2000}") {
        loads_or_explains(&text);
    }

    #[test]
    fn the_campaign_loader_explains_a_broken_example(
        at in 0usize..4096,
        len in 0usize..40,
        with in prop_oneof![
            Just(String::new()),
            "[ :{}\\[\\]&*!|>'\"%@`#,?-]{1,6}",
            "[0-9a-z: -]{1,12}",
            "(?s).{1,12}",
        ],
    ) {
        loads_or_explains(&mutated(at, len, &with));
    }

    #[test]
    fn header_values_parse_exactly_as_documented(s in "(?s).{0,100}") {
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        prop_assert_eq!(IdempotencyKey::parse(&s).is_ok(), valid);
        let subject = !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic());
        prop_assert_eq!(UserId::parse(&s).is_ok(), subject);
    }

    #[test]
    fn tokens_that_are_not_ours_are_refused(token in "(?s).{0,300}", parts in "[A-Za-z0-9_-]{0,60}") {
        let verifier = Verifier::new(&crate::support::helpers::settings_for_auth()).unwrap();
        prop_assert!(verifier.verify(&token).is_err());
        let dotted = format!("{parts}.{parts}.{parts}");
        prop_assert!(verifier.verify(&dotted).is_err());
    }
}
