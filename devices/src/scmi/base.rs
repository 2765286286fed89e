//! The base protocol (0x10), v2.0: what an agent discovers first (drivers/firmware/arm_scmi/
//! base.c asks, in order: version, attributes, vendor, sub-vendor, implementation version, the
//! protocol list, then each agent's name from 0, the platform).

use super::message::{name_field, words, Answer, Out, Status, SHORT_NAME};
use super::{Context, Protocol, PROTOCOL_CLOCK, PROTOCOL_POWER, PROTOCOL_RESET};

const DISCOVER_VENDOR: u8 = 0x3;
const DISCOVER_SUB_VENDOR: u8 = 0x4;
const DISCOVER_IMPLEMENTATION_VERSION: u8 = 0x5;
const DISCOVER_LIST_PROTOCOLS: u8 = 0x6;
const DISCOVER_AGENT: u8 = 0x7;

/// The vendor, sub-vendor and implementation version Linux prints ("SCMI Protocol v2.0
/// 'platvmm:kvm' Firmware version 0x1").
pub const VENDOR: &str = "platvmm";
pub const SUB_VENDOR: &str = "kvm";
pub const IMPLEMENTATION_VERSION: u32 = 1;
/// Agent 0 is the platform itself; the guest is agent 1, the only one.
pub const PLATFORM_NAME: &str = "platvmm";
pub const AGENT_NAME: &str = "guest";
const GUEST_AGENT_ID: u32 = 1;
const NUM_AGENTS: u32 = 1;
/// DISCOVER_AGENT's identifier of the calling agent.
const CALLER: u32 = 0xffff_ffff;

/// The protocols the guest may use, besides base, in ascending order. Each is listed even
/// when it describes nothing, so that the guest's device tree alone decides which it probes.
pub const PROTOCOLS: [u8; 3] = [PROTOCOL_POWER, PROTOCOL_CLOCK, PROTOCOL_RESET];

/// The base protocol (stateless).
pub(crate) struct Base;

impl Base {
    pub fn new() -> Self {
        Self
    }
}

impl Protocol for Base {
    const VERSION: u32 = 0x2_0000;

    /// Number of protocols (bits 7:0) and of agents (bits 15:8).
    fn attributes(&self) -> Vec<u8> {
        let protocols = PROTOCOLS.len() as u32;
        Out::new().u32(protocols | NUM_AGENTS << 8).into_bytes()
    }

    fn implements(message: u8) -> bool {
        (DISCOVER_VENDOR..=DISCOVER_AGENT).contains(&message)
    }

    fn command(&mut self, message: u8, args: &[u8], _: &mut Context<'_>) -> Answer {
        match message {
            DISCOVER_VENDOR => name(args, VENDOR),
            DISCOVER_SUB_VENDOR => name(args, SUB_VENDOR),
            DISCOVER_IMPLEMENTATION_VERSION => {
                words::<0>(args)?;
                Out::new().u32(IMPLEMENTATION_VERSION).ok()
            }
            DISCOVER_LIST_PROTOCOLS => list_protocols(args),
            DISCOVER_AGENT => discover_agent(args),
            _ => Err(Status::NotSupported),
        }
    }
}

/// A vendor identifier: 16 bytes, NUL-terminated.
fn name(args: &[u8], value: &str) -> Answer {
    words::<0>(args)?;
    Out::new().bytes(&name_field::<SHORT_NAME>(value)).ok()
}

/// The protocols after the first `skip`: their number, then their identifiers one byte each,
/// padded to whole words. Skipping more than there are is INVALID_PARAMETERS.
fn list_protocols(args: &[u8]) -> Answer {
    let [skip] = words::<1>(args)?;
    let rest = usize::try_from(skip)
        .ok()
        .and_then(|s| PROTOCOLS.get(s..))
        .ok_or(Status::InvalidParameters)?;
    let mut list = rest.to_vec();
    list.resize(rest.len().div_ceil(4) * 4, 0);
    Out::new().u32(rest.len() as u32).bytes(&list).ok()
}

/// An agent's identifier and name: 0 the platform, 1 (or 0xffffffff, the caller) the guest.
fn discover_agent(args: &[u8]) -> Answer {
    let [id] = words::<1>(args)?;
    let (id, name) = match id {
        0 => (0, PLATFORM_NAME),
        GUEST_AGENT_ID | CALLER => (GUEST_AGENT_ID, AGENT_NAME),
        _ => return Err(Status::NotFound),
    };
    let name = name_field::<SHORT_NAME>(name);
    Out::new().u32(id).bytes(&name).ok()
}
