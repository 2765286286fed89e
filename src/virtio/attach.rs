//! The virtio devices made real: each gets a register page in the emulated-device area and
//! an SPI from the allocators, one KVM ioeventfd per queue on its QueueNotify register, an
//! irqfd, a `virtio,mmio` guest node and a stats line. Userspace data paths are handed to
//! the worker thread; vhost ones are the kernel's.

use std::sync::{Arc, Mutex};

use devices::dt::{self, cells_prop, GuestNode};
use devices::virtio::block::{Block, Disk};
use devices::virtio::mmio::{MmioTransport, INTERRUPT_ACK, MMIO_SIZE, QUEUE_NOTIFY};
use devices::virtio::net::{Net, VhostNetBackend};
use devices::virtio::rng::Rng;
use devices::virtio::tap::{Tap, TapStats};
use devices::virtio::vsock::Vsock;
use devices::virtio::worker::{Handler, WorkerSet};
use devices::virtio::{Counters, Interrupt, VirtioDevice};
use log::{info, warn};
use vm_memory::GuestMemoryMmap;
use vmm_sys_util::eventfd::EventFd;

use serde::Serialize;

use super::VirtioError;
use crate::config::{NetSpec, VirtioConfig};
use crate::hypervisor::{kvm_err, AttachContext};
use crate::stats::VirtioStat;

/// An emulated virtio device.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct VirtioInfo {
    pub name: String,
    pub kind: &'static str,
    pub backend: &'static str,
    pub guest_addr: String,
    pub spi: u32,
}

/// The VM's virtio devices as attached: what the device tree, the stats and the worker need
/// (the transports themselves are on the bus).
#[derive(Default)]
pub struct VirtioDevices {
    pub nodes: Vec<GuestNode>,
    /// The eventfds absorbing InterruptACK writes (nothing reads them).
    pub acks: Vec<EventFd>,
    pub stats: Vec<VirtioStat>,
    /// Where each device is, for the API's `vm.info`.
    pub info: Vec<VirtioInfo>,
    pub worker: WorkerSet,
}

/// Attaches every device of `cfg` in the order the guest sees them.
pub fn attach(
    t: &mut AttachContext<'_>,
    cfg: &VirtioConfig,
    disks: Vec<Disk>,
) -> Result<VirtioDevices, VirtioError> {
    let mut w = VirtioDevices::default();
    let vhost_mem = Arc::new(t.mem.clone());
    for (i, disk) in disks.into_iter().enumerate() {
        let name = format!("vd{}", (b'a' + i as u8) as char);
        let make = |kick, counters| Block::new(disk, kick, counters);
        attach_user(t, &mut w, name, "blk", make, Block::handler)?;
    }
    for (i, spec) in cfg.net.iter().enumerate() {
        attach_net(t, &mut w, format!("net{i}"), spec, &vhost_mem)?;
    }
    if let Some(v) = cfg.vsock {
        let kicks = eventfds(3)?;
        let clones = kicks.iter().map(clone).collect::<Result<Vec<_>, _>>()?;
        let dev = Vsock::new(vhost_mem.clone(), v.cid, clones)?;
        info!("vsock: guest CID {} on vhost-vsock", v.cid);
        let counters = Arc::new(Counters::default());
        place(
            t,
            &mut w,
            Placed {
                name: "vsock".into(),
                kind: "vsock",
                backend: "vhost-vsock",
                dev: Box::new(dev),
                kicks,
                counters,
                tap: None,
            },
        )?;
    }
    if cfg.rng {
        attach_user(t, &mut w, "rng".into(), "rng", Rng::new, Rng::handler)?;
    }
    Ok(w)
}

/// A single-queue device served by the worker: `make` builds it on its queue's kick eventfd
/// and counters, `handler` gives what the worker runs on that eventfd.
fn attach_user<D: VirtioDevice + 'static>(
    t: &mut AttachContext<'_>,
    w: &mut VirtioDevices,
    name: String,
    kind: &'static str,
    make: impl FnOnce(EventFd, Arc<Counters>) -> D,
    handler: impl Fn(&D) -> Arc<dyn Handler>,
) -> Result<(), VirtioError> {
    let (kicks, counters) = (eventfds(1)?, Arc::new(Counters::default()));
    let dev = make(clone(&kicks[0])?, counters.clone());
    w.worker.add(raw(&kicks[0]), false, handler(&dev), 0);
    place(
        t,
        w,
        Placed {
            name,
            kind,
            backend: "user",
            dev: Box::new(dev),
            kicks,
            counters,
            tap: None,
        },
    )
}

