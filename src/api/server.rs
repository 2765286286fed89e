//! The API socket served on the main thread's event loop: the listener and each connection
//! are event-manager sources, so a client that connects and never sends holds one slot and
//! nothing else. One request per connection: read until a whole request (or a refusal),
//! reply, close.
//!
//! Who may connect: the socket file is created mode 0600 (owner: the user that started
//! platvmm), and each peer's credentials (`SO_PEERCRED`) must be that user's or root's — a
//! file mode can be loosened later, the peer check cannot. At most [`MAX_CONNECTIONS`] are
//! open; a new one beyond that closes the oldest.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;

use super::http::{self, Parsed, Response, MAX_BODY, MAX_HEAD};
use super::VmControl;

/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 8;

/// Why the API socket could not be created.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The path holds a live socket.
    #[error(
        "--api-socket {0}: another process is listening on it (stop that VM, or give another path)"
    )]
    InUse(PathBuf),
    /// The path holds something else.
    #[error(
        "--api-socket {0}: the path exists and is not a socket (remove it, or give another path)"
    )]
    NotSocket(PathBuf),
    /// A system call failed.
    #[error("--api-socket {path}: cannot {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
}

/// Creates the listening socket at `path`, mode 0600. A stale socket there (nothing listens:
/// a VM that was killed) is replaced; a live one or any other file is refused.
pub fn bind(path: &Path) -> Result<UnixListener, ApiError> {
    let io = |what| {
        move |source| ApiError::Io {
            path: path.to_path_buf(),
            what,
            source,
        }
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ApiError::NotSocket(path.to_path_buf()));
        }
        match UnixStream::connect(path) {
            Ok(_) => return Err(ApiError::InUse(path.to_path_buf())),
            Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path).map_err(io("remove the stale socket"))?
            }
            Err(e) => return Err(io("check the existing socket")(e)),
        }
    }
    // SAFETY: umask only changes this process's file-creation mask; restored right after.
    let old = unsafe { libc::umask(0o177) };
    let listener = UnixListener::bind(path);
    // SAFETY: as above.
    unsafe { libc::umask(old) };
    let listener = listener.map_err(io("create it"))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(io("make it private (mode 0600)"))?;
    listener
        .set_nonblocking(true)
        .map_err(io("make it non-blocking"))?;
    Ok(listener)
}

struct Connection {
    stream: UnixStream,
    buf: Vec<u8>,
    /// Order of arrival (the oldest is closed first when full).
    seq: u64,
}

/// The listener and its connections, answering through a [`VmControl`].
pub struct ApiServer {
    listener: UnixListener,
    path: PathBuf,
    owner: u32,
    conns: BTreeMap<RawFd, Connection>,
    next_seq: u64,
    vm: Box<dyn VmControl + Send>,
}

impl ApiServer {
    /// Serves `listener` (made by [`bind`] at `path`) for `vm`; peers must be root or the
    /// current effective user (the socket's owner).
    pub fn new(listener: UnixListener, path: PathBuf, vm: Box<dyn VmControl + Send>) -> Self {
        // SAFETY: geteuid cannot fail.
        let owner = unsafe { libc::geteuid() };
        Self {
            listener,
            path,
            owner,
            conns: BTreeMap::new(),
            next_seq: 0,
            vm,
        }
    }

