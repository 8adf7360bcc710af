//! The SP's outgoing messages (AuthnRequest for `saml/prepare`,
//! LogoutRequest for `saml/logout`, LogoutResponse for `saml/invalidate`)
//! and the incoming logout messages (`saml/invalidate`, `saml/complete_logout`).

use rand::RngCore;

use super::error::{describe_difference, refuse, Rule, SamlError};
use super::metadata::BINDING_POST;
use super::realm::SamlRealm;
use super::redirect::{redirect_url, RedirectMessage};
use super::response::{check_in_response_to, check_issuer, check_status};
use super::settings::SignedMessage;
use super::time::{format_instant, parse_instant};
use super::verify::check_signatures;
use super::xml::{self, escape, is, NS_ASSERTION, NS_PROTOCOL};

/// A message id: `_` and 40 hex digits (an NCName cannot start with a
/// digit), from the OS random number generator.
pub fn new_request_id() -> String {
    let mut bytes = [0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    request_id_from(bytes)
}

/// A message id from given random bytes.
pub fn request_id_from(bytes: [u8; 20]) -> String {
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("_{hex}")
}

/// Where to send the browser, and the id of the request it carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepared {
    pub redirect: String,
    pub id: String,
}

/// The NameID of a session, as kept in the token metadata.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionNameId {
    pub value: String,
    pub format: Option<String>,
    pub qualifier: Option<String>,
    pub sp_qualifier: Option<String>,
}

