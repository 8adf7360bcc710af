//! The chaos proxy: a TCP proxy (between a node or a store and PostgreSQL)
//! that fails on demand. It runs on a tokio runtime of its own, so plain
//! test threads and async tests drive it alike (from an async test, call
//! [`Proxy::set`] inside `tokio::task::block_in_place`).

use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;

/// What the proxy does with traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Forward both ways.
    Open,
    /// Close every connection and refuse new ones (the port is closed).
    Cut,
    /// Keep connections and accept new ones, but pass nothing: a network
    /// that silently drops packets.
    Stall,
}

pub struct Proxy {
    /// Where the proxy listens (bound on `127.0.0.1:0`; a cut closes the
    /// port and the end of the cut opens the same port again).
    pub addr: SocketAddr,
    mode: watch::Sender<Mode>,
    /// Forwarders still holding sockets.
    live: Arc<AtomicUsize>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl Proxy {
    pub fn start(upstream: SocketAddr) -> Proxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("pg-proxy")
            .enable_all()
            .build()
            .expect("the proxy's runtime");
        let listener = {
            let _context = runtime.enter();
            listen(SocketAddr::from(([127, 0, 0, 1], 0)))
        };
        let addr = listener.local_addr().expect("the proxy's address");
        let (mode, rx) = watch::channel(Mode::Open);
        let live = Arc::new(AtomicUsize::new(0));
        runtime.spawn(accept_loop(listener, addr, upstream, rx, Arc::clone(&live)));
        Proxy {
            addr,
            mode,
            live,
            runtime: Some(runtime),
        }
    }

    /// Switches mode. A cut returns once every forwarded connection is
    /// closed.
    pub fn set(&self, mode: Mode) {
        self.mode.send_replace(mode);
        if mode == Mode::Cut {
            let deadline = Instant::now() + Duration::from_secs(5);
            while self.live.load(SeqCst) > 0 {
                assert!(
                    Instant::now() < deadline,
                    "the proxy did not close its connections"
                );
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn listen(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket
        .bind(addr)
        .unwrap_or_else(|e| panic!("the proxy binding {addr}: {e}"));
    socket.listen(128).expect("listening")
}

async fn accept_loop(
    first: TcpListener,
    addr: SocketAddr,
    upstream: SocketAddr,
    mut mode: watch::Receiver<Mode>,
    live: Arc<AtomicUsize>,
) {
    let mut listener = Some(first);
    loop {
        let current = *mode.borrow_and_update();
        if current == Mode::Cut {
            // Without a listener, connecting fails at once.
            drop(listener.take());
            if mode.changed().await.is_err() {
                return;
            }
            continue;
        }
        let l = listener.take().unwrap_or_else(|| listen(addr));
        tokio::select! {
            accepted = l.accept() => {
                if let Ok((socket, _)) = accepted {
                    live.fetch_add(1, SeqCst);
                    let (rx, live) = (mode.clone(), Arc::clone(&live));
                    tokio::spawn(async move {
                        forward(socket, upstream, rx).await;
                        live.fetch_sub(1, SeqCst);
                    });
                }
            }
            changed = mode.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
        listener = Some(l);
    }
}

async fn forward(mut client: TcpStream, upstream: SocketAddr, mut mode: watch::Receiver<Mode>) {
    if *mode.borrow_and_update() == Mode::Open {
        let Ok(mut server) = TcpStream::connect(upstream).await else {
            return;
        };
        tokio::select! {
            _ = copy_bidirectional(&mut client, &mut server) => return,
            _ = mode.wait_for(|m| *m != Mode::Open) => {}
        }
        if *mode.borrow() == Mode::Stall {
            // Hold both ends, passing nothing, until the stall ends.
            let _ = mode.wait_for(|m| *m != Mode::Stall).await;
        }
        return;
    }
    if *mode.borrow() == Mode::Stall {
        let _ = mode.wait_for(|m| *m != Mode::Stall).await;
    }
}
