//! The SCMI mailbox window (`devices::scmi::mailbox`): arbitrary guest accesses to the
//! doorbell registers and the shared-memory channel, as a guest's vCPU would make them.
//!
//! Input: a sequence of accesses, 4 bytes each then the data of a write:
//! - byte 0: bit 0 write (else read); bits 1..3 the size, one of 1, 2, 3, 4, 8, 16 bytes
//!   (3 and 16 are sizes no instruction makes: they must be dropped);
//! - bytes 1..3: the offset, little-endian, % (the window + 0x100): accesses past it too.
//!
//! The platform has two clocks, a reset domain with an action and a power domain. Checked,
//! besides no panic: a read outside the registers and the channel, or of a bad size, reads 0;
//! MAIL1_STA always reads EMPTY; MAIL0_STA never counts more than 8 replies; interrupts are
//! raised only with CNF's bit set and never more often than doorbells and CNF writes; every
//! doorbell is counted.

#![no_main]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use devices::scmi::mailbox::{Interrupt, ScmiMailbox, WINDOW_SIZE};
use devices::scmi::{
    BackendError, ClockConfig, PowerDomainConfig, ResetAction, ResetDomainConfig, ResetOutcome,
    ScmiBackend, ScmiConfig, Server,
};
use devices::MmioDevice;
use libfuzzer_sys::fuzz_target;

struct Quiet;

impl ScmiBackend for Quiet {
    fn reset(&mut self, _: u32, _: ResetAction) -> Result<ResetOutcome, BackendError> {
        Ok(ResetOutcome::AcknowledgedOnly)
    }
    fn set_clock_rate(&mut self, _: u32, hz: u64) -> Result<u64, BackendError> {
        Ok(hz)
    }
}

#[derive(Clone, Default)]
struct Count(Arc<AtomicU64>);

impl Interrupt for Count {
    fn raise(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

fn platform() -> Server<Quiet> {
    let clock = |name: &str, settable| ClockConfig {
        name: name.into(),
        rate_hz: 125_000_000,
        settable,
    };
    let config = ScmiConfig {
        clocks: vec![clock("pclk", false), clock("tx_clk", true)],
        reset_domains: vec![ResetDomainConfig {
            name: "gem0".into(),
            action: Some(ResetAction::Device { index: 0 }),
        }],
        power_domains: vec![PowerDomainConfig {
            name: "gem0".into(),
        }],
    };
    Server::new(config, Quiet).expect("a valid configuration")
}

const MAIL0_STA: u64 = 0x18;
const MAIL0_CNF: u64 = 0x1c;
const MAIL1_WRT: u64 = 0x20;
const MAIL1_STA: u64 = 0x38;
const EMPTY: u32 = 1 << 30;
const SIZES: [usize; 8] = [1, 2, 3, 4, 8, 16, 4, 4];

fuzz_target!(|data: &[u8]| {
    let irq = Count::default();
    let mut m = ScmiMailbox::new(platform(), irq.clone());
    let (mut doorbells, mut cnf_writes) = (0u64, 0u64);
    let mut rest = data;
    while rest.len() >= 4 {
        let write = rest[0] & 1 != 0;
        let size = SIZES[usize::from((rest[0] >> 1) & 7)];
        let raw = u64::from(rest[1]) | u64::from(rest[2]) << 8 | u64::from(rest[3]) << 16;
        let offset = raw % (WINDOW_SIZE + 0x100);
        rest = &rest[4..];
        if write {
            let n = size.min(rest.len());
            let bytes = &rest[..n];
            rest = &rest[n..];
            let ok = matches!(n, 1 | 2 | 4 | 8);
            doorbells += u64::from(ok && offset == MAIL1_WRT);
            cnf_writes += u64::from(ok && offset == MAIL0_CNF);
            m.write(offset, bytes);
        } else {
            let mut buf = vec![0xa5u8; size];
            m.read(offset, &mut buf);
            let word = |b: &[u8]| u32::from_le_bytes(b[..4].try_into().unwrap());
            if !matches!(size, 1 | 2 | 4 | 8) || offset >= WINDOW_SIZE {
                assert!(buf.iter().all(|&b| b == 0), "{offset:#x}+{size}: {buf:?}");
            } else if size >= 4 && offset == MAIL1_STA {
                assert_eq!(word(&buf), EMPTY);
            } else if size >= 4 && offset == MAIL0_STA {
                let sta = word(&buf);
                assert!(sta & 0xff <= 8, "{sta:#x}");
            }
        }
    }
    let c = m.counters();
    assert_eq!(c.doorbells.load(Ordering::Relaxed), doorbells);
    let raised = irq.0.load(Ordering::Relaxed);
    assert_eq!(c.interrupts.load(Ordering::Relaxed), raised);
    assert!(raised <= doorbells + cnf_writes, "{raised} > {doorbells} + {cnf_writes}");
});
