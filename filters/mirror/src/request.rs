//! The copy a mirror sends, built without touching the host.

/// The header that marks a mirrored request.
pub const MIRROR_HEADER: &str = "x-weft-mirror";

/// Istio's (Envoy's) shadow authority: `-shadow` appended to the host
/// part, the port kept — `example.com:8080` → `example.com-shadow:8080`,
/// `[::1]:8080` → `[::1]-shadow:8080`, `example.com` →
/// `example.com-shadow`. A value whose last `:` is not followed by a port
/// (an unbracketed IPv6 address) gets the suffix at its end.
pub fn shadow_authority(authority: &str) -> String {
    let split = if authority.starts_with('[') {
        authority.find(']').map(|i| i + 1)
    } else {
        authority.rfind(':').filter(|&i| {
            let port = &authority[i + 1..];
            !port.is_empty()
                && port.bytes().all(|b| b.is_ascii_digit())
                && !authority[..i].contains(':')
        })
    };
    match split {
        Some(i) => format!("{}-shadow{}", &authority[..i], &authority[i..]),
        None => format!("{authority}-shadow"),
    }
}

/// The headers of a mirror's copy of a request: every request header as it
/// reached this filter (pseudo headers included), with `:authority` (and a
/// `host` header, if any) given the `-shadow` suffix, and `x-weft-mirror:
/// 1` (replacing any such header the request had). A request without an
/// `:authority` gets `<cluster>-shadow`. Fails, naming the header, on a
/// value that is not UTF-8 (proxy-wasm's `dispatch_http_call` takes text).
pub fn mirror_headers(
    request: &[(String, Vec<u8>)],
    cluster: &str,
) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::with_capacity(request.len() + 2);
    let mut authority = false;
    for (name, value) in request {
        if name.eq_ignore_ascii_case(MIRROR_HEADER) {
            continue;
        }
        let value = std::str::from_utf8(value).map_err(|_| name.clone())?;
        let value = if name == ":authority" || name.eq_ignore_ascii_case("host") {
            authority |= name == ":authority";
            shadow_authority(value)
        } else {
            value.to_owned()
        };
        out.push((name.clone(), value));
    }
    if !authority {
        out.push((":authority".to_owned(), format!("{cluster}-shadow")));
    }
    out.push((MIRROR_HEADER.to_owned(), "1".to_owned()));
    Ok(out)
}

/// Whether a `content-length` already rules the body out.
pub fn declared_too_long(content_length: Option<&[u8]>, max: usize) -> bool {
    content_length
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > max as u64)
}

/// The body bytes a VM holds for mirrors, all streams together.
#[derive(Debug)]
pub struct Budget {
    used: usize,
    cap: usize,
}

impl Budget {
    pub fn new(cap: usize) -> Budget {
        Budget { used: 0, cap }
    }

    /// Takes `n` bytes of the budget, or nothing if they are not left.
    pub fn take(&mut self, n: usize) -> bool {
        match self.used.checked_add(n) {
            Some(u) if u <= self.cap => {
                self.used = u;
                true
            }
            _ => false,
        }
    }

    pub fn give_back(&mut self, n: usize) {
        self.used = self.used.saturating_sub(n);
    }

    pub fn used(&self) -> usize {
        self.used
    }
}

/// A request body being copied for its mirrors, up to a limit.
#[derive(Debug, Default)]
pub struct BodyCopy {
    pub bytes: Vec<u8>,
}

/// Why a body was not copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// Longer than `maxBodyBytes`.
    TooLong,
    /// The VM's buffer budget for mirrors is spent.
    Budget,
}

impl BodyCopy {
    /// Appends a chunk, taking its size from `budget`, unless the body
    /// would exceed `max`.
    pub fn push(&mut self, chunk: &[u8], max: usize, budget: &mut Budget) -> Result<(), Skip> {
        if self.bytes.len() + chunk.len() > max {
            return Err(Skip::TooLong);
        }
        if !budget.take(chunk.len()) {
            return Err(Skip::Budget);
        }
        self.bytes.extend_from_slice(chunk);
        Ok(())
    }

