//! The guest's way to its SCMI platform: a mailbox doorbell and one shared-memory channel,
//! emulated in one MMIO window.
//!
//! The doorbell has the register interface of the BCM2835 VideoCore mailbox
//! (`brcm,bcm2835-mbox`, Linux's drivers/mailbox/bcm2835-mailbox.c) because that driver is
//! built into Debian's arm64 kernels (`CONFIG_BCM2835_MBOX=y`, 6.1 and 6.12), as are the
//! SCMI core, its mailbox transport and its clock, reset and power-domain drivers: a stock
//! guest needs no module, and no host kernel feature is involved (the SMC/HVC transport
//! needs KVM's SMCCC filter, Linux 6.4). The other mailboxes Debian builds in need clocks or
//! resets of their own, or firmware calls.
//!
//! Window layout (offsets from its base):
//!
//! ```text
//! 0x0000  doorbell registers (MAILBOX_SIZE)
//!         0x00 MAIL0_RD   read: pops the next reply word (0 when empty)
//!         0x18 MAIL0_STA  bit 30 EMPTY, bit 31 FULL, low byte the number of words queued
//!         0x1c MAIL0_CNF  bit 0: interrupt on reply (the guest sets it at channel startup)
//!         0x20 MAIL1_WRT  write: the doorbell (the agent has posted a message)
//!         0x38 MAIL1_STA  always EMPTY: a message is served before the write returns
//! 0x1000  the shared-memory channel (SHMEM_SIZE), laid out as [`super::shmem`] says
//! ```
//!
//! A doorbell serves the posted message at once ([`super::process`]); when the agent asked
//! for a completion interrupt, the message header is queued as the reply word and the
//! interrupt raised (an edge: the guest's handler drains the queue until EMPTY). Guest
//! accesses are bounds-checked: outside the registers and the channel, reads are 0 and
//! writes are dropped and counted; nothing the guest writes can stop the VM.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{bump, process, Outcome, ScmiBackend, Server};
use crate::bus::MmioDevice;

/// The doorbell registers' span (one page: the binding's `reg`).
pub const MAILBOX_SIZE: u64 = 0x1000;
/// Where the shared-memory channel starts in the window.
pub const SHMEM_OFFSET: u64 = MAILBOX_SIZE;
/// The shared-memory channel's size: Linux's mailbox transport posts messages of up to 128
/// bytes after the 0x1c-byte layout.
pub const SHMEM_SIZE: u64 = 0x100;
/// The page the channel is described in (`mmio-sram`).
pub const SRAM_SIZE: u64 = 0x1000;
/// The whole window.
pub const WINDOW_SIZE: u64 = MAILBOX_SIZE + SRAM_SIZE;

const MAIL0_RD: u64 = 0x00;
const MAIL0_STA: u64 = 0x18;
const MAIL0_CNF: u64 = 0x1c;
const MAIL1_WRT: u64 = 0x20;
/// The doorbell register's offset in the window: the SMC transport rings it for the guest
/// (a write of 1 when KVM forwards the guest's SMC), so both transports serve one way.
pub const DOORBELL: u64 = MAIL1_WRT;
const MAIL1_STA: u64 = 0x38;
const STA_FULL: u32 = 1 << 31;
const STA_EMPTY: u32 = 1 << 30;
const CNF_IRQ_ON_DATA: u32 = 1 << 0;
/// Reply words queued at most (the hardware's FIFO depth); one more drops the oldest.
const QUEUE_DEPTH: usize = 8;

/// How the mailbox interrupts the guest (an irqfd in the VM, a recorder in tests).
pub trait Interrupt: Send {
    fn raise(&self);
}

crate::counter_set! {
    /// What the guest did with the mailbox itself (the messages are [`super::Counters`]).
    pub struct MailboxCounters {
        /// Doorbells rung.
        pub doorbells,
        /// Doorbells with no message posted (the channel was free).
        pub spurious_doorbells,
        /// Interrupts raised for replies.
        pub interrupts,
        /// Guest accesses outside the registers and the channel, or of a size other than
        /// 1, 2, 4 or 8 bytes: dropped.
        pub bad_accesses,
        /// Reply words dropped because the guest did not read the queue.
        pub replies_dropped,
    }
}

/// The mailbox and channel of one guest's SCMI platform.
pub struct ScmiMailbox<B, I> {
    server: Server<B>,
    shmem: Vec<u8>,
    cnf: u32,
    replies: VecDeque<u32>,
    irq: I,
    counters: Arc<MailboxCounters>,
    /// Whether a refused message was logged: the first one is, the rest only counted.
    refusal_logged: bool,
}

impl<B: ScmiBackend + Send, I: Interrupt> ScmiMailbox<B, I> {
    /// A mailbox serving `server`, interrupting through `irq`; the channel starts free.
    pub fn new(server: Server<B>, irq: I) -> Self {
        Self {
            server,
            shmem: free_channel(),
            cnf: 0,
            replies: VecDeque::new(),
            irq,
            counters: Arc::default(),
            refusal_logged: false,
        }
    }

