use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use event_manager::{EventManager, SubscriberOps};

use super::*;
use crate::api::ControlError;

/// A VM recording the actions it was asked for, shared with the test.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<&'static str>>>);

impl VmControl for Recorder {
    fn info(&self) -> serde_json::Value {
        self.0.lock().unwrap().push("info");
        serde_json::json!({ "state": "running", "vcpus": 2 })
    }
    fn stats(&self) -> serde_json::Value {
        self.0.lock().unwrap().push("stats");
        serde_json::json!({})
    }
    fn pause(&self) -> Result<Duration, ControlError> {
        self.0.lock().unwrap().push("pause");
        Ok(Duration::ZERO)
    }
    fn resume(&self) -> Result<Duration, ControlError> {
        self.0.lock().unwrap().push("resume");
        Ok(Duration::ZERO)
    }
    fn power_button(&self) -> Result<bool, ControlError> {
        self.0.lock().unwrap().push("power-button");
        Ok(true)
    }
    fn reboot(&self) {
        self.0.lock().unwrap().push("reboot");
    }
    fn stop(&self) {
        self.0.lock().unwrap().push("stop");
    }
}

fn socket_path() -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    std::env::temp_dir().join(format!("platvmm-api-{}-{n}.sock", std::process::id()))
}

type Em = EventManager<Arc<Mutex<dyn MutEventSubscriber + Send>>>;

/// A server on a fresh socket, its event manager and what its VM was asked.
fn serve() -> (PathBuf, Em, Recorder) {
    let path = socket_path();
    let listener = bind(&path).unwrap();
    let vm = Recorder::default();
    let server = ApiServer::new(listener, path.clone(), Box::new(vm.clone()));
    let mut em = Em::new().unwrap();
    em.add_subscriber(Arc::new(Mutex::new(server)));
    (path, em, vm)
}

/// Sends `bytes` from a client thread and returns what came back, running the loop meanwhile.
fn exchange(path: &Path, em: &mut Em, bytes: Vec<u8>) -> Vec<u8> {
    let mut client = UnixStream::connect(path).unwrap();
    let t = std::thread::spawn(move || {
        let _ = client.write_all(&bytes);
        let mut out = Vec::new();
        client
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = client.read_to_end(&mut out);
        out
    });
    while !t.is_finished() {
        em.run_with_timeout(20).unwrap();
    }
    t.join().unwrap()
}

fn status(reply: &[u8]) -> u16 {
    http::parse_response(reply).unwrap().0
}

#[test]
fn a_request_gets_its_reply_and_the_socket_is_private() {
    let (path, mut em, vm) = serve();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let reply = exchange(
        &path,
        &mut em,
        b"GET /api/v1/vm.info HTTP/1.1\r\n\r\n".to_vec(),
    );
    let (s, body) = http::parse_response(&reply).unwrap();
    assert_eq!((s, body["vcpus"].as_u64()), (200, Some(2)));
    assert_eq!(*vm.0.lock().unwrap(), ["info"]);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn hostile_clients_get_refusals_and_the_server_keeps_serving() {
    let (path, mut em, vm) = serve();
    // A client that connects and never sends holds a slot, nothing more.
    let idle = UnixStream::connect(&path).unwrap();
    em.run_with_timeout(20).unwrap();
    assert_eq!(
        status(&exchange(
            &path,
            &mut em,
            b"\x00\xffgarbage\r\n\r\n".to_vec()
        )),
        400
    );
    let mut huge = b"PUT /api/v1/vm.stop HTTP/1.1\r\nContent-Length: 999999\r\n\r\n".to_vec();
    huge.extend(std::iter::repeat(b'x').take(64 * 1024));
    assert_eq!(status(&exchange(&path, &mut em, huge)), 413);
    let mut endless = b"GET /api/v1/vm.info HTTP/1.1\r\nX: ".to_vec();
    endless.extend(std::iter::repeat(b'a').take(3 * MAX_HEAD));
    assert_eq!(status(&exchange(&path, &mut em, endless)), 431);
    let unknown = b"PUT /api/v1/vm.format-disks HTTP/1.1\r\n\r\n".to_vec();
    assert_eq!(status(&exchange(&path, &mut em, unknown)), 404);
    assert!(
        vm.0.lock().unwrap().is_empty(),
        "{:?}",
        vm.0.lock().unwrap()
    );
    let ok = b"PUT /api/v1/vm.pause HTTP/1.1\r\nContent-Length: 2\r\n\r\n{}".to_vec();
    assert_eq!(status(&exchange(&path, &mut em, ok)), 200);
    assert_eq!(*vm.0.lock().unwrap(), ["pause"]);
    drop(idle);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn idle_connections_beyond_the_limit_close_the_oldest() {
    let (path, mut em, _vm) = serve();
    let mut idle: Vec<UnixStream> = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 2 {
        idle.push(UnixStream::connect(&path).unwrap());
        em.run_with_timeout(20).unwrap();
    }
    // The two oldest were closed: they read end-of-file.
    for c in &mut idle[..2] {
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut b = [0u8; 1];
        assert_eq!(c.read(&mut b).unwrap(), 0);
    }
    let reply = exchange(
        &path,
        &mut em,
        b"GET /api/v1/vm.stats HTTP/1.1\r\n\r\n".to_vec(),
    );
    assert_eq!(status(&reply), 200);
    std::fs::remove_file(path).unwrap();
}

#[test]
fn bind_replaces_a_stale_socket_and_refuses_a_live_one_or_a_file() {
    let path = socket_path();
    drop(bind(&path).unwrap());
    // Nothing listens on it any more: replaced.
    let live = bind(&path).unwrap();
    let e = bind(&path).unwrap_err();
    assert!(matches!(e, ApiError::InUse(_)), "{e}");
    assert!(
        e.to_string().contains("another process is listening"),
        "{e}"
    );
    drop(live);
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, b"data").unwrap();
    let e = bind(&path).unwrap_err();
    assert!(matches!(e, ApiError::NotSocket(_)), "{e}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"data",
        "the file was left alone"
    );
    std::fs::remove_file(&path).unwrap();
}
