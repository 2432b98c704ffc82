//! WebSocket: the chat protocol in a browser (PROTOCOL.md, section 9).
//!
//! A browser cannot open a TCP connection; it can open a WebSocket. That starts as an HTTP
//! request on the HTTP port:
//!
//! ```text
//! GET /ws?session=KEY HTTP/1.1
//! Upgrade: websocket
//! Connection: Upgrade
//! Sec-WebSocket-Version: 13
//! Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==
//! ```
//!
//! and the server agrees with `101 Switching Protocols` and `Sec-WebSocket-Accept`, a hash of
//! the key (which proves that the answer comes from a server that speaks WebSocket, not from a
//! cache that replays old answers). From then on the socket carries WebSocket frames both ways,
//! and HTTP is done with it. [`upgrade`] checks the request (tungstenite's
//! `create_response_with_body`), answers, and when hyper hands the socket back, starts it as a
//! chat connection (`connection.rs`) whose only difference from a TCP one is its framing:
//! [`decoder::Messages`] on the way in, the outlet's text frames on the way out.
//!
//! `session=KEY` is optional: a secret the client keeps for the life of its tab (8 to 64
//! letters, digits, `-`, `_`). A reconnecting client that gives the same key takes its
//! nickname back from its own previous connection (see `bus/mod.rs`), and a load balancer can
//! use it to send the tab's connections to one node (`deploy/nginx.conf`).

pub mod decoder;

use crate::bus::Bus;
use crate::connection::{self, Transport};
use crate::http::Http;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use tokio::net::TcpStream;
use tungstenite::handshake::server::create_response_with_body;

/// `GET /ws`: the upgrade to WebSocket, then a chat connection on the same socket.
pub async fn upgrade<B: Bus>(State(http): State<Arc<Http<B>>>, mut request: Request) -> Response {
    let session = match session_key(request.uri().query()) {
        Ok(session) => session,
        Err(why) => return (StatusCode::BAD_REQUEST, why).into_response(),
    };
    let response = match create_response_with_body(&request, Body::empty) {
        Ok(response) => response,
        Err(e) => {
            let why = format!("a WebSocket handshake was expected here ({e})\n");
            return (StatusCode::BAD_REQUEST, why).into_response();
        }
    };
    let Some(on_upgrade) = request.extensions_mut().remove::<OnUpgrade>() else {
        let why = "this connection cannot be upgraded\n";
        return (StatusCode::INTERNAL_SERVER_ERROR, why).into_response();
    };
    // Once the 101 is sent, hyper gives the socket back: a chat connection from then on.
    let tasks = http.connections.clone();
    tasks.spawn(async move {
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(e) => return tracing::debug!("WebSocket upgrade failed: {e}"),
        };
        let parts = match upgraded.downcast::<TokioIo<TcpStream>>() {
            Ok(parts) => parts,
            Err(_) => return tracing::error!("an upgraded connection is not a TCP socket"),
        };
        let transport = Transport::WebSocket {
            early: parts.read_buf,
            session,
        };
        let stream = parts.io.into_inner();
        connection::start(
            &http.connections,
            &http.node,
            stream,
            &http.server,
            transport,
        );
    });
    response.into_response()
}

/// The `session` parameter of the query, if any; `Err` with the reason when it is malformed.
fn session_key(query: Option<&str>) -> Result<Option<String>, &'static str> {
    let Some(value) = query
        .into_iter()
        .flat_map(|q| q.split('&'))
        .find_map(|pair| pair.strip_prefix("session="))
    else {
        return Ok(None);
    };
    let valid = (8..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(Some(value.to_string()))
    } else {
        Err("session: 8 to 64 letters, digits, `-` or `_`\n")
    }
}

#[cfg(test)]
mod tests {
    use super::session_key;

    /// The session key is optional, and only a well-formed one is taken.
    #[test]
    fn reads_the_session_key() {
        assert_eq!(session_key(None), Ok(None));
        assert_eq!(session_key(Some("x=1")), Ok(None));
        assert_eq!(
            session_key(Some("x=1&session=Ab_9-zzzzz")),
            Ok(Some("Ab_9-zzzzz".into()))
        );
        assert!(session_key(Some("session=short")).is_err());
        assert!(session_key(Some("session=has%20space")).is_err());
        assert!(session_key(Some(&format!("session={}", "a".repeat(65)))).is_err());
    }
}
