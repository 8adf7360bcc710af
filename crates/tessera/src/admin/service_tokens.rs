//! `tessera service-token …`: the store methods behind
//! `/_security/service/{namespace}/{service}/credential/token` and
//! `_credentials`. A running server authenticates a token created here at
//! once, and refuses a deleted one at once (service tokens are looked up
//! on every request, never cached).

use anyhow::{anyhow, bail};
use clap::Subcommand;
use serde_json::{json, Value};
use tessera_domain::service_account::{self, ServiceAccount};

use super::{now, StoreArgs};

const EXAMPLES: &str = "\
Examples:
  tessera service-token create elastic/kibana kibana-1   # prints the token's value, once
  tessera service-token create elastic/fleet-server      # a generated name (token_…)
  tessera service-token list elastic/kibana
  tessera service-token delete elastic/kibana kibana-1";

#[derive(Debug, Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum ServiceTokenCommand {
    /// Create a token for a service account and print its value (shown
    /// only this once).
    #[command(after_help = EXAMPLES)]
    Create {
        /// The service account: `elastic/kibana`, `elastic/fleet-server`
        /// or `elastic/enterprise-search-server`.
        account: String,
        /// The token's name (`[a-zA-Z0-9-_]`, 1 to 256 characters, not
        /// starting with `_`) [default: a generated `token_…`].
        name: Option<String>,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List a service account's tokens by name (never their values).
    #[command(after_help = EXAMPLES)]
    List {
        /// The service account (`namespace/service`).
        account: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a service account's token: it stops authenticating at once.
    #[command(after_help = EXAMPLES)]
    Delete {
        /// The service account (`namespace/service`).
        account: String,
        /// The token's name.
        name: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

fn account(principal: &str) -> anyhow::Result<&'static ServiceAccount> {
    service_account::find(principal).ok_or_else(|| {
        let known: Vec<&str> = service_account::ACCOUNTS
            .iter()
            .map(|a| a.principal)
            .collect();
        anyhow!(
            "unknown service account principal: [{principal}]. Must be one of [{}]",
            known.join(",")
        )
    })
}

pub async fn run(command: ServiceTokenCommand) -> anyhow::Result<Value> {
    match command {
        ServiceTokenCommand::Create {
            account: principal,
            name,
            store,
        } => {
            let account = account(&principal)?;
            let name = name.unwrap_or_else(service_account::generated_token_name);
            service_account::validate_token_name(&name).map_err(|m| anyhow!(m))?;
            let (_, store) = store.open().await?;
            let minted = service_account::mint(account, &name, now());
            if !store.create_service_token(&minted.record).await? {
                bail!(
                    "service account [{}] already has a token named [{name}]",
                    account.principal
                );
            }
            Ok(json!({
                "created": true,
                "token": { "name": name, "value": minted.value.expose() },
            }))
        }
        ServiceTokenCommand::List {
            account: principal,
            store,
        } => {
            let account = account(&principal)?;
            let (_, store) = store.open().await?;
            let tokens = store.list_service_tokens(account.principal).await?;
            let by_name: serde_json::Map<String, Value> = tokens
                .iter()
                .map(|t| (t.name.clone(), json!({ "creation": t.created_at })))
                .collect();
            Ok(json!({
                "service_account": account.principal,
                "count": tokens.len(),
                "tokens": by_name,
            }))
        }
        ServiceTokenCommand::Delete {
            account: principal,
            name,
            store,
        } => {
            let account = account(&principal)?;
            let (_, store) = store.open().await?;
            let found = store.delete_service_token(account.principal, &name).await?;
            Ok(json!({ "found": found }))
        }
    }
}
