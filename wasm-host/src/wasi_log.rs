//! WASI stdout/stderr of a plugin, turned into log lines.

use crate::plugin::PluginInfo;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

/// A WASI output stream whose lines go to `tracing` with the plugin's name.
pub(crate) struct LogStream {
    plugin: Arc<PluginInfo>,
    stderr: bool,
}

impl LogStream {
    pub(crate) fn new(plugin: Arc<PluginInfo>, stderr: bool) -> Self {
        LogStream { plugin, stderr }
    }
}

impl IsTerminal for LogStream {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogStream {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineWriter {
            plugin: self.plugin.clone(),
            stderr: self.stderr,
            pending: Vec::new(),
        })
    }
}

struct LineWriter {
    plugin: Arc<PluginInfo>,
    stderr: bool,
    pending: Vec<u8>,
}

const MAX_LINE: usize = 16 * 1024;

impl LineWriter {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let name = self.plugin.name.as_str();
        if self.stderr {
            tracing::warn!(plugin = name, stream = "stderr", "{text}");
            self.plugin.log_sink.record(3, &text);
        } else {
            tracing::info!(plugin = name, stream = "stdout", "{text}");
            self.plugin.log_sink.record(2, &text);
        }
    }
}

impl AsyncWrite for LineWriter {
    fn poll_write(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        this.pending.extend_from_slice(buf);
        while let Some(i) = this.pending.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = this.pending.drain(..=i).collect();
            this.emit(&line[..line.len() - 1]);
        }
        if this.pending.len() > MAX_LINE {
            let line = std::mem::take(&mut this.pending);
            this.emit(&line);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}
