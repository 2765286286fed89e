//! platvmm's stats (`--stats` at exit, SIGUSR1 while running), all in one place:
//! - the start-up cost ([`Startup`]): from exec to vCPU 0's first `KVM_RUN`, split into the
//!   steps of `builder::run`, so a regression in setup time shows up as a figure;
//! - the VM exit counters ([`ExitCounters`]), bumped by the vCPU threads;
//! - the printer ([`StatsSources`]): those two, each passthrough device's counters
//!   ([`devices::vfio::region::Counters`]) and each virtio device's line.
//!
//! Every counter set is a [`devices::counter_set!`], so each prints its `(name, value)`
//! snapshot the same way. The builder records steps, the vCPU threads the first run and the
//! exits, the event loop (SIGUSR1) and the builder (`--stats`) print.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use devices::virtio::tap::TapStats;

static MAIN_START: OnceLock<Instant> = OnceLock::new();

/// Records the moment `main` started; call it first thing.
pub fn mark_main() {
    MAIN_START.get_or_init(Instant::now);
}

/// Start-up steps and their durations.
#[derive(Debug)]
pub struct Startup {
    t0: Instant,
    last: Mutex<Instant>,
    steps: Mutex<Vec<(&'static str, Duration)>>,
    first_run: OnceLock<Duration>,
    exec_to_main_ms: Option<u64>,
}

impl Default for Startup {
    fn default() -> Self {
        Self::new()
    }
}

impl Startup {
    /// A clock starting when `main` started (or now, if [`mark_main`] was not called).
    pub fn new() -> Self {
        let t0 = *MAIN_START.get_or_init(Instant::now);
        Self {
            t0,
            last: Mutex::new(t0),
            steps: Mutex::new(Vec::new()),
            first_run: OnceLock::new(),
            exec_to_main_ms: exec_to_main_ms(),
        }
    }

    /// Ends step `name` (it began where the previous one ended).
    pub fn step(&self, name: &'static str) {
        let now = Instant::now();
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let d = now - *last;
        *last = now;
        self.steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((name, d));
    }

    /// vCPU 0 is about to enter `KVM_RUN` for the first time.
    pub fn first_kvm_run(&self) {
        self.first_run.get_or_init(|| self.t0.elapsed());
    }

    /// One line: `exec->main=Nms main->first_kvm_run=Nus` then each step in µs.
    pub fn line(&self) -> String {
        let us = |d: &Duration| d.as_micros();
        let mut s = match self.exec_to_main_ms {
            Some(ms) => format!("exec->main={ms}ms(10ms-ticks)"),
            None => "exec->main=unknown".into(),
        };
        match self.first_run.get() {
            Some(d) => s += &format!(" main->first_kvm_run={}us", us(d)),
            None => s += " main->first_kvm_run=none",
        }
        for (name, d) in self.steps.lock().unwrap_or_else(|p| p.into_inner()).iter() {
            s += &format!(" {name}={}us", us(d));
        }
        s
    }
}

impl Startup {
    /// The same figures as [`line`](Self::line), as JSON.
    pub fn json(&self) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = self
            .steps
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(name, d)| (name.to_string(), (d.as_micros() as u64).into()))
            .collect();
        serde_json::json!({
            "exec_to_main_ms": self.exec_to_main_ms,
            "main_to_first_kvm_run_us": self.first_run.get().map(|d| d.as_micros() as u64),
            "steps_us": steps,
        })
    }
}

/// How long ago the process was exec'ed, from /proc/self/stat's start time (clock ticks since
/// boot) against CLOCK_BOOTTIME.
fn exec_to_main_ms() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let started = start_ticks(&stat)?;
    // SAFETY: sysconf only reads a system constant.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for clock_gettime to fill.
    if hz <= 0 || unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) } != 0 {
        return None;
    }
    let now_ms = ts.tv_sec as u64 * 1000 + ts.tv_nsec as u64 / 1_000_000;
    let since = MAIN_START.get()?.elapsed().as_millis() as u64;
    Some(
        now_ms
            .saturating_sub(since)
            .saturating_sub(started * 1000 / hz as u64),
    )
}

/// Field 22 (starttime) of /proc/PID/stat; the command name (field 2) may contain spaces.
fn start_ticks(stat: &str) -> Option<u64> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    after_comm.split_whitespace().nth(19)?.parse().ok()
}

