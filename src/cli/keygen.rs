//! `bars-receiver keygen`: the API-M signing key pair and the JWKS to register.

use std::path::Path;
use std::process::ExitCode;

use bars_receiver::pki::ApimKeyPair;
use bars_receiver::sender::kid_convention;

pub(crate) fn run(kid: &str, out: &Path, force: bool) -> ExitCode {
    if let Err(why) = kid_convention(kid) {
        eprintln!("warning: --kid {why}");
    }
    let written = ApimKeyPair::generate(kid).and_then(|pair| pair.write(out, force));
    let files = match written {
        Ok(files) => files,
        Err(e) => return super::pki_failure(&e),
    };
    outln!("API-M signing key for kid {kid} (RSA 4096, RS512):");
    outln!(
        "  private key  {}  (mode 0600: keep it secret, never commit or send it)",
        files.private_key.display()
    );
    outln!("  public key   {}", files.public_key.display());
    outln!("  JWKS         {}", files.jwks.display());
    outln!();
    outln!("Next steps:");
    outln!(
        "  1. Register {} as the public key of your API-M application (kid {kid}).",
        files.jwks.display()
    );
    outln!("  2. Configure the sender: in [sender], mode = \"signed-jwt\",");
    outln!(
        "     private_key = \"{}\", kid = \"{kid}\",",
        files.private_key.display()
    );
    outln!("     and BARS_SENDER__API_KEY=<your application's API key> in the environment.");
    outln!("  3. Check it: bars-receiver jwt --config FILE, then bars-receiver token --config FILE.");
    ExitCode::SUCCESS
}
