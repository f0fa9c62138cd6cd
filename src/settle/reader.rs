//! The settler's reads of its stream (`XREADGROUP`) on a socket of their own,
//! with the reply parsed here, straight into the entries: the redis crate's
//! generic parser (combine, a boxed partial state per value, a `Value` and a
//! `Vec` per field) was over half of the settler's CPU on the settle benchmark
//! (docs/benchmarks.md). Only for a single server reached over TCP or a Unix
//! socket; on a cluster the settler reads through the crate
//! (`stream::read`).
//!
//! The socket speaks RESP2 (no `HELLO`), authenticates and selects the
//! database as the client's URL says, and carries one request at a time. A
//! read that fails, times out or is dropped half-way drops the socket (the
//! next read connects again): a reply is never taken for another's.

use super::stream::{Fields, RawEntry, read_command};
use redis::{ConnectionAddr, ErrorKind, RedisError, RedisResult};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

trait Socket: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Socket for T {}

/// A dedicated reading connection (see the module's comment).
pub struct Reader {
    info: redis::ConnectionInfo,
    connect_timeout: Duration,
    response_timeout: Duration,
    socket: Option<Box<dyn Socket>>,
    /// A request was sent and its reply not read to the end (the read was
    /// dropped): the socket must not serve another.
    busy: bool,
    /// Bytes read and not yet consumed; kept between reads (its capacity).
    buf: Vec<u8>,
}

impl Reader {
    /// A reader for `client`'s server, or `None` when the server is reached
    /// some other way (TLS) than this reader supports.
    pub fn new(client: &redis::Client, connect: Duration, response: Duration) -> Option<Reader> {
        let info = client.get_connection_info().clone();
        match info.addr() {
            ConnectionAddr::Tcp(..) | ConnectionAddr::Unix(_) => {}
            _ => return None,
        }
        Some(Reader {
            info,
            connect_timeout: connect,
            response_timeout: response,
            socket: None,
            busy: false,
            buf: Vec::new(),
        })
    }

    /// `XREADGROUP GROUP settlers <consumer> COUNT <count> [BLOCK <ms>]
    /// STREAMS <stream> <from>`, as `stream::read` sends it, and its entries
    /// in order (an entry deleted while pending comes with no fields).
    pub async fn read(
        &mut self,
        stream: &str,
        consumer: &str,
        from: &str,
        count: usize,
        block_ms: Option<u64>,
    ) -> RedisResult<Vec<RawEntry>> {
        let cmd = read_command(stream, consumer, from, count, block_ms);
        let wait = self.response_timeout + Duration::from_millis(block_ms.unwrap_or(0));
        let reply = self.request(&cmd, wait).await?;
        let out = entries(&self.buf[..reply]);
        self.buf.drain(..reply);
        out
    }

    /// Sends `cmd` and reads its whole reply into `buf`; returns its length.
    async fn request(&mut self, cmd: &redis::Cmd, wait: Duration) -> RedisResult<usize> {
        if self.busy || self.socket.is_none() {
            self.socket = None;
            self.busy = false;
            self.buf.clear();
            let socket = tokio::time::timeout(self.connect_timeout, self.connect())
                .await
                .map_err(|_| timeout("connecting"))??;
            self.socket = Some(socket);
        }
        self.busy = true;
        let result = tokio::time::timeout(wait, async {
            let socket = self.socket.as_mut().expect("connected above");
            socket.write_all(&cmd.get_packed_command()).await?;
            read_reply(socket.as_mut(), &mut self.buf).await
        })
        .await
        .map_err(|_| timeout("waiting for XREADGROUP"))
        .and_then(|r| r);
        match result {
            Ok(n) => {
                self.busy = false;
                Ok(n)
            }
            Err(e) => {
                self.socket = None;
                self.busy = false;
                self.buf.clear();
                Err(e)
            }
        }
    }

    async fn connect(&mut self) -> RedisResult<Box<dyn Socket>> {
        let mut socket: Box<dyn Socket> = match self.info.addr() {
            ConnectionAddr::Tcp(host, port) => {
                let s = tokio::net::TcpStream::connect((host.as_str(), *port)).await?;
                s.set_nodelay(true)?;
                Box::new(s)
            }
            ConnectionAddr::Unix(path) => Box::new(tokio::net::UnixStream::connect(path).await?),
            _ => {
                return Err(RedisError::from((
                    ErrorKind::InvalidClientConfig,
                    "not TCP",
                )));
            }
        };
        let settings = self.info.redis_settings();
        let mut setup = Vec::new();
        if let Some(password) = settings.password() {
            let mut auth = redis::cmd("AUTH");
            if let Some(user) = settings.username() {
                auth.arg(user);
            }
            auth.arg(password);
            setup.push(auth);
        }
        if settings.db() != 0 {
            setup.push(redis::cmd("SELECT").arg(settings.db()).clone());
        }
        for cmd in setup {
            socket.write_all(&cmd.get_packed_command()).await?;
            let n = read_reply(socket.as_mut(), &mut self.buf).await?;
            let reply = redis::parse_redis_value(&self.buf[..n]);
            self.buf.drain(..n);
            reply?.extract_error()?;
        }
        Ok(socket)
    }
}

