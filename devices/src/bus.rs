//! The MMIO bus: a sorted set of non-overlapping guest-physical ranges, each owned by a device.
//!
//! vCPU threads call [`Bus::read`] / [`Bus::write`] on every KVM MMIO exit. Lookups are a
//! binary search over the ranges; each device sits behind its own mutex so vCPUs touching
//! different devices never contend.

use std::sync::{Arc, Mutex};

/// A device model reachable through trapped MMIO.
pub trait MmioDevice: Send {
    /// Reads `data.len()` bytes at `offset` from the start of the device's range.
    fn read(&mut self, offset: u64, data: &mut [u8]);
    /// Writes `data` at `offset` from the start of the device's range.
    fn write(&mut self, offset: u64, data: &[u8]);
    /// The VM reboots in place: back to the state a guest finds at power-on (default: the
    /// device keeps no guest-visible state worth resetting, or its guest driver resets it).
    fn reset(&mut self) {}
}

/// Errors of the MMIO bus.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// A range of zero length or one that wraps past the end of the address space.
    #[error("invalid MMIO range {base:#x}+{len:#x}")]
    InvalidRange { base: u64, len: u64 },
    /// The new range overlaps a range already on the bus.
    #[error("MMIO range {base:#x}+{len:#x} overlaps {other_base:#x}+{other_len:#x}")]
    Overlap {
        base: u64,
        len: u64,
        other_base: u64,
        other_len: u64,
    },
}

struct Entry {
    base: u64,
    len: u64,
    dev: Arc<Mutex<dyn MmioDevice>>,
}

/// Routes MMIO accesses to devices.
#[derive(Default)]
pub struct Bus {
    entries: Vec<Entry>,
}

impl Bus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `dev` at `[base, base + len)`.
    pub fn insert(
        &mut self,
        base: u64,
        len: u64,
        dev: Arc<Mutex<dyn MmioDevice>>,
    ) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::InvalidRange { base, len })?;
        if let Some(o) = self
            .entries
            .iter()
            .find(|e| base < e.base + e.len && e.base < end)
        {
            return Err(BusError::Overlap {
                base,
                len,
                other_base: o.base,
                other_len: o.len,
            });
        }
        let pos = self.entries.partition_point(|e| e.base < base);
        self.entries.insert(pos, Entry { base, len, dev });
        Ok(())
    }

    /// The device covering `[addr, addr + size)` entirely, with the offset of `addr` in it.
    fn find(&self, addr: u64, size: usize) -> Option<(&Entry, u64)> {
        let idx = self.entries.partition_point(|e| e.base <= addr);
        let e = self.entries.get(idx.checked_sub(1)?)?;
        let off = addr - e.base;
        (off.checked_add(size as u64)? <= e.len).then_some((e, off))
    }

    /// Forwards a read. Returns false (and leaves `data` untouched) if no device covers it.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((e, off)) => {
                lock(&e.dev).read(off, data);
                true
            }
            None => false,
        }
    }

    /// Forwards a write. Returns false if no device covers it.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.find(addr, data.len()) {
            Some((e, off)) => {
                lock(&e.dev).write(off, data);
                true
            }
            None => false,
        }
    }
}

impl Bus {
    /// Resets every device on the bus ([`MmioDevice::reset`]), in address order.
    pub fn reset_all(&self) {
        for e in &self.entries {
            lock(&e.dev).reset();
        }
    }
}

/// Locks a device, recovering from a poisoned mutex: a device model that panicked on one
/// vCPU must not take every other vCPU down with it.
fn lock<'a>(
    dev: &'a Mutex<dyn MmioDevice + 'static>,
) -> std::sync::MutexGuard<'a, dyn MmioDevice + 'static> {
    dev.lock().unwrap_or_else(|p| p.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records accesses; reads return the low byte of the offset.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<(u64, Vec<u8>)>,
    }

    impl MmioDevice for Recorder {
        fn reset(&mut self) {
            self.writes.push((u64::MAX, Vec::new()));
        }
        fn read(&mut self, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, offset: u64, data: &[u8]) {
            self.writes.push((offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_by_address_and_offset() {
        let mut bus = Bus::new();
        let a = Arc::new(Mutex::new(Recorder::default()));
        let b = Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x2000, 0x1000, b.clone()).unwrap();
        bus.insert(0x1000, 0x1000, a.clone()).unwrap();
        let mut d = [0u8; 4];
        assert!(bus.read(0x1010, &mut d));
        assert_eq!(d, [0x10; 4]);
        assert!(bus.write(0x2ffc, &[1, 2, 3, 4]));
        assert_eq!(b.lock().unwrap().writes, vec![(0xffc, vec![1, 2, 3, 4])]);
        assert!(a.lock().unwrap().writes.is_empty());
        // A reboot in place resets each device once.
        bus.reset_all();
        assert_eq!(a.lock().unwrap().writes, vec![(u64::MAX, vec![])]);
        assert_eq!(b.lock().unwrap().writes.len(), 2);
    }

    #[test]
    fn misses_outside_and_straddling() {
        let mut bus = Bus::new();
        bus.insert(0x1000, 0x100, Arc::new(Mutex::new(Recorder::default())))
            .unwrap();
        let mut d = [0xaau8; 4];
        assert!(!bus.read(0xffc, &mut d));
        assert!(!bus.read(0x10fe, &mut d), "access straddling the end");
        assert!(!bus.write(0x1100, &[0]));
        assert_eq!(d, [0xaa; 4]);
        assert!(bus.read(0x10fc, &mut d));
    }

    #[test]
    fn rejects_overlap_and_bad_ranges() {
        let mut bus = Bus::new();
        let dev = || Arc::new(Mutex::new(Recorder::default()));
        bus.insert(0x1000, 0x1000, dev()).unwrap();
        assert!(matches!(
            bus.insert(0x1fff, 2, dev()),
            Err(BusError::Overlap {
                other_base: 0x1000,
                ..
            })
        ));
        assert!(matches!(
            bus.insert(0x800, 0x801, dev()),
            Err(BusError::Overlap { .. })
        ));
        assert_eq!(
            bus.insert(0x5000, 0, dev()),
            Err(BusError::InvalidRange {
                base: 0x5000,
                len: 0
            })
        );
        assert!(bus.insert(u64::MAX, 2, dev()).is_err());
        bus.insert(0x2000, 0x10, dev()).unwrap();
        bus.insert(0x800, 0x800, dev()).unwrap();
    }
}
