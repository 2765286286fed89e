//! The running VM as the API socket sees it ([`crate::api::VmControl`]): what it is (config,
//! devices with their guest addresses and interrupts, fixed at setup), its state and uptime,
//! its stats, pausing and resuming its vCPUs, stopping it.
//!
//! Compiles on every host: the vCPU threads are reached only through the [`PauseGate`] and a
//! kick function, so pause/resume is unit-tested with plain threads.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::api::{ControlError, VmControl};
use crate::config::VmConfig;
use crate::passthrough::plan::{Access, Trigger, VmPlan};
use crate::stats::StatsSources;
use crate::virtio::attach::VirtioInfo;
use crate::vm::power_button::PowerButton;
use crate::vstate::exit::{ExitSignal, GuestExit, RebootBy};
use crate::vstate::pause::{GateError, GateState, PauseGate};

/// How long every vCPU gets to leave `KVM_RUN` and park (a nested, emulated host is slow).
pub const PAUSE_TIMEOUT: Duration = Duration::from_secs(2);

/// One region of a passed device as the guest sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RegionInfo {
    pub index: u32,
    /// Hex, as in the guest device tree.
    pub guest_addr: String,
    pub size: u64,
    /// `mapped` (no exits) or `trapped` (each access forwarded by platvmm).
    pub access: &'static str,
}

/// One interrupt of a passed device as the guest sees it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct IrqInfo {
    pub index: u32,
    pub spi: u32,
    pub trigger: &'static str,
}

/// A passed device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct DeviceInfo {
    pub name: String,
    pub handler: &'static str,
    pub regions: Vec<RegionInfo>,
    pub irqs: Vec<IrqInfo>,
}

/// What `vm.info` says that does not change while the VM runs.
#[derive(Debug, Clone, Serialize)]
pub struct VmInfo {
    pub pid: u32,
    pub vcpus: u32,
    pub memory_bytes: u64,
    pub kernel: String,
    pub initramfs: Option<String>,
    pub cmdline: String,
    pub devices: Vec<DeviceInfo>,
    pub virtio: Vec<VirtioInfo>,
}

impl VmInfo {
    /// The VM of `cfg` with the devices `plan` placed and the virtio devices attached.
    pub fn new(cfg: &VmConfig, plan: &VmPlan, virtio: Vec<VirtioInfo>) -> Self {
        Self {
            pid: std::process::id(),
            vcpus: cfg.cpus,
            memory_bytes: cfg.mem_size,
            kernel: cfg.kernel.display().to_string(),
            initramfs: cfg.initramfs.as_ref().map(|p| p.display().to_string()),
            cmdline: cfg.cmdline.clone(),
            devices: plan.devices.iter().map(device_info).collect(),
            virtio,
        }
    }
}

fn device_info(d: &crate::passthrough::plan::DevicePlan) -> DeviceInfo {
    DeviceInfo {
        name: d.name.clone(),
        handler: d.handler,
        regions: d
            .placements
            .iter()
            .map(|p| RegionInfo {
                index: p.index,
                guest_addr: format!("{:#x}", p.gpa),
                size: p.size,
                access: match p.access {
                    Access::Mapped => "mapped",
                    Access::Trapped => "trapped",
                },
            })
            .collect(),
        irqs: d
            .irqs
            .iter()
            .map(|i| IrqInfo {
                index: i.index,
                spi: i.spi,
                trigger: match i.trigger {
                    Trigger::Level => "level",
                    Trigger::Edge => "edge",
                },
            })
            .collect(),
    }
}

/// The running VM, for the API server.
pub struct Control {
    pub info: VmInfo,
    pub started: Instant,
    pub exit: Arc<ExitSignal>,
    pub stats: Arc<StatsSources>,
    pub gate: Arc<PauseGate>,
    /// How many vCPU threads park when paused.
    pub vcpus: usize,
    /// Kicks every vCPU thread out of `KVM_RUN`.
    pub kick: Box<dyn Fn() + Send>,
    pub button: Option<Arc<PowerButton>>,
}

impl VmControl for Control {
    fn info(&self) -> serde_json::Value {
        let mut v = serde_json::to_value(&self.info).unwrap_or_default();
        if let Some(o) = v.as_object_mut() {
            let state = match self.gate.state() {
                GateState::Running => "running",
                GateState::Paused => "paused",
                GateState::Rebooting => "rebooting",
            };
            o.insert("state".into(), state.into());
            let up = self.started.elapsed().as_millis() as u64;
            o.insert("uptime_ms".into(), up.into());
            if let Some(b) = &self.button {
                let button = serde_json::json!({
                    "guest_addr": format!("{:#x}", b.base),
                    "spi": b.spi,
                    "guest_listening": b.listening(),
                    "presses": b.presses(),
                });
                o.insert("power_button".into(), button);
            }
        }
        v
    }

    fn stats(&self) -> serde_json::Value {
        self.stats.json()
    }

    fn pause(&self) -> Result<Duration, ControlError> {
        let t0 = Instant::now();
        self.gate.shut().map_err(control_error)?;
        (self.kick)();
        self.gate
            .wait_parked(self.vcpus, PAUSE_TIMEOUT)
            .map_err(control_error)?;
        Ok(t0.elapsed())
    }

    fn resume(&self) -> Result<Duration, ControlError> {
        let t0 = Instant::now();
        self.gate.open().map_err(control_error)?;
        Ok(t0.elapsed())
    }

    fn power_button(&self) -> Result<bool, ControlError> {
        let b = self.button.as_ref().ok_or(ControlError::NoPowerButton)?;
        b.press().map_err(|e| ControlError::Press(e.to_string()))?;
        let listening = b.listening();
        log::info!("API: power button pressed (the guest listens to it: {listening})");
        Ok(listening)
    }

    fn reboot(&self) {
        log::info!("API: rebooting the guest in place");
        self.exit.request_reboot(RebootBy::Host);
    }

    fn stop(&self) {
        log::info!("API: stopping the VM");
        self.exit.set(GuestExit::Stopped);
    }
}

fn control_error(e: GateError) -> ControlError {
    match e {
        GateError::AlreadyPaused => ControlError::AlreadyPaused,
        GateError::NotPaused => ControlError::NotPaused,
        GateError::Rebooting => ControlError::Rebooting,
        GateError::Closed => ControlError::Stopping,
        GateError::Timeout { parked } => ControlError::PauseTimeout {
            parked,
            ms: PAUSE_TIMEOUT.as_millis() as u64,
        },
    }
}

#[cfg(test)]
mod tests;
