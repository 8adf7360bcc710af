//! IdP metadata in, SP metadata out.

use base64::Engine;
use roxmltree::Node;

use super::error::{refuse, Rule, SamlError};
use super::settings::SamlRealmConfig;
use super::xml::{self, escape, is, NS_DSIG, NS_METADATA};

/// The HTTP-Redirect binding.
pub const BINDING_REDIRECT: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
/// The HTTP-POST binding.
pub const BINDING_POST: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// An endpoint of the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub binding: String,
    pub location: String,
    /// Where responses go, when it differs from `location` (SLO only).
    pub response_location: Option<String>,
}

/// What Tessera needs from an IdP's metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdpMetadata {
    pub entity_id: String,
    /// DER certificates of the IdP's signing keys (`use="signing"` or no use).
    pub signing_certificates: Vec<Vec<u8>>,
    pub sso: Vec<Endpoint>,
    pub slo: Vec<Endpoint>,
}

impl IdpMetadata {
    /// Parses metadata text and takes the `IDPSSODescriptor` of the entity
    /// `entity_id` (the document may be one `EntityDescriptor` or an
    /// `EntitiesDescriptor`).
    pub fn parse(text: &str, entity_id: &str) -> Result<IdpMetadata, SamlError> {
        let doc = xml::parse(text)?;
        let root = doc.root_element();
        let entities: Vec<Node<'_, '_>> = if is(root, NS_METADATA, "EntityDescriptor") {
            vec![root]
        } else if is(root, NS_METADATA, "EntitiesDescriptor") {
            root.descendants()
                .filter(|n| is(*n, NS_METADATA, "EntityDescriptor"))
                .collect()
        } else {
            return refuse(
                Rule::Malformed,
                "the metadata's root is not an EntityDescriptor",
            );
        };
        let ids: Vec<&str> = entities
            .iter()
            .filter_map(|e| e.attribute("entityID"))
            .collect();
        let Some(entity) = entities
            .iter()
            .find(|e| e.attribute("entityID") == Some(entity_id))
        else {
            return refuse(
                Rule::Issuer,
                format!("the metadata has no entity [{entity_id}]; it describes {ids:?}"),
            );
        };
        let Some(idp) = xml::children(*entity, NS_METADATA, "IDPSSODescriptor").next() else {
            return refuse(
                Rule::Malformed,
                format!("entity [{entity_id}] has no IDPSSODescriptor"),
            );
        };
        let mut signing_certificates = Vec::new();
        for kd in xml::children(idp, NS_METADATA, "KeyDescriptor") {
            if !matches!(kd.attribute("use"), None | Some("signing")) {
                continue;
            }
            for cert in kd
                .descendants()
                .filter(|n| is(*n, NS_DSIG, "X509Certificate"))
            {
                let b64: String = xml::text(cert).split_whitespace().collect();
                let der = base64::engine::general_purpose::STANDARD
                    .decode(b64)
                    .map_err(|e| {
                        SamlError::new(
                            Rule::Malformed,
                            format!("a signing certificate is not base64: {e}"),
                        )
                    })?;
                signing_certificates.push(der);
            }
        }
        if signing_certificates.is_empty() {
            return refuse(
                Rule::Malformed,
                format!("entity [{entity_id}] lists no signing certificate"),
            );
        }
        let endpoints = |local: &str| -> Vec<Endpoint> {
            xml::children(idp, NS_METADATA, local)
                .filter_map(|n| {
                    Some(Endpoint {
                        binding: n.attribute("Binding")?.to_owned(),
                        location: n.attribute("Location")?.to_owned(),
                        response_location: n.attribute("ResponseLocation").map(str::to_owned),
                    })
                })
                .collect()
        };
        Ok(IdpMetadata {
            entity_id: entity_id.to_owned(),
            signing_certificates,
            sso: endpoints("SingleSignOnService"),
            slo: endpoints("SingleLogoutService"),
        })
    }

    /// The SSO endpoint for the HTTP-Redirect binding.
    pub fn sso_redirect(&self) -> Option<&Endpoint> {
        self.sso.iter().find(|e| e.binding == BINDING_REDIRECT)
    }

    /// The SLO endpoint for the HTTP-Redirect binding.
    pub fn slo_redirect(&self) -> Option<&Endpoint> {
        self.slo.iter().find(|e| e.binding == BINDING_REDIRECT)
    }
}

/// The SP's metadata as `GET /_security/saml/metadata/{realm}` returns it.
/// `signing_cert` and `encryption_cert` are DER certificates.
pub fn sp_metadata(
    config: &SamlRealmConfig,
    signing_cert: Option<&[u8]>,
    encryption_cert: Option<&[u8]>,
) -> String {
    let b64 = |der: &[u8]| base64::engine::general_purpose::STANDARD.encode(der);
    let key = |usage: &str, der: &[u8]| {
        format!(
            r#"<md:KeyDescriptor use="{usage}"><ds:KeyInfo xmlns:ds="{NS_DSIG}"><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"#,
            b64(der)
        )
    };
    let mut out = String::new();
    out.push_str(r#"<?xml version="1.0" encoding="UTF-8" standalone="no"?>"#);
    out.push_str(&format!(
        r#"<md:EntityDescriptor xmlns:md="{NS_METADATA}" entityID="{}">"#,
        escape(&config.sp_entity_id)
    ));
    out.push_str(&format!(
        r#"<md:SPSSODescriptor AuthnRequestsSigned="{}" WantAssertionsSigned="true" protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol">"#,
        config.signs(super::settings::SignedMessage::AuthnRequest)
    ));
    if let Some(der) = signing_cert {
        out.push_str(&key("signing", der));
    }
    if let Some(der) = encryption_cert {
        out.push_str(&key("encryption", der));
    }
    if let Some(logout) = &config.sp_logout {
        out.push_str(&format!(
            r#"<md:SingleLogoutService Binding="{BINDING_REDIRECT}" Location="{}"/>"#,
            escape(logout)
        ));
    }
    out.push_str(&format!(
        r#"<md:NameIDFormat>{}</md:NameIDFormat>"#,
        escape(&config.nameid_format)
    ));
    out.push_str(&format!(
        r#"<md:AssertionConsumerService Binding="{BINDING_POST}" Location="{}" index="1" isDefault="true"/>"#,
        escape(&config.sp_acs)
    ));
    out.push_str("</md:SPSSODescriptor></md:EntityDescriptor>");
    out
}
