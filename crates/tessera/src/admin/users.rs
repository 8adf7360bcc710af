//! `tessera user …`: native-realm users, with the API's rules (the
//! domain's username and password checks, argon2id hashes) and its
//! revocation: changing a password, disabling or deleting a user revokes
//! the user's tokens when `revoke_on_user_change` is on, as
//! `/_security/user` does.

use std::io::Read;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tessera_domain::crypto::Secret;
use tessera_domain::user::{self, UserRecord};
use tessera_store::UserUpsert;

use super::StoreArgs;

const EXAMPLES: &str = "\
Examples:
  tessera user create alice --roles viewer,editor          # prints a generated password
  printf '%s' \"$PW\" | tessera user create bob --roles viewer --password-stdin
  tessera user reset-password elastic                      # prints a new password
  tessera user reset-password elastic --json               # {\"password\": \"…\"}
  tessera user list --data-dir /var/lib/tessera
  tessera user disable alice";

#[derive(Debug, Subcommand)]
#[command(after_help = EXAMPLES)]
pub enum UserCommand {
    /// Create a user; without --password-stdin a password is generated and
    /// printed (shown only this once).
    #[command(after_help = EXAMPLES)]
    Create {
        username: String,
        /// Roles, separated by commas.
        #[arg(long, value_delimiter = ',')]
        roles: Vec<String>,
        #[arg(long)]
        full_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Create the user disabled.
        #[arg(long)]
        disabled: bool,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Set a user's password, read from stdin (one line).
    Passwd {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Give a user a new generated password, printed alone on stdout (or
    /// as {"password": …} with --json); works with or without a running
    /// server.
    #[command(after_help = EXAMPLES)]
    ResetPassword {
        username: String,
        #[command(flatten)]
        password: PasswordArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// List every user (JSON array, sorted by name; no password hashes).
    List {
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show one user.
    Show {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Enable a user.
    Enable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Disable a user (and revoke its tokens, see revoke_on_user_change).
    Disable {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Delete a user (and revoke its tokens, see revoke_on_user_change).
    Delete {
        username: String,
        #[command(flatten)]
        store: StoreArgs,
    },
}

#[derive(Debug, Clone, Default, Args)]
pub struct PasswordArgs {
    /// Read the password from stdin (one line) instead of generating one.
    #[arg(long)]
    pub password_stdin: bool,
    /// Print a generated password as JSON ({"password": …}).
    #[arg(long)]
    pub json: bool,
}

/// A new random password: 32 bytes from the OS generator (256 bits),
/// URL-safe base64 (43 printable characters).
pub fn generate_password() -> Secret {
    use base64::Engine;
    Secret::new(
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(tessera_domain::crypto::random_bytes::<32>()),
    )
}

/// One line from stdin, without its line ending, checked by the API's rule.
fn password_from_stdin() -> anyhow::Result<Secret> {
    let mut text = String::new();
    std::io::stdin()
        .read_to_string(&mut text)
        .context("cannot read the password from stdin")?;
    let text = Secret::new(text);
    let line = text.expose().lines().next().unwrap_or_default();
    if text.expose().lines().nth(1).is_some_and(|l| !l.is_empty()) {
        bail!("expected one line on stdin (the password), got several");
    }
    user::validate_password(line).map_err(|e| anyhow!("invalid password: {e}"))?;
    Ok(Secret::new(line))
}

async fn hash(password: &Secret) -> anyhow::Result<String> {
    let password = password.clone();
    tokio::task::spawn_blocking(move || user::hash_password(password.expose()))
        .await
        .context("password hashing failed")
}

fn not_found(username: &str) -> anyhow::Error {
    anyhow!("user [{username}] does not exist")
}

/// What a command prints: JSON, or a bare password.
pub enum Printed {
    Json(Value),
    Text(String),
}

/// Runs one command and returns what it prints.
pub async fn run(command: UserCommand) -> anyhow::Result<Printed> {
    let store_args = match &command {
        UserCommand::Create { store, .. }
        | UserCommand::Passwd { store, .. }
        | UserCommand::ResetPassword { store, .. }
        | UserCommand::List { store }
        | UserCommand::Show { store, .. }
        | UserCommand::Enable { store, .. }
        | UserCommand::Disable { store, .. }
        | UserCommand::Delete { store, .. } => store.clone(),
    };
    // Checks that need no store first.
    match &command {
        UserCommand::Create { username, .. } => {
            user::validate_username(username).map_err(|e| anyhow!(e))?
        }
        UserCommand::ResetPassword { password, .. } if password.password_stdin && password.json => {
            bail!("--json prints a generated password; it cannot be used with --password-stdin")
        }
        _ => {}
    }
    let (config, store) = store_args.open().await?;
    let revoke = config.http.revoke_on_user_change;
    Ok(Printed::Json(match command {
        UserCommand::Create {
            username,
            roles,
            full_name,
            email,
            disabled,
            password,
            ..
        } => {
            if store.get_user(&username).await?.is_some() {
                bail!("user [{username}] already exists (use `tessera user passwd` or `reset-password` to change its password)");
            }
            let (secret, generated) = if password.password_stdin {
                (password_from_stdin()?, false)
            } else {
                (generate_password(), true)
            };
            let created = store
                .put_user(UserUpsert {
                    username: username.clone(),
                    password_hash: Some(hash(&secret).await?),
                    roles,
                    full_name,
                    email,
                    metadata: Default::default(),
                    enabled: !disabled,
                    revoke_tokens: revoke,
                })
                .await?;
            let mut out = json!({ "created": created, "username": username });
            if generated {
                out["password"] = secret.expose().into();
            }
            out
        }
        UserCommand::Passwd { username, .. } => {
            let secret = password_from_stdin()?;
            set_password(store.as_ref(), &username, &secret, revoke).await?;
            json!({ "changed": true, "username": username })
        }
        UserCommand::ResetPassword {
            username, password, ..
        } => {
            let secret = if password.password_stdin {
                password_from_stdin()?
            } else {
                generate_password()
            };
            set_password(store.as_ref(), &username, &secret, revoke).await?;
            if password.password_stdin {
                json!({ "changed": true, "username": username })
            } else if password.json {
                json!({ "password": secret.expose() })
            } else {
                return Ok(Printed::Text(secret.expose().to_owned()));
            }
        }
        UserCommand::List { .. } => Value::Array(
            store
                .list_users()
                .await?
                .iter()
                .map(UserRecord::to_json)
                .collect(),
        ),
        UserCommand::Show { username, .. } => store
            .get_user(&username)
            .await?
            .ok_or_else(|| not_found(&username))?
            .to_json(),
        UserCommand::Enable { username, .. } => {
            set_enabled(store.as_ref(), &username, true, revoke).await?
        }
        UserCommand::Disable { username, .. } => {
            set_enabled(store.as_ref(), &username, false, revoke).await?
        }
        UserCommand::Delete { username, .. } => {
            if !store.delete_user(&username, revoke, super::now()).await? {
                bail!(not_found(&username));
            }
            json!({ "deleted": true, "username": username })
        }
    }))
}

async fn set_password(
    store: &dyn tessera_store::Store,
    username: &str,
    password: &Secret,
    revoke: bool,
) -> anyhow::Result<()> {
    if store.get_user(username).await?.is_none() {
        bail!(not_found(username));
    }
    if !store
        .set_password(username, &hash(password).await?, revoke)
        .await?
    {
        bail!(not_found(username));
    }
    Ok(())
}

async fn set_enabled(
    store: &dyn tessera_store::Store,
    username: &str,
    enabled: bool,
    revoke: bool,
) -> anyhow::Result<Value> {
    if !store.set_enabled(username, enabled, revoke).await? {
        bail!(not_found(username));
    }
    Ok(json!({ "username": username, "enabled": enabled }))
}
