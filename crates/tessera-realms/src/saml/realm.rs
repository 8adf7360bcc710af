//! A SAML realm ready to work: its validated settings, the IdP's metadata
//! and trusted keys, and the SP's own keys.

use std::path::Path;

use super::error::SamlError;
use super::keys::{DecryptionKey, SigningKey};
use super::metadata::IdpMetadata;
use super::settings::SamlRealmConfig;
use super::verify::TrustedKeys;

/// A loaded SAML realm. Cheap to clone; rebuild it when the metadata file
/// changes.
#[derive(Debug, Clone)]
pub struct SamlRealm {
    pub config: SamlRealmConfig,
    pub idp: IdpMetadata,
    pub trusted: TrustedKeys,
    pub signing: Option<SigningKey>,
    pub decryption: Option<DecryptionKey>,
}

/// Why a realm could not be loaded: the setting (file) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("realm [{realm}]: [{key}] {message}")]
pub struct LoadError {
    pub realm: String,
    pub key: String,
    pub message: String,
}

impl SamlRealm {
    /// Builds a realm from its settings and the texts of its files (IdP
    /// metadata; PEM certificate and key pairs for signing and encryption).
    pub fn new(
        config: SamlRealmConfig,
        idp_metadata_xml: &str,
        signing_pem: Option<(&str, &str)>,
        encryption_pem: Option<(&str, &str)>,
    ) -> Result<SamlRealm, LoadError> {
        let err = |key: &str, message: String| LoadError {
            realm: config.name.clone(),
            key: key.to_owned(),
            message,
        };
        let idp = IdpMetadata::parse(idp_metadata_xml, &config.idp_entity_id)
            .map_err(|e: SamlError| err("idp.metadata.path", e.detail))?;
        let trusted = TrustedKeys::from_certificates(&idp.signing_certificates)
            .map_err(|e| err("idp.metadata.path", e.detail))?;
        let signing = signing_pem
            .map(|(c, k)| SigningKey::from_pem(c, k))
            .transpose()
            .map_err(|m| err("signing.key", m))?;
        let decryption = encryption_pem
            .map(|(c, k)| DecryptionKey::from_pem(c, k))
            .transpose()
            .map_err(|m| err("encryption.key", m))?;
        Ok(SamlRealm {
            config,
            idp,
            trusted,
            signing,
            decryption,
        })
    }

    /// Reads the realm's files, paths relative to `base_dir` (the config
    /// file's folder), and builds it.
    pub fn load(config: SamlRealmConfig, base_dir: &Path) -> Result<SamlRealm, LoadError> {
        let read = |key: &str, path: &Path| {
            let full = base_dir.join(path);
            std::fs::read_to_string(&full).map_err(|e| LoadError {
                realm: config.name.clone(),
                key: key.to_owned(),
                message: format!("cannot read [{}]: {e}", full.display()),
            })
        };
        let metadata = read("idp.metadata.path", &config.idp_metadata_path)?;
        let signing = match &config.signing {
            Some(f) => Some((
                read("signing.certificate", &f.certificate)?,
                read("signing.key", &f.key)?,
            )),
            None => None,
        };
        let encryption = match &config.encryption {
            Some(f) => Some((
                read("encryption.certificate", &f.certificate)?,
                read("encryption.key", &f.key)?,
            )),
            None => None,
        };
        SamlRealm::new(
            config.clone(),
            &metadata,
            signing.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
            encryption.as_ref().map(|(c, k)| (c.as_str(), k.as_str())),
        )
    }

    /// The SP metadata document of this realm.
    pub fn sp_metadata(&self) -> String {
        super::metadata::sp_metadata(
            &self.config,
            self.signing.as_ref().map(|k| k.certificate.as_slice()),
            self.decryption.as_ref().map(|k| k.certificate.as_slice()),
        )
    }
}
