//! The manual pages in `docs/*.8` and the shell completions in `completions/` are
//! generated from the parsers' own clap definitions, with the prose of the
//! manual sources `docs/<tool>.md`. This test regenerates them in memory and fails
//! when a committed file differs; `UPDATE_DOCS=1 cargo test --test docs` rewrites
//! them. It also renders every page with man(1) and groff, and asks bash,
//! zsh and fish what each completion offers.
//!
//! The man pages come from a small generator here rather than clap_mangen: a page
//! takes its option list from clap (every option, value name, default and
//! possible value, so it cannot drift from the parser) and each option's text
//! from the matching item of the manual source's OPTIONS list where there is one
//! (the longer explanation a man page wants and `--help` does not), falling back
//! to the clap help. clap_mangen renders only the clap help, and merging the two
//! is a few lines of roff. Completions use clap_complete, whose scripts follow
//! each shell's conventions in ways not worth repeating.

use std::path::Path;
use std::process::{Command, Stdio};

use clap::{Arg, ArgAction, CommandFactory};
use clap_complete::Shell;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every tool with a manual: its name, its clap definition and its manual source.
fn tools() -> Vec<(&'static str, clap::Command)> {
    vec![
        ("dmon", dmon::cli::Args::command()),
        ("dlog", dmon::logtools::dlog::Args::command()),
        ("drlog", dmon::logtools::drlog::Args::command()),
        ("dslog", dmon::logtools::dslog::Args::command()),
        ("denv", dmon::logtools::denv::Args::command()),
    ]
}

/// The programs that get completions: the tools, and dsyslog (dslog by another name).
fn programs() -> Vec<(&'static str, clap::Command)> {
    let mut all = tools();
    all.push(("dsyslog", dmon::logtools::dslog::Args::command().name("dsyslog")));
    all
}

/// Every generated file: its path under the crate root and its content.
fn generated() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (name, command) in tools() {
        let source = read(&format!("docs/{name}.md"));
        out.push((format!("docs/{name}.8"), man_page(name, command, &source)));
    }
    for (name, command) in programs() {
        for (shell, ext) in [(Shell::Bash, "bash"), (Shell::Zsh, "zsh"), (Shell::Fish, "fish")] {
            let mut command = command.clone();
            let mut buffer = Vec::new();
            clap_complete::generate(shell, &mut command, name, &mut buffer);
            out.push((format!("completions/{name}.{ext}"), String::from_utf8(buffer).unwrap()));
        }
    }
    out
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn committed_pages_and_completions_match_the_parsers() {
    let update = std::env::var_os("UPDATE_DOCS").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (relative, content) in generated() {
        let path = Path::new(ROOT).join(&relative);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(content.as_str()) {
            continue;
        }
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, content).unwrap();
        } else {
            stale.push(relative);
        }
    }
    assert!(
        stale.is_empty(),
        "out of date with the parsers or docs/*.md: {}\nrun UPDATE_DOCS=1 cargo test --test docs and commit the result",
        stale.join(", ")
    );
}

#[test]
fn manual_sources_describe_only_real_options() {
    for (name, command) in tools() {
        let source = Source::parse(&read(&format!("docs/{name}.md")));
        let longs: Vec<String> = command.get_arguments().filter_map(|a| a.get_long().map(str::to_string)).collect();
        for item in source.option_items() {
            let key = item.key.as_deref().unwrap_or_else(|| panic!("docs/{name}.md: an option item without --name"));
            assert!(
                matches!(key, "help" | "version") || longs.iter().any(|l| l == key),
                "docs/{name}.md describes --{key}, which {name} does not have"
            );
        }
        for section in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            assert!(source.sections.iter().any(|(title, _)| title == section), "docs/{name}.md has no {section}");
        }
    }
}

/// The man page of `name`, rendered as man(1) shows it, as plain text.
fn rendered(name: &str) -> String {
    let page = Path::new(ROOT).join(format!("docs/{name}.8"));
    let out = Command::new("man")
        .arg("-l")
        .arg(&page)
        .env("MANWIDTH", "100")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat")
        .env_remove("MAN_KEEP_FORMATTING")
        .stdin(Stdio::null())
        .output()
        .expect("man(1) runs (Debian package man-db)");
    assert!(out.status.success(), "man -l {}: {}", page.display(), String::from_utf8_lossy(&out.stderr));
    // Without a terminal man-db prints plain text, but strip overstrikes anyway.
    let text = String::from_utf8(out.stdout).unwrap();
    let mut plain = String::with_capacity(text.len());
    for c in text.chars() {
        if c == '\u{8}' {
            plain.pop();
        } else {
            plain.push(c);
        }
    }
    plain
}

