//! The control plane: `--api-socket PATH`, a Unix socket speaking HTTP/1.1 with JSON bodies
//! ([`http`]), served on the main thread's event loop ([`server`]), and the routes a client
//! (`platvmm ctl`, or `curl --unix-socket`) can take ([`Action`]).
//!
//! Routes (cloud-hypervisor's naming, one verb per path):
//! - `GET /api/v1/vm.info`: the VM's configuration, state, uptime and devices with their
//!   guest addresses and interrupts;
//! - `GET /api/v1/vm.stats`: the `--stats` figures as JSON;
//! - `PUT /api/v1/vm.pause`, `PUT /api/v1/vm.resume`: vCPUs parked outside `KVM_RUN` and let
//!   go again (interrupts that arrive meanwhile stay pending in the vGIC);
//! - `PUT /api/v1/vm.power-button`: the guest's power button pressed (the reply says whether
//!   the guest listens to it);
//! - `PUT /api/v1/vm.reboot`: the guest rebooted in place (as by its own reboot);
//! - `PUT /api/v1/vm.stop`: the VM stopped at once, devices released, exit status 0.
//!
//! What the routes do is behind [`VmControl`], so routing and replies are tested without KVM.

pub mod http;
pub mod server;

use std::time::Duration;

use http::{Request, Response};

/// Where the routes live.
pub const PREFIX: &str = "/api/v1/";

/// What a client can ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Info,
    Stats,
    Pause,
    Resume,
    PowerButton,
    Reboot,
    Stop,
}

impl Action {
    /// Every action, in the order `platvmm ctl --help` lists them.
    pub const ALL: [Action; 7] = [
        Action::Info,
        Action::Stats,
        Action::Pause,
        Action::Resume,
        Action::PowerButton,
        Action::Reboot,
        Action::Stop,
    ];

    /// The name in the path (`vm.NAME`) and on `platvmm ctl`'s command line.
    pub fn name(self) -> &'static str {
        match self {
            Action::Info => "info",
            Action::Stats => "stats",
            Action::Pause => "pause",
            Action::Resume => "resume",
            Action::PowerButton => "power-button",
            Action::Reboot => "reboot",
            Action::Stop => "stop",
        }
    }

    /// `GET` for the queries, `PUT` for the actions.
    pub fn method(self) -> &'static str {
        match self {
            Action::Info | Action::Stats => "GET",
            _ => "PUT",
        }
    }

    /// `/api/v1/vm.NAME`.
    pub fn path(self) -> String {
        format!("{PREFIX}vm.{}", self.name())
    }

    /// The action named `name` (as `platvmm ctl` takes it).
    pub fn from_name(name: &str) -> Option<Action> {
        Action::ALL.into_iter().find(|a| a.name() == name)
    }
}

/// Why the VM could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ControlError {
    /// Pause while paused.
    #[error("the VM is already paused")]
    AlreadyPaused,
    /// Resume while running.
    #[error("the VM is not paused")]
    NotPaused,
    /// Pause or resume while a reboot in place holds the vCPUs.
    #[error("the guest is rebooting in place: ask again once it runs (vm.info says its state)")]
    Rebooting,
    /// Not every vCPU left KVM_RUN in time.
    #[error("only {parked} vCPU(s) stopped within {ms} ms; the VM was resumed")]
    PauseTimeout { parked: usize, ms: u64 },
    /// The VM is being stopped.
    #[error("the VM is stopping")]
    Stopping,
    /// The VM has no power button.
    #[error("this VM has no power button")]
    NoPowerButton,
    /// The button could not be pressed.
    #[error("the power button could not be pressed: {0}")]
    Press(String),
}

impl ControlError {
    fn status(&self) -> u16 {
        match self {
            ControlError::AlreadyPaused | ControlError::NotPaused | ControlError::Rebooting => 409,
            ControlError::Stopping => 503,
            ControlError::NoPowerButton => 501,
            ControlError::PauseTimeout { .. } | ControlError::Press(_) => 500,
        }
    }
}

/// What the routes act on: the running VM (`vm::control`), a double in tests.
pub trait VmControl {
    /// `vm.info`'s body.
    fn info(&self) -> serde_json::Value;
    /// `vm.stats`' body.
    fn stats(&self) -> serde_json::Value;
    /// Parks every vCPU outside `KVM_RUN`; how long it took.
    fn pause(&self) -> Result<Duration, ControlError>;
    /// Lets the parked vCPUs run again; how long it took.
    fn resume(&self) -> Result<Duration, ControlError>;
    /// Presses the guest's power button; whether the guest listens to it.
    fn power_button(&self) -> Result<bool, ControlError>;
    /// Reboots the guest in place (as its own reboot would, whatever `--on-reboot` says).
    fn reboot(&self);
    /// Ends the VM (the event loop returns, teardown follows).
    fn stop(&self);
}

