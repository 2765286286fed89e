//! An emulated ARM PrimeCell PL061 GPIO controller: the guest's power button.
//!
//! Like Firecracker on aarch64, platvmm gives the guest a PL061 and a `gpio-keys` node whose
//! KEY_POWER key is the controller's line 3: the host pressing and releasing the button
//! ([`Pl061::set_input`] high, then low) is a power-key press in the guest's input layer,
//! which its init (systemd-logind, acpid) turns into an orderly shutdown. The guest runs
//! stock drivers: drivers/gpio/gpio-pl061.c (an AMBA driver, all its accesses `readb` and
//! `writeb`) and drivers/input/keyboard/gpio_keys.c.
//!
//! What the guest sees (ARM DDI 0190B), offsets from the window's base; every register is 8
//! bits wide, in the low byte of its own 32-bit word:
//!
//! ```text
//! 0x000-0x3fc GPIODATA   address bits [9:2] are the mask of the access: a read returns
//!                        (outputs & DIR | inputs & !DIR) & mask, a write sets the output
//!                        latch's bits under mask & DIR (input lines ignore it)
//! 0x400       GPIODIR    1: the line is an output
//! 0x404       GPIOIS     1: level-sensitive, 0: edge-sensitive
//! 0x408       GPIOIBE    1: both edges (GPIOIEV ignored)
//! 0x40c       GPIOIEV    1: rising edge or high level, 0: falling edge or low level
//! 0x410       GPIOIE     1: the line's interrupt is enabled (unmasked)
//! 0x414       GPIORIS    raw interrupt status (read-only)
//! 0x418       GPIOMIS    GPIORIS & GPIOIE (read-only)
//! 0x41c       GPIOIC     write 1 to clear a latched edge (write-only, reads 0)
//! 0x420       GPIOAFSEL  stored and read back
//! 0xfe0-0xfec PeriphID0-3  0x61 0x10 0x04 0x00: part 0x061, designer 0x41 (ARM), rev 0
//! 0xff0-0xffc PCellID0-3   0x0d 0xf0 0x05 0xb1
//! ```
//!
//! The AMBA bus binds the driver by periphid (0x00041061 under mask 0x000fffff) after
//! checking the cell ID 0xb105f00d, reading each ID byte with a 32-bit `readl` from the end
//! of the node's `reg` window (size - 0x20 and size - 0x10): the node's `reg` must be
//! [`Pl061::SIZE`] bytes (the bus also wants an `apb_pclk` clock; a DT matter).
//!
//! Interrupts. An input line's host-side transitions are detected per GPIOIS/IBE/IEV: an edge
//! of the selected kind latches its GPIORIS bit until the guest writes 1 to it in GPIOIC; a
//! level-sensitive line's GPIORIS bit is set exactly while its level matches GPIOIEV (GPIOIC
//! does not clear it). The controller's one interrupt output, GPIOMIS != 0, reaches the guest
//! as an irqfd write: an edge at its GIC. So the model pulses it when the output rises, and
//! again after every GPIOIC or GPIOIE write that leaves it high: the driver reads GPIOMIS
//! once per interrupt and acknowledges each line it handles, so a line that became pending
//! after that read, or a level still active after `handle_level_irq`'s mask, ack and unmask,
//! gets an interrupt of its own instead of being lost. gpio_keys asks for both edges
//! (GPIOIS 0, GPIOIBE 1), acknowledges each edge in GPIOIC, and after its debounce reads the
//! line's level through GPIODATA (offset 0x20 for line 3): a press and a release are one
//! interrupt each.
//!
//! Accesses. The guest is hostile: any offset (past [`Pl061::SIZE`], unaligned, inside a
//! word) and any size reach [`MmioDevice`]. An access acts on the byte at its address only:
//! when that byte is a register's (the low byte of one of the words above), a read returns
//! the register in the first byte and 0 in the others (so `readl` of an ID word is the ID
//! byte) and a write takes its first byte and ignores the others; any other address reads 0
//! and ignores writes, as do the read-only registers (GPIORIS, GPIOMIS, the IDs).
//!
//! Not modelled: GPIOAFSEL's hardware control (there is no alternate function: the bits are
//! only stored); the pads of output lines (a line the guest drives feeds neither GPIODATA's
//! input side nor the interrupt detection, and drives nothing on the host side); the
//! PrimeCell integration-test registers; wake-up. The host's level of a line the guest made
//! an output is remembered but not seen (no edge, no level) until the guest makes it an
//! input again, which itself detects no edge.

use crate::bus::MmioDevice;
use crate::dt::{self, cells_prop, GuestNode};

