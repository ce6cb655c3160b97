//! Time stamps: milliseconds since the Unix epoch, as every event carries.

/// Milliseconds since the Unix epoch: the time stamp of every event.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
