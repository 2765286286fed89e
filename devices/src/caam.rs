//! An emulated NXP SEC (CAAM) controller register page.
//!
//! A guest's caam driver expects its job rings under a controller node, and probes that
//! controller before any ring: it reads the identity, endianness, pointer size, virtualization
//! and RNG state, and writes a few configuration bits. Passing the host controller itself
//! would give the guest global SEC state (RNG, DECOs, job-ring ownership), so platvmm answers
//! those reads itself from this page (trapped MMIO) and passes only the job-ring pages.
//!
//! Values model an era-8 SEC v5.4 as on LS1046A (drivers/crypto/caam/{regs.h,ctrl.c} of
//! Linux 6.1):
//! - big-endian registers (CSTA.PLEND), which must match the real job rings' byte order;
//! - CTPR_MS = QI + PS: the queue interface is advertised so the controller probes even with
//!   zero job rings, 64-bit pointers; no DPAA2, no virtualization;
//! - RDSTA: both RNG state handles already instantiated (with prediction resistance), so the
//!   driver never touches the DECO registers;
//! - the ID block (0xe80..0xfff) mirrored in job-ring blocks 1..4, read through the controller
//!   mapping at job time.
//!
//! Writes are ignored except MCFGR and SCFGR, which are latched so read-modify-writes read back
//! what was written. The page is `CAAM_WINDOW` bytes (the QI control register is in block 7).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::bus::MmioDevice;

/// Bytes of the controller window the guest maps (blocks 0..7 of 4 KiB).
pub const CAAM_WINDOW: u64 = 0x8000;
/// Register block size (page-size field of CTPR_MS is 0: 4 KiB blocks).
const BLOCK: u64 = 0x1000;
/// The ID/performance block mirrored in each job-ring block.
const ID_BLOCK: std::ops::Range<u64> = 0xe80..0x1000;

pub const MCFGR: u64 = 0x004;
pub const SCFGR: u64 = 0x00c;
pub const RDSTA: u64 = 0x6c0;
pub const CTPR_MS: u64 = 0xfa8;
pub const CTPR_LS: u64 = 0xfac;
pub const CSTA: u64 = 0xfd4;
pub const CCBVID: u64 = 0xfe4;
pub const CHAVID_LS: u64 = 0xfec;
pub const CHANUM_LS: u64 = 0xff4;
pub const CAAMVID_MS: u64 = 0xff8;
pub const CAAMVID_LS: u64 = 0xffc;

/// Counters of the emulated page.
#[derive(Debug, Default)]
pub struct CaamCounters {
    pub reads: AtomicU64,
    pub writes: AtomicU64,
}

/// The emulated controller page.
pub struct CaamController {
    regs: BTreeMap<u64, u32>,
    pub counters: Arc<CaamCounters>,
}

impl Default for CaamController {
    fn default() -> Self {
        Self::new()
    }
}

impl CaamController {
    /// An era-8 SEC v5.4 controller (see the module documentation).
    pub fn new() -> Self {
        let regs = BTreeMap::from([
            (MCFGR, 0x0001_0000),     // LONG_PTR: 64-bit descriptor pointers
            (SCFGR, 0),               // virtualization off
            (RDSTA, 0x4000_0033),     // RNG state handles 0 and 1 instantiated, with PR
            (CTPR_MS, 0x0202_0000),   // QI + PS
            (CTPR_LS, 0),             // no blob protocol
            (CSTA, 0x0000_0400),      // PLEND: big-endian registers
            (CCBVID, 0x0800_0000),    // era 8 (used when the DT has no fsl,sec-era)
            (CHAVID_LS, 0x0004_2044), // AES 4, DES 4, MD 2, RNG 4
            (CHANUM_LS, 0x1001_1011), // one instance each of AES, DES, MD, RNG, PK
            (CAAMVID_MS, 0x0a11_0504),
            (CAAMVID_LS, 0),
        ]);
        Self {
            regs,
            counters: Arc::new(CaamCounters::default()),
        }
    }

