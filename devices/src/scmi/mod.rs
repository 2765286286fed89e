//! An Arm SCMI platform (the server side of the System Control and Management Interface,
//! DEN0056) for one guest agent: the guest's clocks, reset domains and power domains, served
//! by platvmm instead of firmware. [`process`] serves one message posted in a shared-memory
//! channel, [`Server::handle`] one message; [`mailbox`] is the transport the guest reaches
//! them by (a doorbell and the channel in one MMIO window). No VM wiring here.
//!
//! Protocols and versions. Each is the version of SCMI v3.1, whose messages both Linux 6.1
//! and 6.12 handle (drivers/firmware/arm_scmi/{base,clock,reset,power}.c): 6.1 reads every
//! v3.1 field and extended name, and 6.12 supports these versions or newer ones (clock 3.0),
//! so it neither warns nor negotiates.
//! - base (0x10), v2.0: discovery of vendor, implementation, protocols and agents
//!   (NOTIFY_ERRORS not supported);
//! - power domain (0x11), v3.0: the guest's state tracked per domain, the host's left on;
//! - clock (0x14), v2.0, not 3.0: clock v3.0 (SCMI v3.2) changes CLOCK_CONFIG_SET's layout
//!   (12 bytes, a 2-bit state) and adds CONFIG_GET, parents and permissions, which 6.1 does
//!   not know; with v2.0 both kernels send the 8-byte CONFIG_SET and read the enabled bit
//!   from CLOCK_ATTRIBUTES;
//! - reset domain (0x16), v3.0.
//!
//! Names of up to 15 bytes fit the short name fields; longer ones (up to 63) are flagged as
//! extended and served by the protocol's `*_NAME_GET` message. Notifications, asynchronous
//! requests and every other protocol or message are NOT_SUPPORTED; identifiers past those the
//! guest was given are NOT_FOUND; a payload of the wrong size is a PROTOCOL_ERROR.
//!
//! Clock rates. A clock that is not settable is described as one discrete rate, the host's.
//! Linux's clk-scmi makes the described rates the clock's rate range, and its clk core (6.0
//! on, `clk_core_determine_round_nolock`) clamps every request into it: a guest's
//! `clk_set_rate` arrives as a RATE_SET of the host rate, which succeeds (nothing changes). A
//! RATE_SET of another rate (a guest without the clamp) is DENIED, and that cannot fail a
//! consumer either: the clk core ignores what a provider's `set_rate` returns
//! (drivers/clk/clk.c, `clk_change_rate`) and reads the rate back with `recalc_rate`
//! (CLOCK_RATE_GET), so `clk_set_rate` returns 0 and the guest reads the real rate. A settable
//! clock is described as the linear range 1 Hz..=i64::MAX Hz in 1 Hz steps instead (one rate
//! would have the clk core clamp every request to it: the option could never act), and the
//! rate changes it is asked go to the [`ScmiBackend`].

mod backend;
mod base;
mod clock;
mod config;
pub mod mailbox;
mod message;
mod power;
mod reset;
mod shmem;
pub mod vfio;

#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

pub use backend::{BackendError, ResetOutcome, ScmiBackend};
pub use config::{
    ClockConfig, ConfigError, EntityKind, PowerDomainConfig, ResetAction, ResetDomainConfig,
    ScmiConfig, MAX_ENTITIES, MAX_NAME,
};
pub use message::{Header, Status, TYPE_COMMAND};
pub use shmem::{
    process, Outcome, Refusal, CHANNEL_ERROR, CHANNEL_FREE, CHANNEL_STATUS, FLAGS, INTR_ENABLED,
    LENGTH, MIN_AREA, MSG_HEADER, MSG_PAYLOAD,
};

use message::{words, Answer, Out};

/// Protocol identifiers.
pub const PROTOCOL_BASE: u8 = 0x10;
pub const PROTOCOL_POWER: u8 = 0x11;
pub const PROTOCOL_CLOCK: u8 = 0x14;
pub const PROTOCOL_RESET: u8 = 0x16;

