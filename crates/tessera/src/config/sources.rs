//! Where each setting's value came from: a flag, an environment variable,
//! the config file (named by its path), or the default. Errors name it, and
//! `check-config` prints it next to each value.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The config file's path and the top-level keys it sets.
#[derive(Debug, Clone, Default)]
pub struct FileKeys {
    pub path: Option<PathBuf>,
    pub keys: BTreeSet<String>,
}

impl FileKeys {
    pub fn read(path: &Path, text: &str) -> Self {
        let keys = toml::from_str::<toml::Table>(text)
            .map(|t| t.keys().cloned().collect())
            .unwrap_or_default();
        FileKeys {
            path: Some(path.to_owned()),
            keys,
        }
    }

    /// Where `name` (a snake_case setting) was set, if not by default.
    pub fn source(&self, name: &str) -> Option<String> {
        let flag = format!("--{}", name.replace('_', "-"));
        let env = format!("TESSERA_{}", name.to_ascii_uppercase());
        let on_command_line = std::env::args()
            .skip(1)
            .any(|a| a == flag || a.starts_with(&format!("{flag}=")));
        if on_command_line {
            Some(format!("flag {flag}"))
        } else if std::env::var_os(&env).is_some() {
            Some(format!("environment variable {env}"))
        } else {
            match &self.path {
                Some(path) if self.keys.contains(name) => {
                    Some(format!("config file {}", path.display()))
                }
                _ => None,
            }
        }
    }
}

thread_local! {
    /// The file being resolved on this thread, for [`current_source`].
    static RESOLVING: RefCell<FileKeys> = RefCell::new(FileKeys::default());
}

/// Makes [`current_source`] answer from `file` until the guard drops.
pub fn resolving(file: &FileKeys) -> impl Drop {
    struct Guard;
    impl Drop for Guard {
        fn drop(&mut self) {
            RESOLVING.with(|r| *r.borrow_mut() = FileKeys::default());
        }
    }
    RESOLVING.with(|r| *r.borrow_mut() = file.clone());
    Guard
}

/// Where `name` was set, while a configuration is being resolved.
pub fn current_source(name: &str) -> Option<String> {
    RESOLVING.with(|r| r.borrow().source(name))
}
