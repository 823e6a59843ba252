//! `bars-receiver check`.

use std::path::PathBuf;
use std::process::ExitCode;

use bars_receiver::Settings;
use bars_receiver::check::check;

use super::EXIT_CONFIG;

pub(crate) fn run(config: Option<PathBuf>) -> ExitCode {
    let loaded = match &config {
        Some(path) => Settings::load(path),
        None => Settings::dev(),
    };
    let source = config.map_or_else(
        || "embedded development configuration".to_owned(),
        |p| p.display().to_string(),
    );
    let report = check(loaded);
    outln!("bars-receiver check: {source}\n");
    out!("{}", report.render());
    if report.has_errors() {
        ExitCode::from(EXIT_CONFIG)
    } else {
        ExitCode::SUCCESS
    }
}
