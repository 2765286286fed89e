//! The clock protocol (0x14), v2.0. At probe Linux (drivers/firmware/arm_scmi/clock.c) asks
//! version, attributes (and, 6.9 on, which rate notifications exist), then per clock
//! CLOCK_ATTRIBUTES, CLOCK_NAME_GET when the name is extended, and CLOCK_DESCRIBE_RATES;
//! later CLOCK_RATE_GET, CLOCK_RATE_SET and CLOCK_CONFIG_SET as the guest's drivers use their
//! clocks. Enables and disables are counted, never forwarded: the host clock keeps running.

use super::config::ClockConfig;
use super::message::{
    entity, entity_mut, is_long_name, name_field, words, Answer, Out, Status, LONG_NAME, SHORT_NAME,
};
use super::{bump, Context, Protocol};
use crate::virtio::ratelimit::limited;

const CLOCK_ATTRIBUTES: u8 = 0x3;
const CLOCK_DESCRIBE_RATES: u8 = 0x4;
const CLOCK_RATE_SET: u8 = 0x5;
const CLOCK_RATE_GET: u8 = 0x6;
const CLOCK_CONFIG_SET: u8 = 0x7;
const CLOCK_NAME_GET: u8 = 0x8;

/// CLOCK_ATTRIBUTES attributes: the clock is enabled; its name is extended (CLOCK_NAME_GET).
const ATTR_ENABLED: u32 = 1 << 0;
const ATTR_EXTENDED_NAME: u32 = 1 << 29;
/// Enable latency: 0, not reported (Linux takes it as unknown, so it never enables or disables
/// the clock from atomic context).
const ENABLE_LATENCY_US: u32 = 0;

/// CLOCK_DESCRIBE_RATES's first return value: rates returned (bits 11:0), the range format
/// (bit 12: a min/max/step triplet; 0: a list) and rates remaining (bits 31:16, always 0).
const RATES_AS_RANGE: u32 = 1 << 12;
/// The range of a settable clock: any rate from 1 Hz, in steps of 1 Hz, up to the largest a
/// `long` holds (Linux 6.1's clk-scmi returns a rounded rate as a `long`).
const RANGE_MIN_HZ: u64 = 1;
const RANGE_MAX_HZ: u64 = i64::MAX as u64;
const RANGE_STEP_HZ: u64 = 1;

/// CLOCK_RATE_SET flags: asynchronous (bit 0), then ignore-delayed-response and the two
/// rounding modes; bits 31:4 are reserved.
const SET_ASYNC: u32 = 1 << 0;
const SET_FLAGS: u32 = 0xf;

/// CLOCK_CONFIG_SET attributes: enable (bit 0); bits 31:1 are reserved.
const CONFIG_ENABLE: u32 = 1 << 0;

/// One clock as the guest sees it.
struct Clock {
    name: String,
    rate_hz: u64,
    settable: bool,
    enabled: bool,
}

/// The clock protocol's state: the guest's clocks.
pub(crate) struct Clocks {
    clocks: Vec<Clock>,
}

impl Clocks {
    /// Every clock enabled (the host's are running) at its host rate.
    pub fn new(config: Vec<ClockConfig>) -> Self {
        let clocks = config.into_iter().map(|c| Clock {
            name: c.name,
            rate_hz: c.rate_hz,
            settable: c.settable,
            enabled: true,
        });
        Self {
            clocks: clocks.collect(),
        }
    }

    pub fn enabled(&self, id: u32) -> Option<bool> {
        entity(&self.clocks, id).ok().map(|c| c.enabled)
    }

    pub fn rate(&self, id: u32) -> Option<u64> {
        entity(&self.clocks, id).ok().map(|c| c.rate_hz)
    }

    /// Its attributes, short name and enable latency.
    fn attributes_of(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let clock = entity(&self.clocks, id)?;
        let mut attributes = if clock.enabled { ATTR_ENABLED } else { 0 };
        if is_long_name(&clock.name) {
            attributes |= ATTR_EXTENDED_NAME;
        }
        Out::new()
            .u32(attributes)
            .bytes(&name_field::<SHORT_NAME>(&clock.name))
            .u32(ENABLE_LATENCY_US)
            .ok()
    }

