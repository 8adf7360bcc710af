//! How Tessera presents itself to Elasticsearch clients: the node and
//! cluster names of `GET /`, and the exact-compatibility invalidation mode.

use clap::Args;
use tessera_http::TokenInvalidation;

use super::{setting_error, toml_text};

/// Flags (and `TESSERA_*` variables) of Elasticsearch compatibility.
#[derive(Debug, Clone, Default, Args)]
pub struct CompatArgs {
    /// The node name `GET /` answers [default: the host name, else "tessera"].
    #[arg(long, env = "TESSERA_NODE_NAME")]
    pub node_name: Option<String>,
    /// The cluster name `GET /` answers [default: tessera].
    #[arg(long, env = "TESSERA_CLUSTER_NAME")]
    pub cluster_name: Option<String>,
    /// What invalidating a token by value takes with it: its whole family
    /// ("family") or the named token alone, as Elasticsearch ("token")
    /// [default: family].
    #[arg(long, env = "TESSERA_TOKEN_INVALIDATION")]
    pub token_invalidation: Option<String>,
}

/// The same settings from the TOML file.
#[derive(Debug, Default)]
pub struct CompatFile {
    pub node_name: Option<String>,
    pub cluster_name: Option<String>,
    pub token_invalidation: Option<toml::Value>,
}

/// The resolved settings.
pub struct Compat {
    pub node_name: String,
    pub cluster_name: String,
    pub token_invalidation: TokenInvalidation,
}

pub fn resolve(args: CompatArgs, file: CompatFile) -> anyhow::Result<Compat> {
    let name = |setting: &str, text: Option<String>| -> anyhow::Result<Option<String>> {
        match text {
            Some(t) if t.trim().is_empty() => Err(setting_error(setting, "must not be empty")),
            other => Ok(other),
        }
    };
    let node_name = name("node_name", args.node_name.or(file.node_name))?
        .or_else(host_name)
        .unwrap_or_else(|| "tessera".into());
    let cluster_name = name("cluster_name", args.cluster_name.or(file.cluster_name))?
        .unwrap_or_else(|| "tessera".into());
    let token_invalidation = match args
        .token_invalidation
        .or(toml_text(file.token_invalidation))
        .as_deref()
    {
        None | Some("family") => TokenInvalidation::Family,
        Some("token") => TokenInvalidation::Token,
        Some(other) => {
            return Err(setting_error(
                "token_invalidation",
                format!("`{other}` is neither \"family\" nor \"token\""),
            ))
        }
    };
    Ok(Compat {
        node_name,
        cluster_name,
        token_invalidation,
    })
}

/// The machine's host name, as Elasticsearch's default node name.
fn host_name() -> Option<String> {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/proc/sys/kernel/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
}
