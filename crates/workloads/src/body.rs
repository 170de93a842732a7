//! Response body of the workloads: one buffer, or a repeated static chunk for bulk data.

use std::convert::Infallible;
use std::pin::Pin;
use std::task::{Context, Poll};

use hyper::body::{Body, Bytes, Frame, SizeHint};

/// Size of the chunk that `/data` repeats; a static slice, so bulk replies allocate nothing.
const DATA_CHUNK_LEN: usize = 64 * 1024;
static DATA_CHUNK: [u8; DATA_CHUNK_LEN] = [b'x'; DATA_CHUNK_LEN];

/// A body with an exact size, so hyper always sends `Content-Length` (no chunked encoding).
#[derive(Debug)]
pub(crate) enum ReplyBody {
    /// The whole body in one buffer (taken when sent).
    Full(Option<Bytes>),
    /// `remaining` bytes of filler, sent a static chunk at a time.
    Data { remaining: u64 },
}

impl ReplyBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        let bytes = bytes.into();
        if bytes.is_empty() {
            Self::Full(None)
        } else {
            Self::Full(Some(bytes))
        }
    }

    pub(crate) fn data(len: u64) -> Self {
        Self::Data { remaining: len }
    }
}

impl Body for ReplyBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let frame = match self.get_mut() {
            Self::Full(bytes) => bytes.take().map(Frame::data),
            Self::Data { remaining: 0 } => None,
            Self::Data { remaining } => {
                let len =
                    usize::try_from(*remaining).map_or(DATA_CHUNK_LEN, |r| r.min(DATA_CHUNK_LEN));
                *remaining -= len as u64;
                Some(Frame::data(Bytes::from_static(&DATA_CHUNK[..len])))
            }
        };
        Poll::Ready(frame.map(Ok))
    }

    fn is_end_stream(&self) -> bool {
        match self {
            Self::Full(bytes) => bytes.is_none(),
            Self::Data { remaining } => *remaining == 0,
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            Self::Full(bytes) => SizeHint::with_exact(bytes.as_ref().map_or(0, |b| b.len() as u64)),
            Self::Data { remaining } => SizeHint::with_exact(*remaining),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt as _;

    #[tokio::test]
    async fn data_body_has_exact_length() {
        for len in [0, 1, DATA_CHUNK_LEN as u64, DATA_CHUNK_LEN as u64 * 3 + 7] {
            let body = ReplyBody::data(len);
            assert_eq!(body.size_hint().exact(), Some(len));
            let collected = body.collect().await.expect("infallible").to_bytes();
            assert_eq!(collected.len() as u64, len);
        }
    }

    #[tokio::test]
    async fn full_body_yields_its_bytes() {
        let body = ReplyBody::full("ok");
        assert_eq!(body.size_hint().exact(), Some(2));
        let collected = body.collect().await.expect("infallible").to_bytes();
        assert_eq!(&collected[..], b"ok");
        assert!(ReplyBody::full("").is_end_stream());
    }
}
