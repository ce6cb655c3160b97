//! Encryption at rest of params: the server's key, each org's data key wrapped with it, and
//! sealed values (AES-256-GCM, a random 96-bit nonce from the OS for each).
//!
//! The server key comes from `MONKEYCI_SERVER_KEY` (64 hex digits or base64 of 32 bytes) or a
//! key file, made at the first start with mode 0600. It never reaches the database: the
//! database holds each org's data key sealed with it, and each value sealed with its org's
//! data key. Each sealed text is bound to its place (the org, and the param's owner and name)
//! as associated data, so a ciphertext moved to another row does not open. Losing the server
//! key loses every stored value.
//!
//! This module owns the cryptography and the key's loading; it knows nothing of the database.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The variable that holds the server key, when it is not in a key file.
pub const SERVER_KEY_ENV: &str = "MONKEYCI_SERVER_KEY";

/// The key file's name in the data dir, when no other is configured.
pub const KEY_FILE: &str = "server.key";

/// The length of a key, in bytes (AES-256).
const KEY_LEN: usize = 32;

/// The length of a nonce, in bytes (96 bits, GCM's own).
const NONCE_LEN: usize = 12;

/// Why a key cannot be had, or a sealed text cannot be opened.
#[derive(Debug, thiserror::Error)]
pub enum SecretsError {
    /// The key given is not 32 bytes in hex or base64.
    #[error("the server key is not valid: {0} (give 64 hex digits or the base64 of 32 bytes)")]
    BadKey(String),
    /// The key file cannot be read or made.
    #[error("cannot use the server key file {}", path.display())]
    KeyFile {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The key file may be read by others.
    #[error("the server key file {} may be read by others (mode {mode:o}): chmod 600 it", path.display())]
    KeyFileOpen {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The OS gave no randomness.
    #[error("cannot read random bytes from the OS")]
    Random(#[source] std::io::Error),
    /// An org's data key does not open with this server key.
    #[error(
        "cannot open org {org:?}'s data key: the server key is not the one its params were stored with \
         ({SERVER_KEY_ENV} or the key file), or the stored key was altered"
    )]
    WrongServerKey {
        /// The org.
        org: String,
    },
    /// A sealed value does not open: it was altered, or moved from another place.
    #[error("cannot decrypt {what}: the stored value was altered")]
    Tampered {
        /// What was to be opened.
        what: String,
    },
}

/// A 256-bit key: the server's, or an org's data key. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key(..)")
    }
}

impl Key {
    /// A new random key.
    pub fn generate() -> Result<Key, SecretsError> {
        let bytes = crate::ids::random_bytes(KEY_LEN).map_err(SecretsError::Random)?;
        Key::from_slice(&bytes).ok_or_else(|| SecretsError::BadKey("the OS gave too few bytes".to_owned()))
    }

    fn from_slice(bytes: &[u8]) -> Option<Key> {
        <[u8; KEY_LEN]>::try_from(bytes).ok().map(Key)
    }

