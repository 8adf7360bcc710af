//! The configuration's resolution and validation.

use super::*;

/// `serve`'s flags with only the store set.
fn on_store(url: &str) -> ServeArgs {
    ServeArgs {
        connect: StoreConnectArgs {
            store: Some(url.into()),
            ..Default::default()
        },
        ..Default::default()
    }
}

#[test]
fn defaults_are_sane() {
    let c = Config::resolve(ServeArgs::default()).unwrap();
    assert_eq!(c.listen.to_string(), "127.0.0.1:9200");
    assert_eq!(c.http.access_token_ttl, Duration::from_secs(1200));
    assert_eq!(c.http.refresh_window, Duration::from_secs(30));
    assert_eq!(
        c.store,
        StoreLocation::Sqlite(PathBuf::from("./data/tessera.db"))
    );
    assert_eq!(c.connections.header_read_timeout, Duration::from_secs(10));
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(75));
    assert_eq!(c.connections.max_connections, 10_000);
    // A purge pass runs every minute, in batches small enough that the
    // embedded store's writes queued behind one wait little (the soak
    // figures in docs/benchmarks.md), repeated while they come back full.
    assert_eq!(c.cleanup_interval, Duration::from_secs(60));
    assert_eq!(c.cleanup_batch, 250);
}

