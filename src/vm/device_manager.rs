//! The device manager: owns guest memory, the MMIO bus and the VM's [`Resources`], and attaches
//! every device. Each `attach_*` hands the device kind's attach path one [`AttachContext`]
//! (VM, bus, allocators, memory, page size), from which it takes its addresses, SPIs,
//! memslots and phandles and onto whose bus it puts its models; what the device tree and the
//! stats need stays here. [`DeviceManager::share_bus`] hands the bus to the vCPUs (nothing is
//! attached after that); [`DeviceManager::release`] undoes it all in order once no vCPU runs.

use std::sync::{Arc, Mutex};

use devices::dt::GuestNode;
use devices::serial::SerialConsole;
use devices::Bus;
use kvm_bindings::kvm_userspace_memory_region;
use vmm_sys_util::eventfd::EventFd;

use crate::arch::aarch64::layout;
use crate::config::VirtioConfig;
use crate::hypervisor::{kvm_err, AttachContext, Hypervisor};
use crate::memory::{Ram, RamMapping};
use crate::passthrough::attach::AttachOptions;
use crate::passthrough::{Passthrough, ProbedDevice};
use crate::resources::Resources;
use crate::virtio::attach::VirtioDevices;
use crate::vm::console::{Console, ConsoleMmio};
use crate::vm::error::{host_err, Error};
use crate::vm::power_button::PowerButton;

/// Owns the VM's devices and resources. The fields are declared in teardown order, and Rust
/// drops them in that order, so however the manager goes (release, or an error during
/// setup) nothing outlives what it uses: the worker stops before the devices it serves, the
/// passed-through devices are stopped (interrupts disabled, DMA unmapped) before the bus
/// goes, and guest RAM is unmapped last.
pub struct DeviceManager {
    worker: Option<devices::virtio::worker::Worker>,
    passthrough: Passthrough,
    /// The bus once [`DeviceManager::share_bus`] handed it to the vCPUs.
    shared_bus: Option<Arc<Bus>>,
    /// Devices attach here while no vCPU runs.
    bus: Bus,
    virtio: VirtioDevices,
    /// The power button and its guest nodes (after the virtio devices').
    power_button: Option<(Arc<PowerButton>, Vec<GuestNode>)>,
    console: Option<Arc<Console>>,
    res: Resources,
    page: u64,
    /// Guest RAM regions, as memslots and VFIO DMA maps take them.
    ram_mappings: Vec<RamMapping>,
    pub ram: Ram,
}

impl DeviceManager {
    /// Guest RAM of `size` bytes (identity-mapped if asked), one memslot per region;
    /// devices are placed at `page` granularity (the host page size).
    pub fn new(vm: &dyn Hypervisor, size: u64, identity: bool, page: u64) -> Result<Self, Error> {
        let ram = if identity {
            Ram::identity(size)?
        } else {
            Ram::plain(size)?
        };
        let mut dm = Self {
            worker: None,
            passthrough: Passthrough::default(),
            shared_bus: None,
            bus: Bus::new(),
            virtio: VirtioDevices::default(),
            power_button: None,
            console: None,
            res: Resources::new(ram.window).with_high_base(ram.top()),
            page,
            ram_mappings: ram.mappings(),
            ram,
        };
        dm.register_ram(vm)?;
        Ok(dm)
    }

