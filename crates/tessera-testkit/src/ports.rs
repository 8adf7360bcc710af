//! Ports without races: whoever listens binds `127.0.0.1:0` itself and
//! keeps the listener, and whoever needs the address reads it from that
//! listener or from the line the process logs once it has bound. Nothing
//! here binds a port, lets it go and hopes it is still free.

use std::net::SocketAddr;

/// A listener on a port the kernel picked, held for as long as it is used.
pub fn listen_local() -> std::net::TcpListener {
    std::net::TcpListener::bind(("127.0.0.1", 0)).expect("binding 127.0.0.1:0")
}

/// The address in the first line containing `marker` and `addr=…`, as a
/// process logs it once its listener is bound (tessera: "tessera is
/// listening addr=127.0.0.1:40123").
pub fn address_in_log<S: AsRef<str>>(lines: &[S], marker: &str) -> Option<SocketAddr> {
    lines
        .iter()
        .map(AsRef::as_ref)
        .filter(|line| line.contains(marker))
        .find_map(|line| {
            // Text (`addr=…`) or JSON (`"addr":"…"`) log lines.
            line.split("addr=")
                .nth(1)
                .or_else(|| line.split("\"addr\":").nth(1))
        })
        .and_then(|rest| rest.split([' ', ',', '}']).next())
        .and_then(|addr| addr.trim_matches('"').parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_the_marked_line() {
        let lines = [
            "2026-01-01T00:00:00Z  INFO tessera::server: opening the store",
            "2026-01-01T00:00:00Z  INFO tessera::server: tessera is listening addr=127.0.0.1:40123 version=0.1.0",
        ];
        assert_eq!(
            address_in_log(&lines, "tessera is listening"),
            Some("127.0.0.1:40123".parse().unwrap())
        );
        assert_eq!(address_in_log(&lines[..1], "tessera is listening"), None);
        let json = [
            r#"{"level":"INFO","message":"tessera is listening","fields":{"addr":"127.0.0.1:40124"}}"#,
        ];
        assert_eq!(
            address_in_log(&json, "tessera is listening"),
            Some("127.0.0.1:40124".parse().unwrap())
        );
        let held = listen_local();
        assert_ne!(held.local_addr().unwrap().port(), 0);
    }
}
