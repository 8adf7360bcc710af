//! A node loses its database (a TCP proxy between them is cut, then made
//! to swallow packets): requests get a quick 503 in Elasticsearch's error
//! envelope, never a 500 and never a hang, readiness turns 503, and once
//! the database is back the node serves again without a restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::*;

const STORE_TIMEOUT: &str = "1s";
/// The longest any request may take during an outage: the store gives up
/// after twice the store timeout per attempt, or after the connect or
/// pool timeout; the rest is slack for a loaded 2-core machine.
const BOUND: Duration = Duration::from_secs(5);
/// How long the node may take to notice the database is back.
const RECOVERY: Duration = Duration::from_secs(20);
/// Load samples wanted in each settled phase.
const SAMPLES: usize = 6;

/// The phase the main thread has declared; load samples are tagged with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Healthy,
    /// The outage was just switched on; answers may still be 200.
    Failing,
    /// The node has been seen answering 503; everything must now be 503.
    Down,
    /// The database is back; answers may still be 503.
    Recovering,
    /// The node has been seen answering 200 again; everything must be 200.
    Up,
}

/// The declared state: a new epoch each time the phase changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    epoch: usize,
    phase: Phase,
    outage: Mode,
}

#[derive(Debug)]
struct Sample {
    /// The state when the request started and when its answer came; a
    /// sample is held to its phase's rule only if both are the same.
    start: State,
    end: State,
    op: &'static str,
    status: u16,
    elapsed: Duration,
    text: String,
    body: serde_json::Value,
}

/// Asserts Elasticsearch's 503 envelope for an unavailable store.
fn assert_unavailable(what: &str, r: &Resp) {
    assert_eq!(r.status, 503, "{what}: {}", r.text);
    assert_eq!(r.body["status"], 503, "{what}: {}", r.text);
    assert_eq!(
        r.body["error"]["type"], "unavailable_exception",
        "{what}: {}",
        r.text
    );
    assert_eq!(
        r.body["error"]["reason"], "the token store is unavailable; retry later",
        "{what}: {}",
        r.text
    );
    assert_eq!(
        r.body["error"]["root_cause"][0]["type"], "unavailable_exception",
        "{what}: {}",
        r.text
    );
}

fn create_token(http: &Http, base: &str) -> reqwest::Result<Resp> {
    http.send(
        reqwest::Method::POST,
        base,
        TOKEN,
        Auth::Basic(ADMIN, ADMIN_PW),
        Some(&json!({ "grant_type": "client_credentials" })),
    )
}

/// Polls `probe` until it answers `status`, within `within`.
fn await_status(
    what: &str,
    within: Duration,
    status: u16,
    probe: impl Fn() -> reqwest::Result<Resp>,
) -> Resp {
    let deadline = Instant::now() + within;
    loop {
        let r = arrived(what, probe());
        assert!(r.elapsed < BOUND, "{what} took {:?}: {}", r.elapsed, r.text);
        if r.status == status {
            return r;
        }
        assert!(
            r.status == 200 || r.status == 503,
            "{what}: unexpected ({}) {}",
            r.status,
            r.text
        );
        assert!(
            Instant::now() < deadline,
            "{what}: still ({}) after {within:?}: {}",
            r.status,
            r.text
        );
        thread::sleep(Duration::from_millis(50));
    }
}

