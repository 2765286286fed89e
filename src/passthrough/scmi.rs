//! The guest's SCMI system controller in the VM: `devices::scmi`'s platform serving the
//! plan's clocks, reset domains and power domains, behind its mailbox window on the MMIO bus,
//! its doorbell interrupt an irqfd; its side effects on the devices are
//! `devices::scmi::vfio::VfioResets`'.

use std::sync::{Arc, Mutex};

use devices::scmi::mailbox::{Interrupt, ScmiMailbox, WINDOW_SIZE};
use devices::scmi::vfio::VfioResets;
use devices::scmi::Server;
use log::{info, warn};
use vmm_sys_util::eventfd::EventFd;

use super::plan::scmi::{ScmiPlan, ScmiTransport, SMC_FUNCTION};
use super::{PassDevice, PassthroughError};
use crate::hypervisor::{kvm_err, AttachContext, Hypervisor};
use crate::stats::ScmiStat;

const DEV: &str = "SCMI system controller";

/// The doorbell's interrupt: an irqfd pulse (the line is edge-triggered in the guest node).
struct IrqFd(EventFd);

impl Interrupt for IrqFd {
    fn raise(&self) {
        if let Err(e) = self.0.write(1) {
            warn!("SCMI: cannot signal the mailbox interrupt: {e}");
        }
    }
}

/// The transport the guest gets: SMC where this KVM forwards [`SMC_FUNCTION`] to platvmm
/// (the filter is set here, before any vCPU runs: KVM refuses it later), else the mailbox.
pub fn transport(vm: &dyn Hypervisor) -> Result<ScmiTransport, PassthroughError> {
    match vm.forward_smccc(SMC_FUNCTION) {
        Ok(true) => Ok(ScmiTransport::Smc {
            function: SMC_FUNCTION,
        }),
        Ok(false) => Ok(ScmiTransport::Mailbox),
        Err(e) => Err(PassthroughError::Kvm {
            dev: DEV.into(),
            source: kvm_err("cannot set KVM's SMCCC filter")(e),
        }),
    }
}

/// Puts the platform of `plan` on the bus, its side effects on `devices` (the plan's order).
pub fn attach(
    ctx: &mut AttachContext<'_>,
    plan: &ScmiPlan,
    devices: &[PassDevice],
) -> Result<ScmiStat, PassthroughError> {
    let host = |what, source| PassthroughError::Host {
        dev: DEV.into(),
        what,
        source,
    };
    let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(|e| host("eventfd", e))?;
    ctx.vm
        .register_irqfd(&irq, plan.spi)
        .map_err(kvm_err("cannot register an irqfd"))
        .map_err(|source| PassthroughError::Kvm {
            dev: DEV.into(),
            source,
        })?;
    let resets = devices
        .iter()
        .map(|d| (d.dev.name().to_string(), d.dev.reset_handle()))
        .collect();
    let server = Server::new(plan.config(), VfioResets::new(resets))
        .map_err(|e| host("its configuration", std::io::Error::other(e.to_string())))?;
    let messages = server.counters();
    let mailbox = ScmiMailbox::new(server, IrqFd(irq));
    let counters = ScmiStat {
        messages,
        mailbox: mailbox.counters(),
    };
    ctx.bus
        .insert(plan.window, WINDOW_SIZE, Arc::new(Mutex::new(mailbox)))
        .map_err(|source| PassthroughError::Bus {
            dev: DEV.into(),
            source,
        })?;
    let how = match plan.transport {
        ScmiTransport::Mailbox => format!(
            "mailbox transport (brcm,bcm2835-mbox doorbell, arm,scmi-shmem channel) at guest \
             {:#x}, SPI {}",
            plan.window, plan.spi
        ),
        ScmiTransport::Smc { function } => format!(
            "SMC transport (arm,scmi-smc: function {function:#x} forwarded by KVM's SMCCC \
             filter; arm,scmi-shmem channel at guest {:#x})",
            plan.window + devices::scmi::mailbox::SHMEM_OFFSET
        ),
    };
    info!(
        "{DEV}: {how}; {} clocks, {} reset domains, {} power domains",
        plan.clocks.len(),
        plan.resets.len(),
        plan.power_domains.len()
    );
    Ok(counters)
}
