//! The API client: HTTP/JSON over the daemon's unix socket.

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::PathBuf;

/// Default socket of the local daemon (`shoal daemon --socket`, `SHOAL_HOST`).
pub const DEFAULT_SOCKET: &str = "/run/shoal/shoal.sock";

/// An error the daemon answered with: its status and one-line message.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

#[derive(Debug, Clone)]
pub struct Client {
    socket: PathBuf,
}

impl Client {
    /// `unix:///path/to.sock` or a plain path.
    pub fn new(host: &str) -> anyhow::Result<Client> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Client {
                socket: PathBuf::from(path),
            });
        }
        if host.starts_with("tcp://") {
            bail!("invalid --host {host:?}: remote daemons over tcp:// are not supported yet; use unix://PATH");
        }
        if host.contains("://") {
            bail!("invalid --host {host:?}: expected unix://PATH");
        }
        Ok(Client {
            socket: PathBuf::from(host),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let stream = tokio::net::UnixStream::connect(&self.socket).await.map_err(|e| {
            anyhow!(
                "cannot reach the shoal daemon at unix://{} ({e}): is it running? start one with `shoal daemon --socket {}`",
                self.socket.display(),
                self.socket.display()
            )
        })?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("talking to the shoal daemon")?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let req = Request::builder()
            .method(method)
            .uri(path)
            .header("host", "shoal")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))
            .context("building request")?;
        let resp = sender
            .send_request(req)
            .await
            .context("talking to the shoal daemon")?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the daemon's answer")?
            .to_bytes();
        let message = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["message"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(ApiError { status, message }.into())
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let resp = self.send(method, path, body).await?;
        let bytes = resp
            .into_body()
            .collect()
            .await
            .context("reading the daemon's answer")?
            .to_bytes();
        serde_json::from_slice(&bytes).context("the daemon's answer is not the expected JSON")
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        self.json(Method::GET, path, None).await
    }

    pub async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> anyhow::Result<T> {
        let bytes = serde_json::to_vec(body).context("encoding request")?;
        self.json(Method::POST, path, Some(bytes)).await
    }

    pub async fn delete(&self, path: &str) -> anyhow::Result<()> {
        self.send(Method::DELETE, path, None).await.map(|_| ())
    }

    /// Copy a streamed response body to `out` as it arrives.
    pub async fn stream(
        &self,
        path: &str,
        out: &mut (impl std::io::Write + Send),
    ) -> anyhow::Result<()> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the daemon's stream")?;
            if let Some(data) = frame.data_ref() {
                out.write_all(data)?;
                out.flush()?;
            }
        }
        Ok(())
    }
}

/// Percent-encode a path segment or query value (IDs and names are plain, but be safe).
pub fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
