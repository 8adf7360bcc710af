//! A SAML assertion mints once across nodes: the same Response presented
//! to two nodes at the same instant logs in exactly once (the one-time
//! proof is recorded in the storing transaction on the shared database).

use std::sync::{Arc, Barrier};
use std::time::{SystemTime, UNIX_EPOCH};

use reqwest::Method;
use serde_json::json;
use tessera_realms::testing::{self as fx, Fx};

use crate::support::*;

const TRIALS: usize = 5;

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

pub fn a_response_replayed_on_two_nodes_at_once_logs_in_once(pg: &str) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("idp-metadata.xml"),
        fx::idp_metadata(fx::IDP),
    )
    .unwrap();
    let config = dir.path().join("tessera.toml");
    std::fs::write(&config, format!("[realms.saml.saml1]\n{}", fx::SETTINGS)).unwrap();
    let cluster = Cluster::start(pg, 2, &["--config", config.to_str().unwrap()]);
    let nodes = cluster.bases();
    for trial in 0..TRIALS {
        let f = Fx {
            assertion_id: format!("_assert_trial{trial}"),
            ..Fx::at(now_ms())
        };
        let content = fx::b64(&fx::response(&f, &fx::assertion(&f, true), true));
        let barrier = Arc::new(Barrier::new(nodes.len()));
        let handles: Vec<_> = nodes
            .iter()
            .map(|node| {
                let (barrier, node, content) =
                    (Arc::clone(&barrier), node.clone(), content.clone());
                std::thread::spawn(move || {
                    let http = Http::new();
                    let body = json!({"content": content, "ids": [fx::REQUEST_ID]});
                    barrier.wait();
                    arrived(
                        "saml authenticate",
                        http.send(
                            Method::POST,
                            &node,
                            "/_security/saml/authenticate",
                            Auth::Basic(ADMIN, ADMIN_PW),
                            Some(&body),
                        ),
                    )
                })
            })
            .collect();
        let answers = join_all(handles, "a replaying client");
        let mut statuses: Vec<u16> = answers.iter().map(|r| r.status).collect();
        statuses.sort_unstable();
        assert_eq!(
            statuses,
            [200, 401],
            "trial {trial}: {:?}",
            answers.iter().map(|r| &r.text).collect::<Vec<_>>()
        );
    }
}
