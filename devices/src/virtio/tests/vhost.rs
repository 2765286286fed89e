//! The vhost paths against a kernel backend double: rings handed to the kernel lie each in
//! one guest memory region.

use std::sync::Arc;

use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm_sys_util::eventfd::EventFd;

use virtio_bindings::virtio_config::{
    VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FAILED, VIRTIO_F_VERSION_1,
};
use virtio_bindings::virtio_mmio::VIRTIO_MMIO_STATUS;

use super::double::{Call, Vhost};
use super::guest::{start, Ring};
use super::w32;
use crate::virtio::mmio::MmioTransport;
use crate::virtio::net::{Net, VhostNetBackend};
use crate::virtio::tap::Tap;
use crate::virtio::{feature, vhost, Activation, Counters, Interrupt, Queue, QueueT};

/// Two regions, guest-adjacent at 0x10000 (separate mappings: not host-adjacent).
fn two_regions() -> GuestMemoryMmap {
    GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000), (GuestAddress(0x10000), 0x10000)])
        .unwrap()
}

fn queue(size: u16, desc: u64, avail: u64, used: u64) -> Queue {
    let mut q = Queue::new(256).unwrap();
    q.try_set_size(size).unwrap();
    q.try_set_desc_table_address(GuestAddress(desc)).unwrap();
    q.try_set_avail_ring_address(GuestAddress(avail)).unwrap();
    q.try_set_used_ring_address(GuestAddress(used)).unwrap();
    q.set_ready(true);
    q
}

fn activation(mem: GuestMemoryMmap, queues: Vec<Queue>) -> Activation {
    let counters = Arc::new(Counters::default());
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    Activation {
        mem,
        queues,
        features: 0,
        interrupt: Arc::new(Interrupt::new(irq, counters)),
    }
}

fn kicks() -> Vec<EventFd> {
    (0..2)
        .map(|_| EventFd::new(libc::EFD_NONBLOCK).unwrap())
        .collect()
}

/// Queue 1 of 256 entries: its descriptor table is 4 KiB, its available ring 518 bytes, its
/// used ring 2054 bytes.
const STRADDLING: [(&str, u64, u64, u64); 3] = [
    ("descriptor table", 0xf800, 0x11000, 0x12000),
    ("available ring", 0x1000, 0xff00, 0x12000),
    ("used ring", 0x1000, 0x3000, 0xfc00),
];

#[test]
fn a_ring_across_a_region_boundary_is_not_given_to_the_kernel() {
    let good = || queue(256, 0x4000, 0x6000, 0x7000);
    for (what, desc, avail, used) in STRADDLING {
        let a = activation(two_regions(), vec![good(), queue(256, desc, avail, used)]);
        let v = Vhost::default();
        let r = vhost::start(&v, &a, &kicks(), 2, !0);
        assert!(r.is_err(), "{what} across 0x10000 accepted");
        assert!(
            !v.calls().contains(&Call::Addr(1)),
            "{what}: ring 1's addresses reached the kernel: {:?}",
            v.calls()
        );
    }
    // Inside one region each (in different regions from each other): accepted.
    let a = activation(
        two_regions(),
        vec![good(), queue(256, 0x10000, 0xe000, 0x1a000)],
    );
    let v = Vhost::default();
    vhost::start(&v, &a, &kicks(), 2, !0).expect("rings each inside one region");
    assert!(v.calls().contains(&Call::Addr(1)));
}

/// virtio-net on the vhost double, its tap a scratch file, behind the transport.
fn vhost_net(mem: &GuestMemoryMmap, v: &Vhost) -> MmioTransport {
    let counters = Arc::new(Counters::default());
    let kicks = kicks();
    let clones = kicks.iter().map(|k| k.try_clone().unwrap()).collect();
    let tap = Tap::from_file("tap-test", super::scratch(&[]));
    let backend = VhostNetBackend::with(Box::new(v.clone()), !0);
    let dev = Net::new(
        tap,
        [2, 0, 0, 0, 0, 1],
        Some(backend),
        clones,
        counters.clone(),
    )
    .unwrap();
    let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
    let interrupt = Arc::new(Interrupt::new(irq, counters.clone()));
    MmioTransport::new(
        "net0".into(),
        Box::new(dev),
        mem.clone(),
        interrupt,
        counters,
        kicks,
    )
}

const VERSION_1: u64 = feature(VIRTIO_F_VERSION_1);

#[test]
fn a_vhost_net_ring_across_a_region_boundary_fails_the_activation() {
    let mem = two_regions();
    let v = Vhost::default();
    let mut t = vhost_net(&mem, &v);
    let rx = Ring::new(&mem, 0x1000, 256);
    // The TX descriptor table (4 KiB) from 0xf800 runs into the second region.
    let tx = Ring {
        desc: 0xf800,
        ..Ring::new(&mem, 0x11000, 256)
    };
    let status = start(&mut t, VERSION_1, &[&rx, &tx]);
    assert_ne!(status & VIRTIO_CONFIG_S_FAILED, 0, "status {status:#x}");
    assert_eq!(
        status & VIRTIO_CONFIG_S_DRIVER_OK,
        VIRTIO_CONFIG_S_DRIVER_OK
    );
    assert!(v.calls().is_empty(), "the kernel was told: {:?}", v.calls());
    // A reset, then rings inside one region each: it starts.
    w32(&mut t, VIRTIO_MMIO_STATUS, 0);
    let tx = Ring::new(&mem, 0x11000, 256);
    let status = start(&mut t, VERSION_1, &[&rx, &tx]);
    assert_eq!(status & VIRTIO_CONFIG_S_FAILED, 0, "status {status:#x}");
    assert!(v.calls().contains(&Call::Backend(1, true)));
}

#[test]
fn a_half_started_vhost_net_is_undone() {
    let mem = two_regions();
    let v = Vhost {
        fail_attach: Some(1),
        ..Default::default()
    };
    let mut t = vhost_net(&mem, &v);
    let (rx, tx) = (Ring::new(&mem, 0x1000, 256), Ring::new(&mem, 0x11000, 256));
    let status = start(&mut t, VERSION_1, &[&rx, &tx]);
    assert_ne!(status & VIRTIO_CONFIG_S_FAILED, 0, "status {status:#x}");
    let backend: Vec<Call> = v
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Backend(..)))
        .collect();
    assert_eq!(
        backend,
        [
            Call::Backend(0, true),
            Call::Backend(1, true),
            Call::Backend(0, false)
        ],
        "RX attached, TX refused: RX must be detached again"
    );
}
