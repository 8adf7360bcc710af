//! The samlify IdP of `tests/idp/saml` (npm), started on a free port:
//! a real third-party IdP for end-to-end tests. Needs `node` and `npm ci`
//! in `tests/idp/saml`; [`start_or_skip`] says when it cannot run (and
//! fails under `CI=true`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// The IdP's entity id.
pub const ENTITY: &str = "https://samlify.example/";

pub fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/saml")
}

/// The IdP process, killed when dropped.
pub struct Idp {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the IdP, or says why it cannot (`Err`).
pub fn start_idp(sp_metadata: &std::path::Path, encrypt: bool) -> Result<Idp, String> {
    let dir = idp_dir();
    if !dir.join("node_modules/samlify").is_dir() {
        return Err(format!(
            "{}/node_modules is missing: run `npm ci` there",
            dir.display()
        ));
    }
    let data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut child = Command::new("node")
        .arg(dir.join("idp.js"))
        .arg(sp_metadata)
        .arg(data_dir.join("idp.key"))
        .arg(data_dir.join("idp.crt"))
        .arg(ENTITY)
        .args(encrypt.then_some("encrypt"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
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
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(port) => Ok(Idp {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            Err("the IdP did not print its port within 30 s".into())
        }
    }
}

/// The IdP, or `None` (with the reason printed) when it cannot run here;
/// under `CI=true` that is a failure.
pub fn start_or_skip(sp_metadata: &std::path::Path, encrypt: bool) -> Option<Idp> {
    match start_idp(sp_metadata, encrypt) {
        Ok(idp) => Some(idp),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the samlify IdP is required under CI=true: {why}"
            );
            eprintln!("SKIPPED: the samlify IdP cannot run here: {why}");
            None
        }
    }
}

/// The value of the hidden input `name` in an HTML form.
pub fn input(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end]
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
