//! The SCMI platform (`devices::scmi`): arbitrary bytes as a channel's shared memory, served
//! by a platform of an arbitrary configuration, one to four times in a row.
//!
//! Input: 8 control bytes, then the shared-memory area (its length is the area's):
//! - 0, 1, 2: number of clocks, reset domains, power domains (each % 5);
//! - 3: names' length (% 70: 0 and past 63 are configuration errors); 4: their filler
//!   character (bit 7 set: the raw low 7 bits, so possibly not printable);
//! - 5: bits 0..4, clock i settable; bit 7, clock 0 at 0 Hz (a configuration error);
//! - 6: bits 0..4, reset domain i has an action;
//! - 7: bit 0, arm the channel (busy, length cut to the area: a message is always served);
//!   bit 1, the backend fails; bit 2, resets are acknowledged only; bits 3..4, rounds - 1.
//!
//! Between rounds the channel is armed again, the previous reply in it read as a request.
//! Checked after every round, besides no panic: an area too small or a free channel is left
//! untouched; a refused message changes channel_status alone, to ERROR | FREE; an answered one
//! leaves CHANNEL_FREE set, its header echoed, a length from 8 to what the area holds, the
//! status it reports, and every byte outside the reply as it was. The backend is only asked
//! to reset domains that have an action and to change settable clocks; other clocks keep
//! their host rate; the counters add up to the outcomes.

#![no_main]

use std::sync::atomic::Ordering;

use devices::scmi::{
    process, BackendError, ClockConfig, Outcome, PowerDomainConfig, Refusal, ResetAction,
    ResetDomainConfig, ResetOutcome, ScmiBackend, ScmiConfig, Server, Status, CHANNEL_ERROR,
    CHANNEL_FREE, CHANNEL_STATUS, FLAGS, INTR_ENABLED, LENGTH, MIN_AREA, MSG_HEADER, MSG_PAYLOAD,
};
use libfuzzer_sys::fuzz_target;

const CONTROL: usize = 8;

/// The backend double: asserts that it is only asked what the configuration allows.
struct Checked {
    settable: Vec<bool>,
    actions: Vec<Option<ResetAction>>,
    fail: bool,
    outcome: ResetOutcome,
}

impl Checked {
    fn result<T>(&self, value: T) -> Result<T, BackendError> {
        if self.fail {
            let source = std::io::Error::other("injected");
            let what = "fuzz".to_owned();
            return Err(BackendError { what, source });
        }
        Ok(value)
    }
}

impl ScmiBackend for Checked {
    fn reset(&mut self, domain: u32, action: ResetAction) -> Result<ResetOutcome, BackendError> {
        let configured = self.actions.get(domain as usize).copied().flatten();
        assert_eq!(configured, Some(action), "reset of domain {domain}");
        self.result(self.outcome)
    }

    fn set_clock_rate(&mut self, clock: u32, hz: u64) -> Result<u64, BackendError> {
        let settable = self.settable.get(clock as usize).copied();
        assert_eq!(settable, Some(true), "rate change of clock {clock}");
        self.result(hz)
    }
}

fn config(c: &[u8; CONTROL]) -> ScmiConfig {
    let filler = if c[4] & 0x80 != 0 {
        c[4] & 0x7f
    } else {
        b'a' + c[4] % 26
    };
    let name = |kind: &str, i: usize| {
        let mut n = format!("{kind}{i}");
        n.truncate(usize::from(c[3] % 70));
        while n.len() < usize::from(c[3] % 70) {
            n.push(char::from(filler));
        }
        n
    };
    let clocks = (0..usize::from(c[0] % 5)).map(|i| ClockConfig {
        name: name("clk", i),
        rate_hz: if i == 0 && c[5] & 0x80 != 0 {
            0
        } else {
            1 + (i as u64) * 0x1234_5677 * u64::from(c[0])
        },
        settable: c[5] & (1 << i) != 0,
    });
    let resets = (0..usize::from(c[1] % 5)).map(|i| ResetDomainConfig {
        name: name("rst", i),
        action: (c[6] & (1 << i) != 0).then_some(ResetAction::Device { index: i as u32 }),
    });
    let power = (0..usize::from(c[2] % 5)).map(|i| PowerDomainConfig {
        name: name("pd", i),
    });
    ScmiConfig {
        clocks: clocks.collect(),
        reset_domains: resets.collect(),
        power_domains: power.collect(),
    }
}

