use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use super::*;

/// A controller and the number of times it pulsed its interrupt.
fn pl061() -> (Pl061, Arc<AtomicU32>) {
    let pulses = Arc::new(AtomicU32::new(0));
    let count = pulses.clone();
    let dev = Pl061::new(Box::new(move || {
        count.fetch_add(1, Ordering::Relaxed);
    }));
    (dev, pulses)
}

fn readb(d: &mut Pl061, offset: u64) -> u8 {
    let mut b = [0xa5u8];
    d.read(offset, &mut b);
    b[0]
}

fn readl(d: &mut Pl061, offset: u64) -> u32 {
    let mut b = [0xa5u8; 4];
    d.read(offset, &mut b);
    u32::from_le_bytes(b)
}

fn writeb(d: &mut Pl061, offset: u64, v: u8) {
    d.write(offset, &[v]);
}

/// GPIODATA's address for the lines of `mask`.
fn data_at(mask: u8) -> u64 {
    u64::from(mask) << 2
}

/// The PL061 driver's probe: every interrupt disabled.
fn probe(d: &mut Pl061) {
    writeb(d, GPIOIE, 0);
}

/// What gpio_keys and the PL061 driver do for a key on `line`: make the line an input,
/// IRQ_TYPE_EDGE_BOTH, unmask.
fn gpio_keys_setup(d: &mut Pl061, line: u8) {
    let bit = 1u8 << line;
    let dir = readb(d, GPIODIR);
    writeb(d, GPIODIR, dir & !bit);
    let (is, ibe, iev) = (readb(d, GPIOIS), readb(d, GPIOIBE), readb(d, GPIOIEV));
    writeb(d, GPIOIS, is & !bit);
    writeb(d, GPIOIBE, ibe | bit);
    writeb(d, GPIOIEV, iev);
    let ie = readb(d, GPIOIE);
    writeb(d, GPIOIE, ie | bit);
}

#[test]
fn amba_ids_match_the_pl061_driver() {
    let (mut d, _) = pl061();
    // As drivers/amba/bus.c reads them: 32-bit reads from the end of the window, low bytes.
    let size = Pl061::SIZE;
    let (mut pid, mut cid) = (0u32, 0u32);
    for i in 0..4u64 {
        pid |= (readl(&mut d, size - 0x20 + 4 * i) & 0xff) << (i * 8);
        cid |= (readl(&mut d, size - 0x10 + 4 * i) & 0xff) << (i * 8);
    }
    assert_eq!(pid, 0x0004_1061);
    assert_eq!(pid & 0x000f_ffff, 0x0004_1061, "gpio-pl061.c's amba_id");
    assert_eq!(cid, 0xb105_f00d, "AMBA_CID");
    // Whole words: the upper bytes are 0.
    assert_eq!(readl(&mut d, 0xfe0), 0x61);
    assert_eq!(readl(&mut d, 0xffc), 0xb1);
    let bytes: Vec<u8> = (0xfe0..0x1000)
        .step_by(4)
        .map(|o| readb(&mut d, o))
        .collect();
    assert_eq!(bytes, [0x61, 0x10, 0x04, 0x00, 0x0d, 0xf0, 0x05, 0xb1]);
    // Read-only.
    writeb(&mut d, 0xfe0, 0);
    assert_eq!(readb(&mut d, 0xfe0), 0x61);
}

