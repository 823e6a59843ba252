//! A mock of the two national services a sender talks to, in-process on 127.0.0.1:0: the
//! API-M token endpoint, which checks every client assertion the way API-M does (signature
//! verified independently of the crate's signer: with `openssl dgst` and with aws-lc-rs's
//! raw RSA verifier), and the BaRS API, which records each request and answers from a script.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

/// The path of the mock token endpoint.
pub const TOKEN_PATH: &str = "/oauth2/token";
/// The path of the mock BaRS API.
pub const API_PATH: &str = "/booking-and-referral/FHIR/R4";

/// What the token endpoint does with an assertion that passed every check.
#[derive(Clone, Debug)]
pub enum TokenReply {
    /// 200 with a fresh token and this `expires_in` (string or number, as given).
    Grant { expires_in: Value },
    /// This status and body, whatever the assertion.
    Refuse { status: u16, body: Value },
}

/// One scripted BaRS API answer.
#[derive(Clone, Debug)]
pub enum ApiReply {
    /// 200, the ids echoed, the request body echoed.
    Echo,
    /// This status and body; the ids echoed or not.
    Answer {
        status: u16,
        body: Value,
        echo_ids: bool,
    },
    /// Close the connection without answering.
    Drop,
}

/// A request the API received.
#[derive(Clone, Debug)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// A base64-JSON header, decoded.
    pub fn json_header(&self, name: &str) -> Value {
        let raw = self.header(name).unwrap_or_else(|| panic!("{name} missing"));
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(raw)
            .unwrap_or_else(|e| panic!("{name} is not standard base64: {e}"));
        serde_json::from_slice(&bytes).unwrap_or_else(|e| panic!("{name} is not JSON: {e}"))
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

/// The mock's configuration and everything it saw.
pub struct MockState {
    pub api_key: String,
    /// The kid API-M has registered, with its public key (SubjectPublicKeyInfo PEM).
    pub kid: String,
    pub public_key_pem: String,
    pub token_reply: Mutex<TokenReply>,
    /// Delay before the token endpoint answers (to make concurrent callers overlap).
    pub token_delay: Mutex<Duration>,
    /// Whether the API demands a bearer token it issued.
    pub require_token: Mutex<bool>,
    pub token_requests: AtomicUsize,
    /// Assertions whose signature `openssl dgst -verify` confirmed.
    pub openssl_verified: AtomicUsize,
    pub jtis: Mutex<HashSet<String>>,
    /// Every way an assertion broke the rules (tests assert it stays empty).
    pub assertion_errors: Mutex<Vec<String>>,
    pub issued: Mutex<Vec<String>>,
    pub api_script: Mutex<VecDeque<ApiReply>>,
    pub api_requests: Mutex<Vec<Recorded>>,
    token_url: Mutex<String>,
}

impl MockState {
    pub fn token_requests(&self) -> usize {
        self.token_requests.load(Ordering::SeqCst)
    }

    pub fn api_requests(&self) -> Vec<Recorded> {
        self.api_requests.lock().unwrap().clone()
    }

    pub fn issued(&self) -> Vec<String> {
        self.issued.lock().unwrap().clone()
    }

    pub fn assertion_errors(&self) -> Vec<String> {
        self.assertion_errors.lock().unwrap().clone()
    }

    pub fn script(&self, replies: impl IntoIterator<Item = ApiReply>) {
        self.api_script.lock().unwrap().extend(replies);
    }

    pub fn set_token_reply(&self, reply: TokenReply) {
        *self.token_reply.lock().unwrap() = reply;
    }
}

pub struct MockApim {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
    /// `http://127.0.0.1:port` or `https://localhost:port`.
    pub origin: String,
    stop: Option<oneshot::Sender<()>>,
}

impl Drop for MockApim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

impl MockApim {
    /// A plain-HTTP mock that has `kid` registered with `public_key_pem`.
    pub async fn start(api_key: &str, kid: &str, public_key_pem: &str) -> Self {
        Self::start_with_tls(api_key, kid, public_key_pem, None).await
    }

    /// The same over TLS with this server certificate chain and key (name `localhost`).
    pub async fn start_with_tls(
        api_key: &str,
        kid: &str,
        public_key_pem: &str,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("addr");
        let origin = match tls {
            Some(_) => format!("https://localhost:{}", addr.port()),
            None => format!("http://{addr}"),
        };
        let state = Arc::new(MockState {
            api_key: api_key.to_owned(),
            kid: kid.to_owned(),
            public_key_pem: public_key_pem.to_owned(),
            token_reply: Mutex::new(TokenReply::Grant {
                expires_in: json!("599"),
            }),
            token_delay: Mutex::new(Duration::ZERO),
            require_token: Mutex::new(true),
            token_requests: AtomicUsize::new(0),
            openssl_verified: AtomicUsize::new(0),
            jtis: Mutex::new(HashSet::new()),
            assertion_errors: Mutex::new(Vec::new()),
            issued: Mutex::new(Vec::new()),
            api_script: Mutex::new(VecDeque::new()),
            api_requests: Mutex::new(Vec::new()),
            token_url: Mutex::new(format!("{origin}{TOKEN_PATH}")),
        });
        let (stop, mut stopped) = oneshot::channel();
        let served = state.clone();
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => accepted,
                };
                let Ok((tcp, _)) = accepted else { continue };
                let state = served.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let state = state.clone();
                        async move { handle(state, req).await }
                    });
                    let builder = hyper::server::conn::http1::Builder::new();
                    match tls {
                        Some(config) => {
                            let Ok(stream) = tokio_rustls::TlsAcceptor::from(config).accept(tcp).await else {
                                return;
                            };
                            let _ = builder.serve_connection(TokioIo::new(stream), service).await;
                        }
                        None => {
                            let _ = builder.serve_connection(TokioIo::new(tcp), service).await;
                        }
                    }
                });
            }
        });
        Self {
            addr,
            state,
            origin,
            stop: Some(stop),
        }
    }

    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.origin)
    }

    pub fn base_url(&self) -> String {
        format!("{}{API_PATH}", self.origin)
    }
}

