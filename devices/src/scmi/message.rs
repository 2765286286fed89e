//! The SCMI message vocabulary: the header, the status codes, a request's arguments (a fixed
//! number of little-endian 32-bit words) and a reply's return values.

/// Header bits 7:0: the message within its protocol.
const MESSAGE_ID_MASK: u32 = 0xff;
/// Header bits 9:8: the message type.
const TYPE_SHIFT: u32 = 8;
const TYPE_MASK: u32 = 0x3;
/// Header bits 17:10: the protocol.
const PROTOCOL_SHIFT: u32 = 10;
const PROTOCOL_MASK: u32 = 0xff;
/// Header bits 27:18: the token the agent matches the reply with.
const TOKEN_SHIFT: u32 = 18;
const TOKEN_MASK: u32 = 0x3ff;

/// Message type of a command (an agent's request); 2 is a delayed response and 3 a
/// notification, both sent by a platform, never by an agent.
pub const TYPE_COMMAND: u8 = 0;

/// Bytes of a short name field (`uint8 name[16]`: at most 15 characters and a NUL).
pub const SHORT_NAME: usize = 16;
/// Bytes of an extended name field (`uint8 name[64]`, the `*_NAME_GET` messages).
pub const LONG_NAME: usize = 64;

/// A message header, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub message_id: u8,
    pub message_type: u8,
    pub protocol_id: u8,
    pub token: u16,
}

impl Header {
    /// The fields of a 32-bit header (bits 31:28 are reserved and ignored).
    pub fn decode(raw: u32) -> Self {
        Self {
            message_id: (raw & MESSAGE_ID_MASK) as u8,
            message_type: ((raw >> TYPE_SHIFT) & TYPE_MASK) as u8,
            protocol_id: ((raw >> PROTOCOL_SHIFT) & PROTOCOL_MASK) as u8,
            token: ((raw >> TOKEN_SHIFT) & TOKEN_MASK) as u16,
        }
    }

    /// The 32-bit header (fields wider than theirs are cut to their bits).
    pub fn encode(self) -> u32 {
        u32::from(self.message_id)
            | (u32::from(self.message_type) & TYPE_MASK) << TYPE_SHIFT
            | u32::from(self.protocol_id) << PROTOCOL_SHIFT
            | (u32::from(self.token) & TOKEN_MASK) << TOKEN_SHIFT
    }
}

/// An SCMI status code (the first return value of every reply).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
pub enum Status {
    Success = 0,
    NotSupported = -1,
    InvalidParameters = -2,
    Denied = -3,
    NotFound = -4,
    OutOfRange = -5,
    Busy = -6,
    CommsError = -7,
    GenericError = -8,
    HardwareError = -9,
    ProtocolError = -10,
}

impl Status {
    /// The code as the reply carries it.
    pub fn code(self) -> i32 {
        self as i32
    }
}

/// What a message handler answers: the return values after the status (SUCCESS), or the
/// status of a failure (whose reply has no other return value).
pub type Answer = Result<Vec<u8>, Status>;

/// A request's parameters as exactly `N` little-endian words. Any other size is a
/// PROTOCOL_ERROR, as SCP-firmware (Arm's reference platform) answers a payload whose size is
/// not its message's; Linux always sends the exact size.
pub fn words<const N: usize>(args: &[u8]) -> Result<[u32; N], Status> {
    if args.len() != 4 * N {
        return Err(Status::ProtocolError);
    }
    let mut out = [0u32; N];
    for (word, bytes) in out.iter_mut().zip(args.chunks_exact(4)) {
        let mut le = [0u8; 4];
        le.copy_from_slice(bytes);
        *word = u32::from_le_bytes(le);
    }
    Ok(out)
}

/// A reply's return values, built in order.
#[derive(Debug, Default)]
pub struct Out {
    bytes: Vec<u8>,
}

impl Out {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn u32(mut self, value: u32) -> Self {
        self.bytes.extend_from_slice(&value.to_le_bytes());
        self
    }

    /// A 64-bit value as SCMI spells it: low word, then high word.
    pub fn u64(self, value: u64) -> Self {
        self.u32(value as u32).u32((value >> 32) as u32)
    }

    pub fn bytes(mut self, bytes: &[u8]) -> Self {
        self.bytes.extend_from_slice(bytes);
        self
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// A SUCCESS answer with these return values.
    pub fn ok(self) -> Answer {
        Ok(self.bytes)
    }
}

/// `name` in a NUL-padded field of `N` bytes, cut to `N - 1` bytes so that a NUL always ends it
/// (configured names are printable ASCII: a cut never splits a character).
pub fn name_field<const N: usize>(name: &str) -> [u8; N] {
    let mut field = [0u8; N];
    let len = name.len().min(N.saturating_sub(1));
    if let (Some(dst), Some(src)) = (field.get_mut(..len), name.as_bytes().get(..len)) {
        dst.copy_from_slice(src);
    }
    field
}

/// Whether `name` needs the extended name message (it does not fit a short name field).
pub fn is_long_name(name: &str) -> bool {
    name.len() >= SHORT_NAME
}

/// The entity a request's identifier names, or NOT_FOUND (an identifier past those the guest
/// was given).
pub fn entity<T>(list: &[T], id: u32) -> Result<&T, Status> {
    usize::try_from(id)
        .ok()
        .and_then(|i| list.get(i))
        .ok_or(Status::NotFound)
}

/// [`entity`], mutable.
pub fn entity_mut<T>(list: &mut [T], id: u32) -> Result<&mut T, Status> {
    usize::try_from(id)
        .ok()
        .and_then(|i| list.get_mut(i))
        .ok_or(Status::NotFound)
}