fn timeout(what: &'static str) -> RedisError {
    RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        format!("the settler's stream reader timed out {what}"),
    ))
}

fn parse_error(what: &'static str) -> RedisError {
    RedisError::from((ErrorKind::Parse, "unexpected XREADGROUP reply", what.into()))
}

/// Reads from `socket` into `buf` until `buf` starts with one whole reply;
/// returns its length.
async fn read_reply(socket: &mut dyn Socket, buf: &mut Vec<u8>) -> RedisResult<usize> {
    let mut scan = Scan::default();
    loop {
        if let Some(n) = scan.advance(buf)? {
            return Ok(n);
        }
        if buf.capacity() - buf.len() < 16 * 1024 {
            buf.reserve(64 * 1024);
        }
        if socket.read_buf(buf).await? == 0 {
            return Err(RedisError::from(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "Redis closed the settler's stream reader",
            )));
        }
    }
}

/// How far a reply has been found whole: resumes where the bytes ran out, so
/// a large reply arriving in many reads is scanned once.
#[derive(Default)]
struct Scan {
    at: usize,
    /// Elements still expected at each open array level.
    open: Vec<u64>,
    started: bool,
}

impl Scan {
    /// `Some(len)` once `buf` holds a whole reply; `None` while more is needed.
    fn advance(&mut self, buf: &[u8]) -> RedisResult<Option<usize>> {
        loop {
            if self.started && self.open.is_empty() {
                return Ok(Some(self.at));
            }
            let Some((kind, n, header)) = header(&buf[self.at..])? else {
                return Ok(None);
            };
            let step = match kind {
                b'$' | b'!' | b'=' if n >= 0 => {
                    let total = header + n as usize + 2;
                    if buf.len() - self.at < total {
                        return Ok(None);
                    }
                    total
                }
                _ => header,
            };
            self.at += step;
            self.started = true;
            // This element fills a slot of the innermost open array.
            if let Some(last) = self.open.last_mut() {
                *last -= 1;
            }
            match kind {
                b'*' | b'~' | b'>' if n > 0 => self.open.push(n as u64),
                b'%' | b'|' if n > 0 => self.open.push(2 * n as u64),
                _ => {}
            }
            while self.open.last() == Some(&0) {
                self.open.pop();
            }
        }
    }
}

/// The header line at the start of `b`: its type byte, its number (lengths
/// and counts; 0 for the other types) and the line's length with `\r\n`.
fn header(b: &[u8]) -> RedisResult<Option<(u8, i64, usize)>> {
    let Some(end) = memchr(b) else {
        return Ok(None);
    };
    let kind = b[0];
    let n = match kind {
        b'*' | b'$' | b'%' | b'~' | b'>' | b'|' | b'!' | b'=' => {
            number(&b[1..end]).ok_or_else(|| parse_error("a bad length"))?
        }
        b'+' | b'-' | b':' | b'_' | b',' | b'#' | b'(' => 0,
        _ => return Err(parse_error("an unknown type byte")),
    };
    Ok(Some((kind, n, end + 2)))
}

/// Where the first `\r\n` of `b` starts.
fn memchr(b: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = b[from..].iter().position(|&c| c == b'\r') {
        let at = from + i;
        match b.get(at + 1) {
            Some(b'\n') => return Some(at),
            Some(_) => from = at + 1,
            None => return None,
        }
    }
    None
}