pub fn database_outage_gives_quick_503s_and_the_node_recovers_by_itself(pg: &str) {
    let started = Instant::now();
    let db = TestDb::database(pg);
    let proxy = Proxy::start(server_address(pg));
    let node = start_node(
        "outage",
        &with_address(&db.url, proxy.addr),
        &["--store-timeout", STORE_TIMEOUT, "--store-pool-size", "4"],
    );
    let base = node.base.clone();
    let http = Http::with_timeout(Duration::from_secs(30));

    // The light load: Basic authentication and token creation, in turn.
    let stop = Arc::new(AtomicBool::new(false));
    let state = Arc::new(Mutex::new(State {
        epoch: 0,
        phase: Phase::Healthy,
        outage: Mode::Open,
    }));
    let samples: Arc<Mutex<Vec<Sample>>> = Arc::default();
    let load = {
        let (stop, state, samples, base) = (
            Arc::clone(&stop),
            Arc::clone(&state),
            Arc::clone(&samples),
            base.clone(),
        );
        thread::spawn(move || {
            let http = Http::with_timeout(Duration::from_secs(30));
            let mut i = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let start = *state.lock().unwrap();
                let (op, r) = if i.is_multiple_of(2) {
                    ("authenticate", http.authenticate_basic(&base))
                } else {
                    ("create token", create_token(&http, &base))
                };
                i += 1;
                let r = arrived(op, r);
                samples.lock().unwrap().push(Sample {
                    start,
                    end: *state.lock().unwrap(),
                    op,
                    status: r.status,
                    elapsed: r.elapsed,
                    text: r.text,
                    body: r.body,
                });
                // A light load, not a flood.
                thread::sleep(Duration::from_millis(20));
            }
        })
    };
    // Waits for enough samples held to the current phase's rule.
    let await_samples = || {
        let now = *state.lock().unwrap();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let n = samples
                .lock()
                .unwrap()
                .iter()
                .filter(|s| s.start == now && s.end == now)
                .count();
            if n >= SAMPLES {
                return;
            }
            assert!(!load.is_finished(), "the load thread stopped");
            assert!(Instant::now() < deadline, "too few load samples in {now:?}");
            thread::sleep(Duration::from_millis(20));
        }
    };
    let set = |phase: Phase, outage: Mode| {
        let mut s = state.lock().unwrap();
        *s = State {
            epoch: s.epoch + 1,
            phase,
            outage,
        };
    };

    await_samples();
    let mut timings = Vec::new();
    for mode in [Mode::Cut, Mode::Stall] {
        // The outage.
        set(Phase::Failing, mode);
        let cut_at = Instant::now();
        proxy.set(mode);
        let r = await_status(
            &format!("authenticate during {mode:?}"),
            Duration::from_secs(15),
            503,
            || http.authenticate_basic(&base),
        );
        let first_503 = cut_at.elapsed();
        assert_unavailable(&format!("authenticate during {mode:?}"), &r);
        set(Phase::Down, mode);
        let r = arrived("ready", http.get(&base, READY));
        assert_eq!(r.status, 503, "ready during {mode:?}: {}", r.text);
        assert!(r.elapsed < BOUND, "ready took {:?}", r.elapsed);
        assert_eq!(r.body["status"], "unavailable", "{}", r.text);
        let r = arrived("create token", create_token(&http, &base));
        assert_unavailable(&format!("create token during {mode:?}"), &r);
        assert!(r.elapsed < BOUND, "create token took {:?}", r.elapsed);
        await_samples();

        // The database comes back.
        set(Phase::Recovering, Mode::Open);
        let back_at = Instant::now();
        proxy.set(Mode::Open);
        await_status("ready after the outage", RECOVERY, 200, || {
            http.get(&base, READY)
        });
        await_status("authenticate after the outage", RECOVERY, 200, || {
            http.authenticate_basic(&base)
        });
        let recovered = back_at.elapsed();
        set(Phase::Up, Mode::Open);
        let r = arrived("create token", create_token(&http, &base));
        assert_eq!(r.status, 200, "create token after {mode:?}: {}", r.text);
        let access = r.str("access_token");
        let r = arrived("bearer", http.authenticate_bearer(&base, &access));
        assert_eq!(r.status, 200, "{}", r.text);
        await_samples();
        timings.push((mode, first_503, recovered));
    }
    stop.store(true, Ordering::SeqCst);
    load.join().expect("the load thread");

    let samples = samples.lock().unwrap();
    for s in samples.iter() {
        let what = format!("{} ({:?} -> {:?})", s.op, s.start, s.end);
        assert!(s.elapsed < BOUND, "{what} took {:?}: {}", s.elapsed, s.text);
        match s.status {
            200 => {}
            503 => assert_unavailable(
                &what,
                &Resp {
                    status: s.status,
                    text: s.text.clone(),
                    body: s.body.clone(),
                    elapsed: s.elapsed,
                },
            ),
            other => panic!("{what}: unexpected ({other}) {}", s.text),
        }
        if s.start != s.end {
            continue;
        }
        match s.start.phase {
            Phase::Healthy | Phase::Up => {
                assert_eq!(s.status, 200, "{what}: {}", s.text)
            }
            Phase::Down => assert_eq!(s.status, 503, "{what}: {}", s.text),
            Phase::Failing | Phase::Recovering => {}
        }
    }
    let slowest = samples.iter().map(|s| s.elapsed).max().unwrap_or_default();
    eprintln!(
        "outage: {} load requests, slowest {slowest:?}; (mode, first 503 after, recovered after) {timings:?}; {:?} in all",
        samples.len(),
        started.elapsed()
    );
    drop(node);
    drop(proxy);
}