    /// Empties the copy and gives its bytes back to `budget`.
    pub fn release(&mut self, budget: &mut Budget) {
        budget.give_back(self.bytes.len());
        self.bytes = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shadow_authorities() {
        let cases = [
            ("example.com", "example.com-shadow"),
            ("example.com:8080", "example.com-shadow:8080"),
            ("10.0.0.1:80", "10.0.0.1-shadow:80"),
            ("[::1]:8080", "[::1]-shadow:8080"),
            ("[::1]", "[::1]-shadow"),
            ("::1", "::1-shadow"),
            ("host:", "host:-shadow"),
            ("host:http", "host:http-shadow"),
            ("", "-shadow"),
        ];
        for (a, want) in cases {
            assert_eq!(shadow_authority(a), want, "{a}");
        }
    }

    fn h(pairs: &[(&str, &str)]) -> Vec<(String, Vec<u8>)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_headers_a_mirror_sends() {
        let got = mirror_headers(
            &h(&[
                (":method", "POST"),
                (":scheme", "https"),
                (":path", "/api/x?y=1"),
                (":authority", "example.com:8080"),
                ("content-type", "application/json"),
                ("x-weft-mirror", "0"),
                ("x-b3", "a"),
                ("x-b3", "b"),
            ]),
            "shadow",
        )
        .unwrap();
        let want: Vec<(String, String)> = [
            (":method", "POST"),
            (":scheme", "https"),
            (":path", "/api/x?y=1"),
            (":authority", "example.com-shadow:8080"),
            ("content-type", "application/json"),
            ("x-b3", "a"),
            ("x-b3", "b"),
            ("x-weft-mirror", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn a_missing_authority_and_a_host_header() {
        let got = mirror_headers(
            &h(&[(":method", "GET"), (":path", "/"), ("host", "a.example")]),
            "c1",
        )
        .unwrap();
        assert_eq!(
            got,
            vec![
                (":method".to_string(), "GET".to_string()),
                (":path".into(), "/".into()),
                ("host".into(), "a.example-shadow".into()),
                (":authority".into(), "c1-shadow".into()),
                ("x-weft-mirror".into(), "1".into()),
            ]
        );
    }

    #[test]
    fn a_header_that_is_not_text_is_named() {
        let mut req = h(&[(":method", "GET")]);
        req.push(("x-latin1".into(), vec![0xE9]));
        assert_eq!(mirror_headers(&req, "c").unwrap_err(), "x-latin1");
    }

    #[test]
    fn content_length_screening() {
        assert!(!declared_too_long(None, 10));
        assert!(!declared_too_long(Some(b"10"), 10));
        assert!(declared_too_long(Some(b"11"), 10));
        assert!(!declared_too_long(Some(b"junk"), 10));
    }

    #[test]
    fn body_copies_respect_the_limit_and_the_budget() {
        let mut budget = Budget::new(10);
        let mut a = BodyCopy::default();
        assert_eq!(a.push(b"1234", 6, &mut budget), Ok(()));
        assert_eq!(a.push(b"56", 6, &mut budget), Ok(()));
        assert_eq!(a.push(b"7", 6, &mut budget), Err(Skip::TooLong));
        assert_eq!(a.bytes, b"123456");
        let mut b = BodyCopy::default();
        assert_eq!(b.push(b"abcd", 6, &mut budget), Ok(()));
        assert_eq!(budget.used(), 10);
        let mut c = BodyCopy::default();
        assert_eq!(c.push(b"x", 6, &mut budget), Err(Skip::Budget));
        assert_eq!(c.push(b"", 6, &mut budget), Ok(()));
        a.release(&mut budget);
        assert_eq!(budget.used(), 4);
        assert!(a.bytes.is_empty());
        assert_eq!(c.push(b"x", 6, &mut budget), Ok(()));
        b.release(&mut budget);
        c.release(&mut budget);
        assert_eq!(budget.used(), 0);
        let mut full = Budget::new(usize::MAX);
        assert!(full.take(usize::MAX));
        assert!(!full.take(1), "no overflow");
    }
}