fn attach_net(
    t: &mut AttachContext<'_>,
    w: &mut VirtioDevices,
    name: String,
    spec: &NetSpec,
    mem: &Arc<GuestMemoryMmap>,
) -> Result<(), VirtioError> {
    let tap = Tap::open(&spec.tap).map_err(|source| VirtioError::Tap {
        tap: spec.tap.clone(),
        source,
    })?;
    let vhost = open_vhost_net(&name, spec, mem);
    let backend = if vhost.is_some() { "vhost-net" } else { "user" };
    let tap_stats = tap.stats();
    let (kicks, counters) = (eventfds(2)?, Arc::new(Counters::default()));
    let clones = kicks.iter().map(clone).collect::<Result<Vec<_>, _>>()?;
    let mac = spec.mac.unwrap_or_else(random_mac);
    let dev = Net::new(tap, mac, vhost, clones, counters.clone()).map_err(host("eventfd"))?;
    dev.add_to(&mut w.worker);
    info!(
        "{name}: tap {}, MAC {}, {backend}",
        spec.tap,
        mac.iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":")
    );
    let tap = (backend != "user").then_some(tap_stats).flatten();
    place(
        t,
        w,
        Placed {
            name,
            kind: "net",
            backend,
            dev: Box::new(dev),
            kicks,
            counters,
            tap,
        },
    )
}

/// vhost-net if asked for and available; otherwise the userspace path, said on stderr.
fn open_vhost_net(
    name: &str,
    spec: &NetSpec,
    mem: &Arc<GuestMemoryMmap>,
) -> Option<VhostNetBackend> {
    if !spec.vhost {
        warn!("{name}: vhost=off: frames go through platvmm's userspace path");
        return None;
    }
    if !std::path::Path::new("/dev/vhost-net").exists() {
        warn!("{name}: no /dev/vhost-net (modprobe vhost_net): frames go through platvmm's userspace path");
        return None;
    }
    match VhostNetBackend::open(mem.clone()) {
        Ok(v) => Some(v),
        Err(e) => {
            warn!("{name}: cannot use /dev/vhost-net ({e}): frames go through platvmm's userspace path");
            None
        }
    }
}

/// A device ready to be placed.
struct Placed {
    name: String,
    kind: &'static str,
    backend: &'static str,
    dev: Box<dyn VirtioDevice>,
    kicks: Vec<EventFd>,
    counters: Arc<Counters>,
    tap: Option<TapStats>,
}

/// Register page, SPI, irqfd, ioeventfds, bus entry, guest node and stats line.
fn place(t: &mut AttachContext<'_>, w: &mut VirtioDevices, p: Placed) -> Result<(), VirtioError> {
    let page = t.page.max(MMIO_SIZE);
    let base = t.res.emulated(page, page).map_err(|_| VirtioError::Area)?;
    let spi = t.res.emulated_spi().map_err(|_| VirtioError::Spis)?;
    let irqfd = EventFd::new(libc::EFD_NONBLOCK).map_err(host("eventfd"))?;
    t.vm.register_irqfd(&irqfd, spi)
        .map_err(kvm_err("cannot wire a virtio interrupt (irqfd)"))?;
    for (i, k) in (0u32..).zip(&p.kicks) {
        t.vm.register_ioevent(k, base + QUEUE_NOTIFY, Some(i))
            .map_err(kvm_err("cannot register a virtio queue notify (ioeventfd)"))?;
    }
    // The driver acknowledges every interrupt: one exit to userspace fewer each.
    let ack = EventFd::new(libc::EFD_NONBLOCK).map_err(host("eventfd"))?;
    t.vm.register_ioevent(&ack, base + INTERRUPT_ACK, None)
        .map_err(kvm_err(
            "cannot register a virtio interrupt acknowledge (ioeventfd)",
        ))?;
    w.acks.push(ack);
    let interrupt = Arc::new(Interrupt::new(irqfd, p.counters.clone()));
    let transport = MmioTransport::new(
        p.name.clone(),
        p.dev,
        t.mem.clone(),
        interrupt,
        p.counters.clone(),
        p.kicks,
    );
    t.bus
        .insert(base, MMIO_SIZE, Arc::new(Mutex::new(transport)))?;
    info!(
        "{}: virtio-{} ({}) at guest {base:#x}, SPI {spi}",
        p.name, p.kind, p.backend
    );
    w.nodes.push(node(base, spi));
    w.info.push(VirtioInfo {
        name: p.name.clone(),
        kind: p.kind,
        backend: p.backend,
        guest_addr: format!("{base:#x}"),
        spi,
    });
    w.stats.push(VirtioStat {
        name: p.name,
        kind: p.kind,
        backend: p.backend,
        counters: p.counters,
        tap: p.tap,
    });
    Ok(())
}

/// `virtio_mmio@BASE { compatible = "virtio,mmio"; reg; interrupts (edge: an irqfd pulses
/// the line); dma-coherent; }`.
fn node(base: u64, spi: u32) -> GuestNode {
    let mut reg = Vec::new();
    for x in [base, MMIO_SIZE] {
        reg.extend_from_slice(&x.to_be_bytes());
    }
    GuestNode {
        name: format!("virtio_mmio@{base:x}"),
        props: vec![
            ("compatible".into(), b"virtio,mmio\0".to_vec()),
            ("reg".into(), reg),
            (
                "interrupts".into(),
                cells_prop(&dt::spi_specifier(spi, false)),
            ),
            ("dma-coherent".into(), Vec::new()),
        ],
        children: Vec::new(),
    }
}

