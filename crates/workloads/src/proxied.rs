//! Connections that may start with a PROXY protocol v2 header, as the routing mesh sends on
//! a port published with `proxy-protocol=v2`: the header is read and taken off, never a
//! byte more, and the bytes read while finding out that there is none are handed back.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use shoal_proxy_header::{parse, Header, ParseError};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, ReadBuf};

/// Reads the PROXY v2 header `stream` starts with, if it starts with one: the header, and
/// the bytes read that were not one (to be read again, see [`Prefixed`]). A malformed or
/// cut-short header is an `InvalidData` error.
pub(crate) async fn read_header<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> io::Result<(Option<Header>, Vec<u8>)> {
    let mut buf = Vec::new();
    loop {
        match parse(&buf) {
            // Only ever asked for as many bytes as it needs, so it used them all.
            Ok((header, _)) => return Ok((Some(header), Vec::new())),
            Err(ParseError::NotProxy) => return Ok((None, buf)),
            Err(ParseError::Incomplete { needed }) => {
                let start = buf.len();
                buf.resize(needed, 0);
                let n = stream.read(&mut buf[start..]).await?;
                buf.truncate(start + n);
                if n == 0 {
                    if buf.is_empty() {
                        // Closed before a byte: nothing to read again.
                        return Ok((None, buf));
                    }
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        ParseError::Incomplete { needed },
                    ));
                }
            }
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }
}

/// A stream that reads `prefix` first, then the stream itself; writes go straight through.
#[derive(Debug)]
pub(crate) struct Prefixed<S> {
    prefix: Vec<u8>,
    /// How much of `prefix` has been read.
    at: usize,
    inner: S,
}

impl<S> Prefixed<S> {
    pub(crate) fn new(prefix: Vec<u8>, inner: S) -> Self {
        Self {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Prefixed<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let rest = &this.prefix[this.at..];
            let n = rest.len().min(buf.remaining());
            buf.put_slice(&rest[..n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Prefixed<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use tokio::io::AsyncWriteExt as _;

    fn header() -> Header {
        let addr = |s: &str| s.parse::<SocketAddr>().unwrap();
        Header::tcp(addr("192.0.2.7:51000"), addr("10.0.0.1:8080"))
    }

    /// What `read_header` makes of `sent` (then the sender closes), and what is read after.
    async fn read(sent: &[u8]) -> (io::Result<Option<Header>>, Vec<u8>) {
        let (mut client, server) = tokio::io::duplex(1 << 17);
        client.write_all(sent).await.unwrap();
        drop(client);
        let mut server = server;
        match read_header(&mut server).await {
            Ok((header, replay)) => {
                let mut rest = Vec::new();
                Prefixed::new(replay, server)
                    .read_to_end(&mut rest)
                    .await
                    .unwrap();
                (Ok(header), rest)
            }
            Err(e) => (Err(e), Vec::new()),
        }
    }

    #[tokio::test]
    async fn a_header_is_taken_off_and_the_request_follows() {
        let mut sent = header().encode();
        sent.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let (got, rest) = read(&sent).await;
        assert_eq!(got.unwrap(), Some(header()));
        assert_eq!(rest, b"GET / HTTP/1.1\r\n\r\n");
    }

    #[tokio::test]
    async fn without_a_header_every_byte_is_read_again() {
        for sent in [
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
            b"G",
            b"\r\n\r\nGET / HTTP/1.1\r\n\r\n",
            b"",
        ] {
            let (got, rest) = read(sent).await;
            assert_eq!(got.unwrap(), None);
            assert_eq!(rest, sent);
        }
    }

    #[tokio::test]
    async fn a_malformed_or_cut_short_header_is_invalid_data() {
        let mut bad_version = header().encode();
        bad_version[12] = 0x11;
        let cut = header().encode()[..20].to_vec();
        for sent in [
            bad_version,
            cut,
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n".to_vec(),
        ] {
            let (got, _) = read(&sent).await;
            assert_eq!(got.unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }

    /// The header arrives a byte at a time, and the reader never reads past it.
    #[tokio::test]
    async fn a_header_sent_in_pieces_is_read_exactly() {
        let (mut client, mut server) = tokio::io::duplex(1 << 10);
        let sent = header().encode();
        let writer = tokio::spawn(async move {
            for byte in sent {
                client.write_all(&[byte]).await.unwrap();
                tokio::task::yield_now().await;
            }
            client.write_all(b"after").await.unwrap();
            client
        });
        let (got, replay) = read_header(&mut server).await.unwrap();
        assert_eq!((got, replay), (Some(header()), Vec::new()));
        let _client = writer.await.unwrap();
        let mut after = [0u8; 5];
        server.read_exact(&mut after).await.unwrap();
        assert_eq!(&after, b"after");
    }
}