#[test]
fn invalid_values_name_the_setting() {
    let cases: Vec<(ServeArgs, &str)> = vec![
        (
            ServeArgs {
                access_token_ttl: Some("2h".into()),
                ..Default::default()
            },
            "access_token_ttl",
        ),
        (
            ServeArgs {
                access_token_ttl: Some("500ms".into()),
                ..Default::default()
            },
            "access_token_ttl",
        ),
        (
            ServeArgs {
                access_token_ttl: Some("soon".into()),
                ..Default::default()
            },
            "access_token_ttl",
        ),
        (
            ServeArgs {
                listen: Some("nowhere".into()),
                ..Default::default()
            },
            "listen",
        ),
        (
            ServeArgs {
                metrics_listen: Some("9300".into()),
                ..Default::default()
            },
            "metrics_listen",
        ),
        (
            ServeArgs {
                metrics_listen: Some("127.0.0.1:9200".into()),
                ..Default::default()
            },
            "metrics_listen",
        ),
        (
            ServeArgs {
                max_body_bytes: Some("-4".into()),
                ..Default::default()
            },
            "max_body_bytes",
        ),
        (on_store("mysql://x"), "store"),
        (
            ServeArgs {
                connect: StoreConnectArgs {
                    store_pool_size: Some("0".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
            "store_pool_size",
        ),
        (
            ServeArgs {
                refresh_reuse_revokes_family: Some("maybe".into()),
                ..Default::default()
            },
            "refresh_reuse_revokes_family",
        ),
        (
            ServeArgs {
                header_read_timeout: Some("0s".into()),
                ..Default::default()
            },
            "header_read_timeout",
        ),
        (
            ServeArgs {
                idle_timeout: Some("forever".into()),
                ..Default::default()
            },
            "idle_timeout",
        ),
        (
            ServeArgs {
                max_connections: Some("0".into()),
                ..Default::default()
            },
            "max_connections",
        ),
    ];
    for (args, name) in cases {
        let err = Config::resolve(args).unwrap_err().to_string();
        assert!(err.contains(&format!("`{name}`")), "{err}");
    }
}

#[test]
fn issuer_defaults_to_the_listen_address_and_is_validated() {
    let c = Config::resolve(ServeArgs::default()).unwrap();
    assert_eq!(c.issuer, None);
    assert_eq!(c.http.issuer, "http://127.0.0.1:9200");
    let c = Config::resolve(ServeArgs {
        issuer: Some("https://auth.example.com/tessera/".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.http.issuer, "https://auth.example.com/tessera");
    assert_eq!(
        c.issuer.as_deref(),
        Some("https://auth.example.com/tessera")
    );
    for bad in [
        "auth.example.com",
        "ftp://auth.example.com",
        "https://",
        "https://auth.example.com/?x=1",
        "https://auth.example.com/#f",
        "https://user@auth.example.com",
        "https://auth example.com",
    ] {
        let err = Config::resolve(ServeArgs {
            issuer: Some(bad.into()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(err.contains("`issuer`"), "{bad}: {err}");
    }
}

#[test]
fn postgres_urls_select_postgres_and_passwords_stay_hidden() {
    let c = Config::resolve(on_store("postgres://u:pw@db:5432/tessera")).unwrap();
    assert!(matches!(
        c.store,
        StoreLocation::Postgres { pool_size: 16, .. }
    ));
    assert!(
        !format!("{c:?}").contains("pw@"),
        "Debug hides the password"
    );
    assert_eq!(
        redact_url("mysql://u:secret@h/db"),
        "mysql://u:<hidden>@h/db"
    );
    assert_eq!(
        redact_url("postgres://u:pw@h/db?sslmode=require&password=secret&Password=s2"),
        "postgres://u:<hidden>@h/db?sslmode=require&password=<hidden>&Password=<hidden>"
    );
    assert_eq!(
        redact_url("host=db password='two words' user=u sslpassword=k"),
        "host=db password=<hidden> user=u sslpassword=<hidden>"
    );
    for store in [
        "postgres://u@db/tessera?password=secret",
        "host=db password=secret",
    ] {
        let c = Config::resolve(on_store(store));
        let shown = match c {
            Ok(c) => format!("{c:?} {} {}", c.store_description(), c.to_toml()),
            Err(e) => e.to_string(),
        };
        assert!(!shown.contains("secret"), "{store}: {shown}");
    }
    let err = Config::resolve(on_store("mysql://u:secret@h/db"))
        .unwrap_err()
        .to_string();
    assert!(!err.contains("secret"), "{err}");
}

#[test]
fn file_values_apply_and_flags_win() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "access_token_ttl = \"5m\"\nlisten = \"127.0.0.1:1234\"\nmax_body_bytes = 2048\n\
         max_connections = 50\nidle_timeout = \"5s\"\n\
         trusted_proxies = [\"10.0.0.0/8\"]\nsource_failure_burst = 7\n\
         metrics_listen = \"127.0.0.1:9300\"\n",
    )
    .unwrap();
    let c = Config::resolve(ServeArgs {
        config: Some(path.clone()),
        listen: Some("127.0.0.1:4321".into()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.http.access_token_ttl, Duration::from_secs(300));
    assert_eq!(c.listen.port(), 4321);
    assert_eq!(c.http.max_body_bytes, 2048);
    assert_eq!(c.connections.max_connections, 50);
    assert_eq!(c.connections.idle_timeout, Duration::from_secs(5));
    assert_eq!(c.http.throttle.trusted_proxies.len(), 1);
    assert_eq!(c.http.throttle.budget.burst, 7.0);
    assert_eq!(c.metrics_listen, Some("127.0.0.1:9300".parse().unwrap()));
    std::fs::write(&path, "acces_token_ttl = \"5m\"\n").unwrap();
    let err = format!(
        "{:#}",
        Config::resolve(ServeArgs {
            config: Some(path),
            ..Default::default()
        })
        .unwrap_err()
    );
    assert!(err.contains("acces_token_ttl"), "{err}");
}

#[test]
fn tls_needs_both_files_and_makes_the_default_issuer_https() {
    let c = Config::resolve(ServeArgs::default()).unwrap();
    assert_eq!(c.tls, None);
    let err = Config::resolve(ServeArgs {
        tls: TlsArgs {
            tls_cert: Some("cert.pem".into()),
            tls_key: None,
        },
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("`tls_key`"), "{err}");
    let c = Config::resolve(ServeArgs {
        tls: TlsArgs {
            tls_cert: Some("/etc/t/cert.pem".into()),
            tls_key: Some("/etc/t/key.pem".into()),
        },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(c.http.issuer, "https://127.0.0.1:9200");
    // In the file, paths are relative to the file's folder.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "tls_cert = \"c.pem\"\ntls_key = \"/k.pem\"\n").unwrap();
    let c = Config::resolve(ServeArgs {
        config: Some(path),
        ..Default::default()
    })
    .unwrap();
    let files = c.tls.unwrap();
    assert_eq!(files.cert, dir.path().join("c.pem"));
    assert_eq!(files.key, PathBuf::from("/k.pem"));
}

#[test]
fn store_wait_is_a_bounded_duration() {
    let c = Config::resolve(on_store("postgres://u@db/t")).unwrap();
    assert!(matches!(
        c.store,
        StoreLocation::Postgres { wait, .. } if wait == Duration::from_secs(60)
    ));
    let err = Config::resolve(ServeArgs {
        store_wait: Some("2h".into()),
        ..Default::default()
    })
    .unwrap_err()
    .to_string();
    assert!(err.contains("`store_wait`"), "{err}");
}

#[test]
fn store_ca_file_comes_from_a_flag_or_the_file_relative_to_it() {
    let ca_file = |c: &Config| match &c.store {
        StoreLocation::Postgres { ca_file, .. } => ca_file.clone(),
        StoreLocation::Sqlite(_) => panic!("expected PostgreSQL"),
    };
    let c = Config::resolve(on_store("postgres://u@db/t")).unwrap();
    assert_eq!(ca_file(&c), None);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        "store = \"postgres://u@db/t?sslmode=verify-full\"\nstore_ca_file = \"ca.pem\"\n",
    )
    .unwrap();
    let c = Config::resolve(ServeArgs {
        config: Some(path.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ca_file(&c), Some(dir.path().join("ca.pem")));
    assert!(c.to_toml().contains("store_ca_file"), "{}", c.to_toml());
    let c = Config::resolve(ServeArgs {
        config: Some(path),
        connect: StoreConnectArgs {
            store_ca_file: Some("/etc/ssl/db-ca.pem".into()),
            ..Default::default()
        },
        ..Default::default()
    })
    .unwrap();
    assert_eq!(ca_file(&c), Some(PathBuf::from("/etc/ssl/db-ca.pem")));
}

/// A config file that cannot be read is described by line and column,
/// never quoted: a mistyped secret's line is not printed, nor its value.
#[test]
fn a_broken_config_file_never_shows_its_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    for (text, says) in [
        ("bootstrap_password = \"hunter2-secret-pw\n", "line 1"),
        (
            "bootstrap_passwrd = \"hunter2-secret-pw\"\n",
            "bootstrap_passwrd",
        ),
        (
            "listen = \"127.0.0.1:0\"\nbootstrap_password = 2718281828\n",
            "line 2",
        ),
    ] {
        std::fs::write(&path, text).unwrap();
        let err = Config::resolve(ServeArgs {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            !err.contains("hunter2") && !err.contains("2718281828"),
            "{err}"
        );
        assert!(err.contains(says), "{err}");
    }
}
