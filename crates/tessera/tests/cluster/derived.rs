//! Derived credentials across nodes: key → token → token → token → token,
//! each link minted on the other node; the key is invalidated through one
//! node and, as soon as that call answers, every link is refused on both.

use reqwest::Method;
use serde_json::json;

use crate::support::*;

pub fn an_invalidated_key_kills_its_chain_on_every_node(pg: &str) {
    let cluster = Cluster::start(pg, 2, &[]);
    let nodes = cluster.bases();
    let http = Http::new();
    let key = arrived(
        "create key",
        http.send(
            Method::POST,
            &nodes[0],
            "/_security/api_key",
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(&json!({ "name": "leaky" })),
        ),
    );
    assert_eq!(key.status, 200, "{}", key.text);
    let (id, encoded) = (key.str("id"), key.str("encoded"));
    let grant = json!({ "grant_type": "password", "username": ADMIN, "password": ADMIN_PW });

    let mut chain: Vec<Pair> = Vec::new();
    for link in 0..4 {
        let node = &nodes[link % 2];
        let auth = match chain.last() {
            None => Auth::ApiKey(&encoded),
            Some(parent) => Auth::Bearer(&parent.access),
        };
        let r = arrived(
            "mint",
            http.send(Method::POST, node, TOKEN, auth, Some(&grant)),
        );
        assert_eq!(r.status, 200, "link {link} on {node}: {}", r.text);
        chain.push(Pair::from(&r));
    }
    for (i, pair) in chain.iter().enumerate() {
        for node in &nodes {
            let r = arrived("auth", http.authenticate_bearer(node, &pair.access));
            assert_eq!(r.status, 200, "link {i} on {node}: {}", r.text);
        }
    }

    let r = arrived(
        "invalidate key",
        http.send(
            Method::DELETE,
            &nodes[1],
            "/_security/api_key",
            Auth::Basic(ADMIN, ADMIN_PW),
            Some(&json!({ "ids": [id] })),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    for (i, pair) in chain.iter().enumerate() {
        for node in &nodes {
            let r = arrived("auth", http.authenticate_bearer(node, &pair.access));
            assert_eq!(r.status, 401, "link {i} lives on {node}: {}", r.text);
            if i > 0 {
                // Links after the first were minted by token callers that
                // stand for the admin, who may try to refresh them.
                let r = arrived("refresh", http.refresh(node, &pair.refresh));
                assert_eq!(r.status, 400, "link {i} refreshed on {node}: {}", r.text);
                assert_eq!(r.body["error"], "invalid_grant", "{}", r.text);
            }
        }
    }
    let r = arrived(
        "mint from the dead chain",
        http.send(
            Method::POST,
            &nodes[0],
            TOKEN,
            Auth::Bearer(&chain[3].access),
            Some(&grant),
        ),
    );
    assert_eq!(r.status, 401, "{}", r.text);
}
