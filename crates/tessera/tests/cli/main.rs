//! The administration commands (`tessera user|role|role-mapping|token|
//! api-key|service-token|backup|restore|migrate`) run as real processes on real data
//! directories, next to a real server on the same store.

mod backup;
mod service_tokens;
mod store;
mod support;
mod users;