/// The action `req` asks for, or the refusal to send.
pub fn route(req: &Request) -> Result<Action, Response> {
    let known = || {
        Action::ALL
            .iter()
            .map(|a| format!("{} {}", a.method(), a.path()))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some(action) = req
        .path
        .strip_prefix(PREFIX)
        .and_then(|p| p.strip_prefix("vm."))
        .and_then(Action::from_name)
    else {
        let path: String = req.path.chars().take(64).collect();
        return Err(Response::error(
            404,
            format!("no route {path}: platvmm serves {}", known()),
        ));
    };
    if req.method != action.method() {
        return Err(Response::error(
            405,
            format!(
                "{} takes {}, not {}",
                action.path(),
                action.method(),
                req.method
            ),
        ));
    }
    if !req.body.is_empty() && serde_json::from_slice::<serde_json::Value>(&req.body).is_err() {
        return Err(Response::error(400, "the request body is not JSON"));
    }
    Ok(action)
}

/// The reply to `req`, after acting on `vm`.
pub fn respond(req: &Request, vm: &dyn VmControl) -> Response {
    let action = match route(req) {
        Ok(a) => a,
        Err(r) => return r,
    };
    let timed = |r: Result<Duration, ControlError>, state: &str| match r {
        Ok(d) => {
            Response::ok(serde_json::json!({ "state": state, "took_us": d.as_micros() as u64 }))
        }
        Err(e) => Response::error(e.status(), e),
    };
    match action {
        Action::Info => Response::ok(vm.info()),
        Action::Stats => Response::ok(vm.stats()),
        Action::Pause => timed(vm.pause(), "paused"),
        Action::Resume => timed(vm.resume(), "running"),
        Action::PowerButton => match vm.power_button() {
            Ok(listening) => {
                Response::ok(serde_json::json!({ "pressed": true, "guest_listening": listening }))
            }
            Err(e) => Response::error(e.status(), e),
        },
        Action::Reboot => {
            vm.reboot();
            Response::ok(serde_json::json!({ "state": "rebooting" }))
        }
        Action::Stop => {
            vm.stop();
            Response::ok(serde_json::json!({ "state": "stopping" }))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::cell::{Cell, RefCell};

    /// A VM that records what it was asked.
    #[derive(Default)]
    pub struct FakeVm {
        pub paused: Cell<bool>,
        pub stopped: Cell<bool>,
        pub calls: RefCell<Vec<&'static str>>,
    }

    impl VmControl for FakeVm {
        fn info(&self) -> serde_json::Value {
            self.calls.borrow_mut().push("info");
            serde_json::json!({ "state": if self.paused.get() { "paused" } else { "running" } })
        }
        fn stats(&self) -> serde_json::Value {
            self.calls.borrow_mut().push("stats");
            serde_json::json!({ "exits": { "mmio_read": 3 } })
        }
        fn pause(&self) -> Result<Duration, ControlError> {
            self.calls.borrow_mut().push("pause");
            if self.paused.replace(true) {
                return Err(ControlError::AlreadyPaused);
            }
            Ok(Duration::from_micros(7))
        }
        fn resume(&self) -> Result<Duration, ControlError> {
            self.calls.borrow_mut().push("resume");
            if !self.paused.replace(false) {
                return Err(ControlError::NotPaused);
            }
            Ok(Duration::from_micros(5))
        }
        fn power_button(&self) -> Result<bool, ControlError> {
            self.calls.borrow_mut().push("power-button");
            Ok(!self.stopped.get())
        }
        fn reboot(&self) {
            self.calls.borrow_mut().push("reboot");
        }
        fn stop(&self) {
            self.calls.borrow_mut().push("stop");
            self.stopped.set(true);
        }
    }

    fn req(method: &str, path: &str, body: &[u8]) -> Request {
        Request {
            method: method.into(),
            path: path.into(),
            body: body.to_vec(),
        }
    }

    #[test]
    fn every_action_routes_by_its_method_and_path() {
        for a in Action::ALL {
            assert_eq!(route(&req(a.method(), &a.path(), b"")), Ok(a));
            assert_eq!(Action::from_name(a.name()), Some(a));
        }
        assert_eq!(Action::Pause.path(), "/api/v1/vm.pause");
    }

    #[test]
    fn pause_and_resume_reply_with_state_and_time_and_refuse_twice() {
        let vm = FakeVm::default();
        let r = respond(&req("PUT", "/api/v1/vm.pause", b"{}"), &vm);
        assert_eq!(r.status, 200);
        assert_eq!(r.body["state"], "paused");
        assert_eq!(r.body["took_us"], 7);
        let again = respond(&req("PUT", "/api/v1/vm.pause", b""), &vm);
        assert_eq!(again.status, 409, "{:?}", again.body);
        assert_eq!(again.body["error"], "the VM is already paused");
        let r = respond(&req("PUT", "/api/v1/vm.resume", b""), &vm);
        assert_eq!((r.status, &r.body["state"]), (200, &"running".into()));
        assert_eq!(
            respond(&req("PUT", "/api/v1/vm.resume", b""), &vm).status,
            409
        );
    }

    #[test]
    fn bad_requests_act_on_nothing() {
        let vm = FakeVm::default();
        let cases = [
            (req("GET", "/api/v1/vm.reformat", b""), 404),
            (req("GET", "/", b""), 404),
            (req("GET", "/api/v1/vm.stop", b""), 405),
            (req("PUT", "/api/v1/vm.info", b""), 405),
            (req("PUT", "/api/v1/vm.stop", b"{not json"), 400),
        ];
        for (r, status) in cases {
            let got = respond(&r, &vm);
            assert_eq!(got.status, status, "{r:?}: {:?}", got.body);
            assert!(got.body["error"].is_string(), "{:?}", got.body);
        }
        assert!(vm.calls.borrow().is_empty(), "{:?}", vm.calls.borrow());
        assert!(!vm.stopped.get());
        let r = respond(&req("PUT", "/api/v1/vm.power-button", b""), &vm);
        assert_eq!((r.status, &r.body["guest_listening"]), (200, &true.into()));
        let r = respond(&req("PUT", "/api/v1/vm.reboot", b""), &vm);
        assert_eq!((r.status, &r.body["state"]), (200, &"rebooting".into()));
        assert_eq!(vm.calls.borrow().last(), Some(&"reboot"));
        let r = respond(&req("PUT", "/api/v1/vm.stop", b""), &vm);
        assert_eq!(r.status, 200);
        assert!(vm.stopped.get());
    }
}
