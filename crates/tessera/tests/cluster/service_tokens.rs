//! Service tokens on two nodes of one database: a token created through
//! one node (or by `tessera service-token create` on the database)
//! authenticates on the other at once, and a deletion through either is
//! refused by the next request on both.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

const KIBANA_TOKENS: &str = "/_security/service/elastic/kibana/credential/token";

fn status_on(http: &Http, base: &str, token: &str) -> u16 {
    arrived("authenticate", http.authenticate_bearer(base, token)).status
}

pub fn a_deleted_service_token_is_refused_on_every_node_at_once(pg: &str) {
    let cluster = Cluster::start(pg, 2, &[]);
    let bases = cluster.bases();
    let http = Http::new();
    let admin = Auth::Basic(ADMIN, ADMIN_PW);

    let r = arrived(
        "create",
        http.send(
            Method::POST,
            &bases[0],
            &format!("{KIBANA_TOKENS}/k1"),
            admin,
            None,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let token = r.body["token"]["value"]
        .as_str()
        .expect("token.value")
        .to_owned();
    let r = arrived("authenticate", http.authenticate_bearer(&bases[1], &token));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["username"], "elastic/kibana", "{}", r.text);

    // Made by the store command on the same database.
    let out = node_command()
        .args([
            "service-token",
            "create",
            "elastic/kibana",
            "cli-1",
            "--store",
        ])
        .arg(cluster.store_url())
        .output()
        .expect("running tessera service-token create");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let printed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let cli_token = printed["token"]["value"]
        .as_str()
        .expect("value")
        .to_owned();
    for base in &bases {
        assert_eq!(status_on(&http, base, &cli_token), 200, "{base}");
    }

    // Deleted through node 1: refused by the next request on both nodes.
    let r = arrived(
        "delete",
        http.send(
            Method::DELETE,
            &bases[1],
            &format!("{KIBANA_TOKENS}/k1"),
            admin,
            None,
        ),
    );
    assert_eq!(
        (r.status, &r.body),
        (200, &json!({"found": true})),
        "{}",
        r.text
    );
    for base in &bases {
        assert_eq!(status_on(&http, base, &token), 401, "{base}");
        assert_eq!(status_on(&http, base, &cli_token), 200, "{base}");
    }
    let r = arrived(
        "delete",
        http.send(
            Method::DELETE,
            &bases[0],
            &format!("{KIBANA_TOKENS}/cli-1"),
            admin,
            None,
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for base in &bases {
        assert_eq!(status_on(&http, base, &cli_token), 401, "{base}");
    }
}
