//! An in-process upstream (the provider's own system) that records every request it gets
//! (method, path, query, headers, body, HTTP version, whether a client certificate was shown)
//! and answers as a script says. Plain HTTP (HTTP/1.1 or h2c) or TLS (h2 or HTTP/1.1 by
//! ALPN), on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use super::pki::TestPki;

/// One request as the upstream received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub headers: http::HeaderMap,
    pub body: Bytes,
    pub version: http::Version,
    pub client_cert: bool,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn header_all(&self, name: &str) -> Vec<String> {
        self.headers
            .get_all(name)
            .iter()
            .map(|v| v.to_str().unwrap_or_default().to_owned())
            .collect()
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// How to answer one request.
#[derive(Debug, Clone)]
pub enum Behaviour {
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    },
    /// Wait, then behave.
    Delay(Duration, Box<Behaviour>),
    /// Drop the connection (HTTP/1.1) or reset the stream (h2) without an answer.
    Close,
}

impl Behaviour {
    pub fn json(status: u16, body: &serde_json::Value) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "application/fhir+json".into())],
            body: body.to_string().into_bytes(),
        }
    }

    pub fn text(status: u16, body: &str) -> Self {
        Self::Respond {
            status,
            headers: vec![("content-type".into(), "text/html".into())],
            body: body.as_bytes().to_vec(),
        }
    }
}

/// Decides the answer from the request and its position (0-based) among all received.
pub type Script = Arc<dyn Fn(&Recorded, usize) -> Behaviour + Send + Sync>;

/// Answers 200 with a small FHIR body echoing what it got.
pub fn echo() -> Script {
    Arc::new(|r: &Recorded, _| {
        Behaviour::json(
            200,
            &serde_json::json!({"resourceType": "Bundle", "type": "searchset", "path": r.path, "method": r.method}),
        )
    })
}

pub struct TestUpstream {
    pub addr: SocketAddr,
    pub url: String,
    records: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<Script>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestUpstream {
    /// Plain HTTP; `base` is the path prefix of the URL (e.g. `/provider/bars`).
    pub async fn start(base: &str, script: Script) -> Self {
        Self::start_inner(base, script, None).await
    }

    /// TLS with the PKI's server certificate (names `localhost`); client certificates from
    /// the PKI are asked for and recorded, not required.
    pub async fn start_tls(base: &str, pki: &TestPki, script: Script) -> Self {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(pki.root.der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verifier =
            rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .allow_unauthenticated()
                .build()
                .unwrap();
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_client_cert_verifier(verifier)
            .with_single_cert(pki.server.chain.clone(), pki.server.key_der())
            .unwrap();
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Self::start_inner(
            base,
            script,
            Some(tokio_rustls::TlsAcceptor::from(Arc::new(config))),
        )
        .await
    }

    async fn start_inner(base: &str, script: Script, tls: Option<tokio_rustls::TlsAcceptor>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let records = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script));
        let task = tokio::spawn(accept(listener, tls, records.clone(), script.clone()));
        Self {
            addr,
            url: format!("{scheme}://{addr}{base}"),
            records,
            script,
            task,
        }
    }

    pub fn set_script(&self, script: Script) {
        *self.script.lock().unwrap() = script;
    }

    pub fn records(&self) -> Vec<Recorded> {
        self.records.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the records, or panics after `timeout`.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        done: impl Fn(&[Recorded]) -> bool,
    ) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let records = self.records();
            if done(&records) {
                return records;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; upstream got {} request(s)",
                records.len()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    records: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<Script>>,
) {
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        let (records, script, tls) = (records.clone(), script.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    let Ok(stream) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let client_cert = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .is_some_and(|c| !c.is_empty());
                    serve(TokioIo::new(stream), client_cert, records, script).await;
                }
                None => serve(TokioIo::new(tcp), false, records, script).await,
            }
        });
    }
}

async fn serve<I>(io: I, client_cert: bool, records: Arc<Mutex<Vec<Recorded>>>, script: Arc<Mutex<Script>>)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let records = records.clone();
        let script = script.clone();
        async move {
            let (parts, body) = req.into_parts();
            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
            let recorded = Recorded {
                method: parts.method.to_string(),
                path: parts.uri.path().to_owned(),
                query: parts.uri.query().map(str::to_owned),
                headers: parts.headers,
                body,
                version: parts.version,
                client_cert,
            };
            let behaviour = {
                let mut all = records.lock().unwrap();
                let index = all.len();
                all.push(recorded.clone());
                let script = script.lock().unwrap().clone();
                script(&recorded, index)
            };
            respond(behaviour).await
        }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let _ = builder.serve_connection(io, service).await;
}

async fn respond(mut behaviour: Behaviour) -> Result<hyper::Response<Full<Bytes>>, std::io::Error> {
    loop {
        match behaviour {
            Behaviour::Delay(d, next) => {
                tokio::time::sleep(d).await;
                behaviour = *next;
            }
            Behaviour::Close => return Err(std::io::Error::other("closing without an answer")),
            Behaviour::Respond {
                status,
                headers,
                body,
            } => {
                let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
                *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
                for (k, v) in headers {
                    response.headers_mut().append(
                        http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                        v.parse().unwrap(),
                    );
                }
                let _: Option<Infallible> = None;
                return Ok(response);
            }
        }
    }
}