#[test]
fn data_is_masked_by_address_and_direction() {
    let (mut d, _) = pl061();
    writeb(&mut d, GPIODIR, 0x0f); // lines 0-3 outputs, 4-7 inputs
    d.set_input(0, true); // an output: not seen
    d.set_input(5, true);
    d.set_input(6, true);
    // A write through mask 0xff sets outputs only.
    writeb(&mut d, data_at(0xff), 0xff);
    assert_eq!(readb(&mut d, data_at(0xff)), 0x6f);
    // A write touches only the lines of its address mask.
    writeb(&mut d, data_at(0x03), 0x00);
    assert_eq!(readb(&mut d, data_at(0xff)), 0x6c);
    // Reads are masked too: line 2 alone, line 5 alone, line 7 (low input).
    assert_eq!(readb(&mut d, data_at(0x04)), 0x04);
    assert_eq!(readb(&mut d, data_at(0x20)), 0x20);
    assert_eq!(readb(&mut d, data_at(0x80)), 0x00);
    assert_eq!(readb(&mut d, data_at(0x00)), 0x00, "mask 0 reads nothing");
    // The driver's direction_output: the value written before and after the DIR write;
    // before, the line was an input and the write was ignored.
    writeb(&mut d, data_at(0x10), 0x10);
    assert_eq!(readb(&mut d, data_at(0x10)), 0);
    writeb(&mut d, GPIODIR, 0x1f);
    writeb(&mut d, data_at(0x10), 0x10);
    assert_eq!(readb(&mut d, data_at(0x10)), 0x10);
    // Back to an input: the host's level (line 5, 6 high) shows; line 0's level appears.
    writeb(&mut d, GPIODIR, 0);
    assert_eq!(readb(&mut d, data_at(0xff)), 0x61);
    assert_eq!(readb(&mut d, GPIOAFSEL), 0);
    writeb(&mut d, GPIOAFSEL, 0x81);
    assert_eq!(readb(&mut d, GPIOAFSEL), 0x81, "stored, nothing else");
    assert_eq!(readb(&mut d, data_at(0xff)), 0x61);
}

#[test]
fn gpio_keys_power_button() {
    let (mut d, pulses) = pl061();
    probe(&mut d);
    gpio_keys_setup(&mut d, 3);
    assert_eq!(readb(&mut d, GPIOIS), 0);
    assert_eq!(readb(&mut d, GPIOIBE), 0x08);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
    // Press.
    d.set_input(3, true);
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    assert_eq!(readb(&mut d, GPIORIS), 0x08);
    assert_eq!(readb(&mut d, GPIOMIS), 0x08);
    assert_eq!(
        readb(&mut d, data_at(0x08)),
        0x08,
        "gpio_keys reads the level"
    );
    writeb(&mut d, GPIOIC, 0x08);
    assert_eq!(readb(&mut d, GPIORIS), 0);
    assert_eq!(readb(&mut d, GPIOMIS), 0);
    assert_eq!(pulses.load(Ordering::Relaxed), 1, "nothing left pending");
    // Release: the falling edge interrupts too.
    d.set_input(3, false);
    assert_eq!(pulses.load(Ordering::Relaxed), 2);
    assert_eq!(readb(&mut d, GPIOMIS), 0x08);
    assert_eq!(readb(&mut d, data_at(0x08)), 0);
    writeb(&mut d, GPIOIC, 0x08);
    assert_eq!(readb(&mut d, GPIOMIS), 0);
    // A level set again is no edge.
    d.set_input(3, false);
    assert_eq!(readb(&mut d, GPIORIS), 0);
    assert_eq!(pulses.load(Ordering::Relaxed), 2);
}

#[test]
fn ack_or_enable_repulses_while_a_line_is_still_pending() {
    let (mut d, pulses) = pl061();
    probe(&mut d);
    gpio_keys_setup(&mut d, 3);
    gpio_keys_setup(&mut d, 1);
    d.set_input(3, true);
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    // The handler read MIS (line 3) before line 1's edge: the output was already high.
    d.set_input(1, true);
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    assert_eq!(readb(&mut d, GPIOMIS), 0x0a);
    // Acknowledging line 3 leaves line 1 pending: a new interrupt.
    writeb(&mut d, GPIOIC, 0x08);
    assert_eq!(pulses.load(Ordering::Relaxed), 2);
    // So does an enable write that leaves it high.
    writeb(&mut d, GPIOIE, 0x0a);
    assert_eq!(pulses.load(Ordering::Relaxed), 3);
    writeb(&mut d, GPIOIC, 0x02);
    assert_eq!(readb(&mut d, GPIOMIS), 0);
    writeb(&mut d, GPIOIC, 0xff);
    writeb(&mut d, GPIOIE, 0x0a);
    assert_eq!(pulses.load(Ordering::Relaxed), 3, "not while low");
}

