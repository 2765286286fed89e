//! The PL061 GPIO controller (`devices::gpio::Pl061`): a guest's accesses of any offset and
//! size, as vCPU exits deliver them, interleaved with the host driving its lines.
//!
//! Input: a sequence of steps, each starting with a control byte:
//! - bit 0 set: the host calls `set_input(line, high)`, line = bits 1..4 (0..15: lines from
//!   8 on do not exist), high = bit 5;
//! - bit 0 clear: a guest access: bit 1 write (else read), size = bits 2..4 + 1 (1..=8);
//!   then 2 bytes of offset, little-endian, % (the window + 0x100): accesses past it too;
//!   then a write's data (as many of its bytes as are left).
//!
//! Checked, besides no panic: a read returns at most its first byte, and 0 outside the
//! window or inside a word; GPIOMIS is always GPIORIS & GPIOIE; input lines read the host's
//! levels; the interrupt pulses at most once a step, always when GPIOMIS rose from 0, never
//! when GPIOMIS is 0 after the step, and while it stays high only after a GPIOIC or GPIOIE
//! write; the host driving an output line or a line that does not exist changes nothing.

#![no_main]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use devices::gpio::Pl061;
use devices::MmioDevice;
use libfuzzer_sys::fuzz_target;

const GPIODIR: u64 = 0x400;
const GPIOIE: u64 = 0x410;
const GPIORIS: u64 = 0x414;
const GPIOMIS: u64 = 0x418;
const GPIOIC: u64 = 0x41c;
/// GPIODATA with every line in the mask.
const DATA_ALL: u64 = 0x3fc;

fn readb(d: &mut Pl061, offset: u64) -> u8 {
    let mut b = [0xa5u8];
    d.read(offset, &mut b);
    b[0]
}

/// A guest access; returns whether it was a write to GPIOIC or GPIOIE (which may re-pulse).
fn access(d: &mut Pl061, ctl: u8, rest: &mut &[u8]) -> bool {
    let write = ctl & 2 != 0;
    let size = usize::from((ctl >> 2) & 7) + 1;
    let offset = u64::from(u16::from_le_bytes([rest[0], rest[1]])) % (Pl061::SIZE + 0x100);
    *rest = &rest[2..];
    if write {
        let n = size.min(rest.len());
        d.write(offset, &rest[..n]);
        *rest = &rest[n..];
        return n > 0 && matches!(offset, GPIOIC | GPIOIE);
    }
    let mut buf = vec![0xa5u8; size];
    d.read(offset, &mut buf);
    assert!(
        buf[1..].iter().all(|&b| b == 0),
        "{offset:#x}+{size}: {buf:?}"
    );
    if offset >= Pl061::SIZE || offset % 4 != 0 {
        assert_eq!(buf[0], 0, "{offset:#x}+{size}");
    }
    false
}

fuzz_target!(|data: &[u8]| {
    let pulses = Arc::new(AtomicU32::new(0));
    let count = pulses.clone();
    let mut d = Pl061::new(Box::new(move || {
        count.fetch_add(1, Ordering::Relaxed);
    }));
    // The host's levels, as the test drives them.
    let mut levels = 0u8;
    let mut rest = data;
    while let Some((&ctl, tail)) = rest.split_first() {
        rest = tail;
        let (mis0, ris0, dir) = (
            readb(&mut d, GPIOMIS),
            readb(&mut d, GPIORIS),
            readb(&mut d, GPIODIR),
        );
        let before = pulses.load(Ordering::Relaxed);
        let mut repulse_ok = false;
        if ctl & 1 != 0 {
            let line = (ctl >> 1) & 15;
            let high = ctl & 0x20 != 0;
            d.set_input(line, high);
            if line < 8 {
                levels = (levels & !(1 << line)) | (u8::from(high) << line);
            }
            if line >= 8 || dir & (1 << line) != 0 {
                assert_eq!(readb(&mut d, GPIORIS), ris0, "line {line} not an input");
            }
        } else if rest.len() >= 2 {
            repulse_ok = access(&mut d, ctl, &mut rest);
        } else {
            break;
        }
        let pulsed = pulses.load(Ordering::Relaxed) - before;
        let (ris, ie, mis) = (
            readb(&mut d, GPIORIS),
            readb(&mut d, GPIOIE),
            readb(&mut d, GPIOMIS),
        );
        assert_eq!(mis, ris & ie);
        assert!(pulsed <= 1, "{pulsed} pulses in one step");
        if mis == 0 {
            assert_eq!(pulsed, 0, "a pulse with the output low");
        } else if mis0 == 0 {
            assert_eq!(pulsed, 1, "the output rose without a pulse");
        } else if !repulse_ok {
            assert_eq!(pulsed, 0, "a pulse while the output stayed high");
        }
        let dir = readb(&mut d, GPIODIR);
        assert_eq!(
            readb(&mut d, DATA_ALL) & !dir,
            levels & !dir,
            "input levels"
        );
        for line in 0..8 {
            assert_eq!(d.listening(line), ie & (1 << line) != 0);
        }
    }
});
