//! What the API shows and to whom: the metrics (to `monitor` holders on the
//! API port; open only on the separate `metrics_listen` address), and
//! endpoints Tessera does not implement (a clear 4xx, never a lookup).

use serde_json::json;

use crate::support::*;

const METRICS: &str = "/_tessera/metrics";

#[test]
fn metrics_on_the_api_port_need_the_monitor_privilege() {
    let srv = TestServer::start();
    srv.put_role("watcher", json!({ "cluster": ["monitor"] }));
    srv.put_role("operator", json!({ "cluster": ["manage"] }));
    srv.put_role(
        "tokens",
        json!({ "cluster": ["manage_token", "manage_security"] }),
    );
    srv.put_user("watch", TEST_PW, &["watcher"]);
    srv.put_user("ops", TEST_PW, &["operator"]);
    srv.put_user("tok", TEST_PW, &["tokens"]);
    srv.put_user("nobody", TEST_PW, &[]);

    let r = srv.get(METRICS).send();
    assert_unauthenticated(
        &r,
        "missing authentication credentials for REST request [/_tessera/metrics]",
    );
    for user in ["tok", "nobody"] {
        let r = srv.get(METRICS).basic(user, TEST_PW).send();
        assert_eq!(r.status, 403, "{user}: {}", r.text);
        assert_eq!(r.body["error"]["type"], "security_exception", "{}", r.text);
        let reason = r.body["error"]["reason"].as_str().unwrap();
        assert!(
            reason.contains("cluster:monitor/tessera/metrics")
                && reason.contains("[monitor,manage,all]"),
            "{reason}"
        );
    }
    for (user, pw) in [("watch", TEST_PW), ("ops", TEST_PW), (ADMIN, ADMIN_PW)] {
        let r = srv.get(METRICS).basic(user, pw).send();
        assert_eq!(r.status, 200, "{user}: {}", r.text);
        assert!(r.text.contains("tessera_"), "{user}: {}", r.text);
    }
    // A bearer token of a monitor holder works too.
    let t = srv.password_grant("watch", TEST_PW);
    let r = srv.get(METRICS).bearer(&t.access).send();
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn metrics_listen_serves_the_metrics_alone_and_open() {
    let srv = TestServer::start_with(Options::default().metrics_listen("127.0.0.1:0"));
    let at = srv.metrics_addr().expect("the metrics listener is bound");
    assert_ne!(at, srv.addr());
    let client = client();
    // Traffic on the API port, so that there is something to count.
    srv.assert_basic_ok(ADMIN, ADMIN_PW);
    let r = client
        .get(format!("http://{at}{METRICS}"))
        .send()
        .expect("scraping the metrics listener");
    assert_eq!(r.status().as_u16(), 200);
    let text = r.text().unwrap();
    assert!(text.contains("tessera_"), "{text}");
    // Only the metrics: the API is not reachable there.
    for path in ["/_security/_authenticate", "/_tessera/ready", "/"] {
        let r = client
            .get(format!("http://{at}{path}"))
            .basic_auth(ADMIN, Some(ADMIN_PW))
            .send()
            .unwrap();
        assert_eq!(r.status().as_u16(), 404, "{path}");
    }
    // The API port still asks who is calling.
    assert_eq!(srv.get(METRICS).send().status, 401);
    srv.stop();
    assert!(
        client.get(format!("http://{at}{METRICS}")).send().is_err(),
        "the metrics listener stops with the server"
    );
}