#[test]
fn no_pulse_while_disabled_but_ris_latches() {
    let (mut d, pulses) = pl061();
    writeb(&mut d, GPIOIBE, 0x08);
    d.set_input(3, true);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
    assert_eq!(readb(&mut d, GPIORIS), 0x08);
    assert_eq!(readb(&mut d, GPIOMIS), 0);
    writeb(&mut d, GPIOIE, 0x08);
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    assert_eq!(readb(&mut d, GPIOMIS), 0x08);
    // Masking drops the output; unmasking with the edge still latched pulses again.
    writeb(&mut d, GPIOIE, 0);
    writeb(&mut d, GPIOIE, 0x08);
    assert_eq!(pulses.load(Ordering::Relaxed), 2);
}

#[test]
fn single_edges_follow_iev() {
    let (mut d, pulses) = pl061();
    // Line 0 rising only, line 1 falling only.
    writeb(&mut d, GPIOIEV, 0x01);
    writeb(&mut d, GPIOIE, 0x03);
    d.set_input(1, true);
    assert_eq!(
        readb(&mut d, GPIORIS),
        0,
        "a rising edge on a falling-edge line"
    );
    d.set_input(0, true);
    assert_eq!(readb(&mut d, GPIORIS), 0x01);
    d.set_input(1, false);
    assert_eq!(readb(&mut d, GPIORIS), 0x03);
    assert_eq!(
        pulses.load(Ordering::Relaxed),
        1,
        "the output only rose once"
    );
    writeb(&mut d, GPIOIC, 0x03);
    d.set_input(0, false);
    assert_eq!(
        readb(&mut d, GPIORIS),
        0,
        "a falling edge on a rising-edge line"
    );
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
}

#[test]
fn level_line_reasserts_after_ack() {
    let (mut d, pulses) = pl061();
    // Line 2 level-sensitive, active high (IRQ_TYPE_LEVEL_HIGH).
    writeb(&mut d, GPIOIS, 0x04);
    writeb(&mut d, GPIOIEV, 0x04);
    writeb(&mut d, GPIOIE, 0x04);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
    d.set_input(2, true);
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    // handle_level_irq: mask, ack, handle, unmask.
    writeb(&mut d, GPIOIE, 0);
    writeb(&mut d, GPIOIC, 0x04);
    assert_eq!(
        readb(&mut d, GPIORIS),
        0x04,
        "IC does not clear an active level"
    );
    assert_eq!(pulses.load(Ordering::Relaxed), 1, "masked: no pulse");
    writeb(&mut d, GPIOIE, 0x04);
    assert_eq!(pulses.load(Ordering::Relaxed), 2, "still high after unmask");
    writeb(&mut d, GPIOIC, 0x04);
    assert_eq!(pulses.load(Ordering::Relaxed), 3, "still high after ack");
    // The level goes away: so does the status.
    d.set_input(2, false);
    assert_eq!(readb(&mut d, GPIORIS), 0);
    assert_eq!(readb(&mut d, GPIOMIS), 0);
    // Active low: matching at once.
    writeb(&mut d, GPIOIEV, 0);
    assert_eq!(readb(&mut d, GPIORIS), 0x04);
    assert_eq!(pulses.load(Ordering::Relaxed), 4);
    // Back to edge-sensitive: nothing latched.
    writeb(&mut d, GPIOIS, 0);
    assert_eq!(readb(&mut d, GPIORIS), 0);
}

#[test]
fn output_lines_ignore_the_host() {
    let (mut d, pulses) = pl061();
    writeb(&mut d, GPIODIR, 0x08);
    writeb(&mut d, GPIOIBE, 0x08);
    writeb(&mut d, GPIOIE, 0x08);
    d.set_input(3, true);
    assert_eq!(readb(&mut d, GPIORIS), 0);
    assert_eq!(readb(&mut d, data_at(0x08)), 0);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
    // Lines that do not exist.
    d.set_input(8, true);
    d.set_input(255, true);
    assert_eq!(readb(&mut d, data_at(0xff)), 0);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
}

#[test]
fn listening_follows_ie() {
    let (mut d, _) = pl061();
    assert!(!(0..=255).any(|l| d.listening(l)));
    probe(&mut d);
    gpio_keys_setup(&mut d, 3);
    assert!(d.listening(3));
    assert!(!d.listening(2));
    writeb(&mut d, GPIOIE, 0xff);
    assert!((0..8).all(|l| d.listening(l)));
    assert!(!d.listening(8));
    writeb(&mut d, GPIOIE, 0);
    assert!(!d.listening(3));
}

