//! The API socket's wire format: HTTP/1.1 requests with JSON bodies, one request per
//! connection (every response says `Connection: close`), as Firecracker's and
//! cloud-hypervisor's API sockets speak it, so `curl --unix-socket` works as a client too.
//!
//! Pure: [`parse`] reads a request from the bytes received so far, [`Response::encode`] writes
//! one. Everything a client sends is hostile: sizes are bounded before anything is kept.

use serde::Serialize;

/// The request line and headers together may not exceed this.
pub const MAX_HEAD: usize = 8 * 1024;
/// A request body may not exceed this.
pub const MAX_BODY: usize = 16 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
}

/// What the bytes received so far hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// Not a whole request yet.
    Incomplete,
    /// A whole request.
    Done(Request),
}

/// A request platvmm refuses, answered with [`HttpError::status`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HttpError {
    /// The request line is not `METHOD PATH HTTP/1.x`.
    #[error("malformed request line (expected e.g. 'GET /api/v1/vm.info HTTP/1.1')")]
    RequestLine,
    /// Not HTTP/1.0 or HTTP/1.1.
    #[error("unsupported protocol '{0}' (platvmm speaks HTTP/1.1)")]
    Version(String),
    /// A header line without a colon, or not UTF-8.
    #[error("malformed header line")]
    Header,
    /// The head is longer than [`MAX_HEAD`].
    #[error("request head longer than {MAX_HEAD} bytes")]
    HeadTooLarge,
    /// Content-Length is not a number.
    #[error("Content-Length '{0}' is not a number")]
    ContentLength(String),
    /// The body is longer than [`MAX_BODY`].
    #[error("request body of {0} bytes is over the {MAX_BODY}-byte limit")]
    BodyTooLarge(u64),
    /// Chunked bodies are not supported.
    #[error("Transfer-Encoding is not supported: send Content-Length")]
    TransferEncoding,
}

impl HttpError {
    /// The HTTP status this refusal is answered with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge => 431,
            HttpError::BodyTooLarge(_) => 413,
            HttpError::Version(_) => 505,
            HttpError::TransferEncoding => 501,
            _ => 400,
        }
    }
}

/// Parses the bytes received so far on a connection.
pub fn parse(buf: &[u8]) -> Result<Parsed, HttpError> {
    let Some(end) = find(buf, b"\r\n\r\n") else {
        return if buf.len() > MAX_HEAD {
            Err(HttpError::HeadTooLarge)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    if end > MAX_HEAD {
        return Err(HttpError::HeadTooLarge);
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| HttpError::Header)?;
    let mut lines = head.split("\r\n");
    let (method, path) = request_line(lines.next().unwrap_or_default())?;
    let length = body_length(lines)?;
    let body_start = end + 4;
    if buf.len() < body_start + length {
        return Ok(Parsed::Incomplete);
    }
    Ok(Parsed::Done(Request {
        method,
        path,
        body: buf[body_start..body_start + length].to_vec(),
    }))
}

/// `METHOD PATH HTTP/1.x` → method and path.
fn request_line(line: &str) -> Result<(String, String), HttpError> {
    let mut parts = line.split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(HttpError::RequestLine);
    };
    let token = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_uppercase());
    if !token(method) || !path.starts_with('/') {
        return Err(HttpError::RequestLine);
    }
    if version != "HTTP/1.1" && version != "HTTP/1.0" {
        return Err(HttpError::Version(version.chars().take(16).collect()));
    }
    Ok((method.to_string(), path.to_string()))
}

/// The body's length from the headers (none: 0).
fn body_length<'a>(lines: impl Iterator<Item = &'a str>) -> Result<usize, HttpError> {
    let mut length = 0usize;
    for line in lines {
        let (name, value) = line.split_once(':').ok_or(HttpError::Header)?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(HttpError::TransferEncoding);
        }
        if name.eq_ignore_ascii_case("content-length") {
            let n: u64 = value
                .parse()
                .map_err(|_| HttpError::ContentLength(value.chars().take(32).collect()))?;
            if n > MAX_BODY as u64 {
                return Err(HttpError::BodyTooLarge(n));
            }
            length = n as usize;
        }
    }
    Ok(length)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// One response: a status and a JSON body (an object; errors are `{"error": MESSAGE}`).
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    pub status: u16,
    pub body: serde_json::Value,
}

