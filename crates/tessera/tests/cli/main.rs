//! The administration commands (`tessera user|role|role-mapping|token|
//! api-key|backup|restore|migrate`) run as real processes on real data
//! directories, next to a real server on the same store.

mod backup;
mod store;
mod support;
mod users;