fn word(area: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(area[at..at + 4].try_into().unwrap())
}

fn set_word(area: &mut [u8], at: usize, value: u32) {
    area[at..at + 4].copy_from_slice(&value.to_le_bytes());
}

/// Makes the channel busy with a length the area holds (from the header to the whole area).
fn arm(area: &mut [u8]) {
    if area.len() < MIN_AREA {
        return;
    }
    let room = (area.len() - MSG_HEADER) as u32;
    set_word(area, CHANNEL_STATUS, 0);
    let length = 4 + word(area, LENGTH) % (room - 3);
    set_word(area, LENGTH, length);
}

/// Checks what `process` did to `area` (it was `before`); returns whether it was answered
/// and whether refused.
fn check(before: &[u8], area: &[u8], outcome: &Outcome) -> (bool, bool) {
    let wanted = area.len() >= MIN_AREA && word(before, FLAGS) & INTR_ENABLED != 0;
    match outcome {
        Outcome::Idle => {
            assert!(word(before, CHANNEL_STATUS) & CHANNEL_FREE != 0);
            assert!(area == before, "an idle channel changed");
            (false, false)
        }
        Outcome::Refused {
            reason: Refusal::AreaTooSmall { size },
            interrupt,
        } => {
            assert!(*size == area.len() && *size < MIN_AREA && !interrupt);
            assert!(area == before, "an area too small changed");
            (false, true)
        }
        Outcome::Refused { interrupt, .. } => {
            assert_eq!(*interrupt, wanted);
            assert_eq!(word(area, CHANNEL_STATUS), CHANNEL_ERROR | CHANNEL_FREE);
            let outside = |a: &[u8]| [&a[..CHANNEL_STATUS], &a[CHANNEL_STATUS + 4..]].concat();
            assert!(
                outside(area) == outside(before),
                "a refusal wrote past the status"
            );
            (false, true)
        }
        Outcome::Answered { status, interrupt } => {
            assert_eq!(*interrupt, wanted);
            check_reply(before, area, *status);
            (true, false)
        }
    }
}

fn check_reply(before: &[u8], area: &[u8], status: Status) {
    assert_eq!(word(area, CHANNEL_STATUS), CHANNEL_FREE);
    let length = word(area, LENGTH) as usize;
    assert!(
        length >= 8 && MSG_HEADER + length <= area.len(),
        "length {length}"
    );
    assert_eq!(word(area, MSG_HEADER), word(before, MSG_HEADER));
    assert_eq!(word(area, MSG_PAYLOAD) as i32, status.code());
    if status != Status::Success {
        assert_eq!(length, 8);
    }
    assert!(area[..CHANNEL_STATUS] == before[..CHANNEL_STATUS]);
    assert!(area[CHANNEL_STATUS + 4..LENGTH] == before[CHANNEL_STATUS + 4..LENGTH]);
    assert!(area[MSG_HEADER + length..] == before[MSG_HEADER + length..]);
}

fuzz_target!(|data: &[u8]| {
    let Some((control, area)) = data.split_first_chunk::<CONTROL>() else {
        return;
    };
    let config = config(control);
    let backend = Checked {
        settable: config.clocks.iter().map(|c| c.settable).collect(),
        actions: config.reset_domains.iter().map(|r| r.action).collect(),
        fail: control[7] & 2 != 0,
        outcome: if control[7] & 4 != 0 {
            ResetOutcome::AcknowledgedOnly
        } else {
            ResetOutcome::Done
        },
    };
    let Ok(mut server) = Server::new(config.clone(), backend) else {
        return;
    };
    let mut area = area.to_vec();
    let (mut answered, mut refused) = (0u64, 0u64);
    for round in 0..=(control[7] >> 3) % 4 {
        if round > 0 || control[7] & 1 != 0 {
            arm(&mut area);
        }
        let before = area.clone();
        let outcome = process(&mut area, &mut server);
        let (a, r) = check(&before, &area, &outcome);
        answered += u64::from(a);
        refused += u64::from(r);
    }
    for (id, clock) in config.clocks.iter().enumerate() {
        if !clock.settable {
            assert_eq!(server.clock_rate(id as u32), Some(clock.rate_hz));
        }
    }
    let counters = server.counters();
    let snapshot = counters.snapshot();
    let messages: u64 = snapshot[..5].iter().map(|(_, n)| n).sum();
    assert_eq!(messages, answered);
    assert_eq!(counters.refused.load(Ordering::Relaxed), refused);
});
