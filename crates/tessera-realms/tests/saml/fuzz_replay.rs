//! Replays the SAML fuzz target's corpus (`fuzz/corpus/saml_response/`) and
//! saved crashes (`fuzz/regressions/saml_response/`) on stable, through the
//! function the fuzz target calls. The seeds are written by the ignored
//! `write_fuzz_seeds` (`cargo test -p tessera-realms --test saml -- --ignored`).

use std::path::{Path, PathBuf};

use tessera_realms::fuzzing::{saml_response, NOW_MS};

use crate::support::*;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz")
        .join(kind)
        .join("saml_response")
}

fn replay(kind: &str) -> usize {
    let Ok(entries) = std::fs::read_dir(dir(kind)) else {
        return 0;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let data = std::fs::read(&path).unwrap();
        let outcome = std::panic::catch_unwind(|| saml_response(&data));
        assert!(outcome.is_ok(), "saml_response fails on {}", path.display());
        n += 1;
    }
    n
}

#[test]
fn the_saml_corpus_replays_clean() {
    assert_eq!(NOW_MS, now());
    let n = replay("corpus");
    assert!(n > 0, "fuzz/corpus/saml_response is empty");
    replay("regressions");
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus/saml_response"]
fn write_fuzz_seeds() {
    let fx = Fx::default();
    let signed = response(&fx, &assertion(&fx, true), true);
    let seeds = [
        ("signed-response.xml", signed.clone()),
        ("signed-response.b64", b64(&signed)),
        ("encrypted-assertion.xml", response(&fx, &encrypted(&assertion(&fx, true)), false)),
        (
            "entity-bomb.xml",
            r#"<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;&a;&a;">]><samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol">&b;</samlp:Response>"#.to_owned(),
        ),
        ("idp-metadata.xml", idp_metadata(IDP)),
    ];
    std::fs::create_dir_all(dir("corpus")).unwrap();
    for (name, text) in seeds {
        std::fs::write(dir("corpus").join(name), text).unwrap();
    }
}
