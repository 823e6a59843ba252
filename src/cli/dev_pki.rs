//! `bars-receiver dev-pki`.

use std::path::Path;
use std::process::ExitCode;

use bars_receiver::pki::{DevPki, DevPkiOptions};

pub(crate) fn run(out: &Path, force: bool, ods_code: String, supplier: String) -> ExitCode {
    let options = DevPkiOptions { ods_code, supplier };
    match DevPki::generate(&options).and_then(|pki| pki.write(out, force)) {
        Ok(files) => {
            outln!("Development PKI written (never use it for INT or PROD):");
            for f in files {
                outln!("  {}", f.display());
            }
            outln!("Server name: {}", options.server_name());
            ExitCode::SUCCESS
        }
        Err(e) => super::pki_failure(&e),
    }
}