/// Lines of the controller.
const LINES: u8 = 8;
/// End of the GPIODATA window (0x000..0x3fc, one word per mask).
const DATA_END: u64 = 0x400;
const GPIODIR: u64 = 0x400;
const GPIOIS: u64 = 0x404;
const GPIOIBE: u64 = 0x408;
const GPIOIEV: u64 = 0x40c;
const GPIOIE: u64 = 0x410;
const GPIORIS: u64 = 0x414;
const GPIOMIS: u64 = 0x418;
const GPIOIC: u64 = 0x41c;
const GPIOAFSEL: u64 = 0x420;
/// GPIOPeriphID0, the first of four ID words.
const PERIPH_ID0: u64 = 0xfe0;
/// GPIOPCellID0, the first of four ID words.
const PCELL_ID0: u64 = 0xff0;
/// PeriphID0-3: periphid 0x00041061 (part 0x061, designer 0x41, revision 0, config 0).
const PERIPH_ID: [u8; 4] = [0x61, 0x10, 0x04, 0x00];
/// PCellID0-3: the PrimeCell cell ID 0xb105f00d.
const PCELL_ID: [u8; 4] = [0x0d, 0xf0, 0x05, 0xb1];

/// The emulated PL061 (see the module documentation).
pub struct Pl061 {
    /// The output latch (GPIODATA as last written, for the lines that were outputs).
    out: u8,
    /// The host-driven levels of the lines ([`Pl061::set_input`]).
    input: u8,
    dir: u8,
    is: u8,
    ibe: u8,
    iev: u8,
    ie: u8,
    afsel: u8,
    /// Latched edges of edge-sensitive lines (their GPIORIS bits).
    edges: u8,
    /// The interrupt output as last computed (GPIOMIS != 0).
    asserted: bool,
    irq: Box<dyn Fn() + Send>,
}

impl Pl061 {
    /// Size of its register window.
    pub const SIZE: u64 = 0x1000;

    /// A controller whose interrupt output pulses `irq` (an irqfd write; the guest's GIC sees
    /// its SPI as edge-triggered) each time the combined output (GPIOMIS != 0) rises, and
    /// again after an acknowledge (GPIOIC) or a GPIOIE write that leaves it high, so a line
    /// still pending is never lost. All registers start at 0 (every line an input, every
    /// interrupt disabled), all host levels low.
    pub fn new(irq: Box<dyn Fn() + Send>) -> Self {
        Self {
            out: 0,
            input: 0,
            dir: 0,
            is: 0,
            ibe: 0,
            iev: 0,
            ie: 0,
            afsel: 0,
            edges: 0,
            asserted: false,
            irq,
        }
    }

    /// An input line (0..8) driven by the host side: edges and levels per GPIOIS/IBE/IEV set
    /// GPIORIS; lines the guest configured as outputs (GPIODIR bit set) ignore it (the level
    /// is remembered for when the line is an input again). Lines from 8 on do not exist: the
    /// call does nothing.
    pub fn set_input(&mut self, line: u8, high: bool) {
        if line >= LINES {
            return;
        }
        let bit = 1u8 << line;
        let was = self.input & bit != 0;
        if high {
            self.input |= bit;
        } else {
            self.input &= !bit;
        }
        let edge_input = (self.dir | self.is) & bit == 0;
        let wanted = self.ibe & bit != 0 || (self.iev & bit != 0) == high;
        if was != high && edge_input && wanted {
            self.edges |= bit;
        }
        self.update(false);
    }

    /// Whether the guest enabled `line`'s interrupt (GPIOIE bit): a driver listens to it.
    pub fn listening(&self, line: u8) -> bool {
        line < LINES && self.ie & (1 << line) != 0
    }

    /// GPIODATA's lines: the output latch for outputs, the host's levels for inputs.
    fn data(&self) -> u8 {
        (self.out & self.dir) | (self.input & !self.dir)
    }

    /// GPIORIS: latched edges of edge-sensitive lines, matching levels of level-sensitive
    /// input lines.
    fn ris(&self) -> u8 {
        let level = self.is & !self.dir & !(self.input ^ self.iev);
        (self.edges & !self.is) | level
    }

    fn mis(&self) -> u8 {
        self.ris() & self.ie
    }

    /// Recomputes the interrupt output; pulses it when it rises, or when `repulse` (an
    /// acknowledge or an enable write) and it is high.
    fn update(&mut self, repulse: bool) {
        let high = self.mis() != 0;
        if high && (repulse || !self.asserted) {
            (self.irq)();
        }
        self.asserted = high;
    }