fn eventfds(n: usize) -> Result<Vec<EventFd>, VirtioError> {
    (0..n)
        .map(|_| EventFd::new(libc::EFD_NONBLOCK).map_err(host("eventfd")))
        .collect()
}

fn clone(e: &EventFd) -> Result<EventFd, VirtioError> {
    e.try_clone().map_err(host("eventfd"))
}

fn raw(e: &EventFd) -> i32 {
    use std::os::fd::AsRawFd;
    e.as_raw_fd()
}

fn host(what: &'static str) -> impl Fn(std::io::Error) -> VirtioError {
    move |source| VirtioError::Host { what, source }
}

/// A locally administered MAC in QEMU's 52:54:00 range, the last three bytes random.
fn random_mac() -> [u8; 6] {
    let mut r = [0u8; 3];
    // SAFETY: getrandom writes at most 3 bytes into `r`.
    unsafe { libc::getrandom(r.as_mut_ptr().cast(), 3, 0) };
    [0x52, 0x54, 0x00, r[0], r[1], r[2]]
}

#[cfg(test)]
mod tests {
    use devices::virtio::block::Disk;
    use devices::virtio::mmio::{INTERRUPT_ACK, MMIO_SIZE, QUEUE_NOTIFY};
    use devices::Bus;

    use super::*;
    use crate::arch::aarch64::layout::EMULATED_MMIO_BASE;
    use crate::host::scratch::scratch_file;
    use crate::hypervisor::fake::{with_context, Call, FakeVm};

    fn disk() -> Disk {
        Disk {
            file: scratch_file(4096),
            readonly: false,
            serial: Vec::new(),
            sectors: 8,
        }
    }

    fn attach_to(vm: &FakeVm, bus: &mut Bus) -> Result<VirtioDevices, VirtioError> {
        let cfg = VirtioConfig {
            rng: true,
            ..Default::default()
        };
        with_context(vm, bus, |ctx| attach(ctx, &cfg, vec![disk()]))
    }

    #[test]
    fn each_device_gets_a_page_an_spi_ioeventfds_and_a_node() {
        let (vm, mut bus) = (FakeVm::default(), Bus::new());
        let w = attach_to(&vm, &mut bus).unwrap();
        let [vda, rng] = [EMULATED_MMIO_BASE, EMULATED_MMIO_BASE + 4096];
        let mut expected = Vec::new();
        for (base, spi) in [(vda, 1), (rng, 2)] {
            expected.extend([
                Call::Irqfd { gsi: spi },
                Call::Ioevent {
                    addr: base + QUEUE_NOTIFY,
                    datamatch: Some(0),
                },
                Call::Ioevent {
                    addr: base + INTERRUPT_ACK,
                    datamatch: None,
                },
            ]);
        }
        assert_eq!(vm.calls(), expected);
        let node = &w.nodes[0];
        assert_eq!(node.name, format!("virtio_mmio@{vda:x}"));
        assert_eq!(node.prop("interrupts"), Some(&cells_prop(&[0, 1, 1])[..]));
        let reg: Vec<u8> = [vda, MMIO_SIZE]
            .iter()
            .flat_map(|x| x.to_be_bytes())
            .collect();
        assert_eq!(node.prop("reg"), Some(&reg[..]));
        let lines: Vec<String> = w.stats.iter().map(VirtioStat::line).collect();
        assert!(
            lines[0].starts_with("vda blk backend=user "),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].starts_with("rng rng backend=user "),
            "{}",
            lines[1]
        );
        assert!(!w.worker.is_empty(), "blk and rng are served by the worker");
        // The transports answer on the bus: virtio-mmio's magic value "virt".
        let mut magic = [0u8; 4];
        assert!(bus.read(rng, &mut magic));
        assert_eq!(&magic, b"virt");
    }

    #[test]
    fn kvm_and_bus_refusals_are_their_own_errors() {
        let vm = FakeVm {
            fail_irqfd: true,
            ..Default::default()
        };
        let e = attach_to(&vm, &mut Bus::new()).err().unwrap();
        assert!(matches!(e, VirtioError::Kvm(_)), "{e:?}");
        assert!(
            e.to_string()
                .starts_with("cannot wire a virtio interrupt (irqfd): "),
            "{e}"
        );
        let mut taken = Bus::new();
        let other = Arc::new(Mutex::new(devices::caam::CaamController::new()));
        taken.insert(EMULATED_MMIO_BASE, 4096, other).unwrap();
        let e = attach_to(&FakeVm::default(), &mut taken).err().unwrap();
        assert!(matches!(e, VirtioError::Bus(_)), "{e:?}");
        assert!(
            e.to_string().starts_with("cannot place a virtio device: "),
            "{e}"
        );
    }
}
