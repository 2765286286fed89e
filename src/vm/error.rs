//! The user-facing error of a VM run and the helper that turns host failures into it (KVM
//! failures come as `hypervisor::KvmError`).
//! Every message is what the user reads on stderr after "platvmm: error: ".

use std::path::PathBuf;

use crate::arch::aarch64::image::{ImageError, PlanError};
use crate::arch::aarch64::layout::LayoutError;

/// Everything that can stop platvmm before or while running a guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Sizes outside the memory map, vCPU counts.
    #[error("{0}")]
    Layout(#[from] LayoutError),
    /// The kernel file cannot be read.
    #[error("cannot read kernel {path}: {source}")]
    KernelOpen {
        path: PathBuf,
        source: crate::host::input::InputError,
    },
    /// The kernel file is not an arm64 Image.
    #[error("kernel {path}: {source}")]
    KernelFormat { path: PathBuf, source: ImageError },
    /// The initramfs cannot be read.
    #[error("cannot read initramfs {path}: {source}")]
    InitramfsOpen {
        path: PathBuf,
        source: crate::host::input::InputError,
    },
    /// Longer than the guest kernel keeps (it would cut it silently).
    #[error("--cmdline is {len} bytes: an arm64 kernel keeps at most {max} (COMMAND_LINE_SIZE {limit}, terminator included); shorten it")]
    CmdlineTooLong {
        len: usize,
        max: usize,
        limit: usize,
    },
    /// Kernel + initramfs + DTB do not fit in guest RAM.
    #[error("{0}")]
    BootPlan(#[from] PlanError),
    /// A `--dt-overlay` file is unusable.
    #[error("--dt-overlay {0}")]
    DtOverlay(crate::host::overlay::OverlayError),
    /// platvmm runs aarch64 guests with KVM: it needs an aarch64 host.
    #[error("this host is {0}: platvmm needs an aarch64 host with KVM (on x86_64, run the emulated board: ci/demo.sh)")]
    HostNotAarch64(&'static str),
    /// /dev/kvm cannot be opened.
    #[error("cannot open /dev/kvm: {0} (is the kvm module loaded and the kernel booted at EL2? are you in the kvm group?)")]
    NoKvm(std::io::Error),
    /// `--cpus` names host CPUs platvmm may not use or a policy the host refuses, or a
    /// thread could not take its placement.
    #[error("{0}")]
    Placement(#[from] crate::vstate::placement::PlacementError),
    /// A reboot in place failed (the VM then stops).
    #[error("reboot in place: {0}")]
    Reboot(String),
    /// The API socket could not be created.
    #[error("{0}")]
    Api(#[from] crate::api::server::ApiError),
    /// More vCPUs than KVM allows.
    #[error("--cpus {requested} is more than this host's KVM allows ({max})")]
    TooManyCpus { requested: u32, max: u32 },
    /// A KVM call failed while building the VM.
    #[error("{0}")]
    Kvm(#[from] crate::hypervisor::KvmError),
    /// The interrupt controller.
    #[cfg(target_arch = "aarch64")]
    #[error("{0}")]
    Gic(#[from] crate::arch::aarch64::gic::GicError),
    /// Guest RAM could not be set up (anonymous or identity-mapped).
    #[error("{0}")]
    Memory(#[from] crate::memory::MemoryError),
    /// Loading the kernel, initramfs or DTB into guest memory failed.
    #[error("cannot load {what} into guest memory: {reason}")]
    Load { what: &'static str, reason: String },
    /// The device tree could not be built.
    #[error("{0}")]
    Fdt(#[from] crate::arch::aarch64::fdt::FdtError),
    /// `--dump-dtb` target not writable.
    #[error("cannot write the device tree to {path}: {source}")]
    DumpDtb {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The MMIO bus refused a device.
    #[error("{0}")]
    Bus(#[from] devices::BusError),
    /// A guest resource (address, SPI, memslot, phandle) ran out.
    #[error("{0}")]
    Resources(#[from] crate::resources::Exhausted),
    /// Passthrough setup failed.
    #[error("{0}")]
    Passthrough(#[from] crate::passthrough::PassthroughError),
    /// A virtio device could not be set up.
    #[error("{0}")]
    Virtio(#[from] crate::virtio::VirtioError),
    /// `--chroot` names something that is not a directory.
    #[error("--chroot {0}: not a directory (give an existing, preferably empty, directory)")]
    ChrootNotDir(PathBuf),
    /// Privileges could not be dropped.
    #[error("{0}")]
    Jail(#[from] crate::sandbox::jail::JailError),
    /// The seccomp sandbox could not be set up.
    #[error("{0}")]
    Seccomp(#[from] crate::sandbox::seccomp::SeccompError),
    /// A host resource (eventfd, epoll, thread) could not be set up.
    #[error("{what}: {source}")]
    Host {
        what: &'static str,
        source: std::io::Error,
    },
}

/// Maps a failed host call to [`Error::Host`] saying what was being done.
pub fn host_err(what: &'static str) -> impl Fn(std::io::Error) -> Error {
    move |source| Error::Host { what, source }
}
