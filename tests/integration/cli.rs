use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the platvmm binary, through the cargo target runner (qemu-user) when the tests
/// themselves run under one: an emulated process cannot exec a foreign binary directly.
fn platvmm(args: &[&str]) -> Output {
    let bin = env!("CARGO_BIN_EXE_platvmm");
    let runner = if cfg!(target_arch = "aarch64") {
        std::env::var("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER").ok()
    } else {
        None
    };
    let mut cmd = match runner.as_deref().map(str::split_whitespace) {
        Some(mut parts) => {
            let mut c = Command::new(parts.next().expect("runner command"));
            c.args(parts).arg(bin);
            c
        }
        None => Command::new(bin),
    };
    cmd.args(args).stdin(std::process::Stdio::null());
    cmd.output().expect("run platvmm")
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("platvmm-it-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join(name)
}

/// A file with a valid arm64 Image header (it is never booted by these tests). Each call gets
/// its own file: the tests run in parallel.
fn fake_image() -> PathBuf {
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let p = scratch(&format!("Image-{n}"));
    let mut v = vec![0u8; 8192];
    v[16..24].copy_from_slice(&8192u64.to_le_bytes());
    v[56..60].copy_from_slice(b"ARM\x64");
    std::fs::write(&p, v).unwrap();
    p
}

/// Asserts a clean failure: the status, exactly one line on stderr containing `needle`.
fn assert_error(out: &Output, status: i32, needle: &str) {
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(status), "stderr: {err}");
    assert!(!err.contains("panicked"), "panic: {err}");
    assert!(err.contains(needle), "expected {needle:?} in {err:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err:?}");
    if status == 1 {
        assert!(err.starts_with("platvmm: error: "), "{err:?}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn missing_kernel() {
    let out = platvmm(&["--kernel", "/nonexistent/Image"]);
    assert_error(
        &out,
        1,
        "cannot read kernel /nonexistent/Image: No such file",
    );
}

#[test]
fn kernel_is_a_directory() {
    let out = platvmm(&["--kernel", "/"]);
    assert_error(&out, 1, "cannot read kernel /");
}

#[test]
fn kernel_not_an_image() {
    let p = scratch("notes.txt");
    std::fs::write(&p, "not a kernel\n".repeat(20)).unwrap();
    assert_error(&platvmm(&["--kernel", s(&p)]), 1, "not an arm64 Image");

    let gz = scratch("vmlinuz.gz");
    std::fs::write(&gz, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0]).unwrap();
    assert_error(&platvmm(&["--kernel", s(&gz)]), 1, "gzip-compressed");

    let elf = scratch("vmlinux");
    std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0").unwrap();
    assert_error(&platvmm(&["--kernel", s(&elf)]), 1, "ELF file");
}

#[test]
fn zero_cpus() {
    let k = fake_image();
    assert_error(
        &platvmm(&["--kernel", s(&k), "--cpus", "0"]),
        1,
        "--cpus must be at least 1",
    );
}

#[test]
fn cpu_placement_is_refused_before_kvm() {
    let k = fake_image();
    assert_error(
        &platvmm(&["--kernel", s(&k), "--cpus", "1,affinity=0:4000"]),
        1,
        "--cpus affinity=0:4000: host CPU 4000 does not exist or is not allowed to platvmm (allowed: ",
    );
    assert_error(
        &platvmm(&["--kernel", s(&k), "--cpus", "2,affinity=2:0"]),
        2,
        "affinity=2:0: there is no vCPU 2 (--cpus 2 gives vCPUs 0-1)",
    );
    assert_error(
        &platvmm(&["--kernel", s(&k), "--cpus", "2,policy=fifo:100"]),
        2,
        "policy=fifo:100: priority '100' is not in 1-99",
    );
}

#[test]
fn api_socket_paths_are_checked_before_kvm_and_ctl_needs_a_vm() {
    let k = fake_image();
    let file = scratch("not-a-socket");
    std::fs::write(&file, b"keep me").unwrap();
    assert_error(
        &platvmm(&["--kernel", s(&k), "--api-socket", s(&file)]),
        1,
        "the path exists and is not a socket (remove it, or give another path)",
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
    let nodir = scratch("no-such-dir").join("vm.sock");
    assert_error(
        &platvmm(&["--kernel", s(&k), "--api-socket", s(&nodir)]),
        1,
        "cannot create it: No such file or directory",
    );
    let absent = scratch("absent.sock");
    assert_error(
        &platvmm(&["ctl", s(&absent), "info"]),
        1,
        "(is a VM running with --api-socket",
    );
    assert_error(
        &platvmm(&["ctl", s(&absent), "reboot-now"]),
        2,
        "invalid value",
    );
}

#[test]
fn memory_out_of_map() {
    let k = fake_image();
    assert_error(
        &platvmm(&["--kernel", s(&k), "--memory", "16M"]),
        1,
        "too small",
    );
    assert_error(
        &platvmm(&["--kernel", s(&k), "--memory", "2T"]),
        1,
        "too large",
    );
}

#[test]
fn bad_options() {
    let out = platvmm(&["--kernel", "k", "--memory", "lots"]);
    assert_error(&out, 2, "not a size");
    let out = platvmm(&["--kernel", "k", "--cpus", "two"]);
    assert_error(&out, 2, "--cpus");
    let out = platvmm(&["--kernal", "k"]);
    assert_error(&out, 2, "unexpected argument");
}

#[test]
fn missing_initramfs() {
    let k = fake_image();
    assert_error(
        &platvmm(&["--kernel", s(&k), "--initramfs", "/nonexistent/initrd"]),
        1,
        "cannot read initramfs /nonexistent/initrd",
    );
}

#[test]
fn initramfs_larger_than_memory() {
    let k = fake_image();
    let big = scratch("big.cpio");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(100 << 20).unwrap(); // sparse: no disk used
    assert_error(
        &platvmm(&["--kernel", s(&k), "--initramfs", s(&big), "--memory", "64M"]),
        1,
        "guest memory is too small for the kernel, initramfs",
    );
}

#[cfg(not(target_arch = "aarch64"))]
#[test]
fn foreign_host_is_refused() {
    let k = fake_image();
    assert_error(
        &platvmm(&["--kernel", s(&k)]),
        1,
        "platvmm needs an aarch64 host with KVM",
    );
}

#[test]
fn passthrough_paths_are_checked_first() {
    let k = fake_image();
    assert_error(
        &platvmm(&[
            "--kernel",
            s(&k),
            "--vfio-platform",
            "/sys/bus/platform/devices/nope",
        ]),
        1,
        "--vfio-platform: /sys/bus/platform/devices/nope: no such device",
    );
    let out = platvmm(&["--kernel", s(&k), "--vfio-platform", "/x,colour=blue"]);
    assert_error(&out, 2, "unknown option 'colour'");
    let bad = scratch("bad.dtb");
    std::fs::write(&bad, b"not a device tree").unwrap();
    let out = platvmm(&["--kernel", s(&k), "--dt-overlay", s(&bad)]);
    assert_error(&out, 1, "compile the DTS with dtc -I dts -O dtb");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "platvmm: error: --dt-overlay {}: not a DTB",
            s(&bad)
        )),
        "a --dt-overlay error names --dt-overlay: {err}"
    );
    assert!(!err.contains("--vfio-platform"), "{err}");
}

