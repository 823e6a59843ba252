//! Every refusal reaches a client that writes its whole body before it reads (Python
//! `requests`, many Java clients): a raw TLS client that writes the request head and all
//! 512 KiB of its body, and only then reads (through a 16 KiB socket send buffer, so that
//! the upload waits on the server as over a real network, instead of vanishing into
//! loopback's large kernel buffers), and `curl --data-binary` with a 512 KiB file,
//! over HTTP/1.1 (with and without `Expect: 100-continue`) and h2. Each refusal is made before
//! the body is read; each is tried many times on fresh connections, so that a reset racing
//! the answer shows. Also the bounds of the drain: a body declared over twice
//! `http.max_body`, and one that stalls, are answered without being read, with
//! `Connection: close`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::time::Duration;

use common::raw::{self, RawResponse, Tls, read_response};
use common::*;
use serde_json::json;
use tokio::io::AsyncWriteExt;

/// The body every attempt uploads.
const BODY: usize = 512 * 1024;
/// Attempts per case.
const ATTEMPTS: usize = 20;

/// One refusal made before the body is read.
struct Case {
    what: &'static str,
    path: &'static str,
    /// Header lines replacing the good ones of the same name.
    headers: &'static [(&'static str, &'static str)],
    status: u16,
    code: &'static str,
    issue: &'static str,
}

const BAD_TARGET: Case = Case {
    what: "a bad NHSD-Target-Identifier",
    path: "/$process-message",
    headers: &[("NHSD-Target-Identifier", "%%%not base64")],
    status: 400,
    code: "REC_BAD_REQUEST",
    issue: "value",
};

const BAD_REQUEST_ID: Case = Case {
    what: "a bad X-Request-Id",
    path: "/$process-message",
    headers: &[("X-Request-Id", "not-a-uuid")],
    status: 400,
    code: "REC_BAD_REQUEST",
    issue: "value",
};

const UNKNOWN_PATH: Case = Case {
    what: "an unknown path",
    path: "/Nowhere",
    headers: &[],
    status: 404,
    code: "REC_NOT_FOUND",
    issue: "not-found",
};

const NOT_IMPLEMENTED: Case = Case {
    what: "an interaction the inbox does not implement",
    path: "/Appointment",
    headers: &[],
    status: 501,
    code: "REC_NOT_IMPLEMENTED",
    issue: "not-supported",
};

/// With a server whose `http.max_body` is [`SMALL_LIMIT`].
const TOO_LARGE: Case = Case {
    what: "a body over http.max_body",
    path: "/$process-message",
    headers: &[],
    status: 413,
    code: "REC_BAD_REQUEST",
    issue: "too-costly",
};

/// Under [`BODY`], and more than half of it: the 413 is still drained.
const SMALL_LIMIT: &str = "300KiB";

/// The header lines of a well-formed BaRS POST, with `case`'s replacements.
fn header_lines(case: &Case) -> Vec<(String, String)> {
    let bars = Bars::default();
    let mut lines: Vec<(String, String)> = vec![
        ("Host".into(), "localhost".into()),
        ("X-Request-Id".into(), bars.request_id.clone()),
        ("X-Correlation-Id".into(), bars.correlation_id.clone()),
        (
            "NHSD-Target-Identifier".into(),
            bars_receiver::fhir::encode_header_json(&bars.target),
        ),
        ("Accept".into(), "application/fhir+json; version=1.4.0".into()),
        ("Content-Type".into(), "application/fhir+json".into()),
    ];
    for (name, value) in case.headers {
        for line in lines.iter_mut().filter(|(n, _)| n.eq_ignore_ascii_case(name)) {
            line.1 = (*value).to_owned();
        }
    }
    lines
}

/// A JSON body of exactly `len` bytes.
fn body(len: usize) -> Vec<u8> {
    let mut text = json!({"resourceType": "Bundle", "pad": ""}).to_string();
    let pad = "x".repeat(len - text.len());
    text = text.replace("\"pad\":\"\"", &format!("\"pad\":\"{pad}\""));
    assert_eq!(text.len(), len);
    text.into_bytes()
}

