//! `tessera client …`: OAuth client management straight on the configured
//! store (the same `--data-dir`, `--store`, `--config` and `TESSERA_*`
//! settings as `serve`), for bootstrapping before any administrator can
//! call `/oauth2/register`. Every command prints JSON on stdout. Like the
//! other store commands (see `admin`), it is safe while a server runs.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tessera_domain::oauth::{self, ClientMetadata, MetadataInput};

use crate::admin::StoreArgs;

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Register a client; prints its id and its secret, shown only this once.
    Create {
        #[command(flatten)]
        metadata: MetadataArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List every client, oldest first (no secrets).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one client (no secret).
    Show {
        /// The client's id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Change the given metadata of a client; the rest stays as it is.
    Update {
        /// The client's id.
        client_id: String,
        #[command(flatten)]
        metadata: MetadataArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a client a new secret (printed once); the old one stops working.
    RotateSecret {
        /// The client's id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a client and invalidate every token issued to it.
    Delete {
        /// The client's id.
        client_id: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// RFC 7591 client metadata as flags.
#[derive(Debug, Clone, Default, Args)]
pub struct MetadataArgs {
    /// Human-readable name (`client_name`).
    #[arg(long)]
    pub name: Option<String>,
    /// A grant the client may use: client_credentials, password or
    /// refresh_token; repeat or separate with commas
    /// [default on create: client_credentials].
    #[arg(long = "grant-type", value_name = "GRANT", value_delimiter = ',')]
    pub grant_types: Vec<String>,
    /// Space-delimited scopes the client may request, e.g. "tessera:admin"
    /// ("" for none) [default on create: none].
    #[arg(long)]
    pub scope: Option<String>,
    /// client_secret_basic or client_secret_post
    /// [default on create: client_secret_basic].
    #[arg(long = "auth-method", value_name = "METHOD")]
    pub auth_method: Option<String>,
}

fn not_found(client_id: &str) -> anyhow::Error {
    anyhow!("no OAuth client [{client_id}]")
}

fn metadata(input: MetadataInput) -> anyhow::Result<ClientMetadata> {
    ClientMetadata::from_input(input).map_err(|e| anyhow!("invalid client metadata: {e}"))
}

/// Runs one command and returns what it prints.
pub async fn run(command: ClientCommand) -> anyhow::Result<Value> {
    let store_args = match &command {
        ClientCommand::Create { store, .. }
        | ClientCommand::List { store }
        | ClientCommand::Show { store, .. }
        | ClientCommand::Update { store, .. }
        | ClientCommand::RotateSecret { store, .. }
        | ClientCommand::Delete { store, .. } => store.clone(),
    };
    let (_, store) = store_args.open().await?;
    Ok(match command {
        ClientCommand::Create { metadata: m, .. } => {
            let metadata = metadata(MetadataInput {
                client_name: m.name,
                grant_types: (!m.grant_types.is_empty()).then_some(m.grant_types),
                scope: m.scope,
                token_endpoint_auth_method: m.auth_method,
            })?;
            let minted = oauth::mint_client(metadata, tessera_http::clock::Clock::system().now());
            store.put_oauth_client(&minted.record).await?;
            minted.record.registration_json(Some(&minted.secret))
        }
        ClientCommand::List { .. } => Value::Array(
            store
                .list_oauth_clients()
                .await?
                .iter()
                .map(|c| c.registration_json(None))
                .collect(),
        ),
        ClientCommand::Show { client_id, .. } => {
            let client = store
                .get_oauth_client(&client_id)
                .await?
                .ok_or_else(|| not_found(&client_id))?;
            client.registration_json(None)
        }
        ClientCommand::Update {
            client_id,
            metadata: m,
            ..
        } => {
            let mut client = store
                .get_oauth_client(&client_id)
                .await?
                .ok_or_else(|| not_found(&client_id))?;
            let old = &client.metadata;
            client.metadata = metadata(MetadataInput {
                client_name: m.name.or_else(|| old.client_name.clone()),
                grant_types: Some(if m.grant_types.is_empty() {
                    old.grant_types
                        .iter()
                        .map(|g| g.as_str().to_owned())
                        .collect()
                } else {
                    m.grant_types
                }),
                scope: Some(m.scope.unwrap_or_else(|| old.scope_text())),
                token_endpoint_auth_method: Some(
                    m.auth_method
                        .unwrap_or_else(|| old.token_endpoint_auth_method.as_str().to_owned()),
                ),
            })?;
            if store.put_oauth_client(&client).await? {
                // Deleted meanwhile: an update must not bring it back.
                store.delete_oauth_client(&client_id).await?;
                bail!(not_found(&client_id));
            }
            client.registration_json(None)
        }
        ClientCommand::RotateSecret { client_id, .. } => {
            let (secret, hash) = oauth::new_secret();
            if !store.set_oauth_client_secret(&client_id, &hash).await? {
                bail!(not_found(&client_id));
            }
            let client = store
                .get_oauth_client(&client_id)
                .await?
                .ok_or_else(|| not_found(&client_id))?;
            client.registration_json(Some(&secret))
        }
        ClientCommand::Delete { client_id, .. } => {
            if !store.delete_oauth_client(&client_id).await? {
                bail!(not_found(&client_id));
            }
            json!({ "deleted": true, "client_id": client_id })
        }
    })
}
