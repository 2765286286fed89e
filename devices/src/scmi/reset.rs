//! The reset domain protocol (0x16), v3.0. At probe Linux (drivers/firmware/arm_scmi/reset.c)
//! asks version, attributes, then per domain RESET_DOMAIN_ATTRIBUTES and
//! RESET_DOMAIN_NAME_GET when the name is extended; a driver's `reset_control_reset`,
//! `_assert` and `_deassert` send RESET with flags autonomous, explicit assert and 0, each
//! with the architectural cold reset.
//!
//! The host side: an autonomous reset, or an assert of a domain not yet asserted (the edge
//! into reset), resets what the domain's [`ResetAction`] names through the backend; a domain
//! without one is acknowledged only. A deassert only releases the tracked state: the device
//! was already reset when the domain went in.

use super::backend::ResetOutcome;
use super::config::{ResetAction, ResetDomainConfig};
use super::message::{
    entity, entity_mut, is_long_name, name_field, words, Answer, Out, Status, LONG_NAME, SHORT_NAME,
};
use super::{bump, Context, Protocol};
use crate::virtio::ratelimit::limited;

const RESET_DOMAIN_ATTRIBUTES: u8 = 0x3;
const RESET: u8 = 0x4;
/// RESET_NOTIFY (0x5) is not implemented.
const RESET_DOMAIN_NAME_GET: u8 = 0x6;

/// RESET_DOMAIN_ATTRIBUTES attributes: extended name (bit 29); no asynchronous reset (31), no
/// notifications (30).
const ATTR_EXTENDED_NAME: u32 = 1 << 29;
/// Reset latency: not reported.
const LATENCY_UNKNOWN: u32 = u32::MAX;

/// RESET flags: autonomous reset (bit 0), explicit assert (bit 1), asynchronous (bit 2); bits
/// 31:3 are reserved.
const AUTONOMOUS: u32 = 1 << 0;
const EXPLICIT_ASSERT: u32 = 1 << 1;
const ASYNC: u32 = 1 << 2;
const FLAGS: u32 = 0x7;
/// RESET reset_state: architectural (bit 31 clear) cold reset (id 0), the only one served.
const ARCH_COLD_RESET: u32 = 0;

/// One reset domain as the guest sees it.
struct Domain {
    name: String,
    action: Option<ResetAction>,
    asserted: bool,
}

/// The reset domain protocol's state: the guest's domains.
pub(crate) struct ResetDomains {
    domains: Vec<Domain>,
}

impl ResetDomains {
    /// Every domain deasserted (the host's devices are running).
    pub fn new(config: Vec<ResetDomainConfig>) -> Self {
        let domains = config.into_iter().map(|d| Domain {
            name: d.name,
            action: d.action,
            asserted: false,
        });
        Self {
            domains: domains.collect(),
        }
    }

    pub fn asserted(&self, id: u32) -> Option<bool> {
        entity(&self.domains, id).ok().map(|d| d.asserted)
    }

    fn attributes_of(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let domain = entity(&self.domains, id)?;
        let attributes = if is_long_name(&domain.name) {
            ATTR_EXTENDED_NAME
        } else {
            0
        };
        Out::new()
            .u32(attributes)
            .u32(LATENCY_UNKNOWN)
            .bytes(&name_field::<SHORT_NAME>(&domain.name))
            .ok()
    }

    /// RESET: checked (reserved flags, both kinds at once, another reset state:
    /// INVALID_PARAMETERS; asynchronous: NOT_SUPPORTED), then carried out.
    fn reset(&mut self, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        let [id, flags, state] = words::<3>(args)?;
        let domain = entity_mut(&mut self.domains, id)?;
        let both = AUTONOMOUS | EXPLICIT_ASSERT;
        if flags & !FLAGS != 0 || flags & both == both || state != ARCH_COLD_RESET {
            return Err(Status::InvalidParameters);
        }
        if flags & ASYNC != 0 {
            return Err(Status::NotSupported);
        }
        if flags & AUTONOMOUS != 0 {
            return reset_host(id, domain, ctx);
        }
        if flags & EXPLICIT_ASSERT == 0 {
            domain.asserted = false;
            return Out::new().ok();
        }
        if domain.asserted {
            bump(&ctx.counters.resets_acknowledged);
            return Out::new().ok();
        }
        // Asserted only once the host side went through: a failed assert can be retried.
        let answer = reset_host(id, domain, ctx)?;
        domain.asserted = true;
        Ok(answer)
    }

    /// Flags (reserved, 0) and the whole name, for any domain.
    fn name_get(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let domain = entity(&self.domains, id)?;
        let name = name_field::<LONG_NAME>(&domain.name);
        Out::new().u32(0).bytes(&name).ok()
    }
}

/// The host side of a reset of `domain` (identifier `id`), counted.
fn reset_host(id: u32, domain: &Domain, ctx: &mut Context<'_>) -> Answer {
    let Some(action) = domain.action else {
        bump(&ctx.counters.resets_acknowledged);
        return Out::new().ok();
    };
    match ctx.backend.reset(id, action) {
        Ok(ResetOutcome::Done) => bump(&ctx.counters.resets_done),
        Ok(ResetOutcome::AcknowledgedOnly) => bump(&ctx.counters.resets_acknowledged),
        Err(e) => {
            bump(&ctx.counters.backend_errors);
            limited!(warn, "SCMI reset domain {id} ({}): {e}", domain.name);
            return Err(Status::GenericError);
        }
    }
    Out::new().ok()
}

impl Protocol for ResetDomains {
    const VERSION: u32 = 0x3_0000;

    /// Number of domains (bits 15:0).
    fn attributes(&self) -> Vec<u8> {
        Out::new().u32(self.domains.len() as u32).into_bytes()
    }

    fn implements(message: u8) -> bool {
        matches!(
            message,
            RESET_DOMAIN_ATTRIBUTES | RESET | RESET_DOMAIN_NAME_GET
        )
    }

    fn command(&mut self, message: u8, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        match message {
            RESET_DOMAIN_ATTRIBUTES => self.attributes_of(args),
            RESET => self.reset(args, ctx),
            RESET_DOMAIN_NAME_GET => self.name_get(args),
            _ => Err(Status::NotSupported),
        }
    }
}
