//! `proxy_get_property`: Envoy's attribute names with Envoy's encodings
//! (strings as raw bytes, integers as 8-byte little-endian, booleans as one
//! byte, timestamps as nanoseconds since the epoch, maps in the pairs
//! format).

use crate::host::HostState;
use crate::stream::HttpStream;
use std::time::UNIX_EPOCH;

fn int(v: i64) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

fn text(v: &str) -> Vec<u8> {
    v.as_bytes().to_vec()
}

/// Resolves a property path (segments already split on NUL) for the
/// current effective context.
pub(crate) fn get(st: &HostState, path: &[&[u8]]) -> Option<Vec<u8>> {
    let dotted = dotted(path)?;
    let stream = st.current_stream();
    if let Some(s) = stream
        && let Some(v) = s.properties.get(&dotted)
    {
        return Some(v.to_vec());
    }
    let plugin = &st.plugin;
    match dotted.as_str() {
        "plugin_name" => return Some(text(&plugin.name)),
        "plugin_root_id" => return Some(text(&plugin.root_id)),
        "plugin_vm_id" => return Some(text(&plugin.vm_id)),
        "node.id" | "node.name" => return Some(text(&plugin.node.name)),
        "node.namespace" => return Some(text(&plugin.node.namespace)),
        _ => {}
    }
    if let Some(label) = dotted
        .strip_prefix("node.metadata.labels.")
        .or_else(|| dotted.strip_prefix("node.labels."))
    {
        return plugin
            .node
            .labels
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| text(v));
    }
    stream_attribute(stream?, &dotted, path)
}

fn dotted(path: &[&[u8]]) -> Option<String> {
    let mut out = String::new();
    for (i, seg) in path.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(std::str::from_utf8(seg).ok()?);
    }
    Some(out)
}

fn stream_attribute(s: &HttpStream, dotted: &str, path: &[&[u8]]) -> Option<Vec<u8>> {
    let req = &s.request_headers;
    let conn = &s.connection;
    let tls = conn.tls.as_ref();
    // request.headers.<name> / response.headers.<name>
    if path.len() == 3 && path[1] == b"headers" {
        let block = match path[0] {
            b"request" => &s.request_headers,
            b"response" => &s.response_headers,
            _ => return None,
        };
        return block.get(path[2]).map(|v| v.to_vec());
    }
    Some(match dotted {
        "request.path" => req.pseudo(":path")?.to_vec(),
        "request.url_path" => {
            let p = req.pseudo(":path")?;
            let end = p.iter().position(|b| *b == b'?').unwrap_or(p.len());
            p[..end].to_vec()
        }
        "request.query" => {
            let p = req.pseudo(":path")?;
            match p.iter().position(|b| *b == b'?') {
                Some(i) => p[i + 1..].to_vec(),
                None => Vec::new(),
            }
        }
        "request.host" => req.pseudo(":authority")?.to_vec(),
        "request.scheme" => req.pseudo(":scheme")?.to_vec(),
        "request.method" => req.pseudo(":method")?.to_vec(),
        "request.headers" => req.serialize(),
        "request.referer" => req.get(b"referer")?.to_vec(),
        "request.useragent" => req.get(b"user-agent")?.to_vec(),
        "request.id" => text(&s.request_id),
        "request.protocol" => text(s.protocol),
        "request.time" => {
            let t = s.start_time?.duration_since(UNIX_EPOCH).ok()?;
            int(t.as_nanos() as i64)
        }
        "request.size" => int(s.request_size as i64),
        "request.total_size" => {
            let headers: usize = req.iter().map(|(k, v)| k.len() + v.len()).sum();
            int(headers as i64 + s.request_size as i64)
        }
        "response.code" => {
            let code: i64 = std::str::from_utf8(s.response_headers.pseudo(":status")?)
                .ok()?
                .parse()
                .ok()?;
            int(code)
        }
        "response.code_details" => text(&s.response_code_details),
        "response.headers" => s.response_headers.serialize(),
        "response.trailers" => s.response_trailers.serialize(),
        "response.size" => int(s.response_size as i64),
        "source.address" => text(&conn.source?.to_string()),
        "source.port" => int(conn.source?.port() as i64),
        "destination.address" => text(&conn.destination?.to_string()),
        "destination.port" => int(conn.destination?.port() as i64),
        "connection.id" => int(conn.id as i64),
        "connection.mtls" => vec![u8::from(tls.is_some_and(|t| t.mtls))],
        "connection.requested_server_name" => text(tls?.sni.as_deref().unwrap_or("")),
        "connection.tls_version" => text(&tls?.version),
        "connection.uri_san_peer_certificate" => text(tls?.peer_uri_sans.first()?),
        "connection.dns_san_peer_certificate" => text(tls?.peer_dns_sans.first()?),
        "connection.subject_peer_certificate" => text(tls?.peer_subject.as_deref()?),
        "upstream.address" => text(&s.upstream_address?.to_string()),
        "upstream.port" => int(s.upstream_address?.port() as i64),
        _ => return None,
    })
}
