//! Scratch files for unit tests: unlinked at once, so nothing is left behind.

use std::fs::File;
use std::sync::atomic::{AtomicU32, Ordering};

/// An unlinked temporary file of `len` bytes.
pub fn scratch_file(len: u64) -> File {
    static N: AtomicU32 = AtomicU32::new(0);
    let n = N.fetch_add(1, Ordering::Relaxed);
    let p = std::env::temp_dir().join(format!("platvmm-scratch-{}-{n}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .unwrap();
    std::fs::remove_file(&p).unwrap();
    f.set_len(len).unwrap();
    f
}
