//! Integration tests of the core API: every test starts a real Tessera node
//! in-process (real SQLite file, real HTTP on an ephemeral port) and talks
//! to it with blocking HTTP clients, as Elasticsearch clients would.

mod support;

mod api_key_changes;
mod api_keys;
mod audit;
mod authenticate;
mod binary;
mod derived;
mod exposure;
mod hostile;
mod jwt;
mod lifecycle;
mod node;
mod observability;
mod oidc;
mod oidc_provider;
mod openapi;
mod privileges;
mod protocol;
mod python_client;
mod queries;
mod readiness;
mod refresh_race;
mod role_mappings;
mod roles;
mod run_as;
mod saml;
mod saml_idp;
mod service_accounts;
mod slow_clients;
mod throttle;
mod tls;
mod token_invalidation;
mod tokens;
mod users;
