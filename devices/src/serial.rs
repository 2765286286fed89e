//! The console: a 16550 UART (vm-superio) on the MMIO bus.
//!
//! Its interrupt is an eventfd registered as a KVM irqfd, so raising it never leaves the
//! kernel. Host input reaches it through [`SerialInput`], an event-manager subscriber that
//! reads the input fd only while the UART's receive FIFO has room, and resumes when the
//! guest drains it (vm-superio's `in_buffer_empty` event, signalled through an eventfd).

use std::io::{self, Read, Write};
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use event_manager::{EventOps, Events, MutEventSubscriber};
use log::warn;
use vm_superio::serial::SerialEvents;
use vm_superio::{Serial, Trigger};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use crate::bus::MmioDevice;

/// Size of the UART's MMIO range (the registers use 8 bytes; the DT node claims a page).
pub const SERIAL_MMIO_SIZE: u64 = 0x1000;
/// Number of 8-bit registers of a 16550.
const SERIAL_REGS: u64 = 8;
/// Interrupt Enable Register offset (the divisor latch high byte while DLAB is set).
const IER_OFFSET: u64 = 1;
/// Line Control Register offset.
const LCR_OFFSET: u64 = 3;
/// IER: transmitter holding register empty interrupt (ETBEI).
const IER_THR_EMPTY_BIT: u8 = 0b0000_0010;
/// LCR: divisor latch access bit; while set, offsets 0 and 1 are the divisor latch.
const LCR_DLAB_BIT: u8 = 0b1000_0000;

/// The UART interrupt line: an eventfd that KVM turns into an SPI edge (irqfd).
pub struct IrqLine(pub EventFd);

impl Trigger for IrqLine {
    type E = io::Error;
    fn trigger(&self) -> io::Result<()> {
        self.0.write(1)
    }
}

/// Signals the input path when the guest has emptied the receive FIFO.
pub struct InputRoom(pub EventFd);

impl SerialEvents for InputRoom {
    fn buffer_read(&self) {}
    fn out_byte(&self) {}
    fn tx_lost_byte(&self) {}
    fn in_buffer_empty(&self) {
        if let Err(e) = self.0.write(1) {
            warn!("serial: cannot signal input room: {e}");
        }
    }
}

type Uart = Serial<IrqLine, InputRoom, Box<dyn Write + Send>>;

/// The console UART as an MMIO device.
pub struct SerialConsole {
    uart: Uart,
    /// Shadow of the UART's IER, as the guest last wrote it.
    ier: u8,
    /// Shadow of the UART's LCR (for DLAB), as the guest last wrote it.
    lcr: u8,
}

impl SerialConsole {
    /// A UART raising `irq`, writing guest output to `out` and signalling `input_room` when
    /// its receive FIFO empties.
    pub fn new(irq: EventFd, input_room: EventFd, out: Box<dyn Write + Send>) -> Self {
        let uart = Serial::with_events(IrqLine(irq), InputRoom(input_room), out);
        let state = uart.state();
        Self {
            uart,
            ier: state.interrupt_enable,
            lcr: state.line_control,
        }
    }

    /// Whether the guest has enabled the transmit-empty interrupt (IER bit 1, ETBEI).
    ///
    /// While it has, its driver transmits from the interrupt handler, so buffered
    /// (coalesced) writes to the transmit register must be delivered promptly for the
    /// interrupt that asks for more to be raised.
    pub fn tx_interrupt_enabled(&self) -> bool {
        self.ier & IER_THR_EMPTY_BIT != 0
    }

    /// Mirrors a guest register write into the IER/LCR shadows, as vm-superio decodes it.
    fn shadow_write(&mut self, offset: u64, value: u8) {
        match offset {
            LCR_OFFSET => self.lcr = value,
            IER_OFFSET if self.lcr & LCR_DLAB_BIT == 0 => self.ier = value,
            _ => {}
        }
    }

    /// Free space in the receive FIFO.
    pub fn input_capacity(&self) -> usize {
        self.uart.fifo_capacity()
    }

    /// Queues host input for the guest; returns how many bytes fit.
    pub fn enqueue_input(&mut self, bytes: &[u8]) -> usize {
        match self.uart.enqueue_raw_bytes(bytes) {
            Ok(n) => n,
            Err(vm_superio::serial::Error::FullFifo) => 0,
            Err(e) => {
                warn!("serial: input dropped: {e:?}");
                0
            }
        }
    }
}