#[derive(Debug)]
struct Dropped;

impl std::fmt::Display for Dropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("scripted connection drop")
    }
}

impl std::error::Error for Dropped {}

async fn handle(
    state: Arc<MockState>,
    req: http::Request<hyper::body::Incoming>,
) -> Result<http::Response<Full<Bytes>>, Dropped> {
    let (parts, body) = req.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if path == TOKEN_PATH {
        return Ok(token_endpoint(&state, &parts.headers, &body).await);
    }
    if path.starts_with(API_PATH) {
        return api(&state, parts.method.to_string(), path, parts.headers, body);
    }
    Ok(respond(404, &json!({"error": "no such mock path"}), None))
}

fn respond(status: u16, body: &Value, ids: Option<&http::HeaderMap>) -> http::Response<Full<Bytes>> {
    let mut builder = http::Response::builder()
        .status(status)
        .header("content-type", "application/json");
    if let Some(headers) = ids {
        for name in ["x-request-id", "x-correlation-id"] {
            if let Some(v) = headers.get(name) {
                builder = builder.header(name, v.clone());
            }
        }
    }
    builder
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

async fn token_endpoint(
    state: &MockState,
    headers: &http::HeaderMap,
    body: &[u8],
) -> http::Response<Full<Bytes>> {
    state.token_requests.fetch_add(1, Ordering::SeqCst);
    let delay = *state.token_delay.lock().unwrap();
    tokio::time::sleep(delay).await;
    let api_m_error = |status: u16, error: &str, description: &str| {
        respond(
            status,
            &json!({"error": error, "error_description": description, "message_id": format!("rrt-{}", Uuid::new_v4())}),
            None,
        )
    };
    if let TokenReply::Refuse { status, body } = state.token_reply.lock().unwrap().clone() {
        return respond(status, &body, None);
    }
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/x-www-form-urlencoded" {
        return reject(state, format!("content-type {content_type}"));
    }
    let form: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let field = |name: &str| {
        form.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    if field("grant_type") != "client_credentials" {
        return reject(state, format!("grant_type {}", field("grant_type")));
    }
    if field("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
        return reject(state, "client_assertion_type".into());
    }
    let jwt = field("client_assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return reject(state, "client_assertion is not a compact JWS".into());
    }
    let decode = |p: &str| -> Value {
        URL_SAFE_NO_PAD
            .decode(p)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .unwrap_or(Value::Null)
    };
    let header = decode(parts[0]);
    if header["alg"] != "RS512" || header["typ"] != "JWT" {
        return reject(state, format!("header {header}"));
    }
    if header["kid"] != state.kid.as_str() {
        // What API-M answers for a key id it has no public key for.
        return api_m_error(
            401,
            "invalid_request",
            "Invalid 'kid' header in JWT - no matching public key",
        );
    }
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    let Ok(signature) = URL_SAFE_NO_PAD.decode(parts[2]) else {
        return reject(state, "signature is not base64url".into());
    };
    if !verify_with_aws_lc(&state.public_key_pem, signing_input.as_bytes(), &signature) {
        return api_m_error(401, "invalid_request", "Unable to verify JWT signature");
    }
    match verify_with_openssl(&state.public_key_pem, signing_input.as_bytes(), &signature).await {
        Some(true) => {
            state.openssl_verified.fetch_add(1, Ordering::SeqCst);
        }
        Some(false) => return reject(state, "openssl rejects the signature aws-lc accepted".into()),
        None => {}
    }
    let claims = decode(parts[1]);
    let token_url = state.token_url.lock().unwrap().clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let mut errors = Vec::new();
    if claims["iss"] != state.api_key.as_str() {
        errors.push(format!("iss {}", claims["iss"]));
    }
    if claims["sub"] != state.api_key.as_str() {
        errors.push(format!("sub {}", claims["sub"]));
    }
    if claims["aud"] != token_url.as_str() {
        errors.push(format!("aud {} is not {token_url}", claims["aud"]));
    }
    match claims["exp"].as_u64() {
        Some(exp) if exp > now && exp <= now + 300 => {}
        other => errors.push(format!("exp {other:?} not within 5 minutes of {now}")),
    }
    match claims["jti"].as_str() {
        Some(jti) if Uuid::try_parse(jti).is_ok() => {
            if !state.jtis.lock().unwrap().insert(jti.to_owned()) {
                errors.push(format!("jti {jti} reused"));
            }
        }
        other => errors.push(format!("jti {other:?} is not a UUID")),
    }
    if !errors.is_empty() {
        return reject(state, errors.join("; "));
    }
    let TokenReply::Grant { expires_in } = state.token_reply.lock().unwrap().clone() else {
        unreachable!("refusals answered above");
    };
    let token = format!("token-{}", Uuid::new_v4());
    state.issued.lock().unwrap().push(token.clone());
    respond(
        200,
        &json!({
            "access_token": token,
            "expires_in": expires_in,
            "token_type": "Bearer",
            "issued_at": (now * 1000).to_string(),
        }),
        None,
    )
}

fn reject(state: &MockState, why: String) -> http::Response<Full<Bytes>> {
    state.assertion_errors.lock().unwrap().push(why.clone());
    respond(
        400,
        &json!({"error": "invalid_request", "error_description": why, "message_id": "rrt-mock"}),
        None,
    )
}

/// RSASSA-PKCS1-v1_5 with SHA-512 through aws-lc-rs's raw verifier (not jsonwebtoken).
fn verify_with_aws_lc(public_key_pem: &str, input: &[u8], signature: &[u8]) -> bool {
    use rustls::pki_types::SubjectPublicKeyInfoDer;
    use rustls::pki_types::pem::PemObject;
    let Ok(spki) = SubjectPublicKeyInfoDer::from_pem_slice(public_key_pem.as_bytes()) else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::RSA_PKCS1_2048_8192_SHA512,
        spki.as_ref(),
    )
    .verify(input, signature)
    .is_ok()
}

