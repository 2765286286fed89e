//! The device manager: owns guest memory, the MMIO bus and the VM's [`Resources`], and attaches
//! every device. Each `attach_*` takes its addresses, SPIs, memslots and phandles from the
//! allocators, puts its models on the bus, and leaves what the device tree needs in the
//! manager; [`DeviceManager::release`] undoes it in order once no vCPU runs.

use std::sync::{Arc, Mutex};

use devices::dt::GuestNode;
use devices::serial::SerialConsole;
use devices::Bus;
use kvm_bindings::kvm_userspace_memory_region;
use kvm_ioctls::VmFd;
use log::{info, warn};
use vmm_sys_util::eventfd::EventFd;

use crate::arch::aarch64::layout;
use crate::memory::Ram;
use crate::passthrough::plan::{Planner, VmPlan};
use crate::passthrough::{self, attach, PassDevice, Passthrough, ProbedDevice};
use crate::resources::{page_size, Resources};
use crate::vm::console::{Console, ConsoleMmio};
use crate::vm::error::{host_err, kvm_err, Error};

/// Owns the VM's devices and resources.
pub struct DeviceManager {
    pub ram: Ram,
    bus: Arc<Bus>,
    res: Resources,
    console: Option<Arc<Console>>,
    passthrough: Passthrough,
    plan: Option<VmPlan>,
    virtio: crate::virtio::attach::Wired,
    worker: Option<devices::virtio::worker::Worker>,
}

impl DeviceManager {
    /// Guest RAM of `size` bytes (identity-mapped if asked), one memslot per region.
    pub fn new(vm: &VmFd, size: u64, identity: bool) -> Result<Self, Error> {
        let ram = if identity {
            Ram::identity(size)?
        } else {
            Ram::plain(size)?
        };
        let mut dm = Self {
            res: Resources::new(ram.window),
            ram,
            bus: Arc::new(Bus::new()),
            console: None,
            passthrough: Passthrough::default(),
            plan: None,
            virtio: Default::default(),
            worker: None,
        };
        dm.register_ram(vm)?;
        Ok(dm)
    }

    fn register_ram(&mut self, vm: &VmFd) -> Result<(), Error> {
        for m in self.ram.mappings() {
            let r = kvm_userspace_memory_region {
                slot: self.res.memslot()?,
                flags: 0,
                guest_phys_addr: m.gpa,
                memory_size: m.size,
                userspace_addr: m.host,
            };
            // SAFETY: the region is a live mapping owned by `self.ram` of exactly
            // `memory_size` bytes; it is released only after every vCPU has been joined.
            unsafe { vm.set_user_memory_region(r) }.map_err(kvm_err("cannot map guest RAM"))?;
        }
        Ok(())
    }

    fn bus_mut(&mut self) -> &mut Bus {
        Arc::get_mut(&mut self.bus).expect("devices are attached before any vCPU runs")
    }

    /// The bus, for the vCPU threads (no device can be attached afterwards).
    pub fn bus(&self) -> Arc<Bus> {
        self.bus.clone()
    }

    /// The console UART at its fixed address and SPI, output to `out`; its transmit register
    /// coalesced through `ring` when KVM offers one.
    pub fn attach_console(
        &mut self,
        vm: &VmFd,
        out: Box<dyn std::io::Write + Send>,
        ring: Option<devices::coalesced::CoalescedRing>,
    ) -> Result<(Arc<Console>, EventFd), Error> {
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?;
        vm.register_irqfd(&irq, layout::UART_SPI)
            .map_err(kvm_err("cannot wire the console interrupt (irqfd)"))?;
        let room = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?;
        let room2 = room.try_clone().map_err(host_err("eventfd"))?;
        let uart = Arc::new(Mutex::new(SerialConsole::new(irq, room2, out)));
        let console = Arc::new(
            Console::new(layout::UART_BASE, layout::UART_SIZE, uart, ring)
                .map_err(host_err("cannot create the console drain timer"))?,
        );
        let dev = Arc::new(Mutex::new(ConsoleMmio(console.clone())));
        self.bus_mut()
            .insert(layout::UART_BASE, layout::UART_SIZE, dev)?;
        self.console = Some(console.clone());
        Ok((console, room))
    }

    /// Opens, plans and wires the passed-through devices; adds the emulated SEC controller
    /// when job rings are among them or `sec_controller` asks for it.
    pub fn attach_passthrough(
        &mut self,
        vm: &VmFd,
        probed: Vec<ProbedDevice>,
        sec_controller: bool,
        identity: bool,
    ) -> Result<(), Error> {
        let page = page_size();
        let vfio = passthrough::open(&passthrough::sysfs_root(), probed, &self.ram.mappings())?;
        let mut planner = Planner::new(&mut self.res, page)?;
        let Some(mut vfio) = vfio else {
            self.plan = Some(planner.finish(sec_controller)?);
            return self.attach_sec_controller();
        };
        vfio.attach_kvm(vm)?;
        for (d, (p, _)) in vfio.descs(page).iter().zip(&vfio.devices) {
            let dp = planner
                .add(d, &p.options())
                .map_err(passthrough::PassthroughError::from)?;
            log_plan(dp);
        }
        let plan = planner.finish(sec_controller)?;
        let (container, kvm_dev, devices) = vfio.into_parts();
        let mode = container.mode;
        let mut pass = Vec::new();
        for ((_, dev), dp) in devices.into_iter().zip(plan.devices.iter().cloned()) {
            warn_dma(&dp, mode, identity);
            let counters = Arc::new(devices::vfio::region::Counters::default());
            let mut t = attach::Target {
                vm,
                bus: Arc::get_mut(&mut self.bus).expect("no vCPU runs yet"),
                res: &mut self.res,
                page,
            };
            let wired = attach::device(&mut t, &dev, &dp, &counters)?;
            pass.push(PassDevice {
                dev,
                counters,
                plan: dp,
                wired,
            });
        }
        self.passthrough = Passthrough::new(container, kvm_dev, pass);
        self.plan = Some(plan);
        self.attach_sec_controller()
    }