    fn register_ram(&mut self, vm: &dyn Hypervisor) -> Result<(), Error> {
        for m in &self.ram_mappings {
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

    /// What an attach path needs, borrowed from the manager.
    fn context<'a>(&'a mut self, vm: &'a dyn Hypervisor) -> AttachContext<'a> {
        assert!(
            self.shared_bus.is_none(),
            "devices are attached before the vCPUs get the bus"
        );
        AttachContext {
            vm,
            bus: &mut self.bus,
            res: &mut self.res,
            mem: &self.ram.mem,
            ram: &self.ram_mappings,
            page: self.page,
        }
    }

    /// The bus, for the vCPU threads: from here on, no device can be attached.
    pub fn share_bus(&mut self) -> Arc<Bus> {
        self.shared_bus
            .get_or_insert_with(|| Arc::new(std::mem::take(&mut self.bus)))
            .clone()
    }

    /// The console UART at its fixed address and SPI, output to `out`; its transmit register
    /// coalesced through `ring` when KVM offers one.
    pub fn attach_console(
        &mut self,
        vm: &dyn Hypervisor,
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
        let ctx = self.context(vm);
        ctx.bus.insert(layout::UART_BASE, layout::UART_SIZE, dev)?;
        self.console = Some(console.clone());
        Ok((console, room))
    }

    /// Opens, plans and wires the passed-through devices (and the emulated SEC controller
    /// when the plan has one).
    pub fn attach_passthrough(
        &mut self,
        vm: &dyn Hypervisor,
        probed: Vec<ProbedDevice>,
        opts: AttachOptions,
    ) -> Result<(), Error> {
        let mut ctx = self.context(vm);
        self.passthrough = crate::passthrough::attach::attach(&mut ctx, probed, opts)?;
        Ok(())
    }

    /// The virtio devices (`--disk`, `--net`, `--vsock`, `--rng`): register pages and SPIs
    /// from the allocators, ioeventfds and irqfds; their userspace data paths wait for
    /// [`DeviceManager::start_worker`].
    pub fn attach_virtio(
        &mut self,
        vm: &dyn Hypervisor,
        cfg: &VirtioConfig,
        disks: Vec<devices::virtio::block::Disk>,
    ) -> Result<(), Error> {
        let mut ctx = self.context(vm);
        self.virtio = crate::virtio::attach::attach(&mut ctx, cfg, disks)?;
        Ok(())
    }

    /// A reboot in place, no vCPU running: the passed devices readied for a new boot (DMA
    /// stopped, VFIO reset where offered, level interrupts unmasked), then every device on the
    /// bus reset (virtio transports as by a status 0 write, the power button's PL061).
    pub fn reboot_devices(&self) {
        self.passthrough.reboot();
        if let Some(bus) = &self.shared_bus {
            bus.reset_all();
        }
    }

    /// The power button (a PL061 and its `gpio-keys` node), after the virtio devices.
    pub fn attach_power_button(&mut self, vm: &dyn Hypervisor) -> Result<Arc<PowerButton>, Error> {
        let mut ctx = self.context(vm);
        let (button, nodes) = PowerButton::attach(&mut ctx)?;
        self.power_button = Some((button.clone(), nodes));
        Ok(button)
    }

    /// Starts the virtio worker thread (if a userspace device needs one); `on_start` runs
    /// first in it (its host CPUs, its seccomp filter), and its error is this one's: the VM
    /// must not run with devices nothing serves.
    pub fn start_worker(
        &mut self,
        on_start: impl FnOnce() -> std::io::Result<()> + Send + 'static,
    ) -> Result<(), Error> {
        use devices::virtio::worker::WorkerError;
        let set = std::mem::take(&mut self.virtio.worker);
        if set.is_empty() {
            return Ok(());
        }
        let worker = set.start(on_start).map_err(|e| match e {
            WorkerError::Host(source) => Error::Host {
                what: "cannot start the virtio worker thread",
                source,
            },
            WorkerError::Setup(source) => Error::Host {
                what: "the virtio worker thread could not take its host CPUs or enter its sandbox",
                source,
            },
        })?;
        self.worker = Some(worker);
        Ok(())
    }

    /// The virtio devices' stats lines (taken: the stats printer owns them from here).
    pub fn take_virtio_stats(&mut self) -> Vec<crate::stats::VirtioStat> {
        std::mem::take(&mut self.virtio.stats)
    }

    /// The nodes the devices add to the guest tree: the passthrough plan's (with
    /// `dt_overlays`' nodes after them), then the virtio devices'.
    pub fn guest_nodes(&self, dt_overlays: &[GuestNode]) -> Vec<GuestNode> {
        let mut nodes = self.passthrough.plan.guest_nodes(dt_overlays);
        nodes.extend(self.virtio.nodes.iter().cloned());
        if let Some((_, n)) = &self.power_button {
            nodes.extend(n.iter().cloned());
        }
        nodes
    }

    /// What the API's `vm.info` reports of the VM of `cfg`: its passed and virtio devices.
    pub fn vm_info(&self, cfg: &crate::config::VmConfig) -> crate::vm::control::VmInfo {
        crate::vm::control::VmInfo::new(cfg, &self.passthrough.plan, self.virtio.info.clone())
    }

    /// The SMCCC calls KVM forwards to platvmm, each a doorbell on the bus (the SCMI SMC
    /// transport's, when the guest has it).
    pub fn smc_doorbells(&self) -> Vec<crate::vstate::handle::SmcDoorbell> {
        let scmi = self.passthrough.plan.scmi.as_ref();
        scmi.and_then(|s| s.smc_doorbell())
            .map(|(function, addr)| crate::vstate::handle::SmcDoorbell { function, addr })
            .into_iter()
            .collect()
    }

    /// The guest's `/aliases` for passed devices.
    pub fn passthrough_aliases(&self) -> Vec<devices::guest_node::aliases::Alias> {
        self.passthrough.plan.aliases.clone()
    }

    /// The SCMI system controller's counters, for the stats printer.
    pub fn scmi_counters(&self) -> Option<crate::stats::ScmiStat> {
        self.passthrough.scmi.clone()
    }

    /// Per-device counters, for the stats printer.
    pub fn device_counters(&self) -> Vec<(String, Arc<devices::vfio::region::Counters>)> {
        self.passthrough
            .devices
            .iter()
            .map(|d| (d.dev.name().to_string(), d.counters.clone()))
            .collect()
    }

    /// Teardown once every vCPU thread has been joined: console bytes still queued are
    /// written; then, as the fields drop in order, the virtio worker is stopped and joined,
    /// VFIO interrupts disabled and DMA unmapped, device mappings and fds (virtio's vhost,
    /// tap and image fds with the bus) closed, and guest memory released last.
    pub fn release(self, counters: &crate::stats::ExitCounters) {
        if let Some(c) = &self.console {
            c.drain(counters);
        }
        drop(self);
    }
}

#[cfg(test)]
mod tests {
    use devices::MmioDevice;

    use super::*;
    use crate::arch::aarch64::layout::{EMULATED_MMIO_BASE, MIB, RAM_BASE, UART_BASE, UART_SPI};
    use crate::hypervisor::fake::{Call, FakeVm};
    use crate::passthrough::plan::{DeviceOptions, Planner};
    use crate::passthrough::test_support::{probed, FakeDevice, Log};
    use crate::passthrough::PassDevice;

    fn manager(vm: &FakeVm) -> DeviceManager {
        DeviceManager::new(vm, 64 * MIB, false, 4096).unwrap()
    }

    fn names(nodes: &[GuestNode]) -> Vec<String> {
        nodes.iter().map(|n| n.name.clone()).collect()
    }

    #[test]
    fn devices_are_placed_in_attach_order() {
        let vm = FakeVm::default();
        let mut dm = manager(&vm);
        dm.attach_console(&vm, Box::new(std::io::sink()), None)
            .unwrap();
        let sec = AttachOptions {
            sec_controller: true,
            ..AttachOptions::default()
        };
        dm.attach_passthrough(&vm, Vec::new(), sec).unwrap();
        let rng = VirtioConfig {
            rng: true,
            ..Default::default()
        };
        dm.attach_virtio(&vm, &rng, Vec::new()).unwrap();
        // The SEC controller takes the first MiB of the emulated area (its allocation is
        // rounded up to its alignment), the virtio device the page after that MiB and the
        // first emulated SPI.
        let ctrl = dm.passthrough.plan.sec_controller.unwrap();
        assert_eq!(ctrl, EMULATED_MMIO_BASE.next_multiple_of(MIB));
        let virtio = ctrl + MIB;
        let calls = vm.calls();
        assert_eq!(
            calls[..3],
            [
                Call::Memslot {
                    slot: 0,
                    gpa: RAM_BASE,
                    size: 64 * MIB,
                    readonly: false
                },
                Call::Irqfd { gsi: UART_SPI },
                Call::Irqfd { gsi: 1 },
            ]
        );
        assert!(calls.contains(&Call::Ioevent {
            addr: virtio + devices::virtio::mmio::QUEUE_NOTIFY,
            datamatch: Some(0)
        }));
        let nodes = dm.guest_nodes(&[]);
        assert_eq!(
            names(&nodes),
            [
                format!("crypto@{ctrl:x}"),
                format!("virtio_mmio@{virtio:x}")
            ]
        );
        let bus = dm.share_bus();
        let mut b = [0u8; 4];
        for addr in [UART_BASE, ctrl, virtio] {
            assert!(bus.read(addr, &mut b), "{addr:#x} is on the bus");
        }
    }

    #[test]
    fn a_worker_that_cannot_enter_its_sandbox_stops_the_vm() {
        let vm = FakeVm::default();
        let mut dm = manager(&vm);
        let rng = VirtioConfig {
            rng: true,
            ..Default::default()
        };
        dm.attach_virtio(&vm, &rng, Vec::new()).unwrap();
        let e = dm
            .start_worker(|| Err(std::io::Error::other("seccomp refused")))
            .expect_err("the worker's setup error reaches the caller");
        assert_eq!(
            e.to_string(),
            "the virtio worker thread could not take its host CPUs or enter its sandbox: seccomp refused"
        );
    }

    #[test]
    #[should_panic(expected = "before the vCPUs get the bus")]
    fn nothing_is_attached_once_the_vcpus_have_the_bus() {
        let vm = FakeVm::default();
        let mut dm = manager(&vm);
        let _bus = dm.share_bus();
        let _ = dm.attach_console(&vm, Box::new(std::io::sink()), None);
    }

    /// Records its own drop in the shared log, with the guest RAM byte at host address
    /// `ram` read then (a read of unmapped RAM would kill the test).
    struct DropRecorder(Log, usize);
    impl MmioDevice for DropRecorder {
        fn read(&mut self, _offset: u64, _data: &mut [u8]) {}
        fn write(&mut self, _offset: u64, _data: &[u8]) {}
    }
    impl Drop for DropRecorder {
        fn drop(&mut self) {
            // SAFETY: the device manager keeps guest RAM mapped until its bus is gone (what
            // the tests below check); the address is inside it.
            let b = unsafe { std::ptr::read_volatile(self.1 as *const u8) };
            self.0
                .lock()
                .unwrap()
                .push(format!("bus device dropped, RAM reads {b:#x}"));
        }
    }

    /// A manager with a passed-through double (IRQs 0 level, 1 edge) planned and a drop
    /// recorder on its bus; guest RAM's first byte is 0x5a.
    fn manager_with_devices(vm: &FakeVm, log: &Log) -> DeviceManager {
        let mut dm = manager(vm);
        let dev = FakeDevice::new("d", &[(4096, true)], &[true, false], log.clone());
        let d = PassDevice::new(probed("d"), Box::new(dev));
        let mut planner = Planner::new(&mut dm.res, 4096).unwrap();
        planner
            .add(&d.desc(4096), &DeviceOptions::default())
            .unwrap();
        dm.passthrough.plan = planner.finish(false).unwrap();
        dm.passthrough.devices.push(d);
        let host = dm.ram_mappings[0].host as usize;
        // SAFETY: `host` is the start of guest RAM, mapped read-write by the manager.
        unsafe { std::ptr::write_volatile(host as *mut u8, 0x5a) };
        let rec = Arc::new(Mutex::new(DropRecorder(log.clone(), host)));
        dm.bus.insert(0x1000, 0x1000, rec).unwrap();
        dm
    }

    const TEARDOWN: [&str; 3] = [
        "d disable 0",
        "d disable 1",
        "bus device dropped, RAM reads 0x5a",
    ];

    #[test]
    fn dropping_the_manager_on_an_error_path_tears_down_in_order() {
        let (vm, log) = (FakeVm::default(), Log::default());
        drop(manager_with_devices(&vm, &log));
        assert_eq!(*log.lock().unwrap(), TEARDOWN);
    }

    #[test]
    fn release_disables_device_interrupts_before_the_bus_goes() {
        let (vm, log) = (FakeVm::default(), Log::default());
        let mut dm = manager_with_devices(&vm, &log);
        drop(dm.share_bus());
        dm.release(&crate::stats::ExitCounters::default());
        assert_eq!(*log.lock().unwrap(), TEARDOWN);
    }
}