/// How the body is framed on the wire.
#[derive(Clone, Copy, Debug)]
enum Framing {
    ContentLength,
    Chunked,
}

fn request_bytes(case: &Case, body: &[u8], framing: Framing) -> Vec<u8> {
    let mut head = format!("POST {} HTTP/1.1\r\n", case.path);
    for (name, value) in header_lines(case) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let mut bytes = match framing {
        Framing::ContentLength => {
            head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
            head.into_bytes()
        }
        Framing::Chunked => {
            head.push_str("Transfer-Encoding: chunked\r\n\r\n");
            head.into_bytes()
        }
    };
    match framing {
        Framing::ContentLength => bytes.extend_from_slice(body),
        Framing::Chunked => {
            for chunk in body.chunks(16 * 1024) {
                bytes.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                bytes.extend_from_slice(chunk);
                bytes.extend_from_slice(b"\r\n");
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
        }
    }
    bytes
}

/// A TLS connection whose socket send buffer is small (16 KiB), as on a real network where
/// the bytes in flight are bounded by the path rather than by loopback's large buffers: the
/// upload then waits on the server reading it, as a sender's does.
async fn connect_small_send_buffer(client: &TestClient, server: &TestServer) -> Tls {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_send_buffer_size(16 * 1024).unwrap();
    let tcp = socket.connect(server.addr).await.expect("connect");
    client.tls_over(tcp).await.expect("TLS")
}

/// Writes the whole request, body included, and only then reads the answer; `Err` says how
/// the connection failed instead.
async fn upload_then_read(tls: &mut Tls, request: &[u8]) -> Result<RawResponse, String> {
    tls.write_all(request)
        .await
        .map_err(|e| format!("the upload failed: {e}"))?;
    tls.flush().await.map_err(|e| format!("the upload failed: {e}"))?;
    tokio::time::timeout(Duration::from_secs(30), read_response(tls))
        .await
        .map_err(|_| "no answer within 30 s".to_owned())?
        .ok_or_else(|| "the connection closed (or was reset) without an answer".to_owned())
}

#[track_caller]
fn assert_refusal(reply: &RawResponse, case: &Case, attempt: usize) {
    let context = format!("{} (attempt {attempt}): {}", case.what, reply.head);
    assert_eq!(reply.status, case.status, "{context}");
    assert_eq!(reply.rec_code(), case.code, "{context}");
    assert_eq!(reply.json()["issue"][0]["code"], case.issue, "{context}");
}

/// [`ATTEMPTS`] fresh connections each uploading the whole request for `case`; the first
/// then reuses its connection, which the drained refusal left usable.
async fn every_attempt_gets_the_refusal(server: &TestServer, case: &Case, framing: Framing) {
    let client = raw::h1_client(server);
    let request = request_bytes(case, &body(BODY), framing);
    let mut failures = Vec::new();
    for attempt in 0..ATTEMPTS {
        let mut tls = connect_small_send_buffer(&client, server).await;
        match upload_then_read(&mut tls, &request).await {
            Ok(reply) => {
                assert_refusal(&reply, case, attempt);
                assert_eq!(reply.header("connection"), None, "{}", reply.head);
                if attempt == 0 {
                    let next = raw::exchange(&mut tls, &raw::get_metadata("")).await;
                    assert_eq!(next.status, 200, "the connection serves the next request");
                }
            }
            Err(why) => failures.push(format!("attempt {attempt}: {why}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} ({framing:?}): {} of {ATTEMPTS} attempts got no answer: {failures:?}",
        case.what,
        failures.len()
    );
}

#[tokio::test]
async fn a_client_uploading_its_whole_body_first_gets_every_refusal() {
    let server = TestServer::start(ServerOptions::default()).await;
    for case in [&BAD_TARGET, &BAD_REQUEST_ID, &UNKNOWN_PATH, &NOT_IMPLEMENTED] {
        every_attempt_gets_the_refusal(&server, case, Framing::ContentLength).await;
    }
    every_attempt_gets_the_refusal(&server, &BAD_TARGET, Framing::Chunked).await;
    assert_eq!(server.inbox_count(), 0);
}

#[tokio::test]
async fn a_client_uploading_a_body_over_the_limit_first_gets_the_413() {
    let server = TestServer::start(ServerOptions {
        max_body: SMALL_LIMIT,
        ..ServerOptions::default()
    })
    .await;
    // Declared: refused before a byte is read. Chunked: refused part-way through.
    every_attempt_gets_the_refusal(&server, &TOO_LARGE, Framing::ContentLength).await;
    every_attempt_gets_the_refusal(&server, &TOO_LARGE, Framing::Chunked).await;
}

#[tokio::test]
async fn a_body_declared_over_twice_the_limit_is_refused_unread_and_the_connection_closed() {
    let server = TestServer::start(ServerOptions {
        max_body: SMALL_LIMIT,
        ..ServerOptions::default()
    })
    .await;
    let client = raw::h1_client(&server);
    let mut tls = client.tls(server.addr, None).await.unwrap();
    // 601 KiB declared against a 300 KiB limit; only the head is sent, and the answer comes.
    let request = request_bytes(&TOO_LARGE, &[], Framing::ContentLength);
    let head = String::from_utf8(request)
        .unwrap()
        .replace("Content-Length: 0", &format!("Content-Length: {}", 601 * 1024));
    tls.write_all(head.as_bytes()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), read_response(&mut tls))
        .await
        .expect("an answer")
        .expect("an answer before the close");
    assert_refusal(&reply, &TOO_LARGE, 0);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(raw::closed_within(&mut tls, Duration::from_secs(30)).await);
}

#[tokio::test]
async fn a_stalled_upload_gets_its_refusal_at_the_deadline_not_a_408() {
    let server = TestServer::start(ServerOptions {
        deadline: "1s",
        ..ServerOptions::default()
    })
    .await;
    let client = raw::h1_client(&server);
    let mut tls = client.tls(server.addr, None).await.unwrap();
    // Half the declared body, then nothing: the drain gives up at the deadline and the
    // refusal goes, closing the connection.
    let request = request_bytes(&BAD_TARGET, &body(BODY), Framing::ContentLength);
    tls.write_all(&request[..request.len() - BODY / 2]).await.unwrap();
    tls.flush().await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), read_response(&mut tls))
        .await
        .expect("an answer")
        .expect("an answer before the close");
    assert_refusal(&reply, &BAD_TARGET, 0);
    assert_eq!(reply.header("connection"), Some("close"));
    assert!(raw::closed_within(&mut tls, Duration::from_secs(30)).await);
}

#[tokio::test]
async fn a_client_waiting_for_100_continue_gets_the_refusal_without_uploading() {
    let server = TestServer::start(ServerOptions::default()).await;
    let client = raw::h1_client(&server);
    let mut tls = client.tls(server.addr, None).await.unwrap();
    let request = request_bytes(&BAD_TARGET, &[], Framing::ContentLength);
    let head = String::from_utf8(request).unwrap().replace(
        "Content-Length: 0\r\n",
        &format!("Content-Length: {BODY}\r\nExpect: 100-continue\r\n"),
    );
    tls.write_all(head.as_bytes()).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(30), read_response(&mut tls))
        .await
        .expect("an answer")
        .expect("an answer before the close");
    // The final answer, not `100 Continue`: no upload is invited.
    assert_refusal(&reply, &BAD_TARGET, 0);
    assert_eq!(reply.header("connection"), Some("close"));
}

