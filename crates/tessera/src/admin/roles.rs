//! `tessera role …` and `tessera role-mapping …`: the documents of
//! `/_security/role` and `/_security/role_mapping`, checked by the same
//! domain rules as the API.

use anyhow::{anyhow, bail, Context};
use clap::Subcommand;
use serde_json::{json, Map, Value};
use tessera_domain::privilege::{self, built_in_role, RoleDescriptor, KNOWN_CLUSTER_PRIVILEGES};
use tessera_domain::role_mapping::RoleMapping;

use super::StoreArgs;

const ROLE_EXAMPLES: &str = "\
Examples:
  tessera role put viewer '{\"cluster\":[\"monitor\"],\"indices\":[{\"names\":[\"logs-*\"],\"privileges\":[\"read\"]}]}'
  tessera role put viewer - < viewer.json      # the document from stdin
  tessera role list
  tessera role delete viewer";

const MAPPING_EXAMPLES: &str = "\
Examples:
  tessera role-mapping put saml-admins '{\"roles\":[\"superuser\"],\"enabled\":true,\"rules\":{\"field\":{\"groups\":\"admins\"}}}'
  tessera role-mapping list
  tessera role-mapping delete saml-admins";

#[derive(Debug, Subcommand)]
#[command(after_help = ROLE_EXAMPLES)]
pub enum RoleCommand {
    /// Create or replace a role from its JSON document (as the body of
    /// PUT /_security/role/NAME).
    #[command(after_help = ROLE_EXAMPLES)]
    Put {
        name: String,
        /// The role's JSON document, or `-` to read it from stdin.
        document: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List the stored roles (an object by name; built-in roles excluded).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a role.
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Subcommand)]
#[command(after_help = MAPPING_EXAMPLES)]
pub enum RoleMappingCommand {
    /// Create or replace a role mapping from its JSON document (as the
    /// body of PUT /_security/role_mapping/NAME).
    #[command(after_help = MAPPING_EXAMPLES)]
    Put {
        name: String,
        /// The mapping's JSON document, or `-` to read it from stdin.
        document: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List every role mapping (an object by name).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a role mapping.
    Delete {
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The document given on the command line, or stdin for `-`.
fn document(text: &str) -> anyhow::Result<Value> {
    let text = if text == "-" {
        std::io::read_to_string(std::io::stdin()).context("cannot read the document from stdin")?
    } else {
        text.to_owned()
    };
    serde_json::from_str(&text).context("the document is not valid JSON")
}

/// The API's checks on a role (`PUT /_security/role/NAME`).
fn parse_role(name: &str, doc: Value) -> anyhow::Result<RoleDescriptor> {
    privilege::validate_role_name(name).map_err(|e| anyhow!(e))?;
    let role: RoleDescriptor =
        serde_json::from_value(doc).map_err(|e| anyhow!("invalid role document: {e}"))?;
    if let Some(p) = role.unknown_cluster_privilege() {
        bail!(
            "unknown cluster privilege [{p}]; a privilege must be one of [{}]",
            KNOWN_CLUSTER_PRIVILEGES.join(",")
        );
    }
    if built_in_role(name).is_some() {
        bail!("role [{name}] is reserved and may not be used");
    }
    Ok(role.normalized())
}

pub async fn run_role(command: RoleCommand) -> anyhow::Result<Value> {
    // Refused before the store is opened.
    let role = match &command {
        RoleCommand::Put {
            name, document: d, ..
        } => Some(parse_role(name, document(d)?)?),
        _ => None,
    };
    let (RoleCommand::Put { store, .. }
    | RoleCommand::List { store }
    | RoleCommand::Delete { store, .. }) = &command;
    let (_, store) = store.open().await?;
    Ok(match (command, role) {
        (RoleCommand::Put { name, .. }, Some(role)) => {
            let created = store.put_role(&name, &role).await?;
            json!({ "role": { "created": created } })
        }
        (RoleCommand::Delete { name, .. }, _) => {
            if !store.delete_role(&name).await? {
                bail!("role [{name}] does not exist");
            }
            json!({ "found": true })
        }
        _ => {
            let mut out = Map::new();
            for (name, role) in store.list_roles().await? {
                out.insert(name, serde_json::to_value(&role)?);
            }
            Value::Object(out)
        }
    })
}

pub async fn run_mapping(command: RoleMappingCommand) -> anyhow::Result<Value> {
    let mapping = match &command {
        RoleMappingCommand::Put {
            name, document: d, ..
        } => Some(
            RoleMapping::parse(name, &document(d)?)
                .map_err(|e| anyhow!("invalid role mapping: {e}"))?,
        ),
        _ => None,
    };
    let (RoleMappingCommand::Put { store, .. }
    | RoleMappingCommand::List { store }
    | RoleMappingCommand::Delete { store, .. }) = &command;
    let (_, store) = store.open().await?;
    Ok(match (command, mapping) {
        (RoleMappingCommand::Put { name, .. }, Some(mapping)) => {
            let created = store.put_role_mapping(&name, &mapping).await?;
            json!({ "role_mapping": { "created": created } })
        }
        (RoleMappingCommand::Delete { name, .. }, _) => {
            if !store.delete_role_mapping(&name).await? {
                bail!("role mapping [{name}] does not exist");
            }
            json!({ "found": true })
        }
        _ => {
            let mut out = Map::new();
            for (name, mapping) in store.list_role_mappings().await? {
                out.insert(name, serde_json::to_value(&mapping)?);
            }
            Value::Object(out)
        }
    })
}