/// `openssl dgst -sha512 -verify`; `None` when openssl is not installed.
async fn verify_with_openssl(public_key_pem: &str, input: &[u8], signature: &[u8]) -> Option<bool> {
    let dir = tempfile::tempdir().ok()?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.path().join(name), bytes);
    write("pub.pem", public_key_pem.as_bytes()).ok()?;
    write("input", input).ok()?;
    write("sig", signature).ok()?;
    let out = tokio::process::Command::new("openssl")
        .args([
            "dgst",
            "-sha512",
            "-verify",
            "pub.pem",
            "-signature",
            "sig",
            "input",
        ])
        .current_dir(dir.path())
        .output()
        .await
        .ok()?;
    Some(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("Verified OK"))
}

fn api(
    state: &MockState,
    method: String,
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
) -> Result<http::Response<Full<Bytes>>, Dropped> {
    state.api_requests.lock().unwrap().push(Recorded {
        method,
        path,
        headers: headers.clone(),
        body: body.clone(),
    });
    if *state.require_token.lock().unwrap() {
        let bearer = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        if !state.issued.lock().unwrap().iter().any(|t| t == bearer) {
            return Ok(respond(
                401,
                &outcome(
                    "PROXY_UNAUTHORIZED",
                    "security",
                    "Access token missing or invalid",
                ),
                Some(&headers),
            ));
        }
    }
    let reply = state
        .api_script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(ApiReply::Echo);
    match reply {
        ApiReply::Echo => {
            let echoed = serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
            Ok(respond(200, &echoed, Some(&headers)))
        }
        ApiReply::Answer {
            status,
            body,
            echo_ids,
        } => Ok(respond(status, &body, echo_ids.then_some(&headers))),
        ApiReply::Drop => Err(Dropped),
    }
}

