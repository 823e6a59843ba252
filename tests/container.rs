//! The container image's contract, read from the Dockerfile (no container engine is needed):
//! a locked multi-stage build, a non-root runtime, the documented ports, a health check that
//! uses the binary itself, and `BARS_` environment settings the real binary accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

fn dockerfile() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("Dockerfile")).unwrap()
}

/// `ENV` assignments, continuation lines joined.
#[cfg(all(feature = "cli", feature = "dev-tools"))]
fn env_vars(text: &str) -> Vec<(String, String)> {
    let joined = text.replace("\\\n", " ");
    joined
        .lines()
        .filter_map(|l| l.trim().strip_prefix("ENV "))
        .flat_map(|rest| rest.split_whitespace().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
        .collect()
}

#[test]
fn the_image_builds_locked_and_runs_unprivileged_with_a_self_health_check() {
    let text = dockerfile();
    assert!(text.matches("\nFROM ").count() >= 2, "multi-stage");
    assert!(
        text.contains("cargo build --release --locked --no-default-features --features cli "),
        "the image builds the binary without the development tools"
    );
    let user = text
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains("root") && !user.contains(" 0"), "{user}");
    assert!(text.contains("EXPOSE 8443 9090"));
    assert!(
        text.contains("bars-receiver\", \"healthcheck\""),
        "HEALTHCHECK runs the binary"
    );
    assert!(text.contains("STOPSIGNAL SIGTERM"));
    assert!(text.contains("/etc/bars-receiver/config.toml"));
    assert!(text.contains("/var/lib/bars-receiver"));
    let ignore =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(".dockerignore")).unwrap();
    for entry in ["target", "certs/dev", "data"] {
        assert!(
            ignore.lines().any(|l| l.trim() == entry),
            ".dockerignore lacks {entry}"
        );
    }
}

#[cfg(all(feature = "cli", feature = "dev-tools"))]
#[test]
fn the_image_environment_is_valid_configuration() {
    let vars = env_vars(&dockerfile());
    assert!(vars.iter().any(|(k, _)| k == "BARS_ADMIN__ADDRESS"), "{vars:?}");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let status = Command::new(env!("CARGO_BIN_EXE_bars-receiver"))
        .args(["dev-pki"])
        .current_dir(d)
        .status()
        .unwrap();
    assert!(status.success());
    // The image's variables over the development configuration: still a valid setup, with
    // the inbox path pointed somewhere writable for the test.
    let out = Command::new(env!("CARGO_BIN_EXE_bars-receiver"))
        .arg("check")
        .current_dir(d)
        .envs(vars.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("BARS_INBOX__PATH", d.join("inbox.db"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The build stage's `COPY` sources (relative to the context), continuation lines joined.
fn build_stage_copies(text: &str) -> Vec<String> {
    let stage = text.split("\nFROM ").nth(1).expect("a build stage");
    stage
        .lines()
        .filter_map(|l| l.trim().strip_prefix("COPY "))
        .filter(|rest| !rest.starts_with("--from"))
        .flat_map(|rest| {
            let parts: Vec<&str> = rest.split_whitespace().collect();
            parts[..parts.len() - 1]
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn the_build_stage_copies_everything_the_manifest_needs() {
    // What `cargo build --locked` sees inside the image: only the COPY'd paths.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let copies = build_stage_copies(&dockerfile());
    assert!(copies.contains(&"Cargo.lock".to_owned()), "{copies:?}");
    let dir = tempfile::tempdir().unwrap();
    for source in &copies {
        let status = Command::new("cp")
            .arg("-r")
            .arg(root.join(source))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "COPY {source}: not in the repository");
    }
    let out = Command::new(env!("CARGO"))
        // `fetch` parses every declared target (a missing file fails it) without compiling.
        .args(["fetch", "--locked", "--offline"])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the image's copy of the project does not load: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}
