//! A TCP proxy that can cut connections at the worst moment: after the
//! server has processed a request and started answering, before the client
//! has read the answer.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct Plan {
    /// Request-line fragment (e.g. `POST /v1/sync/push`) → how many answers to swallow.
    cuts: Vec<(String, usize)>,
}

/// A loopback proxy to one upstream port.
pub struct FaultProxy {
    port: u16,
    plan: Arc<Mutex<Plan>>,
    cut_count: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl FaultProxy {
    /// Listen on a free 127.0.0.1 port and forward to `upstream_port`.
    pub fn start(upstream_port: u16) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        listener.set_nonblocking(true)?;
        let plan = Arc::new(Mutex::new(Plan::default()));
        let cut_count = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (p, c, s) = (plan.clone(), cut_count.clone(), stop.clone());
        thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((client, _)) => {
                        let (p, c) = (p.clone(), c.clone());
                        thread::spawn(move || {
                            let _ = serve(client, upstream_port, &p, c);
                        });
                    }
                    Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        thread::sleep(Duration::from_millis(5));
                    }
                    Err(_) => break,
                }
            }
        });
        Ok(Self {
            port,
            plan,
            cut_count,
            stop,
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
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn take_cut(plan: &Mutex<Plan>, head: &[u8]) -> bool {
    let line_end = head.iter().position(|b| *b == b'\n').unwrap_or(head.len());
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut plan = plan.lock().expect("plan");
    for (fragment, left) in &mut plan.cuts {
        if *left > 0 && line.contains(fragment.as_str()) {
            *left -= 1;
            return true;
        }
    }
    false
}

fn serve(
    mut client: TcpStream,
    upstream_port: u16,
    plan: &Mutex<Plan>,
    cuts: Arc<AtomicUsize>,
) -> std::io::Result<()> {
    client.set_nonblocking(false)?;
    let mut upstream = TcpStream::connect(("127.0.0.1", upstream_port))?;
    let mut up_reader = upstream.try_clone()?;
    let mut client_writer = client.try_clone()?;
    let cut_now = Arc::new(AtomicBool::new(false));
    let cut_flag = cut_now.clone();
    // Server → client: forward, unless the current request's answer is to be cut.
    let back = thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match up_reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if cut_flag.load(Ordering::SeqCst) {
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
            cut_now.store(take_cut(plan, &buf[..n]), Ordering::SeqCst);
        }
        if upstream.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = upstream.shutdown(Shutdown::Write);
    let _ = back.join();
    Ok(())
}