    /// Reads a key written as 64 hex digits or as base64 (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Key, SecretsError> {
        let text = text.trim();
        let bytes = if text.len() == 2 * KEY_LEN && text.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(text).map_err(|e| SecretsError::BadKey(e.to_string()))?
        } else {
            STANDARD
                .decode(text)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
                .map_err(|_| SecretsError::BadKey("neither 64 hex digits nor base64".to_owned()))?
        };
        Key::from_slice(&bytes).ok_or_else(|| SecretsError::BadKey(format!("{} bytes, not {KEY_LEN}", bytes.len())))
    }

    /// The key in `path`, made there (mode 0600, as hex) if the file does not exist. A file
    /// that others may read is refused.
    pub fn load_or_create(path: &Path) -> Result<Key, SecretsError> {
        let file_error = |source| SecretsError::KeyFile { path: path.to_owned(), source };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mode = std::fs::metadata(path).map_err(file_error)?.permissions().mode() & 0o777;
                if mode & 0o077 != 0 {
                    return Err(SecretsError::KeyFileOpen { path: path.to_owned(), mode });
                }
                Key::parse(&text)
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                let key = Key::generate()?;
                // `create_new`: two servers starting at once do not each write a key.
                let mut file =
                    std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path).map_err(|err| {
                        match err.kind() {
                            std::io::ErrorKind::AlreadyExists => made_meanwhile(path),
                            _ => file_error(err),
                        }
                    })?;
                file.write_all(format!("{}\n", hex::encode(key.0)).as_bytes()).map_err(file_error)?;
                file.sync_all().map_err(file_error)?;
                Ok(key)
            }
            Err(err) => Err(file_error(err)),
        }
    }

    /// `plaintext` sealed with this key and bound to `place`: base64 of the nonce, the
    /// ciphertext and the tag.
    pub fn seal(&self, plaintext: &[u8], place: &str) -> Result<String, SecretsError> {
        let nonce = crate::ids::random_bytes(NONCE_LEN).map_err(SecretsError::Random)?;
        let nonce_array = Nonce::try_from(nonce.as_slice())
            .map_err(|_| SecretsError::BadKey("the OS gave too few bytes".to_owned()))?;
        let sealed = self
            .cipher()
            .encrypt(&nonce_array, Payload { msg: plaintext, aad: place.as_bytes() })
            // Only a message of more than 64 GiB fails.
            .map_err(|_| SecretsError::Tampered { what: format!("{place} (too long to seal)") })?;
        let mut out = nonce;
        out.extend(sealed);
        Ok(STANDARD.encode(out))
    }

    /// What [`Key::seal`] sealed for `place`, if this key sealed it there unaltered.
    pub fn open(&self, sealed: &str, place: &str) -> Result<Vec<u8>, SecretsError> {
        let tampered = || SecretsError::Tampered { what: place.to_owned() };
        let bytes = STANDARD.decode(sealed).map_err(|_| tampered())?;
        if bytes.len() < NONCE_LEN {
            return Err(tampered());
        }
        let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| tampered())?;
        self.cipher().decrypt(&nonce, Payload { msg: ciphertext, aad: place.as_bytes() }).map_err(|_| tampered())
    }

    /// `data_key` sealed with this (the server's) key, for `org`.
    pub fn wrap(&self, data_key: &Key, org: &str) -> Result<String, SecretsError> {
        self.seal(&data_key.0, &key_place(org))
    }

    /// The data key of `org` that [`Key::wrap`] sealed.
    pub fn unwrap_key(&self, wrapped: &str, org: &str) -> Result<Key, SecretsError> {
        let wrong = || SecretsError::WrongServerKey { org: org.to_owned() };
        let bytes = self.open(wrapped, &key_place(org)).map_err(|_| wrong())?;
        Key::from_slice(&bytes).ok_or_else(wrong)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

fn made_meanwhile(path: &Path) -> SecretsError {
    SecretsError::KeyFile {
        path: path.to_owned(),
        source: std::io::Error::other("another process made it at the same time; start again"),
    }
}

/// Where an org's data key is sealed (its associated data).
fn key_place(org: &str) -> String {
    format!("org data key\0{org}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_value_opens_with_its_key_and_place_only() {
        let key = Key::generate().unwrap();
        let sealed = key.seal(b"hunter22", "acme/set:default/TOKEN").unwrap();
        assert!(!sealed.contains("hunter22"));
        assert_eq!(key.open(&sealed, "acme/set:default/TOKEN").unwrap(), b"hunter22");
        // A fresh nonce each time: the same value seals differently.
        assert_ne!(key.seal(b"hunter22", "acme/set:default/TOKEN").unwrap(), sealed);
        // Moved to another param, or opened with another key: refused.
        assert!(matches!(key.open(&sealed, "acme/set:default/OTHER"), Err(SecretsError::Tampered { .. })));
        assert!(Key::generate().unwrap().open(&sealed, "acme/set:default/TOKEN").is_err());
    }

    #[test]
    fn a_tampered_ciphertext_fails() {
        let key = Key::generate().unwrap();
        let sealed = key.seal(b"hunter22", "p").unwrap();
        let mut bytes = STANDARD.decode(&sealed).unwrap();
        for i in [0, NONCE_LEN, bytes.len() - 1] {
            bytes[i] ^= 1;
            let err = key.open(&STANDARD.encode(&bytes), "p").unwrap_err();
            assert_eq!(err.to_string(), "cannot decrypt p: the stored value was altered");
            bytes[i] ^= 1;
        }
        assert!(key.open("not base64!", "p").is_err());
        assert!(key.open(&STANDARD.encode([1u8; 5]), "p").is_err());
    }

    #[test]
    fn a_wrong_server_key_fails_clearly() {
        let server = Key::generate().unwrap();
        let data = Key::generate().unwrap();
        let wrapped = server.wrap(&data, "acme").unwrap();
        assert_eq!(server.unwrap_key(&wrapped, "acme").unwrap().0, data.0);
        let err = Key::generate().unwrap().unwrap_key(&wrapped, "acme").unwrap_err();
        let message = err.to_string();
        assert!(message.contains("org \"acme\"") && message.contains("MONKEYCI_SERVER_KEY"), "{message}");
        // Another org's wrapped key does not open as this one's.
        assert!(server.unwrap_key(&wrapped, "beta").is_err());
    }

    #[test]
    fn keys_parse_from_hex_or_base64_and_nothing_else() {
        let key = Key::generate().unwrap();
        assert_eq!(Key::parse(&hex::encode(key.0)).unwrap().0, key.0);
        assert_eq!(Key::parse(&format!(" {}\n", STANDARD.encode(key.0))).unwrap().0, key.0);
        assert!(Key::parse("abcd").is_err());
        assert!(Key::parse(&hex::encode([0u8; 16])).is_err());
        assert!(!format!("{key:?}").contains(&hex::encode(key.0)[..8]));
    }

    #[test]
    fn the_key_file_is_made_private_once_and_refused_when_others_may_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE);
        let made = Key::load_or_create(&path).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(Key::load_or_create(&path).unwrap().0, made.0, "read back, not made again");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(Key::load_or_create(&path), Err(SecretsError::KeyFileOpen { mode: 0o644, .. })));
    }
}