/// A FIFO at a fresh scratch path (opening it for reading would block without O_NONBLOCK).
fn fifo(name: &str) -> PathBuf {
    let p = scratch(name);
    let _ = std::fs::remove_file(&p);
    let c = std::ffi::CString::new(s(&p)).unwrap();
    // SAFETY: `c` is a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    p
}

#[test]
fn inputs_must_be_regular_files() {
    let not_regular = "not a regular file: give the path of the file itself";
    let out = platvmm(&["--kernel", "/dev/zero"]);
    assert_error(
        &out,
        1,
        "cannot read kernel /dev/zero: it is a character device",
    );
    assert_error(&out, 1, not_regular);
    let f = fifo("kernel.fifo");
    assert_error(&platvmm(&["--kernel", s(&f)]), 1, "it is a FIFO");
    let k = fake_image();
    let f = fifo("initrd.fifo");
    let out = platvmm(&["--kernel", s(&k), "--initramfs", s(&f)]);
    assert_error(&out, 1, "cannot read initramfs");
    assert_error(&out, 1, "it is a FIFO");
    let out = platvmm(&["--kernel", s(&k), "--dt-overlay", "/dev/zero"]);
    assert_error(&out, 1, "--dt-overlay /dev/zero: it is a character device");
    let dir = std::env::temp_dir();
    let out = platvmm(&["--kernel", s(&k), "--dt-overlay", s(&dir)]);
    assert_error(&out, 1, "it is a directory");
    // preview-dt's host tree too: /dev/zero used to be read for ever.
    let out_dtb = scratch("preview-out.dtb");
    let args = [
        "preview-dt",
        "--host-dtb",
        "/dev/zero",
        "--node",
        "/x",
        "-o",
        s(&out_dtb),
    ];
    assert_error(&platvmm(&args), 1, "/dev/zero: it is a character device");
}

