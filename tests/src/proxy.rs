//! A TCP proxy that can cut connections at the worst moment: after the
//! server has processed a request and started answering, before the client
//! has read the answer; or hold such an answer back, so that a test can
//! kill the client while it waits for it.
//!
//! Dropping the proxy stops it: no new connections, every open one shut
//! down both ways, and every thread it started joined.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

#[derive(Default)]
struct Plan {
    /// Request-line fragment (e.g. `POST /v1/sync/push`) → how many answers to swallow.
    cuts: Vec<(String, usize)>,
    /// Request-line fragment → how many answers to hold back.
    holds: Vec<(String, usize)>,
}

/// What becomes of the answer to a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fate {
    Forward,
    Cut,
    Hold,
}

/// A loopback proxy to one upstream port.
pub struct FaultProxy {
    port: u16,
    plan: Arc<Mutex<Plan>>,
    cut_count: Arc<AtomicUsize>,
    hold_count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    /// Both sockets of every connection forwarded so far.
    open: Arc<Mutex<Vec<TcpStream>>>,
    /// The accepting thread; it joins each connection's threads.
    acceptor: Option<JoinHandle<()>>,
}

impl FaultProxy {
    /// Listen on a free 127.0.0.1 port and forward to `upstream_port`.
    pub fn start(upstream_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let plan = Arc::new(Mutex::new(Plan::default()));
        let cut_count = Arc::new(AtomicUsize::new(0));
        let hold_count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let open = Arc::new(Mutex::new(Vec::new()));
        let shared = Shared {
            plan: plan.clone(),
            cuts: cut_count.clone(),
            holds: hold_count.clone(),
            stop: stop.clone(),
            open: open.clone(),
        };
        let acceptor = thread::spawn(move || {
            let mut serving = Vec::new();
            while !shared.stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let shared = shared.clone();
                        serving.push(thread::spawn(move || {
                            let _ = serve(client, upstream_port, &shared);
                        }));
                    }
                    Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        // Polls `stop` at least every 5 ms.
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
            // Shut down after the last accept, so none is left open.
            for socket in shared.open.lock().expect("open sockets").iter() {
                let _ = socket.shutdown(Shutdown::Both);
            }
            for t in serving {
                let _ = t.join();
            }
        });
        Ok(Self {
            port,
            plan,
            cut_count,
            hold_count,
            stop,
            open,
            acceptor: Some(acceptor),
        })
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Swallow the answers to the next `times` requests whose request line
    /// contains `fragment` (the server still processes them).
    pub fn cut_answers(&self, fragment: &str, times: usize) {
        self.plan
            .lock()
            .expect("plan")
            .cuts
            .push((fragment.to_owned(), times));
    }

    /// How many answers were swallowed so far.
    pub fn cuts_done(&self) -> usize {
        self.cut_count.load(Ordering::SeqCst)
    }

    /// Hold back the answers to the next `times` requests whose request
    /// line contains `fragment` (the server still processes them): the
    /// client waits for them until it gives up or is killed.
    pub fn hold_answers(&self, fragment: &str, times: usize) {
        self.plan
            .lock()
            .expect("plan")
            .holds
            .push((fragment.to_owned(), times));
    }

    /// How many answers the server has given that are being held back.
    pub fn holds_done(&self) -> usize {
        self.hold_count.load(Ordering::SeqCst)
    }
}

impl Drop for FaultProxy {
    /// Stop accepting, shut every forwarded connection down both ways (so
    /// no thread is left blocked reading) and join every thread.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for socket in self.open.lock().expect("open sockets").iter() {
            let _ = socket.shutdown(Shutdown::Both);
        }
        if let Some(t) = self.acceptor.take() {
            let _ = t.join();
        }
    }
}

fn fate_of(plan: &Mutex<Plan>, head: &[u8]) -> Fate {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut plan = plan.lock().expect("plan");
    let plan = &mut *plan;
    for (list, fate) in [(&mut plan.cuts, Fate::Cut), (&mut plan.holds, Fate::Hold)] {
        for (fragment, left) in list.iter_mut() {
            if *left > 0 && line.contains(fragment.as_str()) {
                *left -= 1;
                return fate;
            }
        }
    }
    Fate::Forward
}

/// What the accepting thread and each connection's threads share.
#[derive(Clone)]
struct Shared {
    plan: Arc<Mutex<Plan>>,
    cuts: Arc<AtomicUsize>,
    holds: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    open: Arc<Mutex<Vec<TcpStream>>>,
}

fn serve(mut client: TcpStream, upstream_port: u16, shared: &Shared) -> std::io::Result<()> {
    let Shared {
        plan,
        cuts,
        holds,
        stop,
        open,
    } = shared;
    let (cuts, holds) = (cuts.clone(), holds.clone());
    client.set_nonblocking(false)?;
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    {
        let mut open = open.lock().expect("open sockets");
        open.push(client.try_clone()?);
        open.push(upstream.try_clone()?);
    }
    // Stopped while connecting: the shut-down pass may have missed these.
    if stop.load(Ordering::SeqCst) {
        return Ok(());
    }
    let mut up_reader = upstream.try_clone()?;
    let mut client_writer = client.try_clone()?;
    let fate_now = Arc::new(Mutex::new(Fate::Forward));
    let fate = fate_now.clone();
    // Server → client: forward, unless the current request's answer is to
    // be cut or held back.
    let back = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        let mut holding = false;
        loop {
            match up_reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let now = *fate.lock().expect("fate");
                    if now == Fate::Hold {
                        // Never forwarded: the client waits on, until the
                        // proxy or the server closes the connection.
                        if !holding {
                            holds.fetch_add(1, Ordering::SeqCst);
                            holding = true;
                        }
                        continue;
                    }
                    if now == Fate::Cut {
                        // The server has answered: it committed. Drop the
                        // answer, counted before the client can notice, so
                        // a test that checks the count after the client
                        // exits never races this thread.
                        cuts.fetch_add(1, Ordering::SeqCst);
                        let _ = client_writer.shutdown(Shutdown::Both);
                        let _ = up_reader.shutdown(Shutdown::Both);
                        return;
                    }
                    if client_writer.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_writer.shutdown(Shutdown::Both);
    });
    // Client → server.
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match client.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if buf[..n].starts_with(b"POST ") || buf[..n].starts_with(b"GET ") {
            *fate_now.lock().expect("fate") = fate_of(plan, &buf[..n]);
        }
        if upstream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
    Ok(())
}