#[test]
fn man_shows_every_option_and_section() {
    for (name, mut command) in tools() {
        command.build();
        let text = rendered(name);
        for arg in command.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
            if let Some(long) = arg.get_long() {
                assert!(text.contains(&format!("--{long}")), "man {name}: --{long} missing");
            }
            if let Some(short) = arg.get_short() {
                assert!(text.contains(&format!("-{short}")), "man {name}: -{short} missing");
            }
            for value in arg.get_possible_values().iter().filter(|v| !v.is_hide_set()) {
                assert!(text.contains(value.get_name()), "man {name}: value {} missing", value.get_name());
            }
        }
        for heading in ["NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "EXIT STATUS", "EXAMPLES", "SEE ALSO"] {
            assert!(text.lines().any(|l| l == heading), "man {name}: no {heading} section");
        }
    }
    let dmon = rendered("dmon");
    for heading in ["SIGNALS", "STATUS FILE", "CONFIGURATION FILE", "ENVIRONMENT"] {
        assert!(dmon.lines().any(|l| l == heading), "man dmon: no {heading} section");
    }
    // Text from the manual source and the defaults from the parser both arrive.
    assert!(dmon.contains("refuses to start"), "{dmon}");
    assert!(dmon.contains("Default: 60"), "{dmon}");
    assert!(dmon.contains("dmon -n -1 -L 3.5 -l 1 make -j8"), "{dmon}");
}

