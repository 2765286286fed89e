//! The power domain protocol (0x11), v3.0. At probe Linux (drivers/firmware/arm_scmi/power.c)
//! asks version, attributes (and, 6.9 on, whether POWER_STATE_NOTIFY exists), then per domain
//! POWER_DOMAIN_ATTRIBUTES and POWER_DOMAIN_NAME_GET when the name is extended;
//! scmi_pm_domain.c reads each domain's state (POWER_STATE_GET) to register it on or off, and
//! genpd later turns domains on and off (POWER_STATE_SET). The guest's state is tracked and
//! reported back; the host's domain stays on.

use super::config::PowerDomainConfig;
use super::message::{
    entity, entity_mut, is_long_name, name_field, words, Answer, Out, Status, LONG_NAME, SHORT_NAME,
};
use super::{bump, Context, Protocol};

const POWER_DOMAIN_ATTRIBUTES: u8 = 0x3;
const POWER_STATE_SET: u8 = 0x4;
const POWER_STATE_GET: u8 = 0x5;
/// POWER_STATE_NOTIFY (0x6) and POWER_STATE_CHANGE_REQUESTED_NOTIFY (0x7) are not
/// implemented.
const POWER_DOMAIN_NAME_GET: u8 = 0x8;

/// POWER_DOMAIN_ATTRIBUTES flags: synchronous state changes (bit 29), extended name (bit 27);
/// no notifications (31, 28), no asynchronous changes (30).
const ATTR_SYNC: u32 = 1 << 29;
const ATTR_EXTENDED_NAME: u32 = 1 << 27;

/// POWER_STATE_SET flags: asynchronous (bit 0); bits 31:1 are reserved.
const SET_ASYNC: u32 = 1 << 0;

/// The architectural power states: on (context preserved, state 0) and off (bit 30, context
/// lost, state 0). Other states are implementation-defined; none is served.
pub const POWER_ON: u32 = 0;
pub const POWER_OFF: u32 = 1 << 30;

/// One power domain as the guest sees it.
struct Domain {
    name: String,
    state: u32,
}

/// The power domain protocol's state: the guest's domains.
pub(crate) struct PowerDomains {
    domains: Vec<Domain>,
}

impl PowerDomains {
    /// Every domain on (the host's are).
    pub fn new(config: Vec<PowerDomainConfig>) -> Self {
        let domains = config.into_iter().map(|d| Domain {
            name: d.name,
            state: POWER_ON,
        });
        Self {
            domains: domains.collect(),
        }
    }

    pub fn state(&self, id: u32) -> Option<u32> {
        entity(&self.domains, id).ok().map(|d| d.state)
    }

    fn attributes_of(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let domain = entity(&self.domains, id)?;
        let mut flags = ATTR_SYNC;
        if is_long_name(&domain.name) {
            flags |= ATTR_EXTENDED_NAME;
        }
        Out::new()
            .u32(flags)
            .bytes(&name_field::<SHORT_NAME>(&domain.name))
            .ok()
    }

    /// POWER_STATE_SET: on or off, synchronously; reserved flags or another state are
    /// INVALID_PARAMETERS, an asynchronous change NOT_SUPPORTED.
    fn state_set(&mut self, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        let [flags, id, state] = words::<3>(args)?;
        let domain = entity_mut(&mut self.domains, id)?;
        if flags & !SET_ASYNC != 0 || !matches!(state, POWER_ON | POWER_OFF) {
            return Err(Status::InvalidParameters);
        }
        if flags & SET_ASYNC != 0 {
            return Err(Status::NotSupported);
        }
        if domain.state != state {
            domain.state = state;
            bump(&ctx.counters.power_state_changes);
        }
        Out::new().ok()
    }

    fn state_get(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        Out::new().u32(entity(&self.domains, id)?.state).ok()
    }

    /// Flags (reserved, 0) and the whole name, for any domain.
    fn name_get(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let domain = entity(&self.domains, id)?;
        let name = name_field::<LONG_NAME>(&domain.name);
        Out::new().u32(0).bytes(&name).ok()
    }
}

impl Protocol for PowerDomains {
    const VERSION: u32 = 0x3_0000;

    /// Number of domains (bits 15:0), then no statistics area (address 0, length 0).
    fn attributes(&self) -> Vec<u8> {
        let num = self.domains.len() as u32;
        Out::new().u32(num).u64(0).u32(0).into_bytes()
    }

    fn implements(message: u8) -> bool {
        matches!(
            message,
            POWER_DOMAIN_ATTRIBUTES | POWER_STATE_SET | POWER_STATE_GET | POWER_DOMAIN_NAME_GET
        )
    }

    fn command(&mut self, message: u8, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        match message {
            POWER_DOMAIN_ATTRIBUTES => self.attributes_of(args),
            POWER_STATE_SET => self.state_set(args, ctx),
            POWER_STATE_GET => self.state_get(args),
            POWER_DOMAIN_NAME_GET => self.name_get(args),
            _ => Err(Status::NotSupported),
        }
    }
}
