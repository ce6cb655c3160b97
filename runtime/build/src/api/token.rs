//! [`BuildToken`]: the random secret that authorizes calls for one build.

/// A random secret that authorizes calls for one build.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct BuildToken(String);

impl BuildToken {
    /// 32 random bytes from the OS, hex-encoded.
    pub(crate) fn generate() -> std::io::Result<BuildToken> {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(BuildToken(hex::encode(bytes)))
    }

    /// The token as sent in `Authorization: Bearer <token>` (and given to the script).
    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    pub(super) fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for BuildToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildToken(***)")
    }
}