#[test]
fn empty_files_are_refused() {
    let empty = scratch("empty");
    std::fs::write(&empty, b"").unwrap();
    let out = platvmm(&["--kernel", s(&empty)]);
    assert_error(&out, 1, "the file is empty");
    let k = fake_image();
    let out = platvmm(&["--kernel", s(&k), "--initramfs", s(&empty)]);
    assert_error(&out, 1, "cannot read initramfs");
    assert_error(&out, 1, "the file is empty");
}

#[test]
fn truncated_kernels_are_refused() {
    // An EFI-stub header whose one section's data ends at 64 KiB, in a 16 KiB file.
    let mut v = vec![0u8; 16384];
    v[..2].copy_from_slice(b"MZ");
    v[16..24].copy_from_slice(&65536u64.to_le_bytes());
    v[56..60].copy_from_slice(b"ARM\x64");
    v[0x3c..0x40].copy_from_slice(&0x40u32.to_le_bytes());
    v[0x40..0x44].copy_from_slice(b"PE\0\0");
    v[0x46..0x48].copy_from_slice(&1u16.to_le_bytes()); // one section
    let sec = 0x40 + 24; // no optional header
    v[sec + 16..sec + 20].copy_from_slice(&0xf000u32.to_le_bytes());
    v[sec + 20..sec + 24].copy_from_slice(&0x1000u32.to_le_bytes());
    let k = scratch("Image-cut");
    std::fs::write(&k, &v).unwrap();
    let out = platvmm(&["--kernel", s(&k)]);
    assert_error(
        &out,
        1,
        "kernel is truncated: its PE sections end at byte 65536",
    );
    // No PE headers: a file far below the header's image size.
    let mut v = vec![0u8; 8192];
    v[16..24].copy_from_slice(&(64u64 << 20).to_le_bytes());
    v[56..60].copy_from_slice(b"ARM\x64");
    std::fs::write(&k, &v).unwrap();
    let out = platvmm(&["--kernel", s(&k)]);
    assert_error(
        &out,
        1,
        "kernel is truncated: its header gives an image size",
    );
}

#[test]
fn oversize_command_line_is_refused() {
    let k = fake_image();
    let long = "x".repeat(2048);
    let out = platvmm(&["--kernel", s(&k), "--cmdline", &long]);
    assert_error(
        &out,
        1,
        "--cmdline is 2048 bytes: an arm64 kernel keeps at most 2047",
    );
    let fits = "x".repeat(2047);
    let out = platvmm(&["--kernel", s(&k), "--cmdline", &fits]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("--cmdline"), "2047 bytes fit: {err}");
}