impl MmioDevice for SerialConsole {
    fn read(&mut self, offset: u64, data: &mut [u8]) {
        // The DT node declares reg-shift 0 / reg-io-width 1: anything else is a guest bug.
        if data.len() == 1 && offset < SERIAL_REGS {
            data[0] = self.uart.read(offset as u8);
        } else {
            data.fill(0);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.len() == 1 && offset < SERIAL_REGS {
            // vm-superio updates its registers even when raising the interrupt fails.
            self.shadow_write(offset, data[0]);
            if let Err(e) = self.uart.write(offset as u8, data[0]) {
                warn!("serial: write at {offset:#x} failed: {e:?}");
            }
        }
    }
}

/// Feeds a host input fd (usually stdin) into the console UART.
pub struct SerialInput<R: Read + AsRawFd> {
    input: R,
    room: EventFd,
    uart: Arc<Mutex<SerialConsole>>,
    /// Whether `input` is registered with the event loop (it is not while the FIFO is full).
    reading: bool,
    /// Input read ahead of the FIFO's room.
    pending: Vec<u8>,
    eof: bool,
}

impl<R: Read + AsRawFd> SerialInput<R> {
    /// Reads `input`, delivers to `uart`; `room` must be the eventfd given to the UART.
    pub fn new(input: R, room: EventFd, uart: Arc<Mutex<SerialConsole>>) -> Self {
        Self {
            input,
            room,
            uart,
            reading: false,
            pending: Vec::new(),
            eof: false,
        }
    }

    fn flush_pending(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let n = lock(&self.uart).enqueue_input(&self.pending);
        self.pending.drain(..n);
    }

    fn set_reading(&mut self, ops: &mut EventOps, on: bool) {
        if on == self.reading || (on && self.eof) {
            return;
        }
        let ev = Events::new(&self.input, EventSet::IN);
        let r = if on { ops.add(ev) } else { ops.remove(ev) };
        match r {
            Ok(()) => self.reading = on,
            // A regular file or /dev/null cannot be polled: the guest simply gets no input.
            Err(e) if on => {
                log::info!("serial: console input disabled (input cannot be polled: {e:?})");
                self.eof = true;
            }
            Err(e) => warn!("serial: cannot stop reading input: {e:?}"),
        }
    }
}

fn lock(uart: &Mutex<SerialConsole>) -> std::sync::MutexGuard<'_, SerialConsole> {
    uart.lock().unwrap_or_else(|p| p.into_inner())
}

impl<R: Read + AsRawFd> MutEventSubscriber for SerialInput<R> {
    fn process(&mut self, events: Events, ops: &mut EventOps) {
        if events.fd() == self.room.as_raw_fd() {
            let _ = self.room.read();
            self.flush_pending();
        } else if events.fd() == self.input.as_raw_fd() {
            let mut buf = [0u8; 64];
            match self.input.read(&mut buf) {
                Ok(0) => {
                    self.eof = true;
                    self.set_reading(ops, false);
                }
                Ok(n) => {
                    self.pending.extend_from_slice(&buf[..n]);
                    self.flush_pending();
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    warn!("serial: input read failed, closing input: {e}");
                    self.eof = true;
                    self.set_reading(ops, false);
                }
            }
            if events.event_set().contains(EventSet::HANG_UP) && !self.eof {
                self.eof = true;
                self.set_reading(ops, false);
            }
        }
        // Read more only while everything read so far has been delivered.
        let want = self.pending.is_empty();
        self.set_reading(ops, want);
    }

