//! `bars-receiver healthcheck`: probes the admin listener's `/readyz`, for container health
//! checks where there is no curl. Exit 0 when ready, 1 otherwise.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;

use bars_receiver::Settings;
use bars_receiver::loopback::reachable;

use super::{EXIT_CONFIG, EXIT_RUNTIME};

pub(crate) fn run(url: Option<String>, config: Option<PathBuf>) -> ExitCode {
    let url = match (url, config) {
        (Some(url), _) => url,
        (None, Some(path)) => match Settings::load(&path) {
            Ok(settings) => format!("http://{}/readyz", reachable(settings.admin.address)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(EXIT_CONFIG);
            }
        },
        (None, None) => "http://127.0.0.1:9090/readyz".to_owned(),
    };
    let uri: http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => {
            eprintln!("error: {url}: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    let Some(runtime) = super::runtime(false) else {
        return ExitCode::from(EXIT_RUNTIME);
    };
    match runtime.block_on(async { tokio::time::timeout(Duration::from_secs(5), probe(uri)).await }) {
        Ok(Ok((200, body))) => {
            out!("{body}");
            ExitCode::SUCCESS
        }
        Ok(Ok((status, body))) => {
            eprintln!("not ready ({status}): {body}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Ok(Err(e)) => {
            eprintln!("error: {url}: {e}");
            ExitCode::from(EXIT_RUNTIME)
        }
        Err(_) => {
            eprintln!("error: {url}: no answer within 5 s");
            ExitCode::from(EXIT_RUNTIME)
        }
    }
}

async fn probe(uri: http::Uri) -> Result<(u16, String), Box<dyn std::error::Error + Send + Sync>> {
    let host = uri.host().ok_or("the URL has no host")?;
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host, port)).await?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(conn);
    let request = http::Request::get(uri.path())
        .header(http::header::HOST, host)
        .body(Empty::<Bytes>::new())?;
    let response = send.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}
