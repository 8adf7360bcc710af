//! The rules on the one assertion (reference §1.4, items 5 and 8 to 11),
//! and the identity it proves.

use std::collections::BTreeMap;

use roxmltree::Node;

use super::error::{describe_difference, refuse, Rule, SamlError};
use super::realm::SamlRealm;
use super::response::{check_in_response_to, check_issuer, Validation};
use super::settings::{AttributeRule, AttributeSource, NAMEID_PERSISTENT};
use super::time::parse_instant;
use super::xml::{self, NS_ASSERTION};

const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";

/// A SAML attribute as received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlAttribute {
    pub name: String,
    pub friendly_name: Option<String>,
    pub values: Vec<String>,
}

/// Who the IdP says the user is: what a realm hands on to be mapped to
/// roles and stored with the tokens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SamlIdentity {
    pub principal: String,
    pub nameid: Option<String>,
    pub nameid_format: Option<String>,
    pub nameid_qualifier: Option<String>,
    pub nameid_sp_qualifier: Option<String>,
    pub groups: Vec<String>,
    pub name: Option<String>,
    pub mail: Option<String>,
    pub dn: Option<String>,
    pub attributes: Vec<SamlAttribute>,
    pub session_index: Option<String>,
    pub assertion_id: String,
    /// When the assertion stops being usable (ms since the epoch): the
    /// earliest `NotOnOrAfter` of its conditions and bearer confirmation.
    /// Keep its id at least this long (plus skew) against replay.
    pub not_on_or_after: i64,
    /// The request this answers; `None` for an IdP-initiated login.
    pub in_response_to: Option<String>,
}

impl SamlIdentity {
    /// Elasticsearch's user metadata from attributes: `saml(<Name>)` and
    /// `saml_<FriendlyName>` (`saml_nameid`/`saml_nameid_format` are the
    /// caller's to add).
    pub fn attribute_metadata(&self) -> BTreeMap<String, Vec<String>> {
        let mut out = BTreeMap::new();
        for a in &self.attributes {
            out.insert(format!("saml({})", a.name), a.values.clone());
            if let Some(f) = &a.friendly_name {
                out.insert(format!("saml_{f}"), a.values.clone());
            }
        }
        out
    }
}

struct NameId {
    value: String,
    format: Option<String>,
    qualifier: Option<String>,
    sp_qualifier: Option<String>,
}