/// Messages every protocol implements.
pub const PROTOCOL_VERSION: u8 = 0x0;
pub const PROTOCOL_ATTRIBUTES: u8 = 0x1;
pub const PROTOCOL_MESSAGE_ATTRIBUTES: u8 = 0x2;

crate::counter_set! {
    /// What the guest asked of its SCMI platform.
    pub struct Counters {
        /// Messages answered, by protocol (a message of another protocol is NOT_SUPPORTED).
        pub base_messages,
        pub power_messages,
        pub clock_messages,
        pub reset_messages,
        pub unknown_protocol_messages,
        /// Messages refused by the transport (an area too small, a length out of bounds):
        /// never answered.
        pub refused,
        /// Messages answered with a status other than SUCCESS.
        pub error_replies,
        /// CLOCK_CONFIG_SET requests (never forwarded to the host).
        pub clock_enables,
        pub clock_disables,
        /// Rate changes of settable clocks done by the backend.
        pub clock_rate_sets,
        /// Rate changes of other clocks, DENIED.
        pub clock_rate_sets_denied,
        /// Resets the backend carried out.
        pub resets_done,
        /// Resets acknowledged without touching the host (no action, or none possible).
        pub resets_acknowledged,
        /// POWER_STATE_SET requests that changed a domain's tracked state.
        pub power_state_changes,
        /// Side effects that failed (each logged, rate-limited).
        pub backend_errors,
    }
}

/// Bumps a counter.
fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

/// What a protocol's own commands may use besides its state.
pub(crate) struct Context<'a> {
    pub backend: &'a mut dyn ScmiBackend,
    pub counters: &'a Counters,
}

/// One protocol: its version, its attributes and its own commands (message 3 and above).
pub(crate) trait Protocol {
    const VERSION: u32;
    /// PROTOCOL_ATTRIBUTES's return values.
    fn attributes(&self) -> Vec<u8>;
    /// Whether command `message` (3 and above) is implemented.
    fn implements(message: u8) -> bool;
    /// An implemented command.
    fn command(&mut self, message: u8, args: &[u8], ctx: &mut Context<'_>) -> Answer;
}

/// A message of protocol `P`: the three messages every protocol has, then its own commands.
fn serve<P: Protocol>(p: &mut P, message: u8, args: &[u8], ctx: &mut Context<'_>) -> Answer {
    match message {
        PROTOCOL_VERSION => {
            words::<0>(args)?;
            Out::new().u32(P::VERSION).ok()
        }
        PROTOCOL_ATTRIBUTES => {
            words::<0>(args)?;
            Ok(p.attributes())
        }
        PROTOCOL_MESSAGE_ATTRIBUTES => {
            let [asked] = words::<1>(args)?;
            let known = u8::try_from(asked)
                .is_ok_and(|m| m <= PROTOCOL_MESSAGE_ATTRIBUTES || P::implements(m));
            // No message has attributes here (no fast channels); one not implemented is
            // NOT_FOUND, which is how Linux learns which notifications exist.
            if known {
                Out::new().u32(0).ok()
            } else {
                Err(Status::NotFound)
            }
        }
        m if P::implements(m) => p.command(m, args, ctx),
        _ => Err(Status::NotSupported),
    }
}

/// A message's reply: its status, then (SUCCESS only) its return values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: Status,
    pub payload: Vec<u8>,
}

/// The SCMI platform of one guest agent.
pub struct Server<B> {
    /// What it was built from: a reboot in place starts again from it.
    config: ScmiConfig,
    base: base::Base,
    power: power::PowerDomains,
    clocks: clock::Clocks,
    resets: reset::ResetDomains,
    backend: B,
    counters: Arc<Counters>,
}

