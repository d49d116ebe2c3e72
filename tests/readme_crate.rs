//! The README's quick start, built as a new user would build it: in a
//! fresh crate whose `[dependencies]` are exactly the README's Install
//! section (with rampart from this checkout). Doctests cannot show this:
//! they build with this crate's dev-dependencies, which turn on features a
//! user's crate would not have.
//!
//! Ignored by default (it builds hyper and tokio from scratch, minutes on
//! two cores); `.ci/run` runs it.

use std::path::Path;
use std::process::Command;

/// The body of the first fenced block of `lang` after `heading`.
fn block<'a>(readme: &'a str, heading: &str, lang: &str) -> &'a str {
    let at = readme
        .find(heading)
        .unwrap_or_else(|| panic!("no {heading:?} in the README"));
    let rest = &readme[at..];
    let open = format!("```{lang}");
    let start = rest
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} block under {heading:?}"));
    let body = &rest[start..];
    let body = &body[body.find('\n').expect("a fence line") + 1..];
    &body[..body.find("\n```").expect("a closing fence")]
}

#[test]
#[ignore = "builds a fresh crate: run by .ci/run"]
fn the_quick_start_builds_in_a_fresh_crate_with_the_install_section() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let install = block(&readme, "## Install", "toml");
    let quick_start = block(&readme, "## Quick start", "rust");

    let deps: Vec<&str> = install
        .lines()
        .skip_while(|l| l.trim() != "[dependencies]")
        .skip(1)
        .collect();
    assert!(
        deps.iter().any(|l| l.starts_with("rampart ")),
        "the Install section names rampart"
    );
    // rampart from this checkout, the rest exactly as the README says.
    let deps: Vec<String> = deps
        .iter()
        .map(|l| {
            if l.starts_with("rampart ") {
                format!("rampart = {{ path = {:?} }}", root.display().to_string())
            } else {
                l.to_string()
            }
        })
        .collect();

    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme-crate");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"readme-quick-start\"\nversion = \"0.0.0\"\nedition = \"2021\"\npublish = false\n\n[workspace]\n\n[dependencies]\n{}\n",
        deps.join("\n")
    );
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/main.rs"), quick_start).unwrap();
    // The same versions as this checkout, so the build is the one CI tested.
    std::fs::copy(root.join("Cargo.lock"), dir.join("Cargo.lock")).unwrap();

    let out = Command::new(env!("CARGO"))
        .args(["build", "--quiet"])
        .current_dir(&dir)
        .env("CARGO_TARGET_DIR", dir.join("target"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "the README's quick start does not build in a fresh crate with the Install section:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
