//! A third-party test server written for Node (`tests/idp/*`), started as
//! a child process that picks its own port and prints `listening on
//! <port>`. Killed when dropped.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// `tests/idp/<name>` in the repository.
pub fn idp_dir(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/idp")
        .join(name)
}

/// A running Node server, killed when dropped.
pub struct NodeServer {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
}

impl Drop for NodeServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What to start: `node <dir>/<script> <args…>`, once `<dir>/node_modules/
/// <package>` exists.
pub struct Launch<'a> {
    /// How errors name the server ("the samlify IdP").
    pub what: &'a str,
    /// The directory under `tests/idp`.
    pub dir: &'a str,
    /// The npm package whose presence shows `npm ci` ran.
    pub package: &'a str,
    pub script: &'a str,
    pub args: Vec<std::ffi::OsString>,
    /// Whether the server's stderr reaches the test output.
    pub show_stderr: bool,
    pub wait: Duration,
}

/// Starts the server, or says why it cannot (`Err`).
pub fn start(launch: Launch<'_>) -> Result<NodeServer, String> {
    let dir = idp_dir(launch.dir);
    if !dir.join("node_modules").join(launch.package).is_dir() {
        return Err(format!(
            "{}/node_modules is missing: run `npm ci` there",
            dir.display()
        ));
    }
    let stderr = if launch.show_stderr {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    let mut child = Command::new("node")
        .arg(dir.join(launch.script))
        .args(&launch.args)
        .stdout(Stdio::piped())
        .stderr(stderr)
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
    let mut server = NodeServer {
        child,
        base: String::new(),
    };
    match rx.recv_timeout(launch.wait) {
        Ok(port) => {
            server.base = format!("http://127.0.0.1:{port}");
            Ok(server)
        }
        // Dropping `server` kills the process.
        Err(_) => Err(format!(
            "{} did not print its port within {} s",
            launch.what,
            launch.wait.as_secs()
        )),
    }
}

/// The server, or `None` (with the reason printed) when it cannot run here;
/// under `CI=true` that is a failure.
pub fn start_or_skip(launch: Launch<'_>) -> Option<NodeServer> {
    let what = launch.what.to_owned();
    match start(launch) {
        Ok(server) => Some(server),
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{what} is required under CI=true: {why}"
            );
            eprintln!("SKIPPED: {what} cannot run here: {why}");
            None
        }
    }
}

/// Text of an HTML attribute value with its entities decoded.
pub fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&#39;", "'")
        .replace("&#x2F;", "/")
        .replace("&amp;", "&")
}
