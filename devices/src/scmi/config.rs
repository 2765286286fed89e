//! What the guest is given: its clocks, reset domains and power domains, in the order of their
//! SCMI identifiers (an entity's identifier is its index in its list).

use std::fmt;

use super::message::LONG_NAME;

/// The longest name: an extended name field less its terminating NUL.
pub const MAX_NAME: usize = LONG_NAME - 1;
/// Most entities of one kind: PROTOCOL_ATTRIBUTES counts them in 16 bits.
pub const MAX_ENTITIES: usize = u16::MAX as usize;

/// The guest's SCMI platform: what each protocol describes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScmiConfig {
    pub clocks: Vec<ClockConfig>,
    pub reset_domains: Vec<ResetDomainConfig>,
    pub power_domains: Vec<PowerDomainConfig>,
}

/// A clock: the host clock's rate, read once; the guest's enable and disable requests are
/// counted, never forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClockConfig {
    pub name: String,
    pub rate_hz: u64,
    /// Whether a rate change the guest asks for is allowed (handed to
    /// [`ScmiBackend::set_clock_rate`](super::ScmiBackend::set_clock_rate), whose answer the
    /// guest then reads back). Otherwise a change is DENIED and the guest reads the host rate.
    pub settable: bool,
}

/// A reset domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResetDomainConfig {
    pub name: String,
    /// What a reset of this domain does on the host; none: it is acknowledged only.
    pub action: Option<ResetAction>,
}

/// What resetting a domain does on the host, carried out by the
/// [`ScmiBackend`](super::ScmiBackend).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetAction {
    /// Reset the passed device with this index (in the VM's numbering), e.g. by
    /// `VFIO_DEVICE_RESET`.
    Device { index: u32 },
}

/// A power domain: the guest's requested state is tracked; the host keeps it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PowerDomainConfig {
    pub name: String,
}

/// The kinds of entity, as error messages name them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityKind {
    Clock,
    ResetDomain,
    PowerDomain,
}

impl fmt::Display for EntityKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Clock => "clock",
            Self::ResetDomain => "reset domain",
            Self::PowerDomain => "power domain",
        })
    }
}

/// A configuration the SCMI platform cannot serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("SCMI {kind} {index} has an empty name; give it the name the guest should see")]
    EmptyName { kind: EntityKind, index: usize },
    #[error(
        "SCMI {kind} {index} is named {name:?} ({len} bytes); an SCMI name holds at most \
         {MAX_NAME} bytes"
    )]
    NameTooLong {
        kind: EntityKind,
        index: usize,
        name: String,
        len: usize,
    },
    #[error(
        "SCMI {kind} {index} is named {name:?}; an SCMI name may only hold printable ASCII \
         characters"
    )]
    NameCharacter {
        kind: EntityKind,
        index: usize,
        name: String,
    },
    #[error("{count} SCMI {kind}s were configured; SCMI counts at most {MAX_ENTITIES}")]
    TooMany { kind: EntityKind, count: usize },
    #[error(
        "SCMI clock {index} ({name:?}) has a rate of 0 Hz; give it the host clock's rate (a \
         guest driver reading 0 Hz may divide by it)"
    )]
    ZeroRate { index: usize, name: String },
}

impl ScmiConfig {
    /// Checks what the protocols must be able to describe: at most [`MAX_ENTITIES`] of each
    /// kind, names of 1 to [`MAX_NAME`] printable ASCII characters, clock rates above 0 Hz.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let clocks = self.clocks.iter().map(|c| c.name.as_str());
        check_names(EntityKind::Clock, clocks)?;
        let resets = self.reset_domains.iter().map(|r| r.name.as_str());
        check_names(EntityKind::ResetDomain, resets)?;
        let power = self.power_domains.iter().map(|p| p.name.as_str());
        check_names(EntityKind::PowerDomain, power)?;
        match self.clocks.iter().enumerate().find(|(_, c)| c.rate_hz == 0) {
            Some((index, clock)) => Err(ConfigError::ZeroRate {
                index,
                name: clock.name.clone(),
            }),
            None => Ok(()),
        }
    }
}

fn check_names<'a>(
    kind: EntityKind,
    names: impl ExactSizeIterator<Item = &'a str>,
) -> Result<(), ConfigError> {
    let count = names.len();
    if count > MAX_ENTITIES {
        return Err(ConfigError::TooMany { kind, count });
    }
    for (index, name) in names.enumerate() {
        if name.is_empty() {
            return Err(ConfigError::EmptyName { kind, index });
        }
        if !name.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
            let name = name.to_owned();
            return Err(ConfigError::NameCharacter { kind, index, name });
        }
        if name.len() > MAX_NAME {
            let (name, len) = (name.to_owned(), name.len());
            return Err(ConfigError::NameTooLong {
                kind,
                index,
                name,
                len,
            });
        }
    }
    Ok(())
}
