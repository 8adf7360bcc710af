//! `tessera role …` and `tessera role-mapping …`: the documents of
//! `/_security/role` and `/_security/role_mapping`, checked by the same
//! domain rules as the API.

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};
use tessera_domain::privilege::{self, built_in_role, RoleDescriptor, KNOWN_CLUSTER_PRIVILEGES};
use tessera_domain::role_mapping::RoleMapping;
use tessera_store::{Store, StoreResult};

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
    Put(PutArgs),
    /// List the stored roles (an object by name; built-in roles excluded).
    List(ListArgs),
    /// Delete a role.
    Delete(DeleteArgs),
}

#[derive(Debug, Subcommand)]
#[command(after_help = MAPPING_EXAMPLES)]
pub enum RoleMappingCommand {
    /// Create or replace a role mapping from its JSON document (as the
    /// body of PUT /_security/role_mapping/NAME).
    #[command(after_help = MAPPING_EXAMPLES)]
    Put(PutArgs),
    /// List every role mapping (an object by name).
    List(ListArgs),
    /// Delete a role mapping.
    Delete(DeleteArgs),
}

// The arguments of `put`, `list` and `delete`, the same for roles and role
// mappings (no doc comments: they would replace the commands' own help).
#[derive(Debug, Args)]
pub struct PutArgs {
    name: String,
    /// The JSON document, or `-` to read it from stdin.
    document: String,
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    store: StoreArgs,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    name: String,
    #[command(flatten)]
    store: StoreArgs,
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

/// What `put`, `list` and `delete` do the same way for roles and role
/// mappings; what differs is the document's checks and the store's calls.
trait Document: serde::Serialize + Sized {
    /// The document's name in messages (`role [NAME] does not exist`).
    const KIND: &'static str;
    /// The key of `put`'s answer (`{"role": {"created": true}}`).
    const PUT_KEY: &'static str;
    /// The API's checks on a document put under `name`.
    fn parse(name: &str, doc: Value) -> anyhow::Result<Self>;
    async fn put(store: &dyn Store, name: &str, doc: &Self) -> StoreResult<bool>;
    async fn delete(store: &dyn Store, name: &str) -> StoreResult<bool>;
    async fn list(store: &dyn Store) -> StoreResult<Vec<(String, Self)>>;
}

impl Document for RoleDescriptor {
    const KIND: &'static str = "role";
    const PUT_KEY: &'static str = "role";

    /// The checks of `PUT /_security/role/NAME`.
    fn parse(name: &str, doc: Value) -> anyhow::Result<Self> {
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

    async fn put(store: &dyn Store, name: &str, doc: &Self) -> StoreResult<bool> {
        store.put_role(name, doc).await
    }

    async fn delete(store: &dyn Store, name: &str) -> StoreResult<bool> {
        store.delete_role(name).await
    }

    async fn list(store: &dyn Store) -> StoreResult<Vec<(String, Self)>> {
        store.list_roles().await
    }
}

impl Document for RoleMapping {
    const KIND: &'static str = "role mapping";
    const PUT_KEY: &'static str = "role_mapping";

    /// The checks of `PUT /_security/role_mapping/NAME`.
    fn parse(name: &str, doc: Value) -> anyhow::Result<Self> {
        RoleMapping::parse(name, &doc).map_err(|e| anyhow!("invalid role mapping: {e}"))
    }

    async fn put(store: &dyn Store, name: &str, doc: &Self) -> StoreResult<bool> {
        store.put_role_mapping(name, doc).await
    }

    async fn delete(store: &dyn Store, name: &str) -> StoreResult<bool> {
        store.delete_role_mapping(name).await
    }

    async fn list(store: &dyn Store) -> StoreResult<Vec<(String, Self)>> {
        store.list_role_mappings().await
    }
}

/// `put`, `list` or `delete`, the same for roles and role mappings.
enum Op {
    Put(PutArgs),
    List(ListArgs),
    Delete(DeleteArgs),
}

async fn run<T: Document>(op: Op) -> anyhow::Result<Value> {
    // Refused before the store is opened.
    let (store, doc) = match &op {
        Op::Put(a) => (&a.store, Some(T::parse(&a.name, document(&a.document)?)?)),
        Op::List(ListArgs { store }) | Op::Delete(DeleteArgs { store, .. }) => (store, None),
    };
    let (_, store) = store.open().await?;
    Ok(match (op, doc) {
        (Op::Put(a), Some(doc)) => {
            let created = T::put(&*store, &a.name, &doc).await?;
            json!({ T::PUT_KEY: { "created": created } })
        }
        (Op::Delete(a), _) => {
            if !T::delete(&*store, &a.name).await? {
                bail!("{} [{}] does not exist", T::KIND, a.name);
            }
            json!({ "found": true })
        }
        _ => {
            let mut out = Map::new();
            for (name, doc) in T::list(&*store).await? {
                out.insert(name, serde_json::to_value(&doc)?);
            }
            Value::Object(out)
        }
    })
}

pub async fn run_role(command: RoleCommand) -> anyhow::Result<Value> {
    run::<RoleDescriptor>(match command {
        RoleCommand::Put(a) => Op::Put(a),
        RoleCommand::List(a) => Op::List(a),
        RoleCommand::Delete(a) => Op::Delete(a),
    })
    .await
}

pub async fn run_mapping(command: RoleMappingCommand) -> anyhow::Result<Value> {
    run::<RoleMapping>(match command {
        RoleMappingCommand::Put(a) => Op::Put(a),
        RoleMappingCommand::List(a) => Op::List(a),
        RoleMappingCommand::Delete(a) => Op::Delete(a),
    })
    .await
}