    fn accept(&mut self, ops: &mut EventOps) {
        loop {
            // SAFETY: accept4 on our listening fd; null address pointers are allowed.
            let fd = unsafe {
                libc::accept4(
                    self.listener.as_raw_fd(),
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                    libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                )
            };
            if fd < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() != ErrorKind::WouldBlock && e.kind() != ErrorKind::Interrupted {
                    log::warn!("api socket {}: accept: {e}", self.path.display());
                }
                return;
            }
            // SAFETY: `fd` is a fresh connected socket nobody else owns.
            let stream = unsafe { UnixStream::from_raw_fd(fd) };
            self.admit(stream, ops);
        }
    }

    fn admit(&mut self, mut stream: UnixStream, ops: &mut EventOps) {
        match peer_uid(&stream) {
            Some(uid) if uid == self.owner || uid == 0 => {}
            uid => {
                let r = Response::error(
                    403,
                    format!(
                        "peer uid {uid:?} may not use this VM's API socket (only uid {} and root)",
                        self.owner
                    ),
                );
                let _ = stream.write_all(&r.encode());
                return;
            }
        }
        if self.conns.len() >= MAX_CONNECTIONS {
            let oldest = self
                .conns
                .iter()
                .min_by_key(|(_, c)| c.seq)
                .map(|(fd, _)| *fd);
            if let Some(fd) = oldest {
                log::warn!("api socket: {MAX_CONNECTIONS} connections open: closing the oldest");
                self.close(fd, ops);
            }
        }
        let fd = stream.as_raw_fd();
        if let Err(e) = ops.add(Events::new(&stream, EventSet::IN | EventSet::READ_HANG_UP)) {
            log::warn!("api socket: cannot watch a connection: {e:?}");
            return;
        }
        let seq = self.next_seq;
        self.next_seq += 1;
        self.conns.insert(
            fd,
            Connection {
                stream,
                buf: Vec::new(),
                seq,
            },
        );
    }

    fn close(&mut self, fd: RawFd, ops: &mut EventOps) {
        if let Some(c) = self.conns.remove(&fd) {
            let _ = ops.remove(Events::new(
                &c.stream,
                EventSet::IN | EventSet::READ_HANG_UP,
            ));
        }
    }

    /// Reads what `fd` has; replies and closes once a request (or a refusal) is complete, or
    /// the peer hung up.
    fn serve(&mut self, fd: RawFd, ops: &mut EventOps) {
        let Some(c) = self.conns.get_mut(&fd) else {
            return;
        };
        let reply = match read_request(c) {
            Ok(None) => return,
            Ok(Some(Ok(req))) => Some(super::respond(&req, &*self.vm)),
            Ok(Some(Err(e))) => Some(Response::error(e.status(), e)),
            Err(()) => None,
        };
        if let (Some(r), Some(c)) = (reply, self.conns.get_mut(&fd)) {
            // Replies are a few KiB, far below a Unix socket's send buffer: a client that
            // does not read them loses them, the VM does not wait.
            if let Err(e) = c.stream.write_all(&r.encode()) {
                log::debug!("api socket: reply not sent: {e}");
            }
        }
        self.close(fd, ops);
    }
}

/// Reads what the connection has: `Ok(None)` wants more, `Ok(Some(..))` is a request or a
/// refusal, `Err` means the peer hung up or failed.
#[allow(clippy::type_complexity)]
fn read_request(c: &mut Connection) -> Result<Option<Result<http::Request, http::HttpError>>, ()> {
    let mut chunk = [0u8; 4096];
    loop {
        match c.stream.read(&mut chunk) {
            Ok(0) => return Err(()),
            Ok(n) => {
                // Never keep more than a whole request can be: parse refuses past the limits.
                let room = (MAX_HEAD + 4 + MAX_BODY + 1).saturating_sub(c.buf.len());
                c.buf.extend_from_slice(&chunk[..n.min(room)]);
                match http::parse(&c.buf) {
                    Ok(Parsed::Incomplete) if room > n => continue,
                    Ok(Parsed::Incomplete) => return Ok(Some(Err(http::HttpError::HeadTooLarge))),
                    Ok(Parsed::Done(r)) => return Ok(Some(Ok(r))),
                    Err(e) => return Ok(Some(Err(e))),
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return Ok(None),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(()),
        }
    }
}

/// The connected peer's uid (`SO_PEERCRED`).
fn peer_uid(stream: &UnixStream) -> Option<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for getsockopt to fill; the fd is ours.
    let r = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    (r == 0).then_some(cred.uid)
}

impl MutEventSubscriber for ApiServer {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        let fd = events.fd();
        if fd == self.listener.as_raw_fd() {
            self.accept(ops);
        } else {
            self.serve(fd, ops);
        }
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.listener, EventSet::IN)) {
            log::error!("cannot watch the API socket: {e:?}");
        }
    }
}

#[cfg(test)]
mod tests;
