//! `dmon --help` against the manual: every exit code that docs/dmon.md's EXIT
//! STATUS section documents appears in the help text too, so the short summary
//! cannot fall behind the manual (the man page is generated from the same source;
//! tests/docs.rs checks that).

use std::path::Path;
use std::process::Command;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// The numbers in a text, as whole words (`128+N` gives 128, `exit 3` gives 3).
fn numbers(text: &str) -> Vec<u32> {
    text.split(|c: char| !c.is_ascii_digit())
        .filter(|word| !word.is_empty())
        .map(|word| word.parse().unwrap())
        .collect()
}

/// The body of a `## NAME` section of a markdown manual source.
fn section<'a>(source: &'a str, name: &str) -> &'a str {
    let heading = format!("## {name}\n");
    let start = source.find(&heading).unwrap_or_else(|| panic!("no {name} section")) + heading.len();
    let rest = &source[start..];
    &rest[..rest.find("\n## ").unwrap_or(rest.len())]
}

#[test]
fn help_lists_every_documented_exit_code() {
    let manual = std::fs::read_to_string(Path::new(ROOT).join("docs/dmon.md")).unwrap();
    let documented = numbers(section(&manual, "EXIT STATUS"));
    // 0, 1, 2, 126, 127, 137 and 143 at least: a section that lost its codes
    // would pass below for nothing.
    for code in [0, 1, 2, 126, 127, 137, 143] {
        assert!(documented.contains(&code), "docs/dmon.md's EXIT STATUS does not mention {code}");
    }

    let output = Command::new(env!("CARGO_BIN_EXE_dmon")).arg("--help").output().unwrap();
    assert!(output.status.success(), "dmon --help: {:?}", output.status);
    let help = String::from_utf8(output.stdout).unwrap();
    // The codes must be in the help's exit status paragraph: numbers elsewhere
    // (`-l 1`, `-L 3.5`) do not count.
    let start =
        help.find("Exit status:").unwrap_or_else(|| panic!("dmon --help has no exit status paragraph:\n{help}"));
    let paragraph = &help[start..];
    let paragraph = &paragraph[..paragraph.find("\n\n").unwrap_or(paragraph.len())];
    let listed = numbers(paragraph);
    let missing: Vec<u32> = documented.into_iter().filter(|code| !listed.contains(code)).collect();
    assert!(missing.is_empty(), "dmon --help does not list the exit codes {missing:?} of docs/dmon.md:\n{paragraph}");
}