#[test]
fn read_only_and_unknown_registers() {
    let (mut d, pulses) = pl061();
    writeb(&mut d, GPIOIBE, 0x01);
    d.set_input(0, true);
    writeb(&mut d, GPIORIS, 0);
    writeb(&mut d, GPIOMIS, 0);
    assert_eq!(readb(&mut d, GPIORIS), 0x01);
    assert_eq!(readb(&mut d, GPIOIC), 0, "write-only");
    for off in [0x424, 0x800, 0xfd0, 0x1000, 0x2000, !3] {
        writeb(&mut d, off, 0xff);
        assert_eq!(readb(&mut d, off), 0, "{off:#x}");
    }
    assert_eq!(readb(&mut d, GPIOIE), 0);
    assert_eq!(pulses.load(Ordering::Relaxed), 0);
}

#[test]
fn wide_and_unaligned_accesses() {
    let (mut d, _) = pl061();
    // A multi-byte write acts on its first byte.
    d.write(GPIODIR, &[0x0f, 0xff, 0xff, 0xff, 0x01, 0, 0, 0]);
    assert_eq!(readb(&mut d, GPIODIR), 0x0f);
    assert_eq!(readb(&mut d, GPIOIS), 0, "not the next word");
    let mut q = [0xa5u8; 8];
    d.read(GPIODIR, &mut q);
    assert_eq!(q, [0x0f, 0, 0, 0, 0, 0, 0, 0]);
    // Inside a word: nothing.
    d.write(GPIODIR + 1, &[0xff]);
    d.write(GPIODIR + 3, &[0xff, 0xff]);
    assert_eq!(readb(&mut d, GPIODIR), 0x0f);
    assert_eq!(readb(&mut d, GPIODIR + 1), 0);
    // Empty accesses.
    d.write(GPIODIR, &[]);
    d.read(GPIODIR, &mut []);
    assert_eq!(readb(&mut d, GPIODIR), 0x0f);
}

#[test]
fn hostile_offsets_and_sizes_never_panic() {
    let (mut d, _) = pl061();
    d.set_input(3, true);
    for size in 1..=8usize {
        for off in 0..0x1100u64 {
            let mut buf = vec![0xa5u8; size];
            d.read(off, &mut buf);
            if off >= Pl061::SIZE || off % 4 != 0 {
                assert!(buf.iter().all(|&b| b == 0), "{off:#x}+{size}: {buf:?}");
            }
            assert!(buf[1..].iter().all(|&b| b == 0), "{off:#x}+{size}: {buf:?}");
            d.write(off, &vec![0xffu8; size]);
            d.set_input((off % 8) as u8, off & 8 != 0);
        }
    }
    for off in [u64::MAX, u64::MAX - 3, u64::MAX - 7, 1 << 63] {
        let mut buf = [0xa5u8; 8];
        d.read(off, &mut buf);
        assert_eq!(buf, [0; 8]);
        d.write(off, &buf);
    }
}

#[test]
fn a_reboot_clears_what_the_guest_set_and_keeps_the_host_levels() {
    let (mut d, pulses) = pl061();
    probe(&mut d);
    gpio_keys_setup(&mut d, 3);
    d.set_input(3, true);
    assert!(d.listening(3));
    assert_eq!(pulses.load(Ordering::Relaxed), 1);
    d.reset();
    assert!(
        !d.listening(3),
        "the new guest's driver has not enabled the line yet"
    );
    for reg in [GPIODIR, GPIOIS, GPIOIBE, GPIOIEV, GPIOIE, GPIORIS, GPIOMIS] {
        assert_eq!(readb(&mut d, reg), 0, "register {reg:#x} after reset");
    }
    assert_eq!(
        readb(&mut d, data_at(1 << 3)),
        1 << 3,
        "the host still holds line 3 high"
    );
    // Its interrupt still reaches the same line.
    gpio_keys_setup(&mut d, 3);
    d.set_input(3, false);
    assert_eq!(pulses.load(Ordering::Relaxed), 2);
}