devices::counter_set! {
    /// VM exits by reason, summed over vCPUs.
    pub struct ExitCounters {
        pub mmio_read,
        pub mmio_write,
        /// MMIO exits to the console UART (part of mmio_read/mmio_write): the guest's printing,
        /// kept apart so the other exits can be reasoned about.
        pub mmio_console,
        pub mmio_unclaimed,
        /// Console transmit bytes that reached platvmm through the coalesced-MMIO ring (no exit).
        pub console_coalesced,
        pub system_event,
        /// SMCCC calls KVM forwarded (the SCMI SMC transport's doorbell).
        pub smccc,
        pub interrupted,
        pub other,
    }
}

/// Adds one to `c`.
pub fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What the guest asked of its SCMI system controller.
#[derive(Clone)]
pub struct ScmiStat {
    pub messages: Arc<devices::scmi::Counters>,
    pub mailbox: Arc<devices::scmi::mailbox::MailboxCounters>,
}

/// What the stats printer reads.
pub struct StatsSources {
    pub exits: Arc<ExitCounters>,
    pub devices: Vec<(String, Arc<devices::vfio::region::Counters>)>,
    pub virtio: Vec<VirtioStat>,
    /// The SCMI system controller's counters, when the guest has one.
    pub scmi: Option<ScmiStat>,
    pub startup: Arc<Startup>,
}

impl StatsSources {
    /// Prints the start-up cost, one line for the VM's exits and one per device to stderr.
    pub fn print(&self) {
        for line in self.lines() {
            eprintln!("{line}");
        }
    }

    /// The lines [`print`](Self::print) prints.
    fn lines(&self) -> Vec<String> {
        let mut out = vec![
            format!("platvmm stats: startup {}", self.startup.line()),
            format!("platvmm stats: vm exits {}", pairs(&self.exits.snapshot())),
        ];
        for (name, c) in &self.devices {
            out.push(format!(
                "platvmm stats: device {name} {}",
                pairs(&c.snapshot())
            ));
        }
        for v in &self.virtio {
            out.push(format!("platvmm stats: virtio {}", v.line()));
        }
        if let Some(s) = &self.scmi {
            out.push(format!(
                "platvmm stats: scmi {} {}",
                pairs(&s.messages.snapshot()),
                pairs(&s.mailbox.snapshot())
            ));
        }
        out
    }
}

impl StatsSources {
    /// What [`print`](Self::print) prints, as one JSON object (the API's `vm.stats`).
    pub fn json(&self) -> serde_json::Value {
        let devices: serde_json::Map<_, _> = self
            .devices
            .iter()
            .map(|(name, c)| (name.clone(), object(&c.snapshot())))
            .collect();
        let virtio: serde_json::Map<_, _> = self.virtio.iter().map(VirtioStat::json).collect();
        serde_json::json!({
            "startup": self.startup.json(),
            "exits": object(&self.exits.snapshot()),
            "devices": devices,
            "virtio": virtio,
            "scmi": self.scmi.as_ref().map(|s| serde_json::json!({
                "messages": object(&s.messages.snapshot()),
                "mailbox": object(&s.mailbox.snapshot()),
            })),
        })
    }
}