/// A one-issue OperationOutcome with a BaRS code.
pub fn outcome(code: &str, issue: &str, diagnostics: &str) -> Value {
    json!({
        "resourceType": "OperationOutcome",
        "id": Uuid::new_v4().to_string(),
        "issue": [{
            "severity": "error",
            "code": issue,
            "details": {"coding": [{"system": "https://fhir.nhs.uk/Codesystem/http-error-codes", "code": code}]},
            "diagnostics": diagnostics
        }]
    })
}

/// A generated API-M key pair on disk: `<dir>/<kid>.pem` and its public key.
pub struct KeyFiles {
    pub kid: String,
    pub private_key: std::path::PathBuf,
    pub public_key_pem: String,
}

/// Two RSA 4096 key pairs made once per test binary with the crate's keygen (generation is
/// slow in debug builds): the first is "the registered key", the second "another key".
fn key_pool() -> &'static [bars_receiver::pki::ApimKeyPair; 2] {
    static POOL: std::sync::OnceLock<[bars_receiver::pki::ApimKeyPair; 2]> = std::sync::OnceLock::new();
    POOL.get_or_init(|| {
        let make = || bars_receiver::pki::ApimKeyPair::generate("Pool-INT-1").expect("keygen");
        [make(), make()]
    })
}

fn write_key(dir: &Path, kid: &str, pair: &bars_receiver::pki::ApimKeyPair) -> KeyFiles {
    let private_key = dir.join(format!("{kid}.pem"));
    std::fs::write(&private_key, pair.private_key_pem.expose()).expect("write key");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&private_key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    KeyFiles {
        kid: kid.to_owned(),
        private_key,
        public_key_pem: pair.public_key_pem.clone(),
    }
}

/// The registered key pair, as `<dir>/<kid>.pem` and its public key.
pub fn keygen(dir: &Path, kid: &str) -> KeyFiles {
    write_key(dir, kid, &key_pool()[0])
}

/// A different key pair (not the registered one).
pub fn other_key(dir: &Path, kid: &str) -> KeyFiles {
    write_key(dir, kid, &key_pool()[1])
}

/// `[sender]` TOML for a signed-jwt client of `mock`, with `extra` lines appended.
pub fn sender_toml(mock: &MockApim, key: &KeyFiles, extra: &str) -> String {
    format!(
        r#"environment = "dev"
[sender]
mode = "signed-jwt"
api_key = "{api_key}"
private_key = "{key}"
kid = "{kid}"
token_url = "{token_url}"
base_url = "{base_url}"
ods_code = "X26"
organisation_name = "Test provider"
software_name = "tests"
software_version = "9.9"
retry_backoff = "20ms"
timeout = "20s"
{extra}
"#,
        api_key = mock.state.api_key,
        key = key.private_key.display(),
        kid = key.kid,
        token_url = mock.token_url(),
        base_url = mock.base_url(),
    )
}