impl<B: ScmiBackend> Server<B> {
    /// A platform serving `config` (checked: see [`ScmiConfig::validate`]), its side effects
    /// carried out by `backend`. Every clock starts enabled at its host rate, every power
    /// domain on, every reset domain deasserted: the state the host left them in.
    pub fn new(config: ScmiConfig, backend: B) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            base: base::Base::new(),
            power: power::PowerDomains::new(config.power_domains.clone()),
            clocks: clock::Clocks::new(config.clocks.clone()),
            resets: reset::ResetDomains::new(config.reset_domains.clone()),
            config,
            backend,
            counters: Arc::default(),
        })
    }

    /// A reboot in place: the platform as a new guest finds it, every clock enabled at its
    /// host rate, every power domain on, every reset domain deasserted. A settable clock the
    /// old guest changed is set back to its host rate through the backend (a failure is
    /// logged; the guest then reads the rate the backend reports). The counters go on.
    pub fn reset(&mut self) {
        for (id, c) in self.config.clocks.iter().enumerate() {
            let id = id as u32;
            if !c.settable || self.clocks.rate(id) == Some(c.rate_hz) {
                continue;
            }
            if let Err(e) = self.backend.set_clock_rate(id, c.rate_hz) {
                log::warn!(
                    "SCMI: cannot set clock {} back to {} Hz: {e}",
                    c.name,
                    c.rate_hz
                );
            }
        }
        self.base = base::Base::new();
        self.power = power::PowerDomains::new(self.config.power_domains.clone());
        self.clocks = clock::Clocks::new(self.config.clocks.clone());
        self.resets = reset::ResetDomains::new(self.config.reset_domains.clone());
    }

    /// The counters, to snapshot while the VM runs.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    pub fn backend(&self) -> &B {
        &self.backend
    }

    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }

    /// Answers one message: its 32-bit header and its parameters (the payload after the
    /// header). A message that is not a command (type 0) is NOT_SUPPORTED.
    pub fn handle(&mut self, header: u32, args: &[u8]) -> Reply {
        let h = Header::decode(header);
        let c = &self.counters;
        bump(match h.protocol_id {
            PROTOCOL_BASE => &c.base_messages,
            PROTOCOL_POWER => &c.power_messages,
            PROTOCOL_CLOCK => &c.clock_messages,
            PROTOCOL_RESET => &c.reset_messages,
            _ => &c.unknown_protocol_messages,
        });
        let mut ctx = Context {
            backend: &mut self.backend,
            counters: &self.counters,
        };
        let (m, ctx) = (h.message_id, &mut ctx);
        let answer = match h.protocol_id {
            _ if h.message_type != TYPE_COMMAND => Err(Status::NotSupported),
            PROTOCOL_BASE => serve(&mut self.base, m, args, ctx),
            PROTOCOL_POWER => serve(&mut self.power, m, args, ctx),
            PROTOCOL_CLOCK => serve(&mut self.clocks, m, args, ctx),
            PROTOCOL_RESET => serve(&mut self.resets, m, args, ctx),
            _ => Err(Status::NotSupported),
        };
        match answer {
            Ok(payload) => Reply {
                status: Status::Success,
                payload,
            },
            Err(status) => {
                bump(&self.counters.error_replies);
                Reply {
                    status,
                    payload: Vec::new(),
                }
            }
        }
    }

    /// Whether the guest has clock `id` enabled (None: no such clock).
    pub fn clock_enabled(&self, id: u32) -> Option<bool> {
        self.clocks.enabled(id)
    }

    /// The rate the guest reads from clock `id`.
    pub fn clock_rate(&self, id: u32) -> Option<u64> {
        self.clocks.rate(id)
    }

    /// Whether the guest holds reset domain `id` asserted.
    pub fn reset_asserted(&self, id: u32) -> Option<bool> {
        self.resets.asserted(id)
    }

    /// The power state the guest last set on domain `id` ([`POWER_ON`] or [`POWER_OFF`]).
    pub fn power_state(&self, id: u32) -> Option<u32> {
        self.power.state(id)
    }
}

pub use power::{POWER_OFF, POWER_ON};
