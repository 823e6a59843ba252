//! A dev proxy in-process on 127.0.0.1:0, with the test PKI (its server certificate for
//! senders, its client certificate towards receivers), one registered application, and a
//! catalogue the test names. Assertions are signed here with jsonwebtoken, independently
//! of the crate's signer, so that each broken one can be made on purpose.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bars_receiver::config::DevProxySettings;
use bars_receiver::devproxy::{API_BASE_PATH, DevProxy, TOKEN_PATH};
use bars_receiver::sender::SigningKey;
use bytes::Bytes;
use http_body_util::Full;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::apim::{KeyFiles, keygen, other_key};
use super::pki::TestPki;
use super::{Reply, TestClient};

pub const API_KEY: &str = "dev-proxy-test-app";
pub const KID: &str = "DevProxyTest-INT-1";

/// How to set the proxy up.
pub struct ProxyOptions {
    /// `forward.source_address`.
    pub source: Option<IpAddr>,
    /// `forward.timeout`.
    pub timeout: &'static str,
    /// `(system|value, receiver base URL)` catalogue entries.
    pub catalogue: Vec<(String, String)>,
    /// The client certificate presented to receivers; default: the PKI's good client.
    pub client: Option<super::pki::Leaf>,
}

impl Default for ProxyOptions {
    fn default() -> Self {
        Self {
            source: None,
            timeout: "32s",
            catalogue: Vec::new(),
            client: None,
        }
    }
}

