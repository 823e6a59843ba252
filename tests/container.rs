//! The container image's contract, read from the Dockerfile (no container engine is needed):
//! a locked multi-stage build, a non-root runtime, the documented ports, a health check that
//! uses the binary itself, and `BARS_` environment settings the real binary accepts.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::process::Command;

#[cfg(all(feature = "cli", feature = "dev-tools"))]
use crate::common::bin;

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
    let status = bin(d).args(["dev-pki"]).status().unwrap();
    assert!(status.success());
    // The image's variables (and no `BARS_` variable of the environment the tests run in)
    // over the development configuration: still a valid setup, with the inbox path pointed
    // somewhere writable for the test.
    let out = bin(d)
        .arg("check")
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
    let text = format!("\n{text}");
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

/// The files `cargo build` needs from the manifest: `Cargo.toml`, `Cargo.lock`, the `[lib]`
/// and `[[bin]]` sources (built), and every other declared target (`[[bench]]`, `[[test]]`,
/// `[[example]]`) whose path cargo infers: it checks those exist when it loads the manifest,
/// built or not. A target with an explicit `path` is only read when built, and targets
/// cargo discovers by itself are simply not discovered where they are absent.
fn files_cargo_build_needs(manifest: &str) -> Vec<String> {
    let manifest: toml::Table = manifest.parse().expect("Cargo.toml parses");
    let package = manifest["package"]["name"].as_str().expect("package.name");
    let mut files = vec!["Cargo.toml".to_owned(), "Cargo.lock".to_owned()];
    let path = |target: &toml::Value| {
        target
            .get("path")
            .and_then(toml::Value::as_str)
            .map(str::to_owned)
    };
    if let Some(lib) = manifest.get("lib") {
        files.push(path(lib).unwrap_or_else(|| "src/lib.rs".to_owned()));
    }
    for (kind, dir) in [
        ("bin", "src/bin"),
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for target in manifest
            .get(kind)
            .and_then(toml::Value::as_array)
            .into_iter()
            .flatten()
        {
            let name = target["name"].as_str().expect("a target name");
            let inferred = match kind {
                "bin" if name == package => "src/main.rs".to_owned(),
                _ => format!("{dir}/{name}.rs"),
            };
            match (kind, path(target)) {
                ("bin", Some(path)) => files.push(path),
                (_, Some(_)) => {}
                (_, None) => files.push(inferred),
            }
        }
    }
    files
}

/// The `files` no `COPY` source brings into the build stage.
fn missing_from_build_stage(dockerfile: &str, files: &[String]) -> Vec<String> {
    let copies: Vec<String> = build_stage_copies(dockerfile)
        .iter()
        .map(|s| s.trim_start_matches("./").trim_end_matches('/').to_owned())
        .collect();
    let covered = |file: &str| {
        copies.iter().any(|c| {
            c == "." || c == file || file.strip_prefix(c.as_str()).is_some_and(|r| r.starts_with('/'))
        })
    };
    files.iter().filter(|f| !covered(f)).cloned().collect()
}

#[test]
fn the_build_stage_copies_everything_the_manifest_needs() {
    // What `cargo build --locked` sees inside the image: only the COPY'd paths.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for source in build_stage_copies(&dockerfile()) {
        assert!(
            root.join(&source).exists(),
            "COPY {source}: not in the repository"
        );
    }
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).unwrap();
    let needed = files_cargo_build_needs(&manifest);
    assert!(needed.len() > 4, "found only {needed:?}");

    // The paths read from the manifest are the ones cargo uses (`--no-deps`: nothing is
    // resolved or downloaded, whatever the cargo cache holds).
    let out = Command::new(env!("CARGO"))
        .args([
            "metadata",
            "--locked",
            "--offline",
            "--no-deps",
            "--format-version",
            "1",
        ])
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let sources: Vec<&str> = metadata["packages"][0]["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t["src_path"].as_str())
        .collect();
    for file in &needed[2..] {
        let path = root.join(file);
        assert!(
            sources.iter().any(|s| Path::new(s) == path),
            "{file} is not a target source cargo knows: {sources:?}"
        );
    }

    let missing = missing_from_build_stage(&dockerfile(), &needed);
    assert!(
        missing.is_empty(),
        "the Dockerfile's build stage does not COPY {missing:?}"
    );
}

#[test]
fn a_build_stage_that_forgets_a_file_cargo_needs_is_caught() {
    let manifest = r#"
[package]
name = "demo"
[lib]
path = "src/lib.rs"
[[bin]]
name = "demo"
[[bin]]
name = "tool"
[[bench]]
name = "speed"
[[test]]
name = "api"
[[test]]
name = "main"
path = "tests/main.rs"
[[example]]
name = "hello"
[[example]]
name = "elsewhere"
path = "samples/elsewhere.rs"
"#;
    let needed = files_cargo_build_needs(manifest);
    assert_eq!(
        needed,
        [
            "Cargo.toml",
            "Cargo.lock",
            "src/lib.rs",
            "src/main.rs",
            "src/bin/tool.rs",
            "benches/speed.rs",
            "tests/api.rs",
            "examples/hello.rs"
        ]
    );
    let dockerfile = "FROM rust AS build\n\
                      COPY Cargo.toml Cargo.lock ./\n\
                      COPY src ./src\n\
                      COPY ./benches/ ./benches\n\
                      COPY examples/hello.rs ./examples/\n\
                      RUN cargo build --release --locked\n\
                      FROM runtime\n\
                      COPY --from=build /src/tests ./tests\n";
    assert_eq!(missing_from_build_stage(dockerfile, &needed), ["tests/api.rs"]);
    let complete = dockerfile.replace("RUN cargo", "COPY tests/api.rs ./tests/\nRUN cargo");
    assert!(missing_from_build_stage(&complete, &needed).is_empty());
    let without_benches = complete.replace("COPY ./benches/ ./benches\n", "");
    assert_eq!(
        missing_from_build_stage(&without_benches, &needed),
        ["benches/speed.rs"]
    );
    let without_src = complete.replace("COPY src ./src\n", "");
    assert_eq!(
        missing_from_build_stage(&without_src, &needed),
        ["src/lib.rs", "src/main.rs", "src/bin/tool.rs"]
    );
}
