//! `bars-receiver csr`: the server key and certificate request named by the BaRS convention,
//! and what to do with them for the environment.

use std::path::Path;
use std::process::ExitCode;

use bars_receiver::config::Environment;
use bars_receiver::pki::{HostedBy, ServerCsr, ServerNameSpec};

pub(crate) fn run(
    environment: Environment,
    ods_code: String,
    hosted_by: HostedBy,
    out: &Path,
    force: bool,
) -> ExitCode {
    let spec = ServerNameSpec {
        environment,
        ods_code,
        hosted_by,
    };
    let written = ServerCsr::generate(&spec).and_then(|csr| {
        let files = csr.write(out, force)?;
        Ok((csr.fqdn, files))
    });
    let (fqdn, (key, csr)) = match written {
        Ok(done) => done,
        Err(e) => return super::pki_failure(&e),
    };
    let (env, chain) = match environment {
        Environment::Prod => ("PROD", "the NHS Root Authority chain (never the INT/PTL chain)"),
        _ => ("INT", "the INT (PTL) chain"),
    };
    let sources = environment
        .preset_sources()
        .iter()
        .map(|s| s.trim_end_matches("/32"))
        .collect::<Vec<_>>()
        .join(", ");
    outln!("Server key and certificate request for {fqdn}:");
    outln!(
        "  private key  {}  (RSA 2048, mode 0600: it never leaves this machine)",
        key.display()
    );
    outln!(
        "  CSR          {}  (CN = DNS SAN = {fqdn}, no email)",
        csr.display()
    );
    outln!();
    outln!("Next steps for {env}:");
    outln!(
        "  1. Send {} (never the key) to NHS England with your BaRS {env} onboarding request.",
        csr.display()
    );
    outln!("     You receive your certificate and {env}'s Root and SubCA certificates: {chain}.");
    outln!("  2. DNS: {fqdn} must resolve to the public address the proxy connects to.");
    outln!("  3. Endpoint Catalogue: register https://{fqdn}/ (plus http.base_path, if any) for");
    outln!("     each service you list in receiver.services.");
    outln!("  4. Firewall: open TCP 443 only to the {env} BaRS proxy addresses: {sources}");
    outln!(
        "     (the allowlist preset of environment = \"{}\").",
        environment.as_str()
    );
    outln!(
        "  5. Configure tls.cert_chain (your certificate, then the SubCA), tls.private_key = {},",
        key.display()
    );
    outln!("     tls.client_ca = the {env} Root and SubCA, then run: bars-receiver check --config FILE");
    ExitCode::SUCCESS
}
