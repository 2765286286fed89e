//! A passed-through device stopped when its VM ends, before guest RAM goes: without an IOMMU
//! a device still doing DMA would write into pages the host hands to someone else. In order:
//! 1. its interrupts are disabled (VFIO tears down the trigger; the line stays masked);
//! 2. the register writes its handler knows stop its DMA engines (`DevicePlan::dma_stop`:
//!    AHCI HBA reset, xHCI/EHCI Run/Stop clear, GEM transmit/receive off, DWMAC and SDHCI
//!    software resets, SEC job ring reset, virtio-mmio status 0), through the VFIO device fd;
//! 3. VFIO resets it, if VFIO offers a reset for it (a vfio-platform reset module).
//!
//! A device of unknown registers with no VFIO reset only gets step 1; `--stats` and the log
//! say so, and docs/devices.md ("No-IOMMU mode") what that means.

use devices::guest_node::handlers::RegWrite;
use devices::vfio::device::VfioDevice;
use log::{info, warn};

use super::plan::DevicePlan;

/// Stops `dev` as its plan says; returns what was done, for the log.
pub fn quiesce(dev: &dyn VfioDevice, plan: &DevicePlan) -> String {
    let mut done = Vec::new();
    let irqs = plan.irqs.iter().filter(|i| i.shares.is_none());
    let mut disabled = 0;
    for irq in irqs {
        match dev.irq_disable(irq.index) {
            Ok(()) => disabled += 1,
            Err(e) => warn!("{e}"),
        }
    }
    if disabled > 0 {
        done.push(format!("{disabled} interrupt(s) disabled"));
    }
    stop_dma_and_reset(dev, plan, &mut done);
    if done.is_empty() {
        done.push("nothing to stop known".into());
    }
    let what = done.join(", ");
    info!("{}: released: {what}", plan.name);
    what
}

/// Readies `dev` for the guest's next boot in the same VM (a reboot in place): its DMA
/// stopped and a VFIO reset as [`quiesce`] does, its interrupts kept wired, and each level
/// interrupt unmasked (one the old guest took and never acknowledged stays masked in VFIO
/// otherwise, and the new guest's driver would never hear from it). Returns what was done.
pub fn reboot(dev: &dyn VfioDevice, plan: &DevicePlan) -> String {
    let mut done = Vec::new();
    if !stop_dma_and_reset(dev, plan, &mut done) {
        done.push("no VFIO reset (its registers keep their state)".into());
    }
    let level = plan
        .irqs
        .iter()
        .filter(|i| i.shares.is_none())
        .filter(|i| i.trigger == super::plan::Trigger::Level);
    let mut unmasked = 0;
    for irq in level {
        match dev.irq_unmask(irq.index) {
            Ok(()) => unmasked += 1,
            Err(e) => warn!("{e}"),
        }
    }
    if unmasked > 0 {
        done.push(format!("{unmasked} level interrupt(s) unmasked"));
    }
    let what = done.join(", ");
    info!("{}: reboot: {what}", plan.name);
    what
}

/// Steps 2 and 3, shared by [`quiesce`] and [`reboot`]: the handler's DMA stop, then VFIO's
/// reset if it offers one. Adds what was done to `done`; false if VFIO offers no reset.
fn stop_dma_and_reset(dev: &dyn VfioDevice, plan: &DevicePlan, done: &mut Vec<String>) -> bool {
    if !plan.dma_stop.is_empty() {
        match stop_dma(dev, plan.dma_stop) {
            Ok(()) => done.push(format!(
                "DMA stopped ({} register write(s))",
                plan.dma_stop.len()
            )),
            Err(e) => warn!("{}: cannot stop its DMA: {e}", plan.name),
        }
    }
    match dev.reset() {
        Some(Ok(())) => done.push("reset by VFIO".into()),
        Some(Err(e)) => warn!("{e}"),
        None => return false,
    }
    true
}

/// `steps` for a person: "32-bit 0x80000001 at 0x4, ..." or "none known".
pub fn describe(steps: &[RegWrite]) -> String {
    if steps.is_empty() {
        return "none known (only its interrupts are disabled)".into();
    }
    let one = |s: &RegWrite| match *s {
        RegWrite::W32 { offset, value } => format!("32-bit {value:#x} at {offset:#x}"),
        RegWrite::W8 { offset, value } => format!("8-bit {value:#x} at {offset:#x}"),
        RegWrite::W32AfterCapLength { offset, value } => {
            format!("32-bit {value:#x} at CAPLENGTH + {offset:#x}")
        }
    };
    steps.iter().map(one).collect::<Vec<_>>().join(", ")
}

