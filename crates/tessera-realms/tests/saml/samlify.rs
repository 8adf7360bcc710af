//! Against a real third-party IdP: samlify (npm, `tests/idp/saml`), started
//! here on a free port. The test plays the dashboard: prepare, follow the
//! redirect to the IdP, post its login form, take the `SAMLResponse` from
//! the auto-post form, and hand it to the verifier.
//!
//! Needs `node` and `npm ci` in `tests/idp/saml` (`.ci/run` does it). When
//! they are missing the test says so and passes, except under `CI=true`,
//! where it fails.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use tessera_realms::saml::requests::new_request_id;
use tessera_realms::saml::{
    process_response, Rule, SamlError, SamlIdentity, SamlRealm, SamlRealmSettings, Validation,
};

use crate::support::{data, SETTINGS};

const ENTITY: &str = "https://samlify.example/";

fn idp_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/idp/saml")
}

/// The IdP process, killed when dropped.
struct Idp {
    child: Child,
    base: String,
}

impl Drop for Idp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the IdP, or says why it cannot (`Err`).
fn start_idp(sp_metadata: &std::path::Path, encrypt: bool) -> Result<Idp, String> {
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

fn now_ms() -> i64 {
    let d = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(d.as_millis()).unwrap()
}

/// The value of the hidden input `name` in an HTML form.
fn input(html: &str, name: &str) -> String {
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

/// A login through the IdP: the realm (built from the IdP's own metadata),
/// the `SAMLResponse` it posted, and the id of the request it answers; or
/// `None` when the IdP cannot run here (and CI is not set).
fn login(encrypt: bool) -> Option<(SamlRealm, String, String)> {
    let settings = SETTINGS.replace("https://idp.example.org/", ENTITY);
    let config = SamlRealmSettings::from_toml(&settings)
        .unwrap()
        .validate("saml1")
        .unwrap();
    let (enc_cert, enc_key) = (data("sp-encryption.crt"), data("sp-encryption.key"));
    let encryption = encrypt.then_some((enc_cert.as_str(), enc_key.as_str()));
    // The SP metadata the IdP is configured with is the one Tessera serves.
    let bootstrap = SamlRealm::new(
        config.clone(),
        &crate::support::idp_metadata(ENTITY),
        None,
        encryption,
    )
    .unwrap();
    let sp_metadata = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(sp_metadata.path(), bootstrap.sp_metadata()).unwrap();

    let idp = match start_idp(sp_metadata.path(), encrypt) {
        Ok(idp) => idp,
        Err(why) => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "the samlify IdP is required under CI=true: {why}"
            );
            eprintln!("SKIPPED: the samlify IdP cannot run here: {why}");
            return None;
        }
    };
    let http = reqwest::blocking::Client::new();
    let metadata = http
        .get(format!("{}/metadata", idp.base))
        .send()
        .unwrap()
        .text()
        .unwrap();
    let realm =
        SamlRealm::new(config, &metadata, None, encryption).expect("samlify's metadata loads");
    assert_eq!(realm.trusted.fingerprints().len(), 1);

    // prepare → the IdP's login form → the auto-post form.
    let id = new_request_id();
    let prepared = realm
        .authn_request(&id, now_ms(), Some("after-login"))
        .unwrap();
    assert!(prepared
        .redirect
        .starts_with(&format!("{}/sso?SAMLRequest=", idp.base)));
    let form = http.get(&prepared.redirect).send().unwrap();
    assert_eq!(form.status(), 200);
    let form = form.text().unwrap();
    assert_eq!(input(&form, "request_id"), id);
    let posted = http
        .post(format!("{}/login", idp.base))
        .form(&[
            ("username", "alice"),
            ("request_id", &input(&form, "request_id")),
            ("RelayState", &input(&form, "RelayState")),
        ])
        .send()
        .unwrap()
        .text()
        .unwrap();
    assert!(posted.contains(r#"action="https://dashboard.example.org/api/security/saml/callback""#));
    assert_eq!(input(&posted, "RelayState"), "after-login");
    Some((realm, input(&posted, "SAMLResponse"), id))
}

/// The realm's verdict on `content` (base64) now, for a caller that sent `ids`.
fn process(realm: &SamlRealm, content: &str, ids: &[String]) -> Result<SamlIdentity, SamlError> {
    process_response(
        realm,
        content,
        Validation {
            ids,
            now_ms: now_ms(),
        },
    )
}

fn decode(content: &str) -> String {
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(content)
            .unwrap(),
    )
    .unwrap()
}

#[test]
fn a_samlify_response_is_accepted_and_a_changed_byte_refused() {
    let Some((realm, content, id)) = login(false) else {
        return;
    };
    let ids = vec![id.clone()];
    let identity = process(&realm, &content, &ids).expect("the samlify Response is accepted");
    assert_eq!(identity.principal, "alice-persistent-id");
    assert_eq!(identity.groups, ["admins"]);
    assert_eq!(identity.mail.as_deref(), Some("alice@example.org"));
    assert_eq!(identity.in_response_to.as_deref(), Some(id.as_str()));
    assert!(identity.session_index.is_some());

    // One byte of the NameID changed: the signature no longer verifies.
    let xml = decode(&content);
    assert_eq!(xml.matches(">alice-persistent-id<").count(), 1, "{xml}");
    let tampered = xml.replace(">alice-persistent-id<", ">alicf-persistent-id<");
    let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
    let e = process(&realm, &tampered, &ids).unwrap_err();
    assert_eq!(e.rule, Rule::Signature, "{e}");

    // The same Response to a caller that did not send the request.
    let e = process(&realm, &content, &[]).unwrap_err();
    assert_eq!(e.rule, Rule::InResponseTo, "{e}");
    assert_eq!(e.unsolicited_in_response_to.as_deref(), Some(id.as_str()));
}

#[test]
fn a_samlify_encrypted_assertion_is_decrypted_and_accepted() {
    let Some((realm, content, id)) = login(true) else {
        return;
    };
    let xml = decode(&content);
    assert!(
        xml.contains("EncryptedAssertion") && !xml.contains("alice-persistent-id"),
        "{xml}"
    );
    let ids = vec![id];
    let identity =
        process(&realm, &content, &ids).expect("the encrypted samlify Response is accepted");
    assert_eq!(identity.principal, "alice-persistent-id");

    // Without the SP's key it cannot be read.
    let mut keyless = realm.clone();
    keyless.decryption = None;
    let e = process(&keyless, &content, &ids).unwrap_err();
    assert_eq!(e.rule, Rule::Decryption, "{e}");
}