    /// The logical value of the 32-bit register at `off` (4-byte aligned).
    pub fn reg(&self, off: u64) -> u32 {
        let block = off / BLOCK;
        let inner = off % BLOCK;
        let key = if (1..=4).contains(&block) && ID_BLOCK.contains(&inner) {
            inner
        } else {
            off
        };
        self.regs.get(&key).copied().unwrap_or(0)
    }
}

impl MmioDevice for CaamController {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        for (i, b) in data.iter_mut().enumerate() {
            let a = offset + i as u64;
            *b = if a < CAAM_WINDOW {
                self.reg(a & !3).to_be_bytes()[(a % 4) as usize]
            } else {
                0
            };
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        self.counters.writes.fetch_add(1, Ordering::Relaxed);
        if (offset == MCFGR || offset == SCFGR) && data.len() == 4 {
            let v = u32::from_be_bytes(data.try_into().expect("4 bytes"));
            self.regs.insert(offset, v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rd32(c: &mut CaamController, off: u64) -> u32 {
        let mut d = [0u8; 4];
        c.read(off, &mut d);
        u32::from_be_bytes(d)
    }

    #[test]
    fn probe_reads_see_the_model() {
        let mut c = CaamController::new();
        // Big-endian on the bus: CSTA reads back bytes 00 00 04 00.
        let mut d = [0u8; 4];
        c.read(CSTA, &mut d);
        assert_eq!(d, [0, 0, 4, 0]);
        assert_eq!(rd32(&mut c, CTPR_MS) & (1 << 25), 1 << 25, "QI advertised");
        assert_eq!(rd32(&mut c, CTPR_MS) & (1 << 13), 0, "no DPAA2");
        assert_eq!(
            rd32(&mut c, RDSTA) & 0x3,
            0x3,
            "both state handles instantiated"
        );
        assert_eq!(rd32(&mut c, CHAVID_LS) >> 16 & 0xf, 4, "RNG version 4");
        assert_eq!(rd32(&mut c, 0x1234), 0, "unmodelled registers read as zero");
    }

    #[test]
    fn id_block_is_mirrored_in_job_ring_blocks() {
        let mut c = CaamController::new();
        assert_eq!(rd32(&mut c, 0x1000 + CHANUM_LS), 0x1001_1011);
        assert_eq!(rd32(&mut c, 0x4000 + CHAVID_LS), 0x0004_2044);
        assert_eq!(
            rd32(&mut c, 0x5000 + CHANUM_LS),
            0,
            "block 5 is not a job-ring block"
        );
        assert_eq!(
            rd32(&mut c, 0x1000 + MCFGR),
            0,
            "only the ID block is mirrored"
        );
    }

    #[test]
    fn rmw_registers_latch_and_others_ignore_writes() {
        let mut c = CaamController::new();
        c.write(MCFGR, &0x4001_0304u32.to_be_bytes());
        assert_eq!(rd32(&mut c, MCFGR), 0x4001_0304);
        c.write(0x7004, &1u32.to_be_bytes()); // QI control: ignored
        assert_eq!(rd32(&mut c, 0x7004), 0);
        c.write(CSTA, &0u32.to_be_bytes());
        assert_eq!(rd32(&mut c, CSTA), 0x400, "read-only");
        assert_eq!(c.counters.writes.load(Ordering::Relaxed), 3);
    }

    #[test]
    fn wide_and_out_of_window_reads() {
        let mut c = CaamController::new();
        let mut d8 = [0u8; 8];
        c.read(CAAMVID_MS, &mut d8);
        assert_eq!(d8, [0x0a, 0x11, 0x05, 0x04, 0, 0, 0, 0]);
        let mut d = [0xffu8; 4];
        c.read(CAAM_WINDOW, &mut d);
        assert_eq!(d, [0; 4]);
    }
}
