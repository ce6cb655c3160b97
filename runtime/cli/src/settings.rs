//! The command's own settings file, `cli.toml` in `$XDG_CONFIG_HOME/monkeyci` (else
//! `~/.config/monkeyci`): the `server` and `token` the commands that talk to a server use when
//! neither a flag (`--server`, `--token`) nor `MONKEYCI_SERVER`/`MONKEYCI_TOKEN` gives them.
//! It only reads; a missing file is no settings.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::Deserialize;

/// The server asked when nothing names one.
pub(crate) const DEFAULT_SERVER: &str = "http://127.0.0.1:8080";

/// What `cli.toml` may hold.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Settings {
    /// The server's URL.
    pub(crate) server: Option<String>,
    /// An API token.
    pub(crate) token: Option<String>,
}

/// Where the settings file is: `$XDG_CONFIG_HOME/monkeyci/cli.toml`, else
/// `~/.config/monkeyci/cli.toml`; `None` without either variable.
pub(crate) fn file() -> Option<PathBuf> {
    let dir = match std::env::var_os("XDG_CONFIG_HOME").filter(|d| !d.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::home_dir().filter(|home| !home.as_os_str().is_empty())?.join(".config"),
    };
    Some(dir.join("monkeyci").join("cli.toml"))
}

/// The settings in `path`; none if it does not exist.
pub(crate) fn read(path: &Path) -> anyhow::Result<Settings> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("cannot read the settings in {}", path.display())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Settings::default()),
        Err(err) => Err(err).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The server and token to use: the flags' (or the environment's, which clap folds into
/// them) first, then the file's, then the default server.
pub(crate) fn resolve(server: Option<&str>, token: Option<&str>, file: &Settings) -> (String, Option<String>) {
    let server = server.or(file.server.as_deref()).unwrap_or(DEFAULT_SERVER).to_owned();
    let token = token.or(file.token.as_deref()).map(str::to_owned);
    (server, token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_and_environment_win_over_the_file_which_wins_over_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cli.toml");
        assert_eq!(read(&path).unwrap(), Settings::default(), "no file: no settings");
        std::fs::write(&path, "server = \"http://ci.example:9000\"\ntoken = \"mci_file\"\n").unwrap();
        let file = read(&path).unwrap();
        assert_eq!(resolve(None, None, &file), ("http://ci.example:9000".to_owned(), Some("mci_file".to_owned())));
        assert_eq!(
            resolve(Some("http://flag:1"), Some("mci_flag"), &file),
            ("http://flag:1".to_owned(), Some("mci_flag".to_owned()))
        );
        assert_eq!(resolve(None, None, &Settings::default()), (DEFAULT_SERVER.to_owned(), None));
        std::fs::write(&path, "sever = \"typo\"\n").unwrap();
        assert!(format!("{:#}", read(&path).unwrap_err()).contains("sever"), "an unknown key is named");
    }
}