pub struct TestProxy {
    pub addr: SocketAddr,
    pub pki: Arc<TestPki>,
    /// The registered key.
    pub key: KeyFiles,
    /// A key that is not registered.
    pub other: KeyFiles,
    pub dir: tempfile::TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for TestProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn q(path: &std::path::Path) -> String {
    format!("{:?}", path.display().to_string())
}

impl TestProxy {
    pub async fn start(pki: Arc<TestPki>, options: ProxyOptions) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let files = pki.write_server_files(dir.path());
        let client_chain = dir.path().join("proxy-client.pem");
        let client_key = dir.path().join("proxy-client.key");
        match &options.client {
            Some(leaf) => {
                std::fs::write(&client_chain, &leaf.pem).unwrap();
                std::fs::write(&client_key, &leaf.key_pem).unwrap();
            }
            None => {
                std::fs::write(&client_chain, format!("{}{}", pki.client.pem, pki.subca.pem)).unwrap();
                std::fs::write(&client_key, &pki.client.key_pem).unwrap();
            }
        }
        let key = keygen(dir.path(), KID);
        let other = other_key(dir.path(), "Other-INT-1");
        let jwks = dir.path().join("app.jwks.json");
        let signing = SigningKey::load(&key.private_key, KID).unwrap();
        std::fs::write(&jwks, signing.jwks().to_string()).unwrap();
        let catalogue = dir.path().join("catalogue.toml");
        let entries: String = options
            .catalogue
            .iter()
            .map(|(service, url)| format!("[[endpoint]]\nservice = {service:?}\nurl = {url:?}\n"))
            .collect();
        std::fs::write(&catalogue, entries).unwrap();
        let source = options
            .source
            .map(|s| format!("source_address = \"{s}\""))
            .unwrap_or_default();
        let text = format!(
            r#"
[listen]
address = "127.0.0.1:0"
shutdown_grace = "2s"
[tls]
cert_chain = {chain}
private_key = {key}
[[application]]
name = "test application"
api_key = "{API_KEY}"
jwks = {jwks}
[catalogue]
file = {catalogue}
[forward]
{source}
client_cert = {client_chain}
client_key = {client_key}
receiver_ca = [{root}]
timeout = "{timeout}"
[log]
format = "json"
"#,
            chain = q(&files.chain),
            key = q(&files.key),
            jwks = q(&jwks),
            catalogue = q(&catalogue),
            client_chain = q(&client_chain),
            client_key = q(&client_key),
            root = q(&files.root),
            timeout = options.timeout,
        );
        let settings = DevProxySettings::from_toml(&text, "test dev-proxy").expect("dev-proxy settings");
        let proxy = DevProxy::new(&settings).expect("dev proxy");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(proxy.serve(listener, async move {
            let _ = stopped.await;
        }));
        Self {
            addr,
            pki,
            key,
            other,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(30), task).await;
        }
    }

    /// The token URL under the name the proxy's certificate carries.
    pub fn token_url(&self) -> String {
        format!("https://localhost:{}{TOKEN_PATH}", self.addr.port())
    }

    pub fn base_url(&self) -> String {
        format!("https://localhost:{}{API_BASE_PATH}", self.addr.port())
    }

    /// The CA file senders trust for the proxy.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("root.pem")
    }

    /// A TLS client without a client certificate (senders authenticate with tokens).
    pub fn client(&self) -> TestClient {
        TestClient::new(&self.pki, None)
    }

    /// Good claims: `iss` = `sub` = the API key, `aud` the token URL, a fresh `jti`, `exp`
    /// in 4 minutes.
    pub fn claims(&self) -> Value {
        json!({
            "iss": API_KEY,
            "sub": API_KEY,
            "aud": self.token_url(),
            "jti": Uuid::new_v4().to_string(),
            "exp": now() + 240,
        })
    }

    /// An RS512 assertion with `kid`, signed with the registered key (or the other one)
    /// by aws-lc-rs directly: the compact JWS is put together here, byte by byte.
    pub fn sign(&self, kid: &str, claims: &Value, with_other_key: bool) -> String {
        use base64::Engine;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        use rustls::pki_types::PrivateKeyDer;
        use rustls::pki_types::pem::PemObject;
        let key = if with_other_key { &self.other } else { &self.key };
        let pem = std::fs::read(&key.private_key).unwrap();
        let PrivateKeyDer::Pkcs8(pkcs8) = PrivateKeyDer::from_pem_slice(&pem).unwrap() else {
            panic!("keygen writes PKCS#8");
        };
        let pair = aws_lc_rs::rsa::KeyPair::from_pkcs8(pkcs8.secret_pkcs8_der()).unwrap();
        let header = json!({"alg": "RS512", "typ": "JWT", "kid": kid});
        let input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        );
        let mut signature = vec![0u8; pair.public_modulus_len()];
        pair.sign(
            &aws_lc_rs::signature::RSA_PKCS1_SHA512,
            &aws_lc_rs::rand::SystemRandom::new(),
            input.as_bytes(),
            &mut signature,
        )
        .unwrap();
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    /// The token request form for `assertion`.
    pub fn form(assertion: &str) -> Vec<(String, String)> {
        vec![
            ("grant_type".into(), "client_credentials".into()),
            (
                "client_assertion_type".into(),
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer".into(),
            ),
            ("client_assertion".into(), assertion.to_owned()),
        ]
    }

    pub async fn post_token(&self, form: &[(String, String)]) -> Reply {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = http::Request::post(TOKEN_PATH)
            .header("host", "localhost")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        self.client().send(self.addr, request).await
    }

    /// A fresh access token.
    pub async fn access_token(&self) -> String {
        let reply = self
            .post_token(&Self::form(&self.sign(KID, &self.claims(), false)))
            .await;
        assert_eq!(reply.status, 200, "{}", String::from_utf8_lossy(&reply.body));
        reply.json()["access_token"].as_str().unwrap().to_owned()
    }

    /// Sends `request` (its path relative to the BaRS API base) to the proxy.
    pub async fn api(&self, request: http::Request<Full<Bytes>>) -> Reply {
        let (mut parts, body) = request.into_parts();
        let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
        parts.uri = format!("{API_BASE_PATH}{path}").parse().unwrap();
        self.client()
            .send(self.addr, http::Request::from_parts(parts, body))
            .await
    }
}

pub fn now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Asserts one of the proxy's own OperationOutcomes: status, code and issue type (any code
/// system: the proxy uses two).
#[track_caller]
pub fn assert_proxy_outcome(reply: &Reply, status: u16, code: &str, issue: &str) -> String {
    assert_eq!(
        reply.status,
        status,
        "status; body: {}",
        String::from_utf8_lossy(&reply.body)
    );
    let body = reply.json();
    assert_eq!(body["resourceType"], "OperationOutcome", "{body}");
    assert_eq!(body["issue"].as_array().map(Vec::len), Some(1), "{body}");
    assert_eq!(body["issue"][0]["severity"], "error", "{body}");
    assert_eq!(body["issue"][0]["code"], issue, "{body}");
    assert_eq!(body["issue"][0]["details"]["coding"][0]["code"], code, "{body}");
    body["issue"][0]["diagnostics"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}
