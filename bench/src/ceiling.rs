//! The ceiling: a bare axum server that answers every request with a fixed
//! JSON body as large as `_authenticate`'s. Nothing a real handler could do
//! is faster on this machine with this load generator, so Tessera's figures
//! are also given as a ratio to it.

use std::net::SocketAddr;

use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderValue;
use axum::response::IntoResponse;
use axum::Router;
use bytes::Bytes;

/// A JSON object of exactly `len` bytes (at least `{}`).
pub fn fixed_body(len: usize) -> String {
    const FRAME: usize = r#"{"pad":""}"#.len();
    if len < FRAME {
        return "{}".to_owned();
    }
    format!(r#"{{"pad":"{}"}}"#, "x".repeat(len - FRAME))
}

/// What the ceiling prints once bound: `… addr=127.0.0.1:PORT`.
pub const LISTENING: &str = "ceiling is listening";

/// Serves the fixed body on every path, with the same multi-threaded
/// runtime Tessera uses (one worker per core).
pub fn serve(listen: SocketAddr, body_bytes: usize) -> anyhow::Result<()> {
    let body = Bytes::from(fixed_body(body_bytes));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new().fallback(move || {
            let body = body.clone();
            async move {
                (
                    [(CONTENT_TYPE, HeaderValue::from_static("application/json"))],
                    body,
                )
                    .into_response()
            }
        });
        let listener = tokio::net::TcpListener::bind(listen).await?;
        eprintln!("{LISTENING} addr={}", listener.local_addr()?);
        let shutdown = async {
            if let Ok(mut term) =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            {
                term.recv().await;
            }
        };
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown)
            .await?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_body_has_the_requested_size_and_is_json() {
        for len in [10, 11, 300, 1234] {
            let body = fixed_body(len);
            assert_eq!(body.len(), len);
            assert!(serde_json::from_str::<serde_json::Value>(&body).is_ok());
        }
        assert_eq!(fixed_body(3), "{}");
    }
}
