//! `platvmm ctl SOCKET ACTION`: the API socket's client. One request, its JSON reply printed
//! (pretty) on success; an error reply, a refused connection or a silent server is one line
//! and a non-zero status.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::http::parse_response;
use crate::api::Action;

/// How long the client waits for a reply (a pause waits up to 2 s for the vCPUs).
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why `ctl` failed.
#[derive(Debug, thiserror::Error)]
pub enum CtlError {
    /// Nothing listens there.
    #[error("cannot connect to {p}: {source} (is a VM running with --api-socket {p}?)", p = .path.display())]
    Connect {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The exchange failed half-way.
    #[error("{}: {what}: {source}", .path.display())]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    /// The reply is not HTTP with a JSON body.
    #[error("{}: unreadable reply: {reason}", .path.display())]
    Reply { path: PathBuf, reason: String },
    /// The VM refused.
    #[error("{action}: {message} (HTTP {status})")]
    Refused {
        action: &'static str,
        status: u16,
        message: String,
    },
}

/// Sends `action` to the VM listening on `socket`; its reply body on success.
pub fn run(socket: &Path, action: Action) -> Result<serde_json::Value, CtlError> {
    let req = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\n\r\n",
        action.method(),
        action.path()
    );
    let (status, body) = raw(socket, req.as_bytes())?;
    if status != 200 {
        let message = body["error"]
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| body.to_string());
        return Err(CtlError::Refused {
            action: action.name(),
            status,
            message,
        });
    }
    Ok(body)
}

/// Sends what `input` holds, as it comes, to the VM listening on `socket` (connected first:
/// an input that never ends is a client that never finishes its request); the reply's
/// status and body.
pub fn raw(socket: &Path, mut input: impl Read) -> Result<(u16, serde_json::Value), CtlError> {
    let io = |what| {
        move |source| CtlError::Io {
            path: socket.to_path_buf(),
            what,
            source,
        }
    };
    let mut s = UnixStream::connect(socket).map_err(|source| CtlError::Connect {
        path: socket.to_path_buf(),
        source,
    })?;
    let mut chunk = [0u8; 4096];
    loop {
        let n = input
            .read(&mut chunk)
            .map_err(io("cannot read the input"))?;
        // The server may reply (and close) before the whole input is sent.
        if n == 0 || s.write_all(&chunk[..n]).is_err() {
            break;
        }
    }
    let _ = s.shutdown(std::net::Shutdown::Write);
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .map_err(io("cannot set a timeout"))?;
    let reply = read_reply(&mut s).map_err(io("no reply"))?;
    parse_response(&reply).map_err(|reason| CtlError::Reply {
        path: socket.to_path_buf(),
        reason,
    })
}

/// The whole reply (at most 1 MiB). A server that closes with part of a request unread (it
/// refused it) resets the connection after its reply: the reply read so far counts.
fn read_reply(s: &mut UnixStream) -> std::io::Result<Vec<u8>> {
    let mut reply = Vec::new();
    match s.take(1 << 20).read_to_end(&mut reply) {
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && !reply.is_empty() => Ok(reply),
        r => r.map(|_| reply),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    fn socket(tag: &str) -> PathBuf {
        std::env::temp_dir().join(format!("platvmm-ctl-{tag}-{}.sock", std::process::id()))
    }

    /// A one-shot server answering `reply` and handing back the request it read.
    fn server(path: &Path, reply: &'static [u8]) -> std::thread::JoinHandle<String> {
        let _ = std::fs::remove_file(path);
        let l = UnixListener::bind(path).unwrap();
        std::thread::spawn(move || {
            let (mut c, _) = l.accept().unwrap();
            let mut buf = [0u8; 1024];
            let n = c.read(&mut buf).unwrap();
            c.write_all(reply).unwrap();
            String::from_utf8_lossy(&buf[..n]).into_owned()
        })
    }

    #[test]
    fn an_action_is_one_request_and_its_json_reply() {
        let p = socket("ok");
        let t = server(
            &p,
            b"HTTP/1.1 200 OK\r\nContent-Length: 18\r\n\r\n{\"state\":\"paused\"}",
        );
        let body = run(&p, Action::Pause).unwrap();
        assert_eq!(body["state"], "paused");
        let req = t.join().unwrap();
        assert!(
            req.starts_with("PUT /api/v1/vm.pause HTTP/1.1\r\n"),
            "{req}"
        );
        std::fs::remove_file(p).unwrap();
    }

    #[test]
    fn refusals_and_missing_servers_are_one_line_errors() {
        let p = socket("refused");
        let t = server(
            &p,
            b"HTTP/1.1 409 Conflict\r\n\r\n{\"error\":\"the VM is not paused\"}",
        );
        let e = run(&p, Action::Resume).unwrap_err();
        assert_eq!(e.to_string(), "resume: the VM is not paused (HTTP 409)");
        t.join().unwrap();
        std::fs::remove_file(&p).unwrap();
        let e = run(&p, Action::Info).unwrap_err();
        assert!(matches!(e, CtlError::Connect { .. }), "{e}");
        assert!(
            e.to_string().contains("is a VM running with --api-socket"),
            "{e}"
        );
        let t = server(
            &p,
            b"HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":\"malformed\"}",
        );
        let (status, body) = raw(&p, &b"junk\r\n\r\n"[..]).unwrap();
        assert_eq!((status, body["error"].as_str()), (400, Some("malformed")));
        assert_eq!(t.join().unwrap(), "junk\r\n\r\n");
        std::fs::remove_file(&p).unwrap();
        let t = server(&p, b"garbage");
        let e = run(&p, Action::Info).unwrap_err();
        assert!(matches!(e, CtlError::Reply { .. }), "{e}");
        t.join().unwrap();
        std::fs::remove_file(p).unwrap();
    }
}
