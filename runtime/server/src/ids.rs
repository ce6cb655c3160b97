//! Random ids: the one source of randomness (tokens, keys, nonces), and the one rule for build ids.

/// `n` random bytes from the OS, hex-encoded.
pub fn random_hex(n: usize) -> std::io::Result<String> {
    Ok(hex::encode(random_bytes(n)?))
}

/// `n` random bytes from the OS (keys and nonces are made of these).
pub fn random_bytes(n: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes)
}

/// A new build id: the time in hex (so ids sort as builds were queued) and random digits.
pub fn new_build_id(now_ms: i64) -> std::io::Result<String> {
    Ok(format!("{now_ms:012x}{}", random_hex(4)?))
}
