//! The API client: HTTP/JSON over the daemon's unix socket.

use anyhow::{anyhow, bail, Context};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use shoal_wire::v1::Message;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

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
enum Transport {
    Unix(PathBuf),
    /// A remote manager's control port, mTLS with a client certificate.
    Tls {
        addr: String,
        config: Arc<rustls::ClientConfig>,
    },
}

#[derive(Debug, Clone)]
pub struct Client {
    transport: Transport,
}

impl Client {
    /// `unix:///path/to.sock`, a plain socket path, or `tcp://HOST:PORT` with `tls_dir`
    /// holding `ca.pem`, `cert.pem` and `key.pem` (from `shoal client-cert`).
    pub fn new(host: &str, tls_dir: Option<&Path>) -> anyhow::Result<Client> {
        if let Some(path) = host.strip_prefix("unix://") {
            return Ok(Client {
                transport: Transport::Unix(PathBuf::from(path)),
            });
        }
        if let Some(addr) = host.strip_prefix("tcp://") {
            let Some(dir) = tls_dir else {
                bail!("remote daemons need --tls-dir DIR holding ca.pem, cert.pem and key.pem (get them with `shoal client-cert --out DIR` on a manager)");
            };
            let read = |f: &str| {
                std::fs::read_to_string(dir.join(f))
                    .with_context(|| format!("cannot read {}", dir.join(f).display()))
            };
            let (ca, cert, key) = (read("ca.pem")?, read("cert.pem")?, read("key.pem")?);
            let config = shoal_rpc::tls::client_config(&ca, Some((&cert, &key)), &[b"http/1.1"])?;
            return Ok(Client {
                transport: Transport::Tls {
                    addr: addr.to_string(),
                    config,
                },
            });
        }
        if host.contains("://") {
            bail!("invalid --host {host:?}: expected unix://PATH or tcp://HOST:PORT");
        }
        Ok(Client {
            transport: Transport::Unix(PathBuf::from(host)),
        })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<Response<Incoming>> {
        let mut sender = match &self.transport {
            Transport::Unix(socket) => {
                let stream = tokio::net::UnixStream::connect(socket).await.map_err(|e| {
                    anyhow!(
                        "cannot reach the shoal daemon at unix://{} ({e}): is it running? start one with `shoal daemon --socket {}`",
                        socket.display(),
                        socket.display()
                    )
                })?;
                handshake(stream).await?
            }
            Transport::Tls { addr, config } => {
                let unreachable = |e: &dyn std::fmt::Display| {
                    anyhow!("cannot reach the shoal manager at tcp://{addr}: {e}")
                };
                let tcp = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .map_err(|e| unreachable(&e))?;
                let name = rustls::pki_types::ServerName::try_from(shoal_rpc::MANAGER_SERVER_NAME)?;
                let tls = tokio_rustls::TlsConnector::from(config.clone())
                    .connect(name, tcp)
                    .await
                    .map_err(|e| unreachable(&e))?;
                handshake(tls).await?
            }
        };
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
            if resp.headers().contains_key("shoal-stale") {
                eprintln!("warning: no leader is reachable: this is the manager's last known state and may be stale");
            }
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = read_body(resp).await?;
        let message = serde_json::from_slice::<Message>(&bytes)
            .ok()
            .map(|m| m.message)
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).trim().to_string());
        Err(ApiError { status, message }.into())
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> anyhow::Result<T> {
        let bytes = read_body(self.send(method, path, body).await?).await?;
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

    /// DELETE each of `paths`, printing each name that went and one line per failure;
    /// exit status 1 if any failed (Docker's `rm` habit: the others still go).
    pub async fn delete_each(
        &self,
        names: &[String],
        path_of: impl Fn(&str) -> String,
    ) -> ExitCode {
        let mut failed = false;
        for name in names {
            match self.delete(&path_of(name)).await {
                Ok(()) => println!("{name}"),
                Err(e) => {
                    eprintln!("error: {}", crate::table::escape(&e.to_string()));
                    failed = true;
                }
            }
        }
        if failed {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }

    /// Hand each line of a streamed response body (without its newline) to `on_line`, as
    /// the lines arrive.
    pub async fn stream_lines(
        &self,
        path: &str,
        mut on_line: impl FnMut(&[u8]) -> anyhow::Result<()>,
    ) -> anyhow::Result<()> {
        let mut body = self.send(Method::GET, path, None).await?.into_body();
        let mut partial: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("reading the daemon's stream")?;
            let Some(data) = frame.data_ref() else {
                continue;
            };
            partial.extend_from_slice(data);
            let mut used = 0;
            while let Some(nl) = partial[used..].iter().position(|b| *b == b'\n') {
                on_line(&partial[used..used + nl])?;
                used += nl + 1;
            }
            partial.drain(..used);
        }
        if !partial.is_empty() {
            on_line(&partial)?;
        }
        Ok(())
    }
}

async fn read_body(resp: Response<Incoming>) -> anyhow::Result<Bytes> {
    Ok(resp
        .into_body()
        .collect()
        .await
        .context("reading the daemon's answer")?
        .to_bytes())
}

async fn handshake<IO>(
    io: IO,
) -> anyhow::Result<hyper::client::conn::http1::SendRequest<Full<Bytes>>>
where
    IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .context("talking to the shoal daemon")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
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