/// Checks the assertion against the realm and reads the identity.
pub(crate) fn check_assertion(
    realm: &SamlRealm,
    assertion: Node<'_, '_>,
    v: Validation<'_>,
) -> Result<SamlIdentity, SamlError> {
    let config = &realm.config;
    let skew = i64::try_from(config.allowed_clock_skew.as_millis()).unwrap_or(i64::MAX);
    let assertion_id = assertion.attribute("ID").unwrap_or("").to_owned();
    if assertion_id.is_empty() {
        return refuse(Rule::Malformed, "the assertion has no ID");
    }
    // 5. The assertion's Issuer is required and must be the IdP.
    let Some(issuer) = xml::only_child(assertion, NS_ASSERTION, "Issuer")? else {
        return refuse(Rule::Issuer, "the assertion has no Issuer");
    };
    check_issuer(&xml::text(issuer), &config.idp_entity_id)?;

    // 8. Conditions: every AudienceRestriction names us; the time window.
    let mut not_on_or_after = i64::MAX;
    if let Some(conditions) = xml::only_child(assertion, NS_ASSERTION, "Conditions")? {
        for restriction in xml::children(conditions, NS_ASSERTION, "AudienceRestriction") {
            let audiences: Vec<String> = xml::children(restriction, NS_ASSERTION, "Audience")
                .map(xml::text)
                .collect();
            if !audiences.contains(&config.sp_entity_id) {
                let closest = audiences.first().map(String::as_str).unwrap_or("");
                return refuse(
                    Rule::Audience,
                    format!(
                        "the audiences {audiences:?} do not include [{}]; {}",
                        config.sp_entity_id,
                        describe_difference("the first audience", &config.sp_entity_id, closest)
                    ),
                );
            }
        }
        check_window(
            conditions,
            "the assertion's conditions",
            v.now_ms,
            skew,
            &mut not_on_or_after,
        )?;
    }

    // 9. Subject: exactly one bearer confirmation with data.
    let Some(subject) = xml::only_child(assertion, NS_ASSERTION, "Subject")? else {
        return refuse(Rule::SubjectConfirmation, "the assertion has no Subject");
    };
    let bearers: Vec<Node<'_, '_>> = xml::children(subject, NS_ASSERTION, "SubjectConfirmation")
        .filter(|c| c.attribute("Method") == Some(BEARER))
        .collect();
    let [bearer] = bearers.as_slice() else {
        return refuse(
            Rule::SubjectConfirmation,
            format!(
                "{} bearer subject confirmations; exactly one is required",
                bearers.len()
            ),
        );
    };
    let Some(data) = xml::only_child(*bearer, NS_ASSERTION, "SubjectConfirmationData")? else {
        return refuse(
            Rule::SubjectConfirmation,
            "the bearer confirmation has no SubjectConfirmationData",
        );
    };
    match data.attribute("Recipient") {
        Some(r) if r == config.sp_acs => {}
        Some(r) => {
            return refuse(
                Rule::Recipient,
                describe_difference("the Recipient", &config.sp_acs, r),
            )
        }
        None => return refuse(Rule::Recipient, "the bearer confirmation has no Recipient"),
    }
    if data.attribute("NotOnOrAfter").is_none() {
        return refuse(
            Rule::SubjectConfirmation,
            "the bearer confirmation has no NotOnOrAfter",
        );
    }
    check_window(
        data,
        "the bearer confirmation",
        v.now_ms,
        skew,
        &mut not_on_or_after,
    )?;
    let in_response_to = data
        .attribute("InResponseTo")
        .filter(|irt| !irt.trim().is_empty())
        .map(str::to_owned);
    if let Some(irt) = &in_response_to {
        check_in_response_to(irt, v.ids, "the assertion")?;
    }
    let nameid = xml::only_child(subject, NS_ASSERTION, "NameID")?.map(|n| NameId {
        value: xml::text(n),
        format: n.attribute("Format").map(str::to_owned),
        qualifier: n.attribute("NameQualifier").map(str::to_owned),
        sp_qualifier: n.attribute("SPNameQualifier").map(str::to_owned),
    });

    // 10. Exactly one AuthnStatement; its session window; the context class.
    let statements: Vec<_> = xml::children(assertion, NS_ASSERTION, "AuthnStatement").collect();
    let [statement] = statements.as_slice() else {
        return refuse(
            Rule::AuthnStatement,
            format!(
                "{} AuthnStatements; exactly one is required",
                statements.len()
            ),
        );
    };
    if let Some(end) = statement.attribute("SessionNotOnOrAfter") {
        let end = instant(end, "SessionNotOnOrAfter")?;
        if v.now_ms.saturating_sub(skew) >= end {
            return refuse(
                Rule::Expired,
                format!(
                    "the session ended at {end} (now {}, skew {skew} ms)",
                    v.now_ms
                ),
            );
        }
    }
    if !config.req_authn_context_class_ref.is_empty() {
        let class = statement
            .descendants()
            .find(|n| xml::is(*n, NS_ASSERTION, "AuthnContextClassRef"))
            .map(xml::text)
            .unwrap_or_default();
        if !config.req_authn_context_class_ref.contains(&class) {
            return refuse(
                Rule::AuthnStatement,
                format!(
                    "the authentication context [{class}] is not one of {:?}",
                    config.req_authn_context_class_ref
                ),
            );
        }
    }
    let session_index = statement.attribute("SessionIndex").map(str::to_owned);

    // 11. Attributes (encrypted ones are skipped), then the user's properties.
    let attributes: Vec<SamlAttribute> =
        xml::children(assertion, NS_ASSERTION, "AttributeStatement")
            .flat_map(|s| xml::children(s, NS_ASSERTION, "Attribute"))
            .map(|a| SamlAttribute {
                name: a.attribute("Name").unwrap_or("").to_owned(),
                friendly_name: a.attribute("FriendlyName").map(str::to_owned),
                values: xml::children(a, NS_ASSERTION, "AttributeValue")
                    .map(xml::text)
                    .collect(),
            })
            .collect();
    if attributes.is_empty() && nameid.is_none() {
        return refuse(
            Rule::Principal,
            "the assertion has neither a NameID nor attributes",
        );
    }
    let read = |rule: &AttributeRule| values(rule, nameid.as_ref(), &attributes);
    let principal = read(&config.principal).into_iter().next();
    let Some(principal) = principal.filter(|p| !p.is_empty()) else {
        let names: Vec<&str> = attributes.iter().map(|a| a.name.as_str()).collect();
        let (id, format) = nameid.as_ref().map_or(("", ""), |n| {
            (n.value.as_str(), n.format.as_deref().unwrap_or(""))
        });
        return refuse(
            Rule::Principal,
            format!(
                "no principal from [{:?}]: the attributes are {names:?}, the NameID [{id}] has format [{format}]",
                config.principal.source
            ),
        );
    };
    let mut groups: Vec<String> = config.groups.as_ref().map(&read).unwrap_or_default();
    if let Some(d) = &config.groups_delimiter {
        groups = groups
            .iter()
            .flat_map(|g| g.split(d.as_str()).map(str::to_owned).collect::<Vec<_>>())
            .collect();
    }
    let first = |r: &Option<AttributeRule>| r.as_ref().and_then(|r| read(r).into_iter().next());
    Ok(SamlIdentity {
        principal,
        name: first(&config.name_attribute),
        mail: first(&config.mail),
        dn: first(&config.dn),
        groups,
        nameid_format: nameid.as_ref().and_then(|n| n.format.clone()),
        nameid_qualifier: nameid.as_ref().and_then(|n| n.qualifier.clone()),
        nameid_sp_qualifier: nameid.as_ref().and_then(|n| n.sp_qualifier.clone()),
        nameid: nameid.map(|n| n.value),
        attributes,
        session_index,
        assertion_id,
        not_on_or_after,
        in_response_to,
    })
}