    /// The emulated SEC controller page, where the plan put it.
    fn attach_sec_controller(&mut self) -> Result<(), Error> {
        let Some(base) = self.plan.as_ref().and_then(|p| p.sec_controller) else {
            return Ok(());
        };
        let ctrl = devices::caam::CaamController::new();
        self.bus_mut()
            .insert(base, devices::caam::CAAM_WINDOW, Arc::new(Mutex::new(ctrl)))?;
        info!("SEC controller page at guest {base:#x}");
        Ok(())
    }

    /// The virtio devices (`--disk`, `--net`, `--vsock`, `--rng`): register pages and SPIs
    /// from the allocators, ioeventfds and irqfds; their userspace data paths wait for
    /// [`DeviceManager::start_worker`].
    pub fn attach_virtio(
        &mut self,
        vm: &VmFd,
        cfg: &crate::config::VirtioConfig,
        disks: Vec<devices::virtio::block::Disk>,
    ) -> Result<(), Error> {
        let bus = Arc::get_mut(&mut self.bus).expect("no vCPU runs yet");
        let mut t = crate::virtio::attach::Target {
            vm,
            bus,
            res: &mut self.res,
            mem: &self.ram.mem,
        };
        self.virtio = crate::virtio::attach::attach(&mut t, cfg, disks)?;
        Ok(())
    }

    /// Starts the virtio worker thread (if a userspace device needs one); `on_start` runs
    /// first in it (its seccomp filter).
    pub fn start_worker(
        &mut self,
        on_start: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), Error> {
        let set = std::mem::take(&mut self.virtio.worker);
        if set.is_empty() {
            return Ok(());
        }
        self.worker = Some(
            set.start(on_start)
                .map_err(host_err("cannot start the virtio worker thread"))?,
        );
        Ok(())
    }

    /// The virtio devices' stats lines (taken: the stats printer owns them from here).
    pub fn take_virtio_stats(&mut self) -> Vec<crate::virtio::attach::VirtioStat> {
        std::mem::take(&mut self.virtio.stats)
    }

    /// The nodes the devices add to the guest tree: the passthrough plan's (with
    /// `dt_overlays`' nodes after them), then the virtio devices'.
    pub fn guest_nodes(&self, dt_overlays: &[GuestNode]) -> Vec<GuestNode> {
        let mut nodes = match &self.plan {
            Some(p) => p.guest_nodes(dt_overlays),
            None => VmPlan::default().guest_nodes(dt_overlays),
        };
        nodes.extend(self.virtio.nodes.iter().cloned());
        nodes
    }

    /// Per-device counters, for the stats printer.
    pub fn device_counters(&self) -> Vec<(String, Arc<devices::vfio::region::Counters>)> {
        self.passthrough
            .devices
            .iter()
            .map(|d| (d.dev.host.name.clone(), d.counters.clone()))
            .collect()
    }

    /// Teardown once every vCPU thread has been joined: console bytes still queued are
    /// written, the virtio worker stopped and joined, VFIO interrupts disabled and DMA
    /// unmapped, then device mappings and fds (virtio's vhost, tap and image fds with the
    /// bus) are closed, and guest memory is released last.
    pub fn release(mut self, counters: &crate::stats::ExitCounters) {
        if let Some(c) = &self.console {
            c.drain(counters);
        }
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.passthrough.release();
        drop(self.passthrough);
        drop(self.bus);
        drop(self.ram);
    }
}

fn log_plan(d: &crate::passthrough::plan::DevicePlan) {
    info!(
        "{}: guest node by the {} handler ({})",
        d.name, d.handler, d.why
    );
    for s in &d.synthesized {
        info!("{}: synthesized {s}", d.name);
    }
    for w in &d.warnings {
        warn!("{w}");
    }
}

fn warn_dma(
    d: &crate::passthrough::plan::DevicePlan,
    mode: devices::vfio::container::IommuMode,
    identity: bool,
) {
    use devices::vfio::container::IommuMode;
    if let (Some(why), IommuMode::NoIommu, false) = (&d.dma, mode, identity) {
        warn!(
            "WARNING: {} looks DMA-capable ({why}) but VFIO runs without an IOMMU and guest \
             RAM is not identity-mapped: any DMA it does will hit the wrong host memory. Use \
             --identity-map-ram, or make sure the guest driver never starts DMA.",
            d.name
        );
    }
}