/// Every request a store outage fails is logged once, on one line with its
/// method, route and the store's detail, whichever API answered it; and no
/// answer carries that detail.
pub fn each_request_an_outage_fails_is_logged_once_with_a_detail_its_answer_lacks(pg: &str) {
    let db = TestDb::database(pg);
    let proxy = Proxy::start(server_address(pg));
    let node = start_node(
        "logged-once",
        &with_address(&db.url, proxy.addr),
        &[
            "--store-timeout",
            STORE_TIMEOUT,
            "--store-pool-size",
            "4",
            // No background work that could log during the outage.
            "--cleanup-interval",
            "1h",
        ],
    );
    let base = node.base.clone();
    let http = Http::with_timeout(Duration::from_secs(30));
    proxy.set(Mode::Cut);
    await_status(
        "authenticate during the cut",
        Duration::from_secs(15),
        503,
        || http.authenticate_basic(&base),
    );

    let before = node.log().len();
    let answers = [
        ("authenticate", http.authenticate_basic(&base)),
        ("create token", create_token(&http, &base)),
        ("ready", http.get(&base, READY)),
        (
            "oauth2 token",
            http.post_form(
                &base,
                "/oauth2/token",
                "grant_type=client_credentials&client_id=nobody&client_secret=nothing",
            ),
        ),
    ]
    .map(|(what, r)| (what, arrived(what, r)));
    let log = node.log();
    // Tessera's own lines ("<time>  WARN <target>: …"); the connection
    // pool may log about its connections.
    let lines: Vec<&str> = log[before..]
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .nth(2)
                .is_some_and(|target| target.starts_with("tessera"))
        })
        .collect();

    for (what, r) in &answers[..2] {
        assert_unavailable(what, r);
    }
    let (_, ready) = &answers[2];
    assert_eq!(ready.status, 503, "ready: {}", ready.text);
    let (_, oauth) = &answers[3];
    assert_eq!(oauth.status, 503, "oauth2 token: {}", oauth.text);
    assert_eq!(
        oauth.body,
        json!({
            "error": "temporarily_unavailable",
            "error_description": "the token store is unavailable; retry later",
        })
    );
    assert_eq!(
        lines.len(),
        answers.len(),
        "one line per failed request, got:\n{}",
        lines.join("\n")
    );
    for ((what, r), line) in answers.iter().zip(&lines) {
        assert!(
            line.contains("request answered with a server error") && line.contains("status=503"),
            "{what}: {line}"
        );
        let detail = line
            .split_once("detail=")
            .map(|(_, d)| d.trim().trim_matches('"'))
            .unwrap_or_else(|| panic!("{what}: no detail in {line}"));
        assert!(
            detail.contains("the store is unavailable: "),
            "{what}: {line}"
        );
        assert!(!r.text.contains(detail), "{what}: {}", r.text);
        assert!(
            !r.text.contains("the store is unavailable"),
            "{what}: {}",
            r.text
        );
    }
    drop(node);
    drop(proxy);
}
