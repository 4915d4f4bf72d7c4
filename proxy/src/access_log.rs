//! Access log: one JSON line per request, written by a dedicated thread so
//! workers never wait on the output.

use crate::worker::ListenerCtx;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::io::Write;
use std::net::SocketAddr;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};
use weft_wasm_host::HttpStream;

/// Flags of a request, for the log and metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct LogFlags {
    pub local_reply: bool,
    pub retried: bool,
    pub plugin_failure: bool,
    pub upstream_failure: bool,
}

/// What the access log says of one request.
#[derive(Clone, Debug)]
pub struct AccessRecord {
    pub started: Instant,
    pub time: SystemTime,
    pub request_id: String,
    pub method: String,
    pub authority: String,
    pub path: String,
    pub protocol: &'static str,
    pub status: u16,
    pub bytes_sent: u64,
    pub cluster: Option<String>,
    pub upstream: Option<SocketAddr>,
    pub route: Option<String>,
    pub flags: LogFlags,
}

impl AccessRecord {
    /// Starts the record of a request. The request's own text (id, method,
    /// authority, path) is copied only when an access log will print it
    /// (`detailed`); metrics need none of it.
    pub fn start(data: &HttpStream, started: Instant, detailed: bool) -> Self {
        let h = &data.request_headers;
        let text = |name: &str| {
            if detailed {
                h.pseudo_str(name).unwrap_or("").to_owned()
            } else {
                String::new()
            }
        };
        AccessRecord {
            started,
            time: data.start_time.unwrap_or_else(SystemTime::now),
            request_id: if detailed {
                data.request_id.clone()
            } else {
                String::new()
            },
            method: text(":method"),
            authority: text(":authority"),
            path: text(":path"),
            protocol: data.protocol,
            status: 0,
            bytes_sent: 0,
            cluster: None,
            upstream: None,
            route: None,
            flags: LogFlags::default(),
        }
    }

    pub fn json(&self, listener: &str) -> String {
        let time = rfc3339(self.time);
        let mut flags = Vec::new();
        if self.flags.local_reply {
            flags.push("local_reply");
        }
        if self.flags.retried {
            flags.push("retry");
        }
        if self.flags.plugin_failure {
            flags.push("plugin_failure");
        }
        if self.flags.upstream_failure {
            flags.push("upstream_failure");
        }
        serde_json::json!({
            "time": time,
            "listener": listener,
            "request_id": self.request_id,
            "method": self.method,
            "authority": self.authority,
            "path": self.path,
            "protocol": self.protocol,
            "status": self.status,
            "bytes_sent": self.bytes_sent,
            "duration_ms": self.started.elapsed().as_secs_f64() * 1000.0,
            "upstream_cluster": self.cluster,
            "upstream_address": self.upstream.map(|a| a.to_string()),
            "route": self.route,
            "flags": flags,
        })
        .to_string()
    }
}

/// `t` as RFC 3339 in UTC, with milliseconds.
pub fn rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = if month <= 2 { y + 1 } else { y };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Where access-log lines go.
#[derive(Clone)]
pub struct AccessLogger {
    tx: Option<std::sync::mpsc::Sender<String>>,
}

impl AccessLogger {
    /// Disabled logger.
    pub fn off() -> Self {
        AccessLogger { tx: None }
    }

    /// Logs to stdout (`None`) or appends to a file.
    pub fn start(path: Option<&std::path::Path>) -> std::io::Result<Self> {
        let mut out: Box<dyn Write + Send> = match path {
            None => Box::new(std::io::stdout()),
            Some(p) => Box::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            ),
        };
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        std::thread::Builder::new()
            .name("weft-access-log".into())
            .spawn(move || {
                while let Ok(line) = rx.recv() {
                    let _ = writeln!(out, "{line}");
                    while let Ok(more) = rx.try_recv() {
                        let _ = writeln!(out, "{more}");
                    }
                    let _ = out.flush();
                }
            })?;
        Ok(AccessLogger { tx: Some(tx) })
    }

    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    pub fn log(&self, line: String) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(line);
        }
    }
}

/// A response body that records the request when it ends or is dropped.
pub struct Tracked<B> {
    inner: B,
    record: Option<AccessRecord>,
    listener: Rc<ListenerCtx>,
    sent: u64,
}

impl<B> Tracked<B> {
    pub fn new(inner: B, record: AccessRecord, listener: Rc<ListenerCtx>) -> Self {
        Tracked {
            inner,
            record: Some(record),
            listener,
            sent: 0,
        }
    }

    fn done(&mut self) {
        if let Some(mut r) = self.record.take() {
            r.bytes_sent = self.sent;
            self.listener.finish(&r);
        }
    }
}

impl<B> Drop for Tracked<B> {
    fn drop(&mut self) {
        self.done();
    }
}

impl<B> Body for Tracked<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<crate::life::BoxError>,
{
    type Data = Bytes;
    type Error = crate::life::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(d) = frame.data_ref() {
                    this.sent += d.len() as u64;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                if let Some(r) = this.record.as_mut() {
                    r.flags.upstream_failure = true;
                }
                this.done();
                Poll::Ready(Some(Err(e.into())))
            }
            Poll::Ready(None) => {
                this.done();
                Poll::Ready(None)
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        assert_eq!(super::rfc3339(t), "2023-11-14T22:13:20.123Z");
    }
}
