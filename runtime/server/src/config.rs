//! The server's configuration, in layers (lowest first): built-in defaults, a TOML file,
//! `MONKEYCI_*` environment variables, command-line flags. The file and the defaults are read
//! here; the environment and the flags come from the command line's parser, which gives each
//! flag its variable, and are laid on top with [`Config::with`].

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// Everything `monkeyci server` needs to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// Where the server keeps its data: the SQLite database, the agent's work and cache.
    pub data_dir: PathBuf,
    /// The database (`sqlite://...` or `postgres://...`); default: `server.db` in the data dir.
    pub database_url: Option<String>,
    /// Builds the embedded agent runs at once (0: no embedded agent).
    pub agent_capacity: usize,
    /// What runs container jobs on the embedded agent: `auto`, `podman`, `docker`, `shell`.
    pub engine: String,
    /// The sdk pipelines are compiled against.
    pub sdk_path: Option<PathBuf>,
    /// The compile cache and blob store of the embedded agent; default: `cache` in the data
    /// dir.
    pub cache_dir: Option<PathBuf>,
    /// Whether builds run sandboxed (bubblewrap); only a trusted setup turns it off.
    pub sandbox: bool,
    /// How long an agent may be silent before its builds end as `error: agent lost` (agents
    /// say they are alive every second).
    pub agent_timeout: Duration,
    /// The key params are encrypted with, when given (`MONKEYCI_SERVER_KEY`); otherwise it
    /// is read from the key file.
    pub server_key: Option<crate::secrets::Key>,
    /// The file the server key is kept in (made, mode 0600, at the first start); default:
    /// `server.key` in the data dir.
    pub key_file: Option<PathBuf>,
}

/// The TOML file: every key optional, named as the flags are (with `_`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    /// `listen = "127.0.0.1:8080"`.
    pub listen: Option<SocketAddr>,
    /// `data_dir = "/var/lib/monkeyci"`.
    pub data_dir: Option<PathBuf>,
    /// `database_url = "postgres://..."`.
    pub database_url: Option<String>,
    /// `agent_capacity = 2`.
    pub agent_capacity: Option<usize>,
    /// `engine = "podman"`.
    pub engine: Option<String>,
    /// `sdk_path = "/src/monkeyci-rs/monkeyci-sdk"`.
    pub sdk_path: Option<PathBuf>,
    /// `cache_dir = "/var/cache/monkeyci"`.
    pub cache_dir: Option<PathBuf>,
    /// `sandbox = false`: run builds unsandboxed (only for trusted repositories).
    pub sandbox: Option<bool>,
    /// `key_file = "/etc/monkeyci/server.key"`.
    pub key_file: Option<PathBuf>,
    /// `agent_timeout = "30s"`.
    #[serde(default, deserialize_with = "duration_text")]
    pub agent_timeout: Option<Duration>,
}

/// A duration written as `monkeyci_protocol::duration` reads it (`30s`, `2m`).
fn duration_text<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
    let text = String::deserialize(deserializer)?;
    monkeyci_protocol::duration::parse(&text).map(Some).map_err(serde::de::Error::custom)
}

/// Why the configuration cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named cannot be read.
    #[error("cannot read the configuration file {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid.
    #[error("the configuration file {} is not valid", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong, with its place in the file.
        #[source]
        source: toml::de::Error,
    },
}

/// The file name of the configuration in the data dir, read when `--config` is not given.
pub const CONFIG_FILE: &str = "server.toml";

impl Config {
    /// The built-in defaults, with `data_dir` as the data dir.
    pub fn defaults(data_dir: PathBuf) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir,
            database_url: None,
            agent_capacity: 2,
            engine: "auto".to_owned(),
            sdk_path: None,
            cache_dir: None,
            sandbox: true,
            agent_timeout: Duration::from_secs(30),
            server_key: None,
            key_file: None,
        }
    }

    /// Reads the layer in `path`; a missing file is an error only when `required` (it was
    /// named on the command line).
    pub fn read_layer(path: &Path, required: bool) -> Result<Layer, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source }),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound && !required => Ok(Layer::default()),
            Err(source) => Err(ConfigError::Read { path: path.to_owned(), source }),
        }
    }

    /// This configuration with what `layer` sets on top.
    pub fn with(mut self, layer: Layer) -> Config {
        if let Some(listen) = layer.listen {
            self.listen = listen;
        }
        if let Some(dir) = layer.data_dir {
            self.data_dir = dir;
        }
        if let Some(url) = layer.database_url {
            self.database_url = Some(url);
        }
        if let Some(capacity) = layer.agent_capacity {
            self.agent_capacity = capacity;
        }
        if let Some(engine) = layer.engine {
            self.engine = engine;
        }
        if let Some(sdk) = layer.sdk_path {
            self.sdk_path = Some(sdk);
        }
        if let Some(cache) = layer.cache_dir {
            self.cache_dir = Some(cache);
        }
        if let Some(sandbox) = layer.sandbox {
            self.sandbox = sandbox;
        }
        if let Some(timeout) = layer.agent_timeout {
            self.agent_timeout = timeout;
        }
        if let Some(file) = layer.key_file {
            self.key_file = Some(file);
        }
        self
    }

    /// The server key's file: the one configured, or `server.key` in the data dir.
    pub fn key_file(&self) -> PathBuf {
        self.key_file.clone().unwrap_or_else(|| self.data_dir.join(crate::secrets::KEY_FILE))
    }

    /// The database URL: the one configured, or SQLite in the data dir.
    pub fn database_url(&self) -> String {
        self.database_url.clone().unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("server.db").display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_apply_in_order_and_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("server.toml");
        std::fs::write(&file, "listen = \"127.0.0.1:9000\"\nagent_capacity = 4\nagent_timeout = \"3s\"\n").unwrap();
        let config = Config::defaults(dir.path().to_owned()).with(Config::read_layer(&file, true).unwrap());
        assert_eq!(config.listen.port(), 9000);
        assert_eq!(config.agent_capacity, 4);
        assert_eq!(config.agent_timeout, Duration::from_secs(3));
        let flags = Layer { agent_capacity: Some(1), ..Layer::default() };
        assert_eq!(config.with(flags).agent_capacity, 1);

        std::fs::write(&file, "listn = \"127.0.0.1:9000\"\n").unwrap();
        let err = Config::read_layer(&file, true).unwrap_err();
        assert!(format!("{:?}", err).contains("listn"), "{err:?}");
        assert!(Config::read_layer(&dir.path().join("none.toml"), false).unwrap() == Layer::default());
        assert!(Config::read_layer(&dir.path().join("none.toml"), true).is_err());
    }
}
