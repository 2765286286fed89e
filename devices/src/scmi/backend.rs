//! The platform's side effects on the host, behind a trait: the VM carries them out (a reset
//! as `VFIO_DEVICE_RESET`), the unit tests and the fuzz target record them.

use super::config::ResetAction;

/// What the SCMI platform asks of the host. Called only for what the configuration allows: a
/// reset of a domain that has a [`ResetAction`], a rate change of a settable clock.
pub trait ScmiBackend {
    /// Resets reset domain `domain` as its `action` says.
    fn reset(&mut self, domain: u32, action: ResetAction) -> Result<ResetOutcome, BackendError>;

    /// Changes settable clock `clock` to `hz` (as the guest asked: rounding is the backend's
    /// choice); returns the rate the guest reads back from then on.
    fn set_clock_rate(&mut self, clock: u32, hz: u64) -> Result<u64, BackendError>;
}

/// What a reset did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetOutcome {
    /// The device was reset (e.g. through VFIO).
    Done,
    /// Nothing could be reset (e.g. the device offers no VFIO reset); the guest is told it
    /// was.
    AcknowledgedOnly,
}

/// A side effect that failed; the guest's request gets GENERIC_ERROR.
#[derive(Debug, thiserror::Error)]
#[error("{what}: {source}")]
pub struct BackendError {
    /// What was being done, e.g. "resetting device 0 (ff0a0000.ethernet)".
    pub what: String,
    #[source]
    pub source: std::io::Error,
}
