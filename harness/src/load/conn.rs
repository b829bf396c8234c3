//! One HTTP/1.1 keep-alive connection per worker, on hyper's low-level client (no pool, no
//! per-request lookups): the load generator's own cost per request stays a few microseconds.

use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderMap, HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

/// A reply read whole: status, Content-Type, one header the caller asked for, and the body.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: HeaderValue,
    /// The value of the header named in [`Conn::send`]'s `want_header`, if present.
    pub wanted: Option<HeaderValue>,
    pub body: Bytes,
}

/// A transport failure; the connection is dropped and made again for the next request.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("connect failed")]
    Connect(#[source] std::io::Error),
    #[error("connection failed")]
    Http(#[source] hyper::Error),
}

/// A lazily opened connection to one address.
pub struct Conn {
    addr: SocketAddr,
    sender: Option<SendRequest<Full<Bytes>>>,
    /// Connections opened after the first one (the server closed, or a transport error).
    pub reconnects: u64,
    opened: u64,
}

impl Conn {
    pub fn new(addr: SocketAddr) -> Conn {
        Conn {
            addr,
            sender: None,
            reconnects: 0,
            opened: 0,
        }
    }

    async fn ready(&mut self) -> Result<&mut SendRequest<Full<Bytes>>, TransportError> {
        if let Some(sender) = &mut self.sender {
            if !sender.is_closed() && sender.ready().await.is_ok() {
                // Re-borrow: the borrow checker cannot see through the early return otherwise.
                return Ok(self.sender.as_mut().expect("checked above"));
            }
            self.sender = None;
        }
        let stream = tokio::net::TcpStream::connect(self.addr)
            .await
            .map_err(TransportError::Connect)?;
        let _ = stream.set_nodelay(true);
        let (sender, connection) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(TransportError::Http)?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if self.opened > 0 {
            self.reconnects += 1;
        }
        self.opened += 1;
        Ok(self.sender.insert(sender))
    }

    /// Sends one request and reads the whole reply.
    pub async fn send(
        &mut self,
        method: Method,
        uri: &Uri,
        headers: &HeaderMap,
        body: Bytes,
        want_header: Option<&str>,
    ) -> Result<Reply, TransportError> {
        let sender = self.ready().await?;
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = method;
        *request.uri_mut() = uri.clone();
        *request.headers_mut() = headers.clone();
        let result = async {
            let response = sender.send_request(request).await?;
            let (parts, body) = response.into_parts();
            let body = body.collect().await?.to_bytes();
            Ok::<_, hyper::Error>((parts, body))
        }
        .await;
        match result {
            Ok((parts, body)) => Ok(Reply {
                status: parts.status.as_u16(),
                content_type: parts
                    .headers
                    .get(CONTENT_TYPE)
                    .cloned()
                    .unwrap_or_else(|| HeaderValue::from_static("")),
                wanted: want_header.and_then(|name| parts.headers.get(name).cloned()),
                body,
            }),
            Err(e) => {
                self.sender = None;
                Err(TransportError::Http(e))
            }
        }
    }
}