    pub fn counters(&self) -> Arc<MailboxCounters> {
        self.counters.clone()
    }

    pub fn server(&self) -> &Server<B> {
        &self.server
    }

    fn status(&self) -> u32 {
        let n = self.replies.len() as u32;
        match n {
            0 => STA_EMPTY,
            _ if self.replies.len() >= QUEUE_DEPTH => STA_FULL | n,
            _ => n,
        }
    }

    fn read_register(&mut self, offset: u64) -> u32 {
        match offset {
            MAIL0_RD => self.replies.pop_front().unwrap_or(0),
            MAIL0_STA => self.status(),
            MAIL0_CNF => self.cnf,
            MAIL1_STA => STA_EMPTY,
            _ => 0,
        }
    }

    fn write_register(&mut self, offset: u64, value: u32) {
        match offset {
            MAIL0_CNF => {
                self.cnf = value & CNF_IRQ_ON_DATA;
                // Replies waiting when the guest turns the interrupt on are signalled now.
                if !self.replies.is_empty() {
                    self.interrupt();
                }
            }
            MAIL1_WRT => self.doorbell(),
            _ => bump(&self.counters.bad_accesses),
        }
    }

    fn doorbell(&mut self) {
        bump(&self.counters.doorbells);
        let header = u32::from_le_bytes(
            self.shmem[super::MSG_HEADER..super::MSG_HEADER + 4]
                .try_into()
                .unwrap_or_default(),
        );
        let interrupt = match process(&mut self.shmem, &mut self.server) {
            Outcome::Idle => {
                bump(&self.counters.spurious_doorbells);
                return;
            }
            Outcome::Answered { interrupt, .. } => interrupt,
            Outcome::Refused { reason, interrupt } => {
                self.log_refusal(&reason);
                interrupt
            }
        };
        if interrupt {
            if self.replies.len() >= QUEUE_DEPTH {
                self.replies.pop_front();
                bump(&self.counters.replies_dropped);
            }
            self.replies.push_back(header);
            self.interrupt();
        }
    }

    fn log_refusal(&mut self, reason: &super::Refusal) {
        if !self.refusal_logged {
            self.refusal_logged = true;
            log::warn!("SCMI: refused a guest message: {reason}; later ones are only counted (--stats: refused=)");
        }
    }

    fn interrupt(&mut self) {
        if self.cnf & CNF_IRQ_ON_DATA != 0 {
            bump(&self.counters.interrupts);
            self.irq.raise();
        }
    }

    /// The channel's bytes at `offset` from its start, if the access lies inside it.
    fn channel(&mut self, offset: u64, len: usize) -> Option<&mut [u8]> {
        let at = usize::try_from(offset.checked_sub(SHMEM_OFFSET)?).ok()?;
        self.shmem.get_mut(at..at.checked_add(len)?)
    }
}

/// The shared memory of a channel nobody has posted in yet.
fn free_channel() -> Vec<u8> {
    let mut shmem = vec![0; SHMEM_SIZE as usize];
    shmem[super::CHANNEL_STATUS..super::CHANNEL_STATUS + 4]
        .copy_from_slice(&super::CHANNEL_FREE.to_le_bytes());
    shmem
}

fn sized(len: usize) -> bool {
    matches!(len, 1 | 2 | 4 | 8)
}

impl<B: ScmiBackend + Send, I: Interrupt> MmioDevice for ScmiMailbox<B, I> {
    /// A reboot in place: the channel free, no reply waiting, the doorbell's interrupt off,
    /// and the platform's state as at start ([`Server::reset`]).
    fn reset(&mut self) {
        self.server.reset();
        self.shmem = free_channel();
        self.cnf = 0;
        self.replies.clear();
        self.refusal_logged = false;
    }

    fn read(&mut self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if !sized(data.len()) {
            bump(&self.counters.bad_accesses);
        } else if offset < MAILBOX_SIZE {
            let v = self.read_register(offset).to_le_bytes();
            let n = data.len().min(4);
            data[..n].copy_from_slice(&v[..n]);
        } else if let Some(src) = self.channel(offset, data.len()) {
            data.copy_from_slice(src);
        } else {
            bump(&self.counters.bad_accesses);
        }
    }

    fn write(&mut self, offset: u64, data: &[u8]) {
        if !sized(data.len()) {
            bump(&self.counters.bad_accesses);
        } else if offset < MAILBOX_SIZE {
            let mut v = [0u8; 4];
            let n = data.len().min(4);
            v[..n].copy_from_slice(&data[..n]);
            self.write_register(offset, u32::from_le_bytes(v));
        } else if let Some(dst) = self.channel(offset, data.len()) {
            dst.copy_from_slice(data);
        } else {
            bump(&self.counters.bad_accesses);
        }
    }
}