/// Runs curl posting `file` with `args`; its status and the REC_ code of the body it got, or
/// what curl said.
async fn curl_post(
    server: &TestServer,
    files: &CurlFiles,
    case: &Case,
    args: &[&str],
) -> Result<(u16, String, String), String> {
    let out_file = files.dir.path().join("answer.json");
    let _ = std::fs::remove_file(&out_file);
    let url = format!("https://localhost:{}{}", server.addr.port(), case.path);
    let resolve = format!("localhost:{}:127.0.0.1", server.addr.port());
    let mut command = tokio::process::Command::new("curl");
    command
        .args(["-sS", "--max-time", "30", "-w", "%{http_code}"])
        .args(["--cacert", &files.ca, "--cert", &files.cert, "--key", &files.key])
        .args(["--resolve", &resolve, "-o"])
        .arg(&out_file)
        .args(["--data-binary", &format!("@{}", files.body)]);
    for (name, value) in header_lines(case) {
        if !name.eq_ignore_ascii_case("host") {
            command.args(["-H", &format!("{name}: {value}")]);
        }
    }
    let out = command
        .args(args)
        .arg(&url)
        .output()
        .await
        .expect("curl must be installed (.ci/run installs it)");
    let status: u16 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0);
    if !out.status.success() || status == 0 {
        return Err(format!(
            "curl exit {:?}, status {status}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let body: serde_json::Value = serde_json::from_slice(&std::fs::read(&out_file).unwrap_or_default())
        .map_err(|e| format!("status {status}, body not JSON: {e}"))?;
    let code = body["issue"][0]["details"]["coding"][0]["code"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let issue = body["issue"][0]["code"].as_str().unwrap_or_default().to_owned();
    Ok((status, code, issue))
}

struct CurlFiles {
    dir: tempfile::TempDir,
    ca: String,
    cert: String,
    key: String,
    body: String,
}

fn curl_files(server: &TestServer) -> CurlFiles {
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path.display().to_string()
    };
    CurlFiles {
        ca: file("root.pem", server.pki.root.pem.as_bytes()),
        cert: file("client.pem", server.pki.client.pem.as_bytes()),
        key: file("client.key", server.pki.client.key_pem.as_bytes()),
        body: file("body.json", &body(BODY)),
        dir,
    }
}

/// HTTP/1.1 uploading at once (no `Expect`), [`ATTEMPTS`] times; HTTP/1.1 with
/// `Expect: 100-continue`, and h2, a few times each.
async fn curl_gets_the_refusal(server: &TestServer, files: &CurlFiles, case: &Case) {
    let modes: [(&str, &[&str], usize); 3] = [
        (
            "HTTP/1.1, whole body first",
            &["--http1.1", "-H", "Expect:"],
            ATTEMPTS,
        ),
        (
            "HTTP/1.1, Expect: 100-continue",
            &["--http1.1", "-H", "Expect: 100-continue"],
            3,
        ),
        ("h2", &["--http2"], 3),
    ];
    for (mode, args, attempts) in modes {
        let mut failures = Vec::new();
        for attempt in 0..attempts {
            match curl_post(server, files, case, args).await {
                Ok(got) => assert_eq!(
                    got,
                    (case.status, case.code.to_owned(), case.issue.to_owned()),
                    "{} over {mode} (attempt {attempt})",
                    case.what
                ),
                Err(why) => failures.push(format!("attempt {attempt}: {why}")),
            }
        }
        assert!(failures.is_empty(), "{} over {mode}: {failures:?}", case.what);
    }
}

#[tokio::test]
async fn curl_posting_a_large_body_gets_every_refusal() {
    let server = TestServer::start(ServerOptions::default()).await;
    let files = curl_files(&server);
    for case in [&BAD_TARGET, &BAD_REQUEST_ID, &UNKNOWN_PATH, &NOT_IMPLEMENTED] {
        curl_gets_the_refusal(&server, &files, case).await;
    }
    let small = TestServer::start(ServerOptions {
        max_body: SMALL_LIMIT,
        ..ServerOptions::default()
    })
    .await;
    let files = curl_files(&small);
    curl_gets_the_refusal(&small, &files, &TOO_LARGE).await;
}