impl Response {
    /// 200 with `body` serialised.
    pub fn ok(body: impl Serialize) -> Self {
        let body = serde_json::to_value(body)
            .unwrap_or_else(|e| serde_json::json!({ "error": format!("cannot encode: {e}") }));
        Self { status: 200, body }
    }

    /// `status` with `{"error": message}`.
    pub fn error(status: u16, message: impl std::fmt::Display) -> Self {
        Self {
            status,
            body: serde_json::json!({ "error": message.to_string() }),
        }
    }

    /// The bytes on the wire.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = self.body.to_string();
        body.push('\n');
        format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            self.status,
            reason(self.status),
            body.len()
        )
        .into_bytes()
    }
}

/// The reason phrase of the statuses platvmm sends.
fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "Unknown",
    }
}

/// A response read back by a client: status and body.
pub fn parse_response(buf: &[u8]) -> Result<(u16, serde_json::Value), String> {
    let end = find(buf, b"\r\n\r\n").ok_or("the reply has no end of headers")?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| "the reply is not UTF-8")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line '{}'", head.lines().next().unwrap_or("")))?;
    let body = &buf[end + 4..];
    let value = if body.iter().all(u8::is_ascii_whitespace) {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(body).map_err(|e| format!("the reply body is not JSON: {e}"))?
    };
    Ok((status, value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn done(s: &[u8]) -> Request {
        match parse(s) {
            Ok(Parsed::Done(r)) => r,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_request_is_parsed_once_whole() {
        let whole = b"PUT /api/v1/vm.pause HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}";
        for cut in 0..whole.len() {
            assert_eq!(parse(&whole[..cut]), Ok(Parsed::Incomplete), "cut at {cut}");
        }
        let r = done(whole);
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("PUT", "/api/v1/vm.pause")
        );
        assert_eq!(r.body, b"{}");
        let r = done(b"GET /api/v1/vm.info HTTP/1.0\r\n\r\n");
        assert!(r.body.is_empty());
    }

    #[test]
    fn bad_requests_are_refused_with_their_status() {
        let cases: &[(&[u8], u16)] = &[
            (b"garbage\r\n\r\n", 400),
            (b"get / HTTP/1.1\r\n\r\n", 400),
            (b"GET nopath HTTP/1.1\r\n\r\n", 400),
            (b"GET / HTTP/2\r\n\r\n", 505),
            (b"GET / HTTP/1.1\r\nno colon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
            (
                b"GET / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n",
                400,
            ),
            (b"PUT / HTTP/1.1\r\nContent-Length: 1000000\r\n\r\n", 413),
            (b"PUT / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            (b"GET /\xff HTTP/1.1\r\n\r\n", 400),
        ];
        for (req, status) in cases {
            let e = parse(req).expect_err(&String::from_utf8_lossy(req));
            assert_eq!(e.status(), *status, "{e}");
        }
    }

    #[test]
    fn a_head_that_never_ends_is_refused_at_the_limit() {
        let mut flood = b"GET / HTTP/1.1\r\nX: ".to_vec();
        flood.resize(MAX_HEAD, b'a');
        assert_eq!(parse(&flood), Ok(Parsed::Incomplete));
        flood.push(b'a');
        assert_eq!(parse(&flood), Err(HttpError::HeadTooLarge));
    }

    #[test]
    fn responses_round_trip() {
        let r = Response::error(404, "no such thing");
        let wire = r.encode();
        let text = String::from_utf8(wire.clone()).unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        assert!(text.contains("Connection: close\r\n"), "{text}");
        let (status, body) = parse_response(&wire).unwrap();
        assert_eq!(status, 404);
        assert_eq!(body["error"], "no such thing");
        let (status, body) = parse_response(&Response::ok(vec![1, 2]).encode()).unwrap();
        assert_eq!((status, body), (200, serde_json::json!([1, 2])));
        assert!(parse_response(b"HTTP/1.1 200 OK\r\n\r\n{bad").is_err());
    }
}
