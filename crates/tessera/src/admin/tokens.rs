//! `tessera token invalidate` and `tessera api-key …`: the store methods
//! behind `DELETE /_security/oauth2/token` (by user or realm) and
//! `/_security/api_key`. A running server refuses what they invalidate at
//! once.

use anyhow::bail;
use clap::{ArgGroup, Args, Subcommand};
use serde_json::{json, Value};
use tessera_domain::api_key::ApiKeyRecord;
use tessera_store::{ApiKeyFilter, NameMatch};

use super::{now, StoreArgs};

const TOKEN_EXAMPLES: &str = "\
Examples:
  tessera token invalidate --user alice        # every token of alice
  tessera token invalidate --realm saml1       # every token of realm saml1";

const KEY_EXAMPLES: &str = "\
Examples:
  tessera api-key list --user alice --active-only
  tessera api-key invalidate --id VuaCfGcBCdbkQm-e5aOx
  tessera api-key invalidate --user alice      # every key of alice";

#[derive(Debug, Subcommand)]
#[command(after_help = TOKEN_EXAMPLES)]
pub enum TokenCommand {
    /// Invalidate every token of a user and/or a realm (and every token
    /// derived from them).
    #[command(after_help = TOKEN_EXAMPLES, group(ArgGroup::new("whose").required(true).multiple(true).args(["user", "realm"])))]
    Invalidate {
        /// The user whose tokens to invalidate.
        #[arg(long)]
        user: Option<String>,
        /// The realm whose tokens to invalidate (e.g. `default_native`).
        #[arg(long)]
        realm: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct KeyFilterArgs {
    /// The key's id (repeat or separate with commas; an id may start
    /// with `-`).
    #[arg(long = "id", value_delimiter = ',', allow_hyphen_values = true)]
    pub ids: Vec<String>,
    /// The key's name; `prefix*` matches by prefix.
    #[arg(long)]
    pub name: Option<String>,
    /// The owner's username.
    #[arg(long)]
    pub user: Option<String>,
    /// The owner's realm.
    #[arg(long)]
    pub realm: Option<String>,
}

impl KeyFilterArgs {
    fn filter(self) -> ApiKeyFilter {
        ApiKeyFilter {
            ids: (!self.ids.is_empty()).then_some(self.ids),
            name: self.name.map(|n| match n.strip_suffix('*') {
                Some(prefix) => NameMatch::Prefix(prefix.to_owned()),
                None => NameMatch::Exact(n),
            }),
            username: self.user,
            realm: self.realm,
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty() && self.name.is_none() && self.user.is_none() && self.realm.is_none()
    }
}

#[derive(Debug, Subcommand)]
#[command(after_help = KEY_EXAMPLES)]
pub enum ApiKeyCommand {
    /// List API keys (every key without a filter), oldest first.
    #[command(after_help = KEY_EXAMPLES)]
    List {
        #[command(flatten)]
        filter: KeyFilterArgs,
        /// Only keys neither invalidated nor expired.
        #[arg(long)]
        active_only: bool,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Invalidate the keys matching every given criterion (at least one),
    /// and every token minted with them.
    #[command(after_help = KEY_EXAMPLES)]
    Invalidate {
        #[command(flatten)]
        filter: KeyFilterArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
}

pub async fn run_token(command: TokenCommand) -> anyhow::Result<Value> {
    let TokenCommand::Invalidate { user, realm, store } = command;
    let (_, store) = store.open().await?;
    let counts = store
        .invalidate_matching(user.as_deref(), realm.as_deref(), now())
        .await?;
    Ok(json!({
        "invalidated_tokens": counts.invalidated,
        "previously_invalidated_tokens": counts.previously_invalidated,
    }))
}

/// A key as `GET /_security/api_key` lists it (no secret).
fn key_json(k: &ApiKeyRecord) -> Value {
    json!({
        "id": k.id,
        "name": k.name,
        "creation": k.created_at,
        "expiration": k.expires_at,
        "invalidated": k.invalidated_at.is_some(),
        "invalidation": k.invalidated_at,
        "username": k.owner.username,
        "realm": k.owner.authentication_realm.name.to_string(),
        "metadata": k.metadata,
    })
}

pub async fn run_api_key(command: ApiKeyCommand) -> anyhow::Result<Value> {
    match command {
        ApiKeyCommand::List {
            filter,
            active_only,
            store,
        } => {
            let (_, store) = store.open().await?;
            let now = now();
            let keys: Vec<Value> = store
                .find_api_keys(&filter.filter())
                .await?
                .iter()
                .filter(|k| {
                    !active_only
                        || (k.invalidated_at.is_none() && k.expires_at.is_none_or(|e| e > now))
                })
                .map(key_json)
                .collect();
            Ok(json!({ "api_keys": keys }))
        }
        ApiKeyCommand::Invalidate { filter, store } => {
            if filter.is_empty() {
                bail!("give at least one of --id, --name, --user, --realm (every given criterion must match)");
            }
            let (_, store) = store.open().await?;
            let outcome = store.invalidate_api_keys(&filter.filter(), now()).await?;
            Ok(json!({
                "invalidated_api_keys": outcome.invalidated,
                "previously_invalidated_api_keys": outcome.previously_invalidated,
            }))
        }
    }
}