    fn init(&mut self, ops: &mut EventOps) {
        if let Err(e) = ops.add(Events::new(&self.room, EventSet::IN)) {
            warn!("serial: cannot watch input room: {e:?}");
        }
        self.set_reading(ops, true);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    /// A writer that forwards every byte to a channel so the test sees output immediately.
    struct ChanWriter(mpsc::Sender<u8>);
    impl Write for ChanWriter {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            for b in buf {
                let _ = self.0.send(*b);
            }
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn console() -> (SerialConsole, EventFd, EventFd, mpsc::Receiver<u8>) {
        let irq = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let room = EventFd::new(libc::EFD_NONBLOCK).unwrap();
        let (tx, rx) = mpsc::channel();
        let c = SerialConsole::new(
            irq.try_clone().unwrap(),
            room.try_clone().unwrap(),
            Box::new(ChanWriter(tx)),
        );
        (c, irq, room, rx)
    }

    #[test]
    fn output_reaches_writer_and_raises_irq_when_enabled() {
        let (mut c, irq, _room, rx) = console();
        c.write(1, &[0x02]); // IER: THR empty interrupt
        c.write(0, b"h");
        c.write(0, b"i");
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), b"hi");
        assert!(irq.read().unwrap() >= 1);
    }

    #[test]
    fn input_is_readable_and_wide_access_ignored() {
        let (mut c, _irq, room, _rx) = console();
        assert_eq!(c.enqueue_input(b"ab"), 2);
        let mut d = [0u8; 1];
        c.read(5, &mut d); // LSR
        assert_eq!(d[0] & 1, 1, "data ready");
        c.read(0, &mut d);
        assert_eq!(d[0], b'a');
        c.read(0, &mut d);
        assert_eq!(d[0], b'b');
        assert!(room.read().is_ok(), "FIFO drained → room signalled");
        let mut wide = [0xffu8; 4];
        c.read(0, &mut wide);
        assert_eq!(wide, [0; 4]);
    }

    /// The shadowed IER agrees with the one vm-superio keeps.
    fn assert_ier_in_sync(c: &SerialConsole) {
        let ier = c.uart.state().interrupt_enable;
        assert_eq!(c.tx_interrupt_enabled(), ier & IER_THR_EMPTY_BIT != 0);
    }

    #[test]
    fn tx_interrupt_follows_etbei() {
        let (mut c, _irq, _room, _rx) = console();
        assert!(!c.tx_interrupt_enabled(), "reset value: all interrupts off");
        c.write(1, &[0x02]);
        assert!(c.tx_interrupt_enabled());
        assert_ier_in_sync(&c);
        c.write(1, &[0x01]); // RX interrupt only
        assert!(!c.tx_interrupt_enabled());
        assert_ier_in_sync(&c);
        c.write(1, &[0x0f]);
        assert!(c.tx_interrupt_enabled());
        c.write(1, &[0x00]);
        assert!(!c.tx_interrupt_enabled());
        assert_ier_in_sync(&c);
        // Wide or out-of-range accesses are ignored by the UART, and by the shadow.
        c.write(1, &[0x02, 0x00]);
        c.write(SERIAL_REGS + 1, &[0x02]);
        assert!(!c.tx_interrupt_enabled());
        assert_ier_in_sync(&c);
    }

    #[test]
    fn divisor_latch_writes_are_not_ier() {
        let (mut c, _irq, _room, rx) = console();
        c.write(1, &[0x02]);
        c.write(3, &[0x83]); // DLAB on, 8N1
        c.write(0, &[0x01]); // divisor low: not output
        c.write(1, &[0x00]); // divisor high: not IER
        assert!(c.tx_interrupt_enabled(), "ETBEI kept across divisor writes");
        assert_ier_in_sync(&c);
        c.write(1, &[0x02]);
        c.write(3, &[0x03]); // DLAB off
        c.write(1, &[0x00]);
        assert!(!c.tx_interrupt_enabled());
        c.write(3, &[0x80]);
        c.write(1, &[0x02]); // divisor high again: ETBEI stays off
        assert!(!c.tx_interrupt_enabled());
        assert_ier_in_sync(&c);
        let mut d = [0u8; 1];
        c.read(1, &mut d);
        assert_eq!(
            d[0], 0x02,
            "offset 1 reads the divisor latch while DLAB is set"
        );
        c.write(3, &[0x03]);
        c.read(1, &mut d);
        assert_eq!(d[0], 0x00, "and IER once DLAB is clear");
        assert_eq!(rx.try_iter().count(), 0, "divisor writes produce no output");
    }

    #[test]
    fn full_fifo_takes_what_fits() {
        let (mut c, _irq, _room, _rx) = console();
        let cap = c.input_capacity();
        let big = vec![b'x'; cap + 10];
        assert_eq!(c.enqueue_input(&big), cap);
        assert_eq!(c.enqueue_input(b"y"), 0);
    }
}