#[test]
fn list_json_parses_and_every_device_has_a_verdict() {
    let out = platvmm(&["list", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list --json is JSON");
    let devices = v.as_array().expect("a JSON array");
    for d in devices {
        let verdict = d["verdict"].as_str().expect("a verdict");
        assert!(["ready", "needs-bind", "cannot"].contains(&verdict), "{d}");
        assert!(d["name"].is_string() && d["bus"].is_string(), "{d}");
        if verdict != "ready" {
            assert!(d["reason"].is_string(), "a reason for {d}");
        }
    }
    let text = platvmm(&["list"]);
    let lines = String::from_utf8_lossy(&text.stdout);
    let top = lines.lines().filter(|l| !l.starts_with(' ')).count();
    assert_eq!(top, devices.len(), "text and JSON list the same devices");
}

#[test]
fn man_page_and_completions_are_generated() {
    let man = platvmm(&["man"]);
    assert_eq!(man.status.code(), Some(0));
    let man = String::from_utf8_lossy(&man.stdout);
    assert!(man.contains(".TH platvmm 1"), "{man}");
    assert!(
        man.contains("\\-\\-vfio\\-platform"),
        "the options are in the man page"
    );
    for shell in ["bash", "zsh", "fish"] {
        let c = platvmm(&["completions", shell]);
        assert_eq!(c.status.code(), Some(0), "{shell}");
        let c = String::from_utf8_lossy(&c.stdout);
        assert!(
            c.contains("--vfio-platform") && c.contains("bind"),
            "{shell}: {c}"
        );
    }
}

#[test]
fn config_files_give_options_and_the_command_line_wins() {
    let k = fake_image();
    let cfg = scratch("vm.toml");
    std::fs::write(&cfg, format!("kernel = \"{}\"\ncpus = 0\n", s(&k))).unwrap();
    // The file's kernel is used; its cpus = 0 is refused like --cpus 0 ...
    assert_error(
        &platvmm(&["--config", s(&cfg)]),
        1,
        "--cpus must be at least 1",
    );
    // ... unless the command line says otherwise.
    let out = platvmm(&["--config", s(&cfg), "--cpus", "1", "--memory", "16M"]);
    assert_error(&out, 1, "too small");
    std::fs::write(&cfg, "kernel = \"/k\"\n\nkernal = \"x\"\n").unwrap();
    let out = platvmm(&["--config", s(&cfg)]);
    assert_error(
        &out,
        2,
        &format!("--config {}:3: unknown key 'kernal'", s(&cfg)),
    );
    std::fs::write(&cfg, "memory = \"lots\"\n").unwrap();
    assert_error(
        &platvmm(&["--config", s(&cfg)]),
        2,
        ":1: memory: invalid value 'lots'",
    );
    assert_error(
        &platvmm(&["--config", "/dev/zero"]),
        2,
        "it is a character device",
    );
    let out = platvmm(&["--cpus", "2"]);
    assert_error(&out, 2, "--kernel <PATH> (or kernel = in --config)");
    // The virtio options too: lists for the repeatable ones, a flag for --rng.
    std::fs::write(
        &cfg,
        format!(
            "kernel = \"{}\"\nrng = true\nvsock = \"cid=3\"\nnet = [\"tap=t0\"]\ndisk = [\"/nonexistent/root.img,serial=r\"]\n",
            s(&k)
        ),
    )
    .unwrap();
    let out = platvmm(&["--config", s(&cfg)]);
    assert_error(&out, 1, "--disk /nonexistent/root.img: No such file");
    std::fs::write(&cfg, "disk = [\"/img,rw\"]\n").unwrap();
    assert_error(
        &platvmm(&["--config", s(&cfg)]),
        2,
        "options: readonly, serial=S",
    );
}

#[test]
fn bind_refuses_what_it_cannot_bind() {
    assert_error(
        &platvmm(&["bind", "/sys/bus/platform/devices/nope"]),
        1,
        "/sys/bus/platform/devices/nope: no such device",
    );
    assert_error(&platvmm(&["unbind", "/nonexistent"]), 1, "no such device");
    let pci = std::fs::read_dir("/sys/bus/pci/devices")
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok());
    if let Some(dev) = pci {
        let out = platvmm(&["bind", s(&dev.path())]);
        assert_error(&out, 1, "is a PCI device");
    }
}

#[test]
fn virtio_options_are_checked_before_kvm() {
    let k = fake_image();
    let kind = "not a regular file or block device (give a raw disk image)";
    let f = fifo("disk.fifo");
    for disk in [s(&f).to_string(), format!("{},readonly", s(&f))] {
        assert_error(&platvmm(&["--kernel", s(&k), "--disk", &disk]), 1, kind);
    }
    let dir = std::env::temp_dir();
    assert_error(&platvmm(&["--kernel", s(&k), "--disk", s(&dir)]), 1, kind);
    assert_error(
        &platvmm(&["--kernel", s(&k), "--disk", "/dev/zero,readonly"]),
        1,
        kind,
    );
    let out = platvmm(&["--kernel", s(&k), "--disk", "/nonexistent/disk.img"]);
    assert_error(&out, 1, "--disk /nonexistent/disk.img: No such file");
    let mut many = vec!["--kernel", s(&k), "--rng"];
    for _ in 0..15 {
        many.extend(["--net", "tap=t0"]);
    }
    assert_error(&platvmm(&many), 1, "16 virtio devices asked for");
    for (opt, val, needle) in [
        ("--disk", ",readonly", "missing image path"),
        ("--disk", "/img,rw", "options: readonly, serial=S"),
        ("--net", "mac=52:54:00:00:00:01", "tap=NAME is required"),
        ("--net", "tap=t0,vhost=maybe", "vhost=on|off"),
        ("--vsock", "cid=2", "must be 3 or more"),
        ("--vsock", "3", "--vsock cid=N"),
    ] {
        let out = platvmm(&["--kernel", s(&k), opt, val]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{opt} {val}: {err}");
        assert!(
            err.contains(needle),
            "{opt} {val}: expected {needle:?} in {err:?}"
        );
    }
}