#[test]
fn groff_finds_nothing_to_warn_about() {
    for (name, _) in tools() {
        let page = Path::new(ROOT).join(format!("docs/{name}.8"));
        let out = Command::new("groff")
            .args(["-man", "-Tutf8", "-ww", "-z"])
            .arg(&page)
            .output()
            .expect("groff runs (Debian package groff-base)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success() && stderr.is_empty(), "groff on {name}.8: {stderr}");
    }
}

/// Runs `script` in bash after sourcing the bash completion of `program`, with
/// `words` as the command line being completed (the last one is completed).
fn bash_complete(program: &str, words: &[&str]) -> Vec<String> {
    let file = Path::new(ROOT).join(format!("completions/{program}.bash"));
    let script = r#"
        source "$1" || exit 10
        spec=$(complete -p "$2") || exit 11
        function=$(printf '%s\n' "$spec" | sed -n 's/.*-F \([^ ]*\).*/\1/p')
        [ -n "$function" ] || exit 12
        shift 2
        COMP_WORDS=("$@")
        COMP_CWORD=$(( $# - 1 ))
        COMP_LINE="$*"
        COMP_POINT=${#COMP_LINE}
        COMP_TYPE=9
        "$function" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
        printf '%s\n' "${COMPREPLY[@]}"
    "#;
    let out = Command::new("bash")
        .args(["--norc", "--noprofile", "-c", script, "bash"])
        .arg(&file)
        .arg(program)
        .args(words)
        .stdin(Stdio::null())
        .output()
        .expect("bash runs");
    assert!(out.status.success(), "bash completion of {words:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap().lines().map(|l| l.trim_end().to_string()).filter(|l| !l.is_empty()).collect()
}

#[test]
fn bash_completes_options_and_values() {
    assert_eq!(bash_complete("dmon", &["dmon", "--wr"]), ["--write-info"]);
    assert_eq!(bash_complete("dmon", &["dmon", "--status-f"]), ["--status-format"]);
    let mut formats = bash_complete("dmon", &["dmon", "--status-format", ""]);
    formats.sort();
    assert_eq!(formats, ["json", "text"]);
    assert_eq!(bash_complete("dmon", &["dmon", "--tree", "sig"]), ["signals"]);
    assert_eq!(bash_complete("dlog", &["dlog", "--skip"]), ["--skip-empty"]);
    assert_eq!(bash_complete("drlog", &["drlog", "--max-s"]), ["--max-size"]);
    assert_eq!(bash_complete("dslog", &["dslog", "--console-d"]), ["--console-device"]);
    assert_eq!(bash_complete("dsyslog", &["dsyslog", "--console-d"]), ["--console-device"]);
    assert_eq!(bash_complete("denv", &["denv", "--inherit-"]), ["--inherit-env"]);
}

/// Types `line` into an interactive zsh that has loaded the zsh completion of the
/// program, presses Tab, and returns what the completion system offered: every
/// word given to `compadd` that matches what is typed.
const ZSH_COMPLETE: &str = r#"
    zmodload zsh/zpty || exit 10
    out=$(mktemp -d)
    zpty z zsh -f -i
    zpty -w z "PS1=''; autoload -U compinit; compinit -u -D; source ${(q)1} || exit"
    zpty -w z "compadd() { local -a m; builtin compadd -O m \"\$@\"; print -rl -- \$m >> $out/matches; }"
    zpty -w z "zle -C list-them complete-word _main_complete"
    zpty -w z "tab() { zle list-them; : > $out/done; }; zle -N tab; bindkey '^I' tab"
    zpty -w -n z "$2"$'\t'
    for i in {1..100}; do [[ -e $out/done ]] && break; sleep 0.1; done
    zpty -d z
    [[ -e $out/done ]] || exit 11
    cat $out/matches 2>/dev/null; rm -rf $out
"#;

/// What `shell` offers for the last word of `line` (the program's name first),
/// from the committed completion of `program`: sorted, each once.
fn complete(shell: Shell, program: &str, line: &str) -> Vec<String> {
    let mut found = match shell {
        Shell::Bash => {
            let mut words: Vec<&str> = line.split(' ').collect();
            if line.ends_with(' ') {
                words.pop();
                words.push("");
            }
            bash_complete(program, &words)
        }
        _ => {
            let (file, mut command) = match shell {
                Shell::Zsh => ("zsh", Command::new("zsh")),
                _ => ("fish", Command::new("fish")),
            };
            let file = Path::new(ROOT).join(format!("completions/{program}.{file}"));
            match shell {
                Shell::Zsh => command.args(["-f", "-c", ZSH_COMPLETE, "zsh"]),
                _ => command.args(["--no-config", "-c", "source $argv[1]; or exit 10; complete -C $argv[2]", "--"]),
            };
            let out = command.arg(&file).arg(line).stdin(Stdio::null()).output().expect("the shell runs");
            assert!(out.status.success() && out.stderr.is_empty(), "{shell} completion of {line:?}: {out:?}");
            // fish gives "value<TAB>description".
            let text = String::from_utf8(out.stdout).unwrap();
            text.lines().filter_map(|l| l.split('\t').next()).map(str::to_string).collect()
        }
    };
    found.retain(|word| !word.is_empty());
    found.sort();
    found.dedup();
    found
}

#[test]
fn every_shell_completes_every_option_and_exactly_its_values() {
    for (program, mut command) in programs() {
        command.build();
        let options: Vec<_> = command.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()).collect();
        let mut longs: Vec<String> = options.iter().filter_map(|a| a.get_long()).map(|l| format!("--{l}")).collect();
        longs.sort();
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let offered = complete(shell, program, &format!("{program} --"));
            assert_eq!(offered, longs, "{shell}: {program} --<TAB>");
            for arg in options.iter().filter(|a| a.get_action().takes_values()) {
                let mut values: Vec<String> =
                    arg.get_possible_values().iter().map(|v| v.get_name().to_string()).collect();
                if values.is_empty() {
                    continue;
                }
                values.sort();
                let long = arg.get_long().unwrap();
                let offered = complete(shell, program, &format!("{program} --{long} "));
                assert_eq!(offered, values, "{shell}: {program} --{long} <TAB>");
            }
        }
    }
}

// ---------------------------------------------------------------------------
// The manual sources: the subset of Markdown docs/<tool>.md use.

/// A parsed manual source: its `##` sections in order, each a list of blocks.
struct Source {
    sections: Vec<(String, Vec<Block>)>,
}

enum Block {
    Paragraph(String),
    /// A list item; `key` is the long option its head names (`--name`), if any.
    Item(Item),
    Code(Vec<String>),
    Subheading(String),
}

struct Item {
    /// The part before the first ": " when it is only code spans (`-p`, `--prefix
    /// PREFIX`), shown as a tag; else `None` and the item is a bullet.
    head: Option<String>,
    body: String,
    key: Option<String>,
}

impl Source {
    fn parse(text: &str) -> Source {
        let mut sections: Vec<(String, Vec<Block>)> = Vec::new();
        let mut lines = text.lines().peekable();
        while let Some(line) = lines.next() {
            if let Some(title) = line.strip_prefix("## ") {
                sections.push((title.trim().to_string(), Vec::new()));
                continue;
            }
            if line.starts_with("# ") || line.trim().is_empty() {
                continue;
            }
            let Some((_, blocks)) = sections.last_mut() else { continue };
            if let Some(title) = line.strip_prefix("### ") {
                blocks.push(Block::Subheading(title.trim().to_string()));
            } else if line.starts_with("```") {
                let mut code = Vec::new();
                for line in lines.by_ref() {
                    if line.starts_with("```") {
                        break;
                    }
                    code.push(line.to_string());
                }
                blocks.push(Block::Code(code));
            } else if let Some(first) = line.strip_prefix("    ") {
                let mut code = vec![first.to_string()];
                while let Some(next) = lines.peek().filter(|l| l.starts_with("    ") || l.trim().is_empty()) {
                    code.push(next.get(4..).unwrap_or("").to_string());
                    lines.next();
                }
                while code.last().is_some_and(|l| l.trim().is_empty()) {
                    code.pop();
                }
                blocks.push(Block::Code(code));
            } else if let Some(first) = line.strip_prefix("- ") {
                let mut text = first.to_string();
                while let Some(next) = lines.peek().filter(|l| l.starts_with("  ") && !l.trim().is_empty()) {
                    text.push('\n');
                    text.push_str(next.trim());
                    lines.next();
                }
                blocks.push(Block::Item(Item::parse(&text)));
            } else {
                assert!(!line.starts_with('|'), "tables are not supported in manual sources: {line}");
                let mut text = line.to_string();
                while let Some(next) = lines.peek().filter(|l| {
                    !l.trim().is_empty() && !l.starts_with("- ") && !l.starts_with("```") && !l.starts_with('#')
                }) {
                    text.push('\n');
                    text.push_str(next);
                    lines.next();
                }
                blocks.push(Block::Paragraph(text));
            }
        }
        Source { sections }
    }

    fn section(&self, title: &str) -> Option<&[Block]> {
        self.sections.iter().find(|(t, _)| t == title).map(|(_, blocks)| blocks.as_slice())
    }

    fn option_items(&self) -> impl Iterator<Item = &Item> {
        self.section("OPTIONS").into_iter().flatten().filter_map(|b| match b {
            Block::Item(item) => Some(item),
            _ => None,
        })
    }
}

impl Item {
    fn parse(text: &str) -> Item {
        // A head is code spans separated by ", " or "; ", ending in "`: ".
        if let Some(at) = text.find("`: ") {
            let head = &text[..at + 1];
            let outside: String = head.split('`').step_by(2).collect();
            if head.starts_with('`') && outside.chars().all(|c| c == ',' || c == ';' || c == ' ') {
                let key = head.split('`').skip(1).step_by(2).find_map(|span| {
                    span.strip_prefix("--").map(|rest| rest.split([' ', '=']).next().unwrap_or("").to_string())
                });
                return Item { head: Some(head.to_string()), body: text[at + 3..].to_string(), key };
            }
        }
        let key = text
            .split('`')
            .skip(1)
            .step_by(2)
            .find_map(|span| span.strip_prefix("--").map(|r| r.split(' ').next().unwrap_or("").to_string()));
        Item { head: None, body: text.to_string(), key }
    }
}

// ---------------------------------------------------------------------------
// roff output.

/// Escapes text for roff: backslashes, and a leading `.` or `'` that would be
/// read as a request.
fn escape(text: &str) -> String {
    text.replace('\\', "\\e")
}

/// A code span: bold, with `-` as the minus sign `\-` so that it can be copied
/// and searched for as typed.
fn code(text: &str) -> String {
    format!("\\fB{}\\fR", escape(text).replace('-', "\\-"))
}

/// Markdown inline text to roff: code spans bold, `**strong**` bold.
fn inline(text: &str) -> String {
    let mut out = String::new();
    for (i, part) in text.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&code(part));
        } else {
            let mut strong = false;
            for (j, piece) in part.split("**").enumerate() {
                if j > 0 {
                    out.push_str(if strong { "\\fR" } else { "\\fB" });
                    strong = !strong;
                }
                out.push_str(&escape(piece));
            }
        }
    }
    out
}