    /// The register byte at `offset` (0 unless `offset` is a readable register's word).
    fn reg(&self, offset: u64) -> u8 {
        if offset % 4 != 0 {
            return 0;
        }
        match offset {
            o if o < DATA_END => self.data() & (o >> 2) as u8,
            GPIODIR => self.dir,
            GPIOIS => self.is,
            GPIOIBE => self.ibe,
            GPIOIEV => self.iev,
            GPIOIE => self.ie,
            GPIORIS => self.ris(),
            GPIOMIS => self.mis(),
            GPIOAFSEL => self.afsel,
            o @ PERIPH_ID0..PCELL_ID0 => PERIPH_ID[((o - PERIPH_ID0) / 4) as usize],
            o @ PCELL_ID0..Self::SIZE => PCELL_ID[((o - PCELL_ID0) / 4) as usize],
            _ => 0,
        }
    }

    /// Writes `v` to the register at `offset` (ignored unless a writable register's word).
    fn set_reg(&mut self, offset: u64, v: u8) {
        if offset % 4 != 0 {
            return;
        }
        match offset {
            o if o < DATA_END => {
                let mask = (o >> 2) as u8 & self.dir;
                self.out = (self.out & !mask) | (v & mask);
            }
            GPIODIR => self.dir = v,
            GPIOIS => {
                self.is = v;
                self.edges &= !v;
            }
            GPIOIBE => self.ibe = v,
            GPIOIEV => self.iev = v,
            GPIOIE => self.ie = v,
            GPIOIC => self.edges &= !v,
            GPIOAFSEL => self.afsel = v,
            _ => return,
        }
        self.update(matches!(offset, GPIOIE | GPIOIC));
    }
}

impl MmioDevice for Pl061 {
    /// Every register back to 0 (the host levels stay: a line held by the host stays high).
    fn reset(&mut self) {
        let (input, irq) = (
            self.input,
            std::mem::replace(&mut self.irq, Box::new(|| {})),
        );
        *self = Self::new(irq);
        self.input = input;
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(first) = data.first_mut() {
            *first = self.reg(offset);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if let Some(&v) = data.first() {
            self.set_reg(offset, v);
        }
    }
}

/// The PL061 line platvmm's power button is wired to (QEMU's virt board uses the same).
pub const POWER_LINE: u8 = 3;
/// `linux,code` of the power button: KEY_POWER.
pub const KEY_POWER: u32 = 116;
/// The rate of the power button PL061's `apb_pclk` fixed clock (the AMBA bus only enables it).
const APB_PCLK_HZ: u32 = 24_000_000;

/// `/clock-gpio-apb-pclk` (fixed clock, phandle `clock`), `/gpio@BASE` and `/gpio-keys-power/key-power`
/// (the input device `power-button`) for a PL061 at `base` with `spi` and phandle `gpio`,
/// named as their bindings want.
pub fn power_button_nodes(base: u64, spi: u32, clock: u32, gpio: u32) -> Vec<GuestNode> {
    let mut reg = Vec::new();
    for x in [base, Pl061::SIZE] {
        reg.extend_from_slice(&x.to_be_bytes());
    }
    let clk = GuestNode::with_props(
        "clock-gpio-apb-pclk",
        &[
            ("compatible", b"fixed-clock\0"),
            ("#clock-cells", &cells_prop(&[0])),
            ("clock-frequency", &cells_prop(&[APB_PCLK_HZ])),
            ("clock-output-names", b"gpio_apb_pclk\0"),
            ("phandle", &cells_prop(&[clock])),
        ],
    );
    let pl061 = GuestNode::with_props(
        &format!("gpio@{base:x}"),
        &[
            ("compatible", b"arm,pl061\0arm,primecell\0"),
            ("reg", &reg),
            ("interrupts", &cells_prop(&dt::spi_specifier(spi, false))),
            ("gpio-controller", b""),
            ("#gpio-cells", &cells_prop(&[2])),
            ("interrupt-controller", b""),
            ("#interrupt-cells", &cells_prop(&[2])),
            ("clocks", &cells_prop(&[clock])),
            ("clock-names", b"apb_pclk\0"),
            ("phandle", &cells_prop(&[gpio])),
        ],
    );
    // Named apart from a gpio-keys node an overlay may add; its label names the input device.
    let mut keys = GuestNode::with_props(
        "gpio-keys-power",
        &[("compatible", b"gpio-keys\0"), ("label", b"power-button\0")],
    );
    keys.children.push(GuestNode::with_props(
        "key-power",
        &[
            ("label", b"Power Button\0"),
            ("linux,code", &cells_prop(&[KEY_POWER])),
            ("gpios", &cells_prop(&[gpio, u32::from(POWER_LINE), 0])),
        ],
    ));
    vec![clk, pl061, keys]
}

#[cfg(test)]
mod tests;
