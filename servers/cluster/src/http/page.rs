//! The browser client: one page, its script and its style, built into the binary
//! (`include_str!`), so that `chat-cluster --redis memory` and a browser are all a student
//! needs. No build step, no framework: the script is plain JavaScript that speaks the protocol
//! over `/ws` (the files are in `servers/cluster/web/`).

use axum::http::header;
use axum::response::IntoResponse;

/// `GET /`
pub async fn index() -> impl IntoResponse {
    let page = include_str!("../../web/index.html");
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], page)
}

/// `GET /app.js`
pub async fn script() -> impl IntoResponse {
    let script = include_str!("../../web/app.js");
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        script,
    )
}

/// `GET /app.css`
pub async fn style() -> impl IntoResponse {
    let style = include_str!("../../web/app.css");
    ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], style)
}
