//! The `prizewheel` command: campaign files report every problem with its
//! position; a missing file is one line.

use std::process::Command;

fn prizewheel(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_prizewheel"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn validate_accepts_the_examples() {
    for file in [
        "config/campaigns/diwali-2026.yaml",
        "config/campaigns/mega-sale.yaml",
    ] {
        let (code, out, err) = prizewheel(&["campaign", "validate", file]);
        assert_eq!(code, 0, "{file}: {err}");
        assert!(out.contains("is valid"));
    }
}

#[test]
fn validate_prints_every_problem_with_file_line_and_column() {
    let dir = crate::helpers::TempDir::new();
    let file = dir.0.join("bad.yaml");
    std::fs::write(
        &file,
        "id: Bad_Id\nname: Bad\nstarts_at: 2026-11-05T00:00:00+05:30\nends_at: 2026-11-01T00:00:00+05:30\nlimits: {spins_per_user: 3}\nfallback: phone\ncolor: red\nprizes:\n  - {id: phone, name: Phone, weight: 1, stock: 10, value: {amount: 1.5, currency: INR}}\n",
    )
    .unwrap();
    let path = file.to_str().unwrap();
    let (code, out, err) = prizewheel(&["campaign", "validate", path]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    let lines: Vec<&str> = err.lines().collect();
    let expected = [
        format!("{path}:1:5: campaign id"),
        format!("{path}:4:10: `ends_at` must be after `starts_at`"),
        format!("{path}:6:11: the fallback prize `phone` must have `stock: unlimited`"),
        format!("{path}:7:1: unknown key `color`"),
        format!("{path}:9:68: `amount` must be a quoted decimal string"),
    ];
    for (line, want) in lines.iter().zip(&expected) {
        assert!(
            line.starts_with(want.as_str()),
            "{line}\n  should start with\n{want}"
        );
    }
    assert_eq!(lines.len(), expected.len() + 1, "{err}");
}

#[test]
fn a_missing_file_is_one_clear_line() {
    let (code, out, err) = prizewheel(&["campaign", "validate", "/no/such/campaign.yaml"]);
    assert_eq!(code, 1);
    assert!(out.is_empty());
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("/no/such/campaign.yaml"), "{err}");
}
