//! The shared-memory transport (SMT) of one A2P channel, laid out as Linux's
//! drivers/firmware/arm_scmi/shmem.c writes it, every field little-endian:
//!
//! ```text
//! 0x00  reserved
//! 0x04  channel_status   bit 0 CHANNEL_FREE (the platform is done), bit 1 CHANNEL_ERROR
//! 0x08  reserved (2 words)
//! 0x10  flags            bit 0 INTR_ENABLED (the agent wants a completion interrupt)
//! 0x14  length           4 (the header) + payload bytes
//! 0x18  msg_header
//! 0x1c  msg_payload      request parameters; reply: status, then return values
//! ```
//!
//! The agent clears CHANNEL_FREE, writes flags, length, header and payload, then rings the
//! doorbell; the platform writes its reply in place (header echoed, so the agent matches its
//! token), updates length and sets CHANNEL_FREE last.

use super::message::Status;
use super::{bump, ScmiBackend, Server};

pub const CHANNEL_STATUS: usize = 0x04;
pub const FLAGS: usize = 0x10;
pub const LENGTH: usize = 0x14;
pub const MSG_HEADER: usize = 0x18;
pub const MSG_PAYLOAD: usize = 0x1c;
pub const CHANNEL_FREE: u32 = 1 << 0;
pub const CHANNEL_ERROR: u32 = 1 << 1;
pub const INTR_ENABLED: u32 = 1 << 0;
/// The smallest area served: the layout up to the payload, and room for a reply's status.
pub const MIN_AREA: usize = MSG_PAYLOAD + 4;
/// The length field counts the header.
const HEADER_BYTES: u32 = 4;

/// What [`process`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The channel was free: nothing was posted (a spurious doorbell). Nothing was touched:
    /// the channel is the agent's, which may be writing its next message into it.
    Idle,
    /// The message was answered (its reply in place, CHANNEL_FREE set).
    Answered {
        status: Status,
        /// Whether the agent asked for a completion interrupt.
        interrupt: bool,
    },
    /// The message was refused: the area was left as it was but for channel_status, set to
    /// CHANNEL_ERROR | CHANNEL_FREE, except for an area too small for the layout, of which
    /// nothing was touched.
    Refused {
        reason: Refusal,
        /// Whether the agent asked for a completion interrupt (never for an area too small).
        interrupt: bool,
    },
}

/// Why a posted message was not answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the SCMI shared-memory area is {size} bytes; a channel needs at least {MIN_AREA}")]
    AreaTooSmall { size: usize },
    #[error("the guest posted an SCMI message of length {length}, shorter than its header (4)")]
    TooShort { length: u32 },
    #[error(
        "the guest posted an SCMI message of length {length}; the shared-memory area holds \
         {room} bytes from its header on"
    )]
    TooLong { length: u32, room: usize },
}

/// Serves the message posted in `shmem` (one channel's whole area): reads it (its length
/// checked against the area), has `server` answer it, writes the reply and frees the
/// channel. A reply too large for the area is replaced by COMMS_ERROR alone (an area of
/// [`MIN_AREA`] bytes always holds that).
pub fn process<B: ScmiBackend>(shmem: &mut [u8], server: &mut Server<B>) -> Outcome {
    if shmem.len() < MIN_AREA {
        bump(&server.counters.refused);
        let reason = Refusal::AreaTooSmall { size: shmem.len() };
        return Outcome::Refused {
            reason,
            interrupt: false,
        };
    }
    if read_u32(shmem, CHANNEL_STATUS) & CHANNEL_FREE != 0 {
        return Outcome::Idle;
    }
    let interrupt = read_u32(shmem, FLAGS) & INTR_ENABLED != 0;
    let end = match message_end(read_u32(shmem, LENGTH), shmem.len()) {
        Ok(end) => end,
        Err(reason) => {
            bump(&server.counters.refused);
            write_u32(shmem, CHANNEL_STATUS, CHANNEL_ERROR | CHANNEL_FREE);
            return Outcome::Refused { reason, interrupt };
        }
    };
    let header = read_u32(shmem, MSG_HEADER);
    let reply = server.handle(header, shmem.get(MSG_PAYLOAD..end).unwrap_or_default());
    let status = if reply.payload.len() + 4 > shmem.len() - MSG_PAYLOAD {
        if reply.status == Status::Success {
            bump(&server.counters.error_replies);
        }
        write_reply(shmem, header, Status::CommsError, &[]);
        Status::CommsError
    } else {
        write_reply(shmem, header, reply.status, &reply.payload);
        reply.status
    };
    write_u32(shmem, CHANNEL_STATUS, CHANNEL_FREE);
    Outcome::Answered { status, interrupt }
}

/// Where the message of this `length` ends in an area of `size` bytes, if it is at least its
/// header and fits.
fn message_end(length: u32, size: usize) -> Result<usize, Refusal> {
    if length < HEADER_BYTES {
        return Err(Refusal::TooShort { length });
    }
    let room = size.saturating_sub(MSG_HEADER);
    match usize::try_from(length) {
        Ok(n) if n <= room => Ok(MSG_HEADER + n),
        _ => Err(Refusal::TooLong { length, room }),
    }
}

/// The reply in place: return values, status, header, then length (the caller frees the
/// channel last). The caller has checked that it fits.
fn write_reply(shmem: &mut [u8], header: u32, status: Status, payload: &[u8]) {
    let at = MSG_PAYLOAD + 4;
    if let Some(dst) = shmem.get_mut(at..at + payload.len()) {
        dst.copy_from_slice(payload);
    }
    write_u32(shmem, MSG_PAYLOAD, status.code() as u32);
    write_u32(shmem, MSG_HEADER, header);
    let length = HEADER_BYTES as usize + 4 + payload.len();
    write_u32(shmem, LENGTH, u32::try_from(length).unwrap_or(u32::MAX));
}

/// The little-endian word at `at` (0 past the end).
fn read_u32(area: &[u8], at: usize) -> u32 {
    area.get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map_or(0, u32::from_le_bytes)
}

/// Writes a little-endian word at `at` (nothing past the end).
fn write_u32(area: &mut [u8], at: usize, value: u32) {
    if let Some(dst) = area.get_mut(at..at + 4) {
        dst.copy_from_slice(&value.to_le_bytes());
    }
}
