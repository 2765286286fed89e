//! Opening the files a user names (kernel, initramfs, overlays): only regular, non-empty files
//! are taken. A FIFO would block `open`, a character device such as /dev/zero would never end
//! a read, and a directory reads as an error far from its cause; each is refused by name here,
//! before KVM is opened.

use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::Path;

/// Why a named file cannot be used; the caller says which option named it.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    /// The file cannot be opened or examined.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A directory, device, FIFO or socket.
    #[error("it is {0}, not a regular file: give the path of the file itself")]
    NotRegular(&'static str),
    /// Zero bytes long.
    #[error("the file is empty")]
    Empty,
}

/// What kind of file `md` describes, for the message ("a directory", ...).
fn kind(md: &std::fs::Metadata) -> &'static str {
    let t = md.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` read-only if it is a regular, non-empty file; returns it with its size.
/// The open is non-blocking so a FIFO cannot hang it; the type is checked on the opened file,
/// so nothing can be swapped in between the check and the use.
pub fn open_regular(path: &Path) -> Result<(File, u64), InputError> {
    let f = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    let md = f.metadata()?;
    if !md.file_type().is_file() {
        return Err(InputError::NotRegular(kind(&md)));
    }
    if md.len() == 0 {
        return Err(InputError::Empty);
    }
    Ok((f, md.len()))
}

/// Reads a whole regular, non-empty file (see [`open_regular`]).
pub fn read_regular(path: &Path) -> Result<Vec<u8>, InputError> {
    use std::io::Read;
    let (mut f, len) = open_regular(path)?;
    let mut v = Vec::with_capacity(len as usize);
    f.read_to_end(&mut v)?;
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_regular_non_empty_files_are_taken() {
        let e = open_regular(Path::new("/dev/zero")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "it is a character device, not a regular file: give the path of the file itself"
        );
        let e = open_regular(Path::new("/")).unwrap_err().to_string();
        assert!(e.starts_with("it is a directory"), "{e}");
        let dir = std::env::temp_dir().join(format!("platvmm-input-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: `c` is a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let e = open_regular(&fifo).unwrap_err().to_string();
        assert!(e.starts_with("it is a FIFO"), "{e}");
        let empty = dir.join("empty");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(open_regular(&empty), Err(InputError::Empty)));
        let ok = dir.join("ok");
        std::fs::write(&ok, b"abc").unwrap();
        assert_eq!(open_regular(&ok).unwrap().1, 3);
        assert_eq!(read_regular(&ok).unwrap(), b"abc");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
