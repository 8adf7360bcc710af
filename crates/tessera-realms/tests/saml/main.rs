//! The SAML protocol layer against fixtures signed here, and against a real
//! third-party IdP (samlify).

mod fuzz_replay;
mod requests;
mod responses;
mod samlify;
mod support;
