//! A fake proxy boundary and helpers shared by the host's tests.
#![allow(dead_code)]

use bytes::Bytes;
use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};
use weft_wasm_host::{
    HeaderBlock, HttpCallRequest, HttpCallResponse, HttpStream, Plugin, PluginInstance,
    PluginOptions, ProxyBoundary, Runtime, RuntimeOptions, VmError,
};

pub fn runtime() -> Arc<Runtime> {
    static RT: OnceLock<Arc<Runtime>> = OnceLock::new();
    RT.get_or_init(|| Runtime::new(RuntimeOptions::default()).expect("runtime"))
        .clone()
}

pub fn probe() -> Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES
        .get_or_init(|| weft_tests::filter_bytes("weft-test-probe"))
        .clone()
}

type Answer = Rc<dyn Fn(&HttpCallRequest) -> Result<HttpCallResponse, String>>;

/// A proxy boundary with one known cluster ("auth") whose answers a test
/// decides.
#[derive(Clone)]
pub struct Fake {
    pub calls: Rc<RefCell<Vec<HttpCallRequest>>>,
    answer: Answer,
}

impl Fake {
    pub fn new(
        answer: impl Fn(&HttpCallRequest) -> Result<HttpCallResponse, String> + 'static,
    ) -> Self {
        Fake {
            calls: Rc::default(),
            answer: Rc::new(answer),
        }
    }

    pub fn allow() -> Self {
        Fake::new(|_| {
            let mut headers = HeaderBlock::default();
            headers.set_pseudo(":status", "200");
            headers.add(b"x-auth", b"allow").unwrap();
            Ok(HttpCallResponse {
                headers,
                body: Bytes::from_static(b"ok-body"),
                trailers: HeaderBlock::default(),
            })
        })
    }
}

impl ProxyBoundary for Fake {
    fn cluster_exists(&self) -> Arc<dyn Fn(&str) -> bool + Send + Sync> {
        Arc::new(|name: &str| name == "auth")
    }

    fn http_call(
        &self,
        _plugin: &str,
        request: HttpCallRequest,
    ) -> Pin<Box<dyn Future<Output = Result<HttpCallResponse, String>>>> {
        let answer = (self.answer)(&request);
        self.calls.borrow_mut().push(request);
        Box::pin(async move {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            answer
        })
    }
}

pub fn options(name: &str, config: serde_json::Value) -> PluginOptions {
    let mut o = PluginOptions::new(name);
    o.configuration = Bytes::from(config.to_string());
    o.capture_logs = true;
    o
}

pub fn plugin(options: PluginOptions) -> Arc<Plugin> {
    Plugin::load(&runtime(), &probe(), options).expect("probe loads")
}

pub async fn start(plugin: Arc<Plugin>, fake: &Fake) -> Result<Rc<PluginInstance>, VmError> {
    PluginInstance::start(plugin, Rc::new(fake.clone())).await
}

pub fn request(path: &str, headers: &[(&str, &str)]) -> Box<HttpStream> {
    let mut s = HttpStream::default();
    s.request_headers.set_pseudo(":method", "GET");
    s.request_headers.set_pseudo(":scheme", "http");
    s.request_headers.set_pseudo(":authority", "example.test");
    s.request_headers.set_pseudo(":path", path.to_owned());
    for (k, v) in headers {
        s.request_headers.add(k.as_bytes(), v.as_bytes()).unwrap();
    }
    s.request_id = "req-1".into();
    s.protocol = "HTTP/1.1";
    Box::new(s)
}

pub fn header(s: &HttpStream, name: &str) -> Option<String> {
    s.request_headers
        .get(name.as_bytes())
        .map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Runs a future on a current-thread runtime inside a LocalSet, as a worker does.
pub fn run<F: Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let local = tokio::task::LocalSet::new();
    local.block_on(&rt, f)
}