fn instant(text: &str, what: &str) -> Result<i64, SamlError> {
    parse_instant(text).ok_or_else(|| {
        SamlError::new(
            Rule::Malformed,
            format!("{what} [{text}] is not a UTC dateTime"),
        )
    })
}

/// `NotBefore <= now + skew` and `now - skew < NotOnOrAfter`.
fn check_window(
    node: Node<'_, '_>,
    what: &str,
    now: i64,
    skew: i64,
    end: &mut i64,
) -> Result<(), SamlError> {
    if let Some(nb) = node.attribute("NotBefore") {
        let nb = instant(nb, "NotBefore")?;
        if nb > now.saturating_add(skew) {
            return refuse(
                Rule::NotYetValid,
                format!("{what} are not valid before {nb} (now {now}, skew {skew} ms)"),
            );
        }
    }
    if let Some(na) = node.attribute("NotOnOrAfter") {
        let na = instant(na, "NotOnOrAfter")?;
        if now.saturating_sub(skew) >= na {
            return refuse(
                Rule::Expired,
                format!("{what} expired at {na} (now {now}, skew {skew} ms)"),
            );
        }
        *end = (*end).min(na);
    }
    Ok(())
}

/// The values a rule reads, after its pattern (values that do not match are dropped).
fn values(
    rule: &AttributeRule,
    nameid: Option<&NameId>,
    attributes: &[SamlAttribute],
) -> Vec<String> {
    let raw: Vec<String> = match &rule.source {
        AttributeSource::NameId { persistent_only } => nameid
            .filter(|n| !persistent_only || n.format.as_deref() == Some(NAMEID_PERSISTENT))
            .map(|n| vec![n.value.clone()])
            .unwrap_or_default(),
        AttributeSource::Attribute(name) => attributes
            .iter()
            .filter(|a| a.name == *name || a.friendly_name.as_deref() == Some(name))
            .flat_map(|a| a.values.iter().cloned())
            .collect(),
    };
    match &rule.pattern {
        None => raw,
        Some(re) => raw
            .iter()
            .filter_map(|v| {
                re.captures(v)
                    .and_then(|c| c.get(1))
                    .map(|m| m.as_str().to_owned())
            })
            .collect(),
    }
}
