//! Shared by the fuzz targets (each includes it with `#[path]`).

use std::fs::File;

/// A read-write file in the temp directory, unlinked at once (named NAME-PID while it exists).
pub fn unlinked_file(name: &str) -> File {
    let p = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&p)
        .expect("temp file");
    std::fs::remove_file(&p).expect("unlink temp file");
    f
}
