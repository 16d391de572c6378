//! [`RawConn`]: a plain TCP connection for exact RESP bytes.

use super::*;

/// What a read with a deadline produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// One whole reply.
    Reply(Vec<u8>),
    /// The peer closed (FIN or RST); the bytes received before that.
    Closed(Vec<u8>),
    /// The deadline passed; the bytes of an incomplete reply, if any.
    TimedOut(Vec<u8>),
}

/// A plain TCP connection speaking raw RESP bytes.
pub struct RawConn {
    stream: TcpStream,
    /// Bytes received but not yet handed out as a reply.
    pending: Vec<u8>,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::try_connect(addr, REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(RawConn {
            stream,
            pending: Vec::new(),
        })
    }

    /// Wraps a connected stream (one bound to a chosen local address, say).
    pub fn from_stream(stream: TcpStream) -> RawConn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
        RawConn {
            stream,
            pending: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends one command as a RESP multibulk.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let frame = resp::encode(args);
        self.send(&frame)
            .unwrap_or_else(|e| panic!("cannot send {}: {e}", resp::show(&frame)));
    }

    /// Sends one command and returns its whole reply (panics on timeout or close).
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// The next whole reply; panics if none arrives within [`REPLY_TIMEOUT`].
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.try_read_reply(REPLY_TIMEOUT) {
            ReadOutcome::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The next whole reply, or what happened instead.
    pub fn try_read_reply(&mut self, timeout: Duration) -> ReadOutcome {
        let deadline = Instant::now() + timeout;
        loop {
            match resp::reply_len(&self.pending) {
                Ok(Some(n)) => {
                    let reply = self.pending.drain(..n).collect();
                    return ReadOutcome::Reply(reply);
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "malformed reply from server ({e}): {}",
                    resp::show(&self.pending)
                ),
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return ReadOutcome::Closed(std::mem::take(&mut self.pending)),
                Fill::TimedOut => return ReadOutcome::TimedOut(std::mem::take(&mut self.pending)),
            }
        }
    }

    /// Reads until the peer closes; `Ok(bytes received)` on close, `Err(bytes)`
    /// if it is still open at the deadline.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Ok(std::mem::take(&mut self.pending)),
                Fill::TimedOut => return Err(std::mem::take(&mut self.pending)),
            }
        }
    }

    /// Reads until `pred(bytes so far)` holds, the peer closes, or the deadline.
    /// Returns the bytes and whether the connection was closed.
    pub fn read_while(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> (Vec<u8>, Fill) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.pending) {
                return (std::mem::take(&mut self.pending), Fill::Data);
            }
            match self.fill(deadline) {
                Fill::Data => {}
                end => return (std::mem::take(&mut self.pending), end),
            }
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for `dur`.
    pub fn assert_silent(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        match self.fill(deadline) {
            Fill::TimedOut => {}
            Fill::Data => panic!("expected no reply yet, got {}", resp::show(&self.pending)),
            Fill::Closed => panic!(
                "expected the connection to stay open and silent, but it was closed (after {})",
                resp::show(&self.pending)
            ),
        }
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let now = Instant::now();
        if now >= deadline {
            return Fill::TimedOut;
        }
        let _ = self.stream.set_read_timeout(Some(deadline - now));
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Fill::Data
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fill::TimedOut,
                io::ErrorKind::Interrupted => Fill::Data,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => Fill::Closed,
                _ => panic!("read failed: {e}"),
            },
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// The result of one read attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Data,
    Closed,
    TimedOut,
}