/// The writes of `steps` in the device's first region.
fn stop_dma(dev: &dyn VfioDevice, steps: &[RegWrite]) -> std::io::Result<()> {
    let region = dev
        .regions()
        .iter()
        .find(|r| r.size > 0)
        .ok_or_else(|| std::io::Error::other("the device has no register region"))?;
    let io = dev.region_io();
    let at = |offset: u64, len: usize| {
        (offset + len as u64 <= region.size)
            .then_some(region.offset + offset)
            .ok_or_else(|| std::io::Error::other(format!("offset {offset:#x} is past the region")))
    };
    for step in steps {
        match *step {
            RegWrite::W32 { offset, value } => {
                io.write_at(&value.to_le_bytes(), at(offset, 4)?)?;
            }
            RegWrite::W8 { offset, value } => {
                io.write_at(&[value], at(offset, 1)?)?;
            }
            RegWrite::W32AfterCapLength { offset, value } => {
                let mut caplength = [0u8];
                io.read_at(&mut caplength, at(0, 1)?)?;
                let op = u64::from(caplength[0]) + offset;
                io.write_at(&value.to_le_bytes(), at(op, 4)?)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileExt;

    use super::*;
    use crate::arch::aarch64::layout::PASSTHROUGH_MMIO_BASE;
    use crate::passthrough::plan::{DeviceOptions, Planner};
    use crate::passthrough::test_support::{probed, FakeDevice, Log};
    use crate::passthrough::PassDevice;
    use crate::resources::Resources;

    /// A device with one register page and a level IRQ, planned by `handler` as `compat`;
    /// VFIO can reset it if `resettable`. Returns its quiesce report and the log.
    fn release(
        handler: &str,
        compat: &str,
        resettable: bool,
        page: &[(u64, u8)],
    ) -> (String, Vec<String>) {
        stop_with(quiesce, handler, compat, resettable, page)
    }

    /// As [`release`], with `op` (quiesce, or reboot) doing the stopping.
    fn stop_with(
        op: fn(&dyn VfioDevice, &DevicePlan) -> String,
        handler: &str,
        compat: &str,
        resettable: bool,
        page: &[(u64, u8)],
    ) -> (String, Vec<String>) {
        let log = Log::default();
        let mut dev = FakeDevice::new("d", &[(4096, true)], &[true], log.clone());
        dev.resettable = resettable;
        for &(offset, byte) in page {
            dev.file.write_all_at(&[byte], offset).unwrap();
        }
        let d = PassDevice::new(probed("d"), Box::new(dev));
        let mut res = Resources::new(PASSTHROUGH_MMIO_BASE);
        let mut planner = Planner::new(&mut res, 4096).unwrap();
        let compat = [compat.to_string()];
        let opts = DeviceOptions {
            handler: Some(handler),
            compatible: Some(&compat),
            ..Default::default()
        };
        let plan = planner.add(&d.desc(4096), &opts).unwrap().clone();
        let what = op(d.dev.as_ref(), &plan);
        let log = log.lock().unwrap().clone();
        (what, log)
    }

    #[test]
    fn a_reboot_stops_dma_resets_and_unmasks_but_keeps_the_interrupts_wired() {
        let (what, log) = stop_with(reboot, "sata", "generic-ahci", true, &[]);
        assert_eq!(
            log,
            ["d write 0x4=[01, 00, 00, 80]", "d reset", "d unmask 0"]
        );
        assert_eq!(
            what,
            "DMA stopped (1 register write(s)), reset by VFIO, 1 level interrupt(s) unmasked"
        );
        let (what, log) = stop_with(reboot, "generic", "arm,pl031", false, &[]);
        assert_eq!(log, ["d unmask 0"]);
        assert_eq!(
            what,
            "no VFIO reset (its registers keep their state), 1 level interrupt(s) unmasked"
        );
    }

    #[test]
    fn an_ahci_controller_is_reset_after_its_interrupts_and_before_vfio_resets_it() {
        let (what, log) = release("sata", "generic-ahci", true, &[]);
        assert_eq!(
            log,
            ["d disable 0", "d write 0x4=[01, 00, 00, 80]", "d reset"]
        );
        assert_eq!(
            what,
            "1 interrupt(s) disabled, DMA stopped (1 register write(s)), reset by VFIO"
        );
    }

    #[test]
    fn an_xhci_controller_is_halted_at_its_operational_registers() {
        let (_, log) = release("usb", "generic-xhci", false, &[(0, 0x20)]);
        assert_eq!(log, ["d disable 0", "d write 0x20=[00, 00, 00, 00]"]);
    }

    #[test]
    fn a_device_of_unknown_registers_only_loses_its_interrupts() {
        let (what, log) = release("generic", "arm,pl031", false, &[]);
        assert_eq!(log, ["d disable 0"]);
        assert_eq!(what, "1 interrupt(s) disabled");
    }

    #[test]
    fn a_write_past_the_region_is_not_made() {
        // CAPLENGTH 0xfe puts USBCMD at 0xfe..0x102, past the 0x100-byte region.
        let log = Log::default();
        let dev = FakeDevice::new("d", &[(0x100, false)], &[], log.clone());
        dev.file.write_all_at(&[0xfe], 0).unwrap();
        let steps = [RegWrite::W32AfterCapLength {
            offset: 0,
            value: 0,
        }];
        let e = stop_dma(&dev, &steps).unwrap_err();
        assert!(e.to_string().contains("past the region"), "{e}");
        assert!(log.lock().unwrap().is_empty());
    }
}
