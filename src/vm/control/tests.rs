use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use vmm_sys_util::eventfd::EventFd;

use super::*;
use crate::stats::{ExitCounters, Startup};

/// Threads standing in for vCPUs: each passes the gate, then "runs" until kicked (a flag),
/// counting laps; `kicks` counts the kick function's calls.
struct FakeVcpus {
    laps: Arc<AtomicU64>,
    kicks: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

fn control(n: usize) -> (Control, FakeVcpus) {
    let gate = Arc::new(PauseGate::default());
    let laps = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let kicked = Arc::new(AtomicBool::new(false));
    let threads = (0..n)
        .map(|_| {
            let (g, l, s, k) = (gate.clone(), laps.clone(), stop.clone(), kicked.clone());
            std::thread::spawn(move || {
                while !s.load(Ordering::SeqCst) {
                    g.pass();
                    l.fetch_add(1, Ordering::SeqCst);
                    // "KVM_RUN": until a kick, or 1 ms.
                    for _ in 0..10 {
                        if k.swap(false, Ordering::SeqCst) {
                            break;
                        }
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
            })
        })
        .collect();
    let kicks = Arc::new(AtomicU64::new(0));
    let k = kicks.clone();
    let c = Control {
        info: VmInfo {
            pid: 1,
            vcpus: n as u32,
            memory_bytes: 1 << 28,
            kernel: "/Image".into(),
            initramfs: None,
            cmdline: "console=ttyS0".into(),
            devices: vec![],
            virtio: vec![],
        },
        started: Instant::now(),
        exit: Arc::new(ExitSignal::new(EventFd::new(libc::EFD_NONBLOCK).unwrap())),
        stats: Arc::new(StatsSources {
            exits: Arc::new(ExitCounters::default()),
            devices: vec![],
            virtio: vec![],
            scmi: None,
            startup: Arc::new(Startup::new()),
        }),
        gate,
        vcpus: n,
        kick: Box::new(move || {
            k.fetch_add(1, Ordering::SeqCst);
            kicked.store(true, Ordering::SeqCst);
        }),
        button: None,
    };
    (
        c,
        FakeVcpus {
            laps,
            kicks,
            stop,
            threads,
        },
    )
}

impl FakeVcpus {
    fn end(self, c: &Control) {
        self.stop.store(true, Ordering::SeqCst);
        c.gate.close();
        self.threads.into_iter().for_each(|t| t.join().unwrap());
    }
}

#[test]
fn pause_parks_every_vcpu_and_resume_lets_them_run() {
    let (c, v) = control(2);
    c.pause().unwrap();
    assert_eq!(v.kicks.load(Ordering::SeqCst), 1);
    assert_eq!(c.info()["state"], "paused");
    let laps = v.laps.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(30));
    assert_eq!(
        v.laps.load(Ordering::SeqCst),
        laps,
        "a vCPU ran while paused"
    );
    assert_eq!(c.pause(), Err(ControlError::AlreadyPaused));
    c.resume().unwrap();
    assert_eq!(c.info()["state"], "running");
    assert_eq!(c.resume(), Err(ControlError::NotPaused));
    let t0 = Instant::now();
    while v.laps.load(Ordering::SeqCst) == laps {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "no vCPU ran after resume"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    v.end(&c);
}

#[test]
fn a_vcpu_that_never_parks_fails_the_pause_and_the_vm_runs_on() {
    // Three vCPUs announced, two threads: the third never parks.
    let (mut c, v) = control(2);
    c.vcpus = 3;
    let e = c.pause().unwrap_err();
    assert!(
        matches!(
            e,
            ControlError::PauseTimeout {
                parked: 2,
                ms: 2000
            }
        ),
        "{e:?}"
    );
    assert!(e.to_string().contains("the VM was resumed"), "{e}");
    assert_eq!(c.info()["state"], "running");
    v.end(&c);
}

#[test]
fn stop_ends_the_vm_with_status_0_and_info_describes_it() {
    let (c, v) = control(1);
    let i = c.info();
    assert_eq!(
        (i["vcpus"].as_u64(), i["cmdline"].as_str()),
        (Some(1), Some("console=ttyS0"))
    );
    assert!(i["uptime_ms"].is_u64(), "{i}");
    assert!(c.stats()["exits"].is_object());
    assert_eq!(c.power_button(), Err(ControlError::NoPowerButton));
    c.reboot();
    assert_eq!(
        c.exit.take_reboot(),
        Some(crate::vstate::exit::RebootBy::Host)
    );
    c.stop();
    assert_eq!(c.exit.get(), Some(GuestExit::Stopped));
    assert_eq!(GuestExit::Stopped.exit_code(), 0);
    v.end(&c);
}

#[test]
fn device_info_names_guest_addresses_and_interrupts() {
    use crate::passthrough::plan::{DevicePlan, IrqRoute, Placement};
    let d = DevicePlan {
        name: "9010000.pl031".into(),
        handler: "generic",
        why: String::new(),
        placements: vec![Placement {
            index: 0,
            gpa: 0x4000_0000,
            size: 0x1000,
            access: Access::Mapped,
        }],
        irqs: vec![IrqRoute {
            index: 0,
            spi: 16,
            trigger: Trigger::Level,
            shares: None,
        }],
        sec_offset: None,
        node: devices::dt::GuestNode::with_props("pl031@40000000", &[]),
        warnings: vec![],
        synthesized: vec![],
        dma: None,
        dma_stop: &[],
        member: None,
        nested_in: None,
        host_aliases: vec![],
    };
    let info = serde_json::to_value(device_info(&d)).unwrap();
    assert_eq!(
        info,
        serde_json::json!({
            "name": "9010000.pl031", "handler": "generic",
            "regions": [{ "index": 0, "guest_addr": "0x40000000", "size": 4096, "access": "mapped" }],
            "irqs": [{ "index": 0, "spi": 16, "trigger": "level" }],
        })
    );
}
