//! The SCMI platform's side effects on passed-through devices: a guest's reset request resets
//! the device through VFIO (`VFIO_DEVICE_RESET`) when vfio-platform offers a reset for it, and
//! is otherwise acknowledged and counted (said once per device). No clock is settable.

use log::info;

use super::{BackendError, ResetAction, ResetOutcome, ScmiBackend};
use crate::vfio::device::ResetHandle;

/// The platform's side effects on the passed devices.
pub struct VfioResets {
    /// Per device (plan order): its VFIO reset, if it has one, and its name.
    devices: Vec<(String, Option<ResetHandle>)>,
    /// Devices whose missing VFIO reset was said.
    said: Vec<bool>,
}

impl VfioResets {
    pub fn new(devices: Vec<(String, Option<ResetHandle>)>) -> Self {
        let said = vec![false; devices.len()];
        Self { devices, said }
    }
}

impl ScmiBackend for VfioResets {
    fn reset(&mut self, domain: u32, action: ResetAction) -> Result<ResetOutcome, BackendError> {
        let ResetAction::Device { index } = action;
        let Some((name, handle)) = self.devices.get(index as usize) else {
            return Ok(ResetOutcome::AcknowledgedOnly);
        };
        match handle {
            Some(h) => h
                .reset()
                .map(|()| ResetOutcome::Done)
                .map_err(|source| BackendError {
                    what: format!("SCMI reset domain {domain}: resetting {name} through VFIO"),
                    source,
                }),
            None => {
                if !std::mem::replace(&mut self.said[index as usize], true) {
                    info!(
                        "SCMI: {name} offers no VFIO reset (vfio-platform has no reset module \
                         for it): the guest's resets of it are acknowledged and counted, the \
                         device is not reset"
                    );
                }
                Ok(ResetOutcome::AcknowledgedOnly)
            }
        }
    }

    fn set_clock_rate(&mut self, clock: u32, _hz: u64) -> Result<u64, BackendError> {
        // The plan describes no clock as settable: the platform never asks.
        Err(BackendError {
            what: format!("SCMI clock {clock}"),
            source: std::io::Error::other("platvmm does not change host clock rates"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn resets_go_to_vfio_where_offered_and_are_acknowledged_elsewhere() {
        let null = Arc::new(std::fs::File::open("/dev/null").unwrap());
        let mut b = VfioResets::new(vec![
            ("plain".into(), None),
            (
                "resettable".into(),
                Some(ResetHandle::new(null, "resettable")),
            ),
        ]);
        let dev = |index| ResetAction::Device { index };
        assert_eq!(b.reset(0, dev(0)).unwrap(), ResetOutcome::AcknowledgedOnly);
        assert_eq!(b.reset(0, dev(0)).unwrap(), ResetOutcome::AcknowledgedOnly);
        assert!(b.said[0], "said once");
        assert_eq!(b.reset(1, dev(7)).unwrap(), ResetOutcome::AcknowledgedOnly);
        // The ioctl reached the fd: /dev/null answers ENOTTY (qemu-user, which runs the
        // aarch64 tests, answers an ioctl it does not know ENOSYS); the guest gets the error
        // as GENERIC_ERROR, named.
        let e = b.reset(2, dev(1)).unwrap_err();
        let errno = e.source.raw_os_error();
        assert!(matches!(errno, Some(libc::ENOTTY | libc::ENOSYS)), "{e}");
        assert!(
            e.to_string().contains("resetting resettable through VFIO"),
            "{e}"
        );
        assert!(b.set_clock_rate(0, 1).is_err());
    }
}
