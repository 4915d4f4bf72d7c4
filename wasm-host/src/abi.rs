//! The numeric vocabulary of the proxy-wasm ABI: status codes, buffer and
//! map selectors, actions and ABI versions, as the spec numbers them.

/// Result of a hostcall as seen by the guest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Ok = 0,
    NotFound = 1,
    BadArgument = 2,
    SerializationFailure = 3,
    ParseFailure = 4,
    InvalidMemoryAccess = 6,
    Empty = 7,
    CasMismatch = 8,
    InternalFailure = 10,
    Unimplemented = 12,
}

/// What a stream callback asks the host to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Continue,
    Pause,
}

impl Action {
    pub(crate) fn from_raw(v: i32) -> Action {
        // Envoy treats every non-zero value as "stop iteration".
        if v == 0 {
            Action::Continue
        } else {
            Action::Pause
        }
    }
}

/// The proxy-wasm ABI revision a module declares through its
/// `proxy_abi_version_*` export.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AbiVersion {
    V0_1_0,
    V0_2_0,
    V0_2_1,
}

impl AbiVersion {
    pub(crate) const MARKERS: [(&'static str, AbiVersion); 3] = [
        ("proxy_abi_version_0_2_1", AbiVersion::V0_2_1),
        ("proxy_abi_version_0_2_0", AbiVersion::V0_2_0),
        ("proxy_abi_version_0_1_0", AbiVersion::V0_1_0),
    ];
}

impl std::fmt::Display for AbiVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AbiVersion::V0_1_0 => "0.1.0",
            AbiVersion::V0_2_0 => "0.2.0",
            AbiVersion::V0_2_1 => "0.2.1",
        })
    }
}

pub(crate) mod buffer {
    pub const REQUEST_BODY: i32 = 0;
    pub const RESPONSE_BODY: i32 = 1;
    pub const DOWNSTREAM_DATA: i32 = 2;
    pub const UPSTREAM_DATA: i32 = 3;
    pub const HTTP_CALL_RESPONSE_BODY: i32 = 4;
    pub const GRPC_RECEIVE: i32 = 5;
    pub const VM_CONFIGURATION: i32 = 6;
    pub const PLUGIN_CONFIGURATION: i32 = 7;
    pub const CALL_DATA: i32 = 8;
}

pub(crate) mod map {
    pub const REQUEST_HEADERS: i32 = 0;
    pub const REQUEST_TRAILERS: i32 = 1;
    pub const RESPONSE_HEADERS: i32 = 2;
    pub const RESPONSE_TRAILERS: i32 = 3;
    pub const GRPC_INITIAL_METADATA: i32 = 4;
    pub const GRPC_TRAILING_METADATA: i32 = 5;
    pub const HTTP_CALL_RESPONSE_HEADERS: i32 = 6;
    pub const HTTP_CALL_RESPONSE_TRAILERS: i32 = 7;
}

pub(crate) mod stream_type {
    pub const HTTP_REQUEST: i32 = 0;
    pub const HTTP_RESPONSE: i32 = 1;
    pub const DOWNSTREAM: i32 = 2;
    pub const UPSTREAM: i32 = 3;
}

/// Log levels as numbered by the ABI (trace = 0 … critical = 5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum LogLevel {
    Trace = 0,
    Debug = 1,
    Info = 2,
    Warn = 3,
    Error = 4,
    Critical = 5,
}

impl LogLevel {
    pub(crate) fn from_raw(v: i32) -> Option<LogLevel> {
        Some(match v {
            0 => LogLevel::Trace,
            1 => LogLevel::Debug,
            2 => LogLevel::Info,
            3 => LogLevel::Warn,
            4 => LogLevel::Error,
            5 => LogLevel::Critical,
            _ => return None,
        })
    }

    /// The most verbose level `tracing` currently lets through.
    pub fn from_tracing() -> LogLevel {
        use tracing::level_filters::LevelFilter;
        match LevelFilter::current() {
            LevelFilter::TRACE => LogLevel::Trace,
            LevelFilter::DEBUG => LogLevel::Debug,
            LevelFilter::INFO => LogLevel::Info,
            LevelFilter::WARN => LogLevel::Warn,
            _ => LogLevel::Error,
        }
    }
}

/// Serialises header pairs in the proxy-wasm map format:
/// `u32 count, (u32 key_len, u32 value_len)*, (key \0 value \0)*`.
pub fn serialize_pairs<'a, I, F>(pairs: F) -> Vec<u8>
where
    F: Fn() -> I,
    I: Iterator<Item = (&'a [u8], &'a [u8])>,
{
    let mut count = 0u32;
    let mut data_len = 0usize;
    for (k, v) in pairs() {
        count += 1;
        data_len += k.len() + v.len() + 2;
    }
    let mut out = Vec::with_capacity(4 + count as usize * 8 + data_len);
    out.extend_from_slice(&count.to_le_bytes());
    for (k, v) in pairs() {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs() {
        out.extend_from_slice(k);
        out.push(0);
        out.extend_from_slice(v);
        out.push(0);
    }
    out
}

/// Parses the proxy-wasm map format; `None` when it is malformed.
pub fn deserialize_pairs(data: &[u8]) -> Option<Vec<(&[u8], &[u8])>> {
    if data.is_empty() {
        return Some(Vec::new());
    }
    let count = u32::from_le_bytes(data.get(0..4)?.try_into().ok()?) as usize;
    let mut sizes_at = 4usize;
    let mut p = 4usize.checked_add(count.checked_mul(8)?)?;
    if p > data.len() {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let klen = u32::from_le_bytes(data.get(sizes_at..sizes_at + 4)?.try_into().ok()?) as usize;
        let vlen =
            u32::from_le_bytes(data.get(sizes_at + 4..sizes_at + 8)?.try_into().ok()?) as usize;
        sizes_at += 8;
        let key = data.get(p..p.checked_add(klen)?)?;
        p = p.checked_add(klen + 1)?;
        let value = data.get(p..p.checked_add(vlen)?)?;
        p = p.checked_add(vlen + 1)?;
        out.push((key, value));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_round_trip() {
        let pairs: Vec<(&[u8], &[u8])> = vec![(b":path", b"/a"), (b"x", b"")];
        let data = serialize_pairs(|| pairs.iter().copied());
        assert_eq!(deserialize_pairs(&data).unwrap(), pairs);
    }

    #[test]
    fn malformed_pairs_are_rejected() {
        assert!(deserialize_pairs(&[1, 0, 0, 0]).is_none());
        assert!(deserialize_pairs(&[1, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0, b'a']).is_none());
        assert!(deserialize_pairs(&[255, 255, 255, 255]).is_none());
    }
}
