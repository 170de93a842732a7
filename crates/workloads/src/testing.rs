//! A minimal HTTP/1.1 client over a raw TCP stream, for tests that need to see connection
//! reuse and exact bytes.

use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::net::TcpStream;

/// Bound on every test, so a hang fails instead of stalling the suite.
pub(crate) const TEST_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One keep-alive connection.
#[derive(Debug)]
pub(crate) struct HttpConn {
    stream: BufReader<TcpStream>,
}

impl HttpConn {
    pub(crate) async fn connect(addr: std::net::SocketAddr) -> std::io::Result<Self> {
        Ok(Self {
            stream: BufReader::new(TcpStream::connect(addr).await?),
        })
    }

    pub(crate) fn local_addr(&self) -> std::net::SocketAddr {
        self.stream.get_ref().local_addr().expect("local addr")
    }

    /// Sends `bytes` as they are (a PROXY header, say).
    pub(crate) async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    pub(crate) async fn send(&mut self, method: &str, path: &str) -> std::io::Result<()> {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: test.local\r\nUser-Agent: shoal-test\r\n\
             X-Test-Header: hello\r\nContent-Length: 0\r\n\r\n"
        );
        self.stream.write_all(request.as_bytes()).await
    }

    pub(crate) async fn receive(&mut self) -> std::io::Result<HttpResponse> {
        let mut line = String::new();
        self.stream.read_line(&mut line).await?;
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| std::io::Error::other(format!("bad status line {line:?}")))?;
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.stream.read_line(&mut line).await?;
            let trimmed = line.trim_end();
            if trimmed.is_empty() {
                break;
            }
            let (name, value) = trimmed
                .split_once(':')
                .ok_or_else(|| std::io::Error::other(format!("bad header {trimmed:?}")))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = HttpResponse {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = response
            .header("content-length")
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| std::io::Error::other("no content-length"))?;
        response.body = vec![0; len];
        self.stream.read_exact(&mut response.body).await?;
        Ok(response)
    }

    pub(crate) async fn request(
        &mut self,
        method: &str,
        path: &str,
    ) -> std::io::Result<HttpResponse> {
        self.send(method, path).await?;
        self.receive().await
    }
}