/// A snapshot as a JSON object.
fn object(v: &[(&str, u64)]) -> serde_json::Value {
    v.iter()
        .map(|(k, n)| (k.to_string(), serde_json::Value::from(*n)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A snapshot as `name=value name=value ...`.
fn pairs(v: &[(&str, u64)]) -> String {
    v.iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// One device's counters, for `--stats` and SIGUSR1.
pub struct VirtioStat {
    pub name: String,
    pub kind: &'static str,
    pub backend: &'static str,
    pub counters: Arc<devices::virtio::Counters>,
    /// A vhost-net tap's byte counters (the kernel's data path is invisible otherwise).
    pub tap: Option<TapStats>,
}

impl VirtioStat {
    /// `NAME KIND backend=B key=value...`
    pub fn line(&self) -> String {
        let mut s = format!("{} {} backend={}", self.name, self.kind, self.backend);
        let snap = self.counters.snapshot();
        let kernel = self.backend.starts_with("vhost");
        for (k, v) in snap {
            if !kernel || k == "userspace_notifies" {
                s.push_str(&format!(" {k}={v}"));
            }
        }
        if let Some(t) = &self.tap {
            let (tx, rx) = t.guest_tx_rx();
            s.push_str(&format!(" guest_tx_bytes={tx} guest_rx_bytes={rx}"));
        }
        s
    }

    /// `(NAME, {"kind", "backend", counters...})` for the API's `vm.stats`.
    fn json(&self) -> (String, serde_json::Value) {
        let mut o = serde_json::Map::new();
        o.insert("kind".into(), self.kind.into());
        o.insert("backend".into(), self.backend.into());
        for (k, v) in self.counters.snapshot() {
            o.insert(k.into(), v.into());
        }
        if let Some(t) = &self.tap {
            let (tx, rx) = t.guest_tx_rx();
            o.insert("guest_tx_bytes".into(), tx.into());
            o.insert("guest_rx_bytes".into(), rx.into());
        }
        (self.name.clone(), o.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_recorded_in_order() {
        let s = Startup::new();
        s.step("memory");
        s.step("dtb");
        s.first_kvm_run();
        let l = s.line();
        assert!(l.contains(" main->first_kvm_run="), "{l}");
        let m = l.find(" memory=").unwrap();
        assert!(m < l.find(" dtb=").unwrap(), "{l}");
    }

    #[test]
    fn start_time_field_survives_spaces_in_the_name() {
        let stat = "42 (a b) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 12345 1000 10";
        assert_eq!(start_ticks(stat), Some(12345));
        mark_main();
        let ms = exec_to_main_ms().expect("/proc/self/stat is readable");
        assert!(ms < 3_600_000, "{ms} ms");
    }

    #[test]
    fn the_printer_writes_every_source_in_its_format() {
        let exits = Arc::new(ExitCounters::default());
        bump(&exits.mmio_read);
        bump(&exits.mmio_read);
        bump(&exits.other);
        let dev = Arc::new(devices::vfio::region::Counters::default());
        bump(&dev.out_of_bounds);
        let virtio = Arc::new(devices::virtio::Counters::default());
        bump(&virtio.requests);
        let s = StatsSources {
            exits,
            devices: vec![("uart0".into(), dev)],
            virtio: vec![VirtioStat {
                name: "vda".into(),
                kind: "block",
                backend: "user",
                counters: virtio,
                tap: None,
            }],
            scmi: Some(ScmiStat {
                messages: Arc::default(),
                mailbox: Arc::default(),
            }),
            startup: Arc::new(Startup::new()),
        };
        let scmi = s.scmi.as_ref().unwrap();
        bump(&scmi.messages.clock_messages);
        bump(&scmi.messages.resets_acknowledged);
        bump(&scmi.mailbox.doorbells);
        let lines = s.lines();
        assert_eq!(lines.len(), 5, "{lines:?}");
        let j = s.json();
        assert_eq!(j["exits"]["mmio_read"], 2);
        assert_eq!(j["exits"]["other"], 1);
        assert_eq!(j["devices"]["uart0"]["out_of_bounds_dropped"], 1);
        assert_eq!(j["virtio"]["vda"]["requests"], 1);
        assert_eq!(j["virtio"]["vda"]["backend"], "user");
        assert_eq!(j["scmi"]["messages"]["clock_messages"], 1);
        assert_eq!(j["scmi"]["mailbox"]["doorbells"], 1);
        assert!(j["startup"]["steps_us"].is_object(), "{j}");
        assert!(
            lines[0].starts_with("platvmm stats: startup exec->main="),
            "{}",
            lines[0]
        );
        assert_eq!(
            lines[1..],
            [
                "platvmm stats: vm exits mmio_read=2 mmio_write=0 mmio_console=0 \
                 mmio_unclaimed=0 console_coalesced=0 system_event=0 smccc=0 interrupted=0 other=1",
                "platvmm stats: device uart0 trapped_reads=0 trapped_writes=0 \
                 out_of_bounds_dropped=1 io_errors=0",
                "platvmm stats: virtio vda block backend=user requests=1 read_bytes=0 \
                 write_bytes=0 userspace_notifies=0 interrupts=0 dropped=0",
                "platvmm stats: scmi base_messages=0 power_messages=0 clock_messages=1 \
                 reset_messages=0 unknown_protocol_messages=0 refused=0 error_replies=0 \
                 clock_enables=0 clock_disables=0 clock_rate_sets=0 clock_rate_sets_denied=0 \
                 resets_done=0 resets_acknowledged=1 power_state_changes=0 backend_errors=0 \
                 doorbells=1 spurious_doorbells=0 interrupts=0 bad_accesses=0 \
                 replies_dropped=0",
            ]
        );
    }
}
