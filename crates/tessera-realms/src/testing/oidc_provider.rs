//! The OpenID provider of `tests/idp/oidc` (npm `oidc-provider`), started
//! on a free port it picks itself: a real third-party provider for
//! end-to-end tests. Needs `node` and `npm ci` in `tests/idp/oidc`;
//! [`start_or_skip`] says when it cannot run (and fails under `CI=true`).

use std::path::PathBuf;
use std::time::Duration;

use super::node::{self, unescape, Launch, NodeServer};

pub fn op_dir() -> PathBuf {
    node::idp_dir("oidc")
}

/// The provider process, killed when dropped.
pub struct Op {
    _server: NodeServer,
    /// The issuer, `http://127.0.0.1:<port>`; its endpoints are under it.
    pub issuer: String,
}

/// The one client the provider knows.
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub redirect_uri: &'a str,
    pub post_logout_redirect_uri: &'a str,
}

fn launch<'a>(client: &Client<'_>) -> Launch<'a> {
    Launch {
        what: "the oidc-provider OP",
        dir: "oidc",
        package: "oidc-provider",
        script: "op.mjs",
        args: [
            client.id,
            client.secret,
            client.redirect_uri,
            client.post_logout_redirect_uri,
        ]
        .map(Into::into)
        .to_vec(),
        show_stderr: false,
        wait: Duration::from_secs(60),
    }
}

fn op(server: NodeServer) -> Op {
    Op {
        issuer: server.base.clone(),
        _server: server,
    }
}

/// Starts the provider, or says why it cannot (`Err`).
pub fn start_op(client: &Client<'_>) -> Result<Op, String> {
    node::start(launch(client)).map(op)
}

/// The provider, or `None` (with the reason printed) when it cannot run
/// here; under `CI=true` that is a failure.
pub fn start_or_skip(client: &Client<'_>) -> Option<Op> {
    node::start_or_skip(launch(client)).map(op)
}

/// The `action` of the first form of an HTML page and its inputs
/// (`name`, `value`), as a browser would post them.
pub fn form(html: &str) -> (String, Vec<(String, String)>) {
    let attr = |tag: &str, name: &str| -> Option<String> {
        let marker = format!("{name}=\"");
        let start = tag.find(&marker)? + marker.len();
        let end = tag[start..].find('"')? + start;
        Some(unescape(&tag[start..end]))
    };
    let form_start = html.find("<form").expect("a form");
    let form_end = html[form_start..].find('>').unwrap() + form_start;
    let action = attr(&html[form_start..=form_end], "action").unwrap_or_default();
    let mut inputs = Vec::new();
    let mut rest = &html[form_end..];
    while let Some(i) = rest.find("<input") {
        let end = rest[i..].find('>').unwrap() + i;
        let tag = &rest[i..=end];
        if let Some(name) = attr(tag, "name") {
            inputs.push((name, attr(tag, "value").unwrap_or_default()));
        }
        rest = &rest[end..];
        if rest
            .find("</form>")
            .is_some_and(|f| rest.find("<input").is_none_or(|n| f < n))
        {
            break;
        }
    }
    (action, inputs)
}
