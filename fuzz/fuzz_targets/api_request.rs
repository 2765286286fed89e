//! The API socket's requests: any bytes a client sends, fed to the parser as they could arrive
//! (whole, and cut at every point the first control byte picks), then routed and answered
//! against a VM that only records what it was asked.
//!
//! Nothing may panic; a parser that says "incomplete" holds no more than a request may be; a
//! request that parses routes to one action or to a refusal with an error body; every reply
//! encodes and reads back with its status.

#![no_main]

use std::cell::Cell;
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use platvmm::api::http::{self, Parsed, MAX_BODY, MAX_HEAD};
use platvmm::api::{respond, ControlError, VmControl};

/// A VM that counts what it was asked and does nothing.
#[derive(Default)]
struct Inert {
    calls: Cell<u32>,
}

impl VmControl for Inert {
    fn info(&self) -> serde_json::Value {
        self.calls.set(self.calls.get() + 1);
        serde_json::json!({})
    }
    fn stats(&self) -> serde_json::Value {
        self.calls.set(self.calls.get() + 1);
        serde_json::json!({})
    }
    fn pause(&self) -> Result<Duration, ControlError> {
        self.calls.set(self.calls.get() + 1);
        Err(ControlError::AlreadyPaused)
    }
    fn resume(&self) -> Result<Duration, ControlError> {
        self.calls.set(self.calls.get() + 1);
        Ok(Duration::ZERO)
    }
    fn power_button(&self) -> Result<bool, ControlError> {
        self.calls.set(self.calls.get() + 1);
        Err(ControlError::NoPowerButton)
    }
    fn reboot(&self) {
        self.calls.set(self.calls.get() + 1);
    }
    fn stop(&self) {
        self.calls.set(self.calls.get() + 1);
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut) * bytes.len() / 256;
    for prefix in [&bytes[..cut], bytes] {
        match http::parse(prefix) {
            Ok(Parsed::Incomplete) => {
                assert!(
                    prefix.len() <= MAX_HEAD + 4 + MAX_BODY,
                    "incomplete past the limits"
                )
            }
            Ok(Parsed::Done(req)) => {
                assert!(req.body.len() <= MAX_BODY);
                let vm = Inert::default();
                let r = respond(&req, &vm);
                assert!(r.status == 200 || r.body["error"].is_string(), "{r:?}");
                assert!(vm.calls.get() <= 1);
                let (status, _) = http::parse_response(&r.encode()).expect("a reply reads back");
                assert_eq!(status, r.status);
            }
            Err(e) => {
                let r = http::Response::error(e.status(), &e);
                assert!(r.status >= 400);
            }
        }
    }
});