fn nameid_xml(n: &SessionNameId) -> String {
    let mut attrs = String::new();
    for (k, v) in [
        ("Format", &n.format),
        ("NameQualifier", &n.qualifier),
        ("SPNameQualifier", &n.sp_qualifier),
    ] {
        if let Some(v) = v {
            attrs.push_str(&format!(r#" {k}="{}""#, escape(v)));
        }
    }
    format!("<saml:NameID{attrs}>{}</saml:NameID>", escape(&n.value))
}

impl SamlRealm {
    /// `saml/prepare`: an AuthnRequest to the IdP's HTTP-Redirect SSO endpoint.
    pub fn authn_request(
        &self,
        id: &str,
        now_ms: i64,
        relay_state: Option<&str>,
    ) -> Result<Prepared, SamlError> {
        let c = &self.config;
        let Some(sso) = self.idp.sso_redirect() else {
            return refuse(
                Rule::Malformed,
                "Cannot find [{urn:oasis:names:tc:SAML:2.0:metadata}IDPSSODescriptor]/[urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect] in descriptor",
            );
        };
        let force = if c.force_authn {
            r#" ForceAuthn="true""#
        } else {
            ""
        };
        let sp_qualifier = c
            .nameid_sp_qualifier
            .as_ref()
            .map(|q| format!(r#" SPNameQualifier="{}""#, escape(q)))
            .unwrap_or_default();
        let context = if c.req_authn_context_class_ref.is_empty() {
            String::new()
        } else {
            let refs: String = c
                .req_authn_context_class_ref
                .iter()
                .map(|r| {
                    format!(
                        "<saml:AuthnContextClassRef>{}</saml:AuthnContextClassRef>",
                        escape(r)
                    )
                })
                .collect();
            format!(
                r#"<samlp:RequestedAuthnContext Comparison="exact">{refs}</samlp:RequestedAuthnContext>"#
            )
        };
        let xml = format!(
            r#"<samlp:AuthnRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" AssertionConsumerServiceURL="{acs}" ProtocolBinding="{BINDING_POST}"{force}><saml:Issuer>{issuer}</saml:Issuer><samlp:NameIDPolicy Format="{format}" AllowCreate="{create}"{sp_qualifier}/>{context}</samlp:AuthnRequest>"#,
            id = escape(id),
            now = format_instant(now_ms),
            dest = escape(&sso.location),
            acs = escape(&c.sp_acs),
            issuer = escape(&c.sp_entity_id),
            format = escape(&c.nameid_format),
            create = c.nameid_allow_create,
        );
        let signing = self
            .signing
            .as_ref()
            .filter(|_| c.signs(SignedMessage::AuthnRequest));
        Ok(Prepared {
            redirect: redirect_url(&sso.location, "SAMLRequest", &xml, relay_state, signing),
            id: id.to_owned(),
        })
    }

    /// `saml/logout`: a LogoutRequest for the session, or `None` when the
    /// IdP has no HTTP-Redirect SLO endpoint or single logout is off.
    pub fn logout_request(
        &self,
        id: &str,
        now_ms: i64,
        nameid: &SessionNameId,
        session_index: Option<&str>,
    ) -> Option<Prepared> {
        let c = &self.config;
        if !c.idp_use_single_logout {
            return None;
        }
        let slo = self.idp.slo_redirect()?;
        let session = session_index
            .map(|s| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", escape(s)))
            .unwrap_or_default();
        let xml = format!(
            r#"<samlp:LogoutRequest xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}"><saml:Issuer>{issuer}</saml:Issuer>{nameid}{session}</samlp:LogoutRequest>"#,
            id = escape(id),
            now = format_instant(now_ms),
            dest = escape(&slo.location),
            issuer = escape(&c.sp_entity_id),
            nameid = nameid_xml(nameid),
        );
        let signing = self
            .signing
            .as_ref()
            .filter(|_| c.signs(SignedMessage::LogoutRequest));
        Some(Prepared {
            redirect: redirect_url(&slo.location, "SAMLRequest", &xml, None, signing),
            id: id.to_owned(),
        })
    }

    /// `saml/invalidate`'s answer: a LogoutResponse (Success) to the IdP,
    /// or `None` when the IdP has no HTTP-Redirect SLO endpoint.
    pub fn logout_response(
        &self,
        id: &str,
        now_ms: i64,
        in_response_to: &str,
        relay_state: Option<&str>,
    ) -> Option<String> {
        let c = &self.config;
        let slo = self.idp.slo_redirect()?;
        let dest = slo.response_location.as_deref().unwrap_or(&slo.location);
        let xml = format!(
            r#"<samlp:LogoutResponse xmlns:samlp="{NS_PROTOCOL}" xmlns:saml="{NS_ASSERTION}" ID="{id}" Version="2.0" IssueInstant="{now}" Destination="{dest}" InResponseTo="{irt}"><saml:Issuer>{issuer}</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status></samlp:LogoutResponse>"#,
            id = escape(id),
            now = format_instant(now_ms),
            dest = escape(dest),
            irt = escape(in_response_to),
            issuer = escape(&c.sp_entity_id),
        );
        let signing = self
            .signing
            .as_ref()
            .filter(|_| c.signs(SignedMessage::LogoutResponse));
        Some(redirect_url(
            dest,
            "SAMLResponse",
            &xml,
            relay_state,
            signing,
        ))
    }

    /// `saml/invalidate`: an IdP's LogoutRequest as the raw query string of
    /// the redirect binding. It must be signed by the IdP (query signature),
    /// come from the IdP, be addressed to `sp.logout` and be in time.
    pub fn parse_logout_request(
        &self,
        query_string: &str,
        now_ms: i64,
    ) -> Result<IdpLogoutRequest, SamlError> {
        let c = &self.config;
        let message = RedirectMessage::parse(query_string)?;
        if message.param != "SAMLRequest" {
            return refuse(
                Rule::Xml,
                "the query carries a SAMLResponse, not a SAMLRequest",
            );
        }
        message.verify(&self.trusted)?;
        let doc = xml::parse(&message.xml)?;
        let root = doc.root_element();
        if !is(root, NS_PROTOCOL, "LogoutRequest") {
            return refuse(
                Rule::Xml,
                format!(
                    "the root element is <{}>, not a LogoutRequest",
                    root.tag_name().name()
                ),
            );
        }
        let Some(issuer) = xml::only_child(root, NS_ASSERTION, "Issuer")? else {
            return refuse(Rule::Issuer, "the LogoutRequest has no Issuer");
        };
        check_issuer(&xml::text(issuer), &c.idp_entity_id)?;
        // As Elasticsearch: the Destination is required and must be exactly
        // `sp.logout`, and a realm without `sp.logout` takes no LogoutRequest.
        let dest = root.attribute("Destination");
        let Some(expected) = c.sp_logout.as_deref() else {
            return refuse(
                Rule::Destination,
                format!(
                    "the LogoutRequest is for destination [{}] but this realm is \
                     not configured for logout",
                    dest.unwrap_or("")
                ),
            );
        };
        let Some(dest) = dest else {
            return refuse(
                Rule::Destination,
                format!("the LogoutRequest has no Destination; this realm uses [{expected}]"),
            );
        };
        if dest != expected {
            return refuse(
                Rule::Destination,
                describe_difference("the Destination", expected, dest),
            );
        }
        if let Some(end) = root.attribute("NotOnOrAfter") {
            let end = parse_instant(end).ok_or_else(|| {
                SamlError::new(Rule::Malformed, "NotOnOrAfter is not a UTC dateTime")
            })?;
            let skew = i64::try_from(c.allowed_clock_skew.as_millis()).unwrap_or(i64::MAX);
            if now_ms.saturating_sub(skew) >= end {
                return refuse(
                    Rule::Expired,
                    format!("the LogoutRequest expired at {end} (now {now_ms})"),
                );
            }
        }
        let id = root.attribute("ID").unwrap_or("").to_owned();
        if id.is_empty() {
            return refuse(Rule::Malformed, "the LogoutRequest has no ID");
        }
        let nameid = xml::only_child(root, NS_ASSERTION, "NameID")?.map(|n| SessionNameId {
            value: xml::text(n),
            format: n.attribute("Format").map(str::to_owned),
            qualifier: n.attribute("NameQualifier").map(str::to_owned),
            sp_qualifier: n.attribute("SPNameQualifier").map(str::to_owned),
        });
        let session_index = xml::only_child(root, NS_PROTOCOL, "SessionIndex")?.map(xml::text);
        Ok(IdpLogoutRequest {
            id,
            nameid,
            session_index,
            relay_state: message.relay_state,
        })
    }

    /// `saml/complete_logout` with `query_string`: the IdP's LogoutResponse
    /// over the redirect binding (query signature), answering one of `ids`,
    /// with status Success.
    pub fn check_logout_response(
        &self,
        query_string: &str,
        ids: &[String],
    ) -> Result<(), SamlError> {
        let message = RedirectMessage::parse(query_string)?;
        if message.param != "SAMLResponse" {
            return refuse(
                Rule::Xml,
                "the query carries a SAMLRequest, not a SAMLResponse",
            );
        }
        message.verify(&self.trusted)?;
        self.logout_response_rules(&message.xml, ids)
    }

    /// `saml/complete_logout` with `content`: the IdP's LogoutResponse over
    /// the POST binding (base64), whose XML signature must sign the
    /// LogoutResponse itself.
    pub fn check_logout_response_post(
        &self,
        content: &str,
        ids: &[String],
    ) -> Result<(), SamlError> {
        let text = xml::decode_base64_text(content)?;
        let doc = xml::parse(&text)?;
        let root_at = doc.root_element().range().start;
        let mut signed = false;
        for sig in check_signatures(&text, &doc, &self.trusted)? {
            sig.outcome?;
            if sig.parent_at != root_at {
                return refuse(
                    Rule::SignatureWrapping,
                    "a signature on an element that is not the LogoutResponse",
                );
            }
            signed = true;
        }
        if !signed {
            return refuse(Rule::Unsigned, "the LogoutResponse is not signed");
        }
        self.logout_response_rules(&text, ids)
    }

    fn logout_response_rules(&self, text: &str, ids: &[String]) -> Result<(), SamlError> {
        let doc = xml::parse(text)?;
        let root = doc.root_element();
        if !is(root, NS_PROTOCOL, "LogoutResponse") {
            return refuse(
                Rule::Xml,
                format!(
                    "the root element is <{}>, not a LogoutResponse",
                    root.tag_name().name()
                ),
            );
        }
        if let Some(issuer) = xml::only_child(root, NS_ASSERTION, "Issuer")? {
            check_issuer(&xml::text(issuer), &self.config.idp_entity_id)?;
        }
        check_in_response_to(
            root.attribute("InResponseTo").unwrap_or(""),
            ids,
            "the LogoutResponse",
        )?;
        check_status(root)
    }
}

/// What an IdP's LogoutRequest asks: end the sessions of this NameID (and
/// session index). Without a NameID nothing is ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpLogoutRequest {
    pub id: String,
    pub nameid: Option<SessionNameId>,
    pub session_index: Option<String>,
    pub relay_state: Option<String>,
}