    /// Its rates: the host rate alone; a settable clock's range. The list has one rate, so
    /// a rate index past 0 is OUT_OF_RANGE (as SCP-firmware answers); a range comes whole.
    fn describe_rates(&self, args: &[u8]) -> Answer {
        let [id, index] = words::<2>(args)?;
        let clock = entity(&self.clocks, id)?;
        if clock.settable {
            Out::new()
                .u32(3 | RATES_AS_RANGE)
                .u64(RANGE_MIN_HZ)
                .u64(RANGE_MAX_HZ)
                .u64(RANGE_STEP_HZ)
                .ok()
        } else if index == 0 {
            Out::new().u32(1).u64(clock.rate_hz).ok()
        } else {
            Err(Status::OutOfRange)
        }
    }

    /// A rate change: a settable clock's goes to the backend; another's succeeds only if it
    /// asks for the rate the clock has, and is DENIED otherwise (see the module
    /// documentation of `scmi` for what Linux makes of it).
    fn rate_set(&mut self, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        let [flags, id, low, high] = words::<4>(args)?;
        let clock = entity_mut(&mut self.clocks, id)?;
        if flags & !SET_FLAGS != 0 {
            return Err(Status::InvalidParameters);
        }
        if flags & SET_ASYNC != 0 {
            // PROTOCOL_ATTRIBUTES says 0 asynchronous requests at a time.
            return Err(Status::NotSupported);
        }
        let hz = u64::from(low) | u64::from(high) << 32;
        if !clock.settable {
            if hz == clock.rate_hz {
                return Out::new().ok();
            }
            bump(&ctx.counters.clock_rate_sets_denied);
            return Err(Status::Denied);
        }
        match ctx.backend.set_clock_rate(id, hz) {
            Ok(rate) => {
                clock.rate_hz = rate;
                bump(&ctx.counters.clock_rate_sets);
                Out::new().ok()
            }
            Err(e) => {
                bump(&ctx.counters.backend_errors);
                limited!(warn, "SCMI clock {id} ({}): {hz} Hz: {e}", clock.name);
                Err(Status::GenericError)
            }
        }
    }

    fn rate_get(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        Out::new().u64(entity(&self.clocks, id)?.rate_hz).ok()
    }

    /// Enable or disable: tracked (CLOCK_ATTRIBUTES reports it) and counted.
    fn config_set(&mut self, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        let [id, attributes] = words::<2>(args)?;
        let clock = entity_mut(&mut self.clocks, id)?;
        if attributes & !CONFIG_ENABLE != 0 {
            return Err(Status::InvalidParameters);
        }
        clock.enabled = attributes & CONFIG_ENABLE != 0;
        let c = &ctx.counters;
        bump(if clock.enabled {
            &c.clock_enables
        } else {
            &c.clock_disables
        });
        Out::new().ok()
    }

    /// Flags (reserved, 0) and the whole name, for any clock.
    fn name_get(&self, args: &[u8]) -> Answer {
        let [id] = words::<1>(args)?;
        let clock = entity(&self.clocks, id)?;
        let name = name_field::<LONG_NAME>(&clock.name);
        Out::new().u32(0).bytes(&name).ok()
    }
}

impl Protocol for Clocks {
    const VERSION: u32 = 0x2_0000;

    /// Number of clocks (bits 15:0); at most 0 asynchronous rate changes pending (23:16).
    fn attributes(&self) -> Vec<u8> {
        Out::new().u32(self.clocks.len() as u32).into_bytes()
    }

    fn implements(message: u8) -> bool {
        (CLOCK_ATTRIBUTES..=CLOCK_NAME_GET).contains(&message)
    }

    fn command(&mut self, message: u8, args: &[u8], ctx: &mut Context<'_>) -> Answer {
        match message {
            CLOCK_ATTRIBUTES => self.attributes_of(args),
            CLOCK_DESCRIBE_RATES => self.describe_rates(args),
            CLOCK_RATE_SET => self.rate_set(args, ctx),
            CLOCK_RATE_GET => self.rate_get(args),
            CLOCK_CONFIG_SET => self.config_set(args, ctx),
            CLOCK_NAME_GET => self.name_get(args),
            _ => Err(Status::NotSupported),
        }
    }
}
