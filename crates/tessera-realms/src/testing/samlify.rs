//! The samlify IdP of `tests/idp/saml` (npm), started on a free port:
//! a real third-party IdP for end-to-end tests. Needs `node` and `npm ci`
//! in `tests/idp/saml`; [`start_or_skip`] says when it cannot run (and
//! fails under `CI=true`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::node::{self, Launch, NodeServer};

/// The IdP's entity id.
pub const ENTITY: &str = "https://samlify.example/";

pub fn idp_dir() -> PathBuf {
    node::idp_dir("saml")
}

/// The IdP process (`base` is `http://127.0.0.1:<port>`), killed when
/// dropped.
pub type Idp = NodeServer;

fn launch(sp_metadata: &Path, encrypt: bool) -> Launch<'static> {
    let data_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let mut args = vec![
        sp_metadata.into(),
        data_dir.join("idp.key").into(),
        data_dir.join("idp.crt").into(),
        ENTITY.into(),
    ];
    if encrypt {
        args.push("encrypt".into());
    }
    Launch {
        what: "the samlify IdP",
        dir: "saml",
        package: "samlify",
        script: "idp.js",
        args,
        show_stderr: true,
        wait: Duration::from_secs(30),
    }
}

/// Starts the IdP, or says why it cannot (`Err`).
pub fn start_idp(sp_metadata: &Path, encrypt: bool) -> Result<Idp, String> {
    node::start(launch(sp_metadata, encrypt))
}

/// The IdP, or `None` (with the reason printed) when it cannot run here;
/// under `CI=true` that is a failure.
pub fn start_or_skip(sp_metadata: &Path, encrypt: bool) -> Option<Idp> {
    node::start_or_skip(launch(sp_metadata, encrypt))
}

/// The value of the hidden input `name` in an HTML form.
pub fn input(html: &str, name: &str) -> String {
    let marker = format!(r#"name="{name}" value=""#);
    let start = html
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} in {html}"))
        + marker.len();
    let end = html[start..].find('"').unwrap() + start;
    node::unescape(&html[start..end])
}
