//! A fault-injecting HTTP proxy between a binary under test and moto, for the faults the
//! emulator cannot produce: a call that is accepted and never answered, answered a byte at a
//! time, cut off, or refused.
//!
//! Every AWS call of the binary goes through it (its `AWS_ENDPOINT_URL` is the proxy's). Rules
//! pick requests by what identifies an AWS operation on the wire: the method and a path
//! fragment (S3, Lambda's REST paths) or the `X-Amz-Target` header (SQS's JSON protocol, e.g.
//! `AmazonSQS.DeleteMessage`). Anything no rule picks is forwarded untouched. It listens on
//! loopback only; a stall ends by itself after [`MAX_STALL`]; every connection task ends when
//! the proxy is dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Bytes, Frame, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// The longest a stalled request is held before its connection is closed.
pub const MAX_STALL: Duration = Duration::from_secs(600);

/// Which requests a rule applies to.
#[derive(Debug, Clone)]
pub enum Match {
    /// `method` (e.g. "PUT") and a path containing `fragment` (e.g. "/status/" for status reports,
    /// "/code" for Lambda's UpdateFunctionCode).
    Path { method: &'static str, fragment: String },
    /// An `X-Amz-Target` header ending in this operation, e.g. "DeleteMessage".
    Target(&'static str),
    /// Every request.
    Any,
}

/// What happens to a matched request.
#[derive(Debug, Clone, Copy)]
pub enum Fault {
    /// Accepted, never answered (until [`MAX_STALL`]).
    Stall,
    /// Forwarded, and the response body sent `bytes` at a time with `every` in between.
    SlowDrip { bytes: usize, every: Duration },
    /// The connection is closed without an answer.
    Reset,
    /// A 503 with no body: the service refuses (what a proxy or load balancer says when the
    /// endpoint behind it is down).
    Refuse,
}

#[derive(Debug)]
struct Rule {
    matches: Match,
    fault: Fault,
    /// How many more requests it applies to; `None`: all.
    left: Option<u32>,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// (method path, fault) of every request a rule picked, in order.
    hits: Vec<(String, String)>,
}

/// The proxy; serves until dropped.
#[derive(Debug)]
pub struct FaultProxy {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultProxy {
    /// Listens on a free loopback port and forwards to `upstream` (`http://host:port`).
    pub async fn start(upstream: &str) -> FaultProxy {
        let upstream: SocketAddr = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .parse()
            .expect("upstream is http://ip:port");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            let connections = connections::Tasks::default();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let state = shared.clone();
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, upstream, state.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        FaultProxy { endpoint, state, task }
    }

    /// Applies `fault` to the next `times` requests that match (`None`: to all, until cleared).
    pub fn add(&self, matches: Match, fault: Fault, times: Option<u32>) {
        self.state.lock().unwrap().rules.push(Rule {
            matches,
            fault,
            left: times,
        });
    }

    /// Removes every rule: from now on everything is forwarded.
    pub fn clear(&self) {
        self.state.lock().unwrap().rules.clear();
    }

    /// The requests a rule picked so far: `("METHOD /path", "Fault")`.
    pub fn hits(&self) -> Vec<(String, String)> {
        self.state.lock().unwrap().hits.clone()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Connection tasks that end with the proxy: aborted when the set is dropped.
mod connections {
    use std::sync::Mutex;

    #[derive(Debug, Default)]
    pub struct Tasks(Mutex<Vec<tokio::task::AbortHandle>>);

    impl Tasks {
        pub fn spawn(&self, fut: impl std::future::Future<Output = ()> + Send + 'static) {
            let handle = tokio::spawn(fut).abort_handle();
            let mut all = self.0.lock().unwrap();
            all.retain(|h| !h.is_finished());
            all.push(handle);
        }
    }

    impl Drop for Tasks {
        fn drop(&mut self) {
            for h in self.0.lock().unwrap().drain(..) {
                h.abort();
            }
        }
    }
}

type Body = BoxBody<Bytes, hyper::Error>;

fn picked(state: &Mutex<State>, req: &Request<Incoming>) -> Option<Fault> {
    let mut state = state.lock().unwrap();
    let target = req
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let path = req.uri().path().to_owned();
    let method = req.method().as_str().to_owned();
    let index = state.rules.iter().position(|r| {
        r.left != Some(0)
            && match &r.matches {
                Match::Path { method: m, fragment } => method == *m && path.contains(fragment.as_str()),
                Match::Target(op) => target.ends_with(op),
                Match::Any => true,
            }
    })?;
    let rule = &mut state.rules[index];
    if let Some(left) = &mut rule.left {
        *left -= 1;
    }
    let fault = rule.fault;
    let what = if target.is_empty() { path } else { target };
    state.hits.push((format!("{method} {what}"), format!("{fault:?}")));
    Some(fault)
}

async fn handle(
    req: Request<Incoming>,
    upstream: SocketAddr,
    state: Arc<Mutex<State>>,
) -> Result<Response<Body>, String> {
    let fault = picked(&state, &req);
    match fault {
        Some(Fault::Stall) => {
            tokio::time::sleep(MAX_STALL).await;
            Err("stalled request released".into())
        }
        Some(Fault::Reset) => Err("connection reset by the fault proxy".into()),
        Some(Fault::Refuse) => Ok(Response::builder()
            .status(503)
            .body(
                Full::new(Bytes::new())
                    .map_err(|never: Infallible| match never {})
                    .boxed(),
            )
            .unwrap()),
        Some(Fault::SlowDrip { bytes, every }) => {
            let response = forward(req, upstream).await?;
            let (parts, body) = response.into_parts();
            let whole = body.collect().await.map_err(|e| e.to_string())?.to_bytes();
            let chunks: Vec<Bytes> = whole.chunks(bytes.max(1)).map(Bytes::copy_from_slice).collect();
            let stream = futures_util::stream::unfold(chunks.into_iter(), move |mut rest| async move {
                let chunk = rest.next()?;
                tokio::time::sleep(every).await;
                Some((Ok::<_, hyper::Error>(Frame::data(chunk)), rest))
            });
            Ok(Response::from_parts(parts, StreamBody::new(stream).boxed()))
        }
        None => Ok(forward(req, upstream).await?.map(BodyExt::boxed)),
    }
}

async fn forward(req: Request<Incoming>, upstream: SocketAddr) -> Result<Response<Incoming>, String> {
    let stream = tokio::net::TcpStream::connect(upstream)
        .await
        .map_err(|e| e.to_string())?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    sender.send_request(req).await.map_err(|e| e.to_string())
}