/// Text lines of roff: inline markup converted and no line read as a request.
fn lines(text: &str) -> String {
    let mut out = String::new();
    for line in inline(text).lines() {
        let line = line.trim_start();
        if line.starts_with('.') || line.starts_with('\'') {
            out.push_str("\\&");
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

fn blocks(out: &mut String, blocks: &[Block]) {
    for block in blocks {
        match block {
            Block::Paragraph(text) => {
                out.push_str(".PP\n");
                out.push_str(&lines(text));
            }
            Block::Item(Item { head: Some(head), body, .. }) => {
                out.push_str(".TP\n");
                out.push_str(&lines(head));
                out.push_str(&lines(body));
            }
            Block::Item(Item { head: None, body, .. }) => {
                out.push_str(".IP \\(bu 2\n");
                out.push_str(&lines(body));
            }
            Block::Code(code) => {
                out.push_str(".PP\n.RS 4\n.nf\n");
                for line in code {
                    if line.starts_with('.') || line.starts_with('\'') {
                        out.push_str("\\&");
                    }
                    out.push_str(&escape(line).replace('-', "\\-"));
                    out.push('\n');
                }
                out.push_str(".fi\n.RE\n");
            }
            Block::Subheading(title) => {
                out.push_str(&format!(".SS {}\n", quoted(title)));
            }
        }
    }
}

fn quoted(title: &str) -> String {
    if title.contains(' ') { format!("\"{title}\"") } else { title.to_string() }
}

/// The tag of an option: `-p`, `--prefix PREFIX`.
fn option_tag(arg: &Arg) -> String {
    let mut names = Vec::new();
    if let Some(short) = arg.get_short() {
        names.push(code(&format!("-{short}")));
    }
    if let Some(long) = arg.get_long() {
        names.push(code(&format!("--{long}")));
    }
    let mut tag = names.join(", ");
    if arg.get_action().takes_values() {
        for value in arg.get_value_names().into_iter().flatten() {
            tag.push_str(&format!(" \\fI{}\\fR", escape(value)));
        }
    }
    tag
}

/// The OPTIONS section: every option of the parser, in its order, with the
/// manual source's text for it where it has one.
fn options(out: &mut String, command: &clap::Command, source: &Source) {
    out.push_str(".SH OPTIONS\n");
    for arg in command.get_arguments().filter(|a| !a.is_positional() && !a.is_hide_set()) {
        let item = source.option_items().find(|i| i.key.is_some() && i.key.as_deref() == arg.get_long());
        let body = match (item, arg.get_action()) {
            (Some(item), _) => item.body.clone(),
            (None, ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong) => "Print the help and exit.".into(),
            (None, ArgAction::Version) => "Print the version and exit.".into(),
            (None, _) => {
                let help = arg.get_long_help().or(arg.get_help()).map(|h| h.to_string()).unwrap_or_default();
                format!("{}.", help.trim_end_matches('.'))
            }
        };
        out.push_str(".TP\n");
        out.push_str(&option_tag(arg));
        out.push('\n');
        // The sources' items start in lower case after their tag; a man page's
        // option text stands alone.
        let mut chars = body.chars();
        let body: String = chars.next().map(|c| c.to_ascii_uppercase()).into_iter().chain(chars).collect();
        out.push_str(&lines(&body));
        let values: Vec<_> = arg.get_possible_values().into_iter().filter(|v| !v.is_hide_set()).collect();
        let flag = matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::Count);
        if !values.is_empty() && !flag {
            out.push_str(".RS\n");
            for value in &values {
                out.push_str(&format!(".TP\n{}\n", code(value.get_name())));
                if let Some(help) = value.get_help() {
                    out.push_str(&lines(&help.to_string()));
                }
            }
            out.push_str(".RE\n");
        }
        let defaults: Vec<String> = arg.get_default_values().iter().map(|v| v.to_string_lossy().into_owned()).collect();
        if !defaults.is_empty() && !flag && !body.to_lowercase().contains("default") {
            out.push_str(&format!(".IP\nDefault: {}.\n", code(&defaults.join(" "))));
        }
    }
}

/// The man page of one tool: the title, then the manual source's sections in its
/// order, with OPTIONS generated from the parser.
fn man_page(name: &str, mut command: clap::Command, source: &str) -> String {
    command.build();
    let source = Source::parse(source);
    let version = env!("CARGO_PKG_VERSION");
    let mut out = format!(
        ".\\\" Generated from docs/{name}.md and {name}'s command-line definition by tests/docs.rs:\n\
         .\\\" edit those, then run UPDATE_DOCS=1 cargo test --test docs.\n\
         .TH {} 8 \"\" \"dmon {version}\" \"System Manager's Manual\"\n\
         .nh\n.ad l\n",
        name.to_uppercase()
    );
    for (title, section) in &source.sections {
        if title == "OPTIONS" {
            options(&mut out, &command, &source);
            let rest: Vec<&Block> = section.iter().filter(|b| !matches!(b, Block::Item(_))).collect();
            assert!(rest.is_empty(), "docs/{name}.md: OPTIONS may hold only option items");
            continue;
        }
        out.push_str(&format!(".SH {}\n", quoted(title)));
        if title == "NAME" {
            // "name - summary", with the dash as roff wants it in NAME.
            let Some(Block::Paragraph(text)) = section.first() else { panic!("docs/{name}.md: empty NAME") };
            out.push_str(&escape(text).replacen(" - ", " \\- ", 1));
            out.push('\n');
            continue;
        }
        blocks(&mut out, section);
    }
    out
}
