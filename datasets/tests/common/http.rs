//! A tiny HTTP/1.1 responder on the loopback address for download tests: it answers a
//! fixed list of canned responses, one per connection, then stops. Bounded in requests
//! and in time (it gives up waiting for a connection after `IDLE_LIMIT`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long the server waits for the next connection before it stops.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// One canned answer.
#[derive(Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
    /// The `Content-Length` announced (default: the body's length).
    pub content_length: Option<u64>,
    /// Send only this many body bytes, then close the connection.
    pub cut_after: Option<usize>,
}

impl Reply {
    pub fn ok(body: Vec<u8>) -> Self {
        Reply {
            status: 200,
            body,
            content_length: None,
            cut_after: None,
        }
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: b"not here".to_vec(),
            content_length: None,
            cut_after: None,
        }
    }
}

pub struct Server {
    pub url: String,
    requests: Arc<AtomicUsize>,
    handle: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `replies` in order at `http://127.0.0.1:PORT/cifar-10-binary.tar.gz`,
    /// one per connection, then stops.
    pub fn start(replies: Vec<Reply>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!(
            "http://{}/cifar-10-binary.tar.gz",
            listener.local_addr().unwrap()
        );
        let requests = Arc::new(AtomicUsize::new(0));
        let count = requests.clone();
        let handle = std::thread::spawn(move || {
            for reply in replies {
                let Some(stream) = accept(&listener) else {
                    return;
                };
                count.fetch_add(1, Ordering::SeqCst);
                let _ = answer(stream, &reply);
            }
        });
        Server {
            url,
            requests,
            handle: Some(handle),
        }
    }

    /// Requests answered so far.
    pub fn requests(&self) -> usize {
        self.requests.load(Ordering::SeqCst)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // The thread stops by itself once its replies are used or it idles out; do not
        // wait for that here.
        drop(self.handle.take());
    }
}

/// An address on which nothing listens (connections are refused at once).
pub fn refused_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/cifar-10-binary.tar.gz")
}

fn accept(listener: &TcpListener) -> Option<TcpStream> {
    let deadline = Instant::now() + IDLE_LIMIT;
    while Instant::now() < deadline {
        match listener.accept() {
            Ok((stream, _)) => return Some(stream),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(_) => return None,
        }
    }
    None
}

fn answer(mut stream: TcpStream, reply: &Reply) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(30)))?;
    // Read the request head (bounded), ignoring its contents.
    let mut head = Vec::new();
    let mut byte = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
        let n = stream.read(&mut byte)?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&byte[..n]);
    }
    let reason = match reply.status {
        200 => "OK",
        404 => "Not Found",
        _ => "Status",
    };
    let length = reply.content_length.unwrap_or(reply.body.len() as u64);
    write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Length: {length}\r\nContent-Type: application/gzip\r\nConnection: close\r\n\r\n",
        reply.status
    )?;
    let sent = reply
        .cut_after
        .unwrap_or(reply.body.len())
        .min(reply.body.len());
    stream.write_all(&reply.body[..sent])?;
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}
