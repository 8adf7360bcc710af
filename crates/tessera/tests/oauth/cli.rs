//! `tessera client …` on a data directory, then the credentials it printed
//! against a server on that directory (running while the CLI changes the
//! store).

use std::path::Path;
use std::process::{Command, Output};

use serde_json::{json, Value};

use crate::support::*;

fn tessera(data_dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .env("TESSERA_LOG", "warn")
        .arg("client")
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .expect("running the tessera binary")
}

fn ok(data_dir: &Path, args: &[&str]) -> Value {
    let out = tessera(data_dir, args);
    assert!(
        out.status.success(),
        "tessera client {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON on stdout")
}

#[test]
fn clients_created_by_the_cli_work_against_the_server() {
    let dir = tempfile::tempdir().unwrap();
    // The first command creates the store, as it is told to.
    let created = ok(
        dir.path(),
        &[
            "create",
            "--create",
            "--name",
            "cli-app",
            "--grant-type",
            "client_credentials,password",
            "--grant-type",
            "refresh_token",
            "--scope",
            "read tessera:admin",
        ],
    );
    assert_eq!(created["client_name"], "cli-app");
    assert_eq!(
        created["grant_types"],
        json!(["client_credentials", "password", "refresh_token"])
    );
    assert_eq!(created["scope"], "read tessera:admin");
    assert_eq!(created["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(created["client_secret_expires_at"], 0);
    let client = TestClient::from_body(&created);

    let server = TestServer::start_in(dir.path(), Options::default());
    let body = server.grant(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(body["scope"], "read tessera:admin");
    let pair = server.grant(
        &client,
        &[
            ("grant_type", "password"),
            ("username", ADMIN),
            ("password", ADMIN_PW),
        ],
    );
    // The server sees what the CLI registered, and the reverse.
    let listed = server.get(REGISTER).admin().send();
    let mut shown = created.clone();
    shown.as_object_mut().unwrap().remove("client_secret");
    assert_eq!(listed.body, json!({ "clients": [shown.clone()] }));
    let second = server.register(json!({ "client_name": "from-http" }));
    let list = ok(dir.path(), &["list"]);
    assert_eq!(list.as_array().unwrap().len(), 2);
    assert_eq!(list[0], shown);
    assert_eq!(list[1]["client_id"], second.id.as_str());
    assert!(!list.to_string().contains(&client.secret));
    assert_eq!(ok(dir.path(), &["show", &client.id]), shown);

    // update: only the given fields change.
    let updated = ok(
        dir.path(),
        &["update", &client.id, "--name", "renamed", "--scope", "read"],
    );
    assert_eq!(updated["client_name"], "renamed");
    assert_eq!(updated["scope"], "read");
    assert_eq!(updated["grant_types"], shown["grant_types"]);
    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_eq!(r.body["scope"], "read", "{}", r.text);

    // rotate-secret: the running server honours only the new secret.
    let rotated = ok(dir.path(), &["rotate-secret", &client.id]);
    let new = TestClient::from_body(&rotated);
    assert_ne!(new.secret, client.secret);
    let r = server.token(&client, &[("grant_type", "client_credentials")]);
    assert_oauth_error(&r, 401, "invalid_client", true);
    assert_eq!(
        server
            .token(&new, &[("grant_type", "client_credentials")])
            .status,
        200
    );

    // delete: the client and its tokens are gone, even from the running
    // server's read cache (the token authenticates first, so it is cached).
    let access = pair["access_token"].as_str().unwrap();
    for _ in 0..2 {
        assert_eq!(server.whoami(access).status, 200);
    }
    assert_eq!(
        ok(dir.path(), &["delete", &client.id]),
        json!({ "deleted": true, "client_id": client.id })
    );
    let r = server.token(&new, &[("grant_type", "client_credentials")]);
    assert_oauth_error(&r, 401, "invalid_client", true);
    assert_token_dead(&server, access);

    // Ids never start with `-` (a command line would take it for a flag);
    // one that did, from an older version, is still reached after `--`.
    for _ in 0..64 {
        let made = ok(dir.path(), &["create", "--name", "dash"]);
        assert!(!made["client_id"].as_str().unwrap().starts_with('-'));
    }
    let out = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .env_clear()
        .args(["client", "show", "--data-dir"])
        .arg(dir.path())
        .args(["--", "-old"])
        .output()
        .expect("running the tessera binary");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no OAuth client [-old]"), "{err}");

    // Unknown clients and invalid metadata fail with a message on stderr.
    for args in [
        vec!["show", client.id.as_str()],
        vec!["delete", client.id.as_str()],
        vec!["rotate-secret", "missing"],
        vec!["update", "missing", "--name", "x"],
        vec!["create", "--grant-type", "implicit"],
        vec!["create", "--auth-method", "none"],
    ] {
        let out = tessera(dir.path(), &args);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(out.stdout.is_empty(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("no OAuth client") || err.contains("invalid client metadata"),
            "{args:?}: {err}"
        );
    }
    server.stop();
}
