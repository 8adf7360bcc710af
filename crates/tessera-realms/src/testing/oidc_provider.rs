//! The OpenID provider of `tests/idp/oidc` (npm `oidc-provider`), started
//! on a free port it picks itself: a real third-party provider for
//! end-to-end tests. Needs `node` and `npm ci` in `tests/idp/oidc`;
//! [`start_or_skip`] says when it cannot run (and fails under `CI=true`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub fn op_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/oidc")
}

/// The provider process, killed when dropped.
pub struct Op {
    child: Child,
    /// The issuer, `http://127.0.0.1:<port>`; its endpoints are under it.
    pub issuer: String,
}

impl Drop for Op {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The one client the provider knows.
pub struct Client<'a> {
    pub id: &'a str,
    pub secret: &'a str,
    pub redirect_uri: &'a str,
    pub post_logout_redirect_uri: &'a str,
}

/// Starts the provider, or says why it cannot (`Err`).
pub fn start_op(client: &Client<'_>) -> Result<Op, String> {
    let dir = op_dir();
    if !dir.join("node_modules/oidc-provider").is_dir() {
        return Err(format!(
            "{}/node_modules is missing: run `npm ci` there",
            dir.display()
        ));
    }
    let mut child = Command::new("node")
        .arg(dir.join("op.mjs"))
        .args([
            client.id,
            client.secret,
            client.redirect_uri,
            client.post_logout_redirect_uri,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot run node: {e}"))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line.strip_prefix("listening on ") {
                let _ = tx.send(port.trim().to_owned());
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(60)) {
        Ok(port) => Ok(Op {
            child,
            issuer: format!("http://127.0.0.1:{port}"),
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the provider did not print its port within 60 s".into())
        }
    }
}

/// The provider, or `None` (with the reason printed) when it cannot run
/// here; under `CI=true` that is a failure.
pub fn start_or_skip(client: &Client<'_>) -> Option<Op> {
    match start_op(client) {
        Ok(op) => Some(op),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the oidc-provider OP is required under CI=true: {why}"
            );
            eprintln!("SKIPPED: the oidc-provider OP cannot run here: {why}");
            None
        }
    }
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

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}