fn number(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// A whole RESP2 reply, walked once.
struct Walk<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Walk<'a> {
    /// The next header: type byte and number; errors for a server error.
    fn next(&mut self) -> RedisResult<(u8, i64)> {
        let (kind, n, len) = header(&self.b[self.at..])?.ok_or_else(|| parse_error("cut off"))?;
        if kind == b'-' {
            let line = &self.b[self.at..self.at + len];
            return Err(redis::parse_redis_value(line)?
                .extract_error()
                .err()
                .unwrap_or_else(|| parse_error("an error reply")));
        }
        self.at += len;
        Ok((kind, n))
    }

    /// The next bulk string (or simple string), as bytes.
    fn bytes(&mut self) -> RedisResult<Option<&'a [u8]>> {
        let start = self.at;
        match self.next()? {
            (b'$', n) if n >= 0 => {
                let from = self.at;
                self.at += n as usize + 2;
                Ok(Some(&self.b[from..from + n as usize]))
            }
            (b'+', _) => Ok(Some(&self.b[start + 1..self.at - 2])),
            _ => Ok(None),
        }
    }

    /// Skips one whole element (of any depth).
    fn skip(&mut self) -> RedisResult<()> {
        let mut left = 1u64;
        while left > 0 {
            left -= 1;
            match self.next()? {
                (b'$', n) if n >= 0 => self.at += n as usize + 2,
                (b'*', n) if n > 0 => left += n as u64,
                _ => {}
            }
        }
        Ok(())
    }
}

/// `[[stream, [[id, [field, value, …]], …]], …]` or nil, into the entries.
/// An entry whose field list is nil (deleted while pending) comes with no
/// fields, as `stream::read` gives it.
fn entries(reply: &[u8]) -> RedisResult<Vec<RawEntry>> {
    let mut w = Walk { b: reply, at: 0 };
    let mut out = Vec::new();
    let streams = match w.next()? {
        (b'*', n) if n > 0 => n,
        (b'*', _) | (b'_', _) => return Ok(out),
        _ => return Err(parse_error("not an array")),
    };
    for _ in 0..streams {
        if w.next()? != (b'*', 2) {
            return Err(parse_error("a stream is not a pair"));
        }
        w.skip()?; // the stream's name
        let n = match w.next()? {
            (b'*', n) if n > 0 => n as usize,
            _ => continue,
        };
        out.reserve(n);
        for _ in 0..n {
            if w.next()? != (b'*', 2) {
                return Err(parse_error("an entry is not a pair"));
            }
            let id = w
                .bytes()?
                .and_then(|b| std::str::from_utf8(b).ok())
                .ok_or_else(|| parse_error("an entry id is not text"))?
                .to_owned();
            let mut fields: Fields = Vec::new();
            match w.next()? {
                (b'*', m) if m > 0 => {
                    fields.reserve(m as usize / 2);
                    for _ in 0..m / 2 {
                        let (Some(k), Some(v)) = (w.bytes()?, w.bytes()?) else {
                            return Err(parse_error("a field is not a string"));
                        };
                        fields.push((k.to_vec(), v.to_vec()));
                    }
                    if m % 2 == 1 {
                        w.skip()?;
                    }
                }
                _ => {}
            }
            out.push((id, fields));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLY: &[u8] = b"*1\r\n*2\r\n$6\r\npw:{c}\r\n*2\r\n\
        *2\r\n$3\r\n1-0\r\n*4\r\n$4\r\ntype\r\n$4\r\nspin\r\n$3\r\nctx\r\n$0\r\n\r\n\
        *2\r\n$3\r\n1-1\r\n*-1\r\n";

    #[test]
    fn a_reply_parses_as_the_crate_would() {
        let ours = entries(REPLY).unwrap();
        assert_eq!(
            ours,
            vec![
                (
                    "1-0".to_owned(),
                    vec![
                        (b"type".to_vec(), b"spin".to_vec()),
                        (b"ctx".to_vec(), b"".to_vec())
                    ]
                ),
                ("1-1".to_owned(), vec![]),
            ]
        );
        assert!(entries(b"*-1\r\n").unwrap().is_empty(), "BLOCK ran out");
        let err = entries(b"-NOGROUP No such key\r\n").unwrap_err();
        assert_eq!(err.code(), Some("NOGROUP"));
    }

    #[test]
    fn a_reply_is_found_whole_however_it_is_cut() {
        for cut in 0..REPLY.len() {
            let mut scan = Scan::default();
            assert_eq!(scan.advance(&REPLY[..cut]).unwrap(), None, "cut at {cut}");
            assert_eq!(scan.advance(REPLY).unwrap(), Some(REPLY.len()));
        }
        let mut two = REPLY.to_vec();
        two.extend_from_slice(b"*-1\r\n");
        assert_eq!(Scan::default().advance(&two).unwrap(), Some(REPLY.len()));
        assert_eq!(Scan::default().advance(b"*-1\r\n").unwrap(), Some(5));
        assert_eq!(Scan::default().advance(b"+OK\r\n").unwrap(), Some(5));
    }
}
