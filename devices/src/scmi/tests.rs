//! The platform driven as a Linux agent drives it: each message through a shared-memory
//! channel, its reply checked byte for byte.

use std::sync::atomic::Ordering;

use super::*;

const BASE: u8 = PROTOCOL_BASE;
const POWER: u8 = PROTOCOL_POWER;
const CLOCK: u8 = PROTOCOL_CLOCK;
const RESET: u8 = PROTOCOL_RESET;
/// A channel's area as Linux's DT usually gives it (0x80 bytes).
const AREA: usize = 0x80;

const SUCCESS: i32 = 0;
const NOT_SUPPORTED: i32 = -1;
const INVALID_PARAMETERS: i32 = -2;
const DENIED: i32 = -3;
const NOT_FOUND: i32 = -4;
const OUT_OF_RANGE: i32 = -5;
const COMMS_ERROR: i32 = -7;
const GENERIC_ERROR: i32 = -8;
const PROTOCOL_ERROR: i32 = -10;

const LONG_CLOCK: &str = "gem0_tx_clock_of_the_ethernet_mac";
const LONG_POWER: &str = "power_domain_of_the_usb3_controller";

/// A reset the backend was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ResetCall {
    domain: u32,
    action: ResetAction,
}

/// A rate change the backend was asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
struct RateCall {
    clock: u32,
    hz: u64,
}

/// The test double: records every call; resets answer `outcome`; a rate change rounds down
/// to a whole kHz (so that reading back shows the backend's rate, not the request); `fail`
/// fails both.
#[derive(Debug)]
struct Recorder {
    resets: Vec<ResetCall>,
    rates: Vec<RateCall>,
    outcome: ResetOutcome,
    fail: bool,
}

impl Default for Recorder {
    fn default() -> Self {
        Self {
            resets: Vec::new(),
            rates: Vec::new(),
            outcome: ResetOutcome::Done,
            fail: false,
        }
    }
}

impl Recorder {
    fn result<T>(&self, value: T) -> Result<T, BackendError> {
        if self.fail {
            let source = std::io::Error::other("injected");
            let what = "the test double".to_owned();
            return Err(BackendError { what, source });
        }
        Ok(value)
    }
}

impl ScmiBackend for Recorder {
    fn reset(&mut self, domain: u32, action: ResetAction) -> Result<ResetOutcome, BackendError> {
        self.resets.push(ResetCall { domain, action });
        self.result(self.outcome)
    }

    fn set_clock_rate(&mut self, clock: u32, hz: u64) -> Result<u64, BackendError> {
        self.rates.push(RateCall { clock, hz });
        self.result(hz - hz % 1000)
    }
}

/// Clocks: uart (100 MHz), one with an extended name (125 MHz), sdio (settable, 200 MHz).
/// Reset domains: gem0 (resets device 0), usb (no action). Power domains: gem0, one with an
/// extended name.
fn config() -> ScmiConfig {
    let clock = |name: &str, rate_hz, settable| ClockConfig {
        name: name.into(),
        rate_hz,
        settable,
    };
    ScmiConfig {
        clocks: vec![
            clock("uart", 100_000_000, false),
            clock(LONG_CLOCK, 125_000_000, false),
            clock("sdio", 200_000_000, true),
        ],
        reset_domains: vec![
            ResetDomainConfig {
                name: "gem0".into(),
                action: Some(ResetAction::Device { index: 0 }),
            },
            ResetDomainConfig {
                name: "usb".into(),
                action: None,
            },
        ],
        power_domains: vec![
            PowerDomainConfig {
                name: "gem0".into(),
            },
            PowerDomainConfig {
                name: LONG_POWER.into(),
            },
        ],
    }
}

fn server() -> Server<Recorder> {
    Server::new(config(), Recorder::default()).expect("valid configuration")
}

fn le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn header(protocol: u8, message: u8, token: u16) -> u32 {
    Header {
        message_id: message,
        message_type: TYPE_COMMAND,
        protocol_id: protocol,
        token,
    }
    .encode()
}

/// An area with a message posted as Linux's shmem_tx_prepare writes it: channel busy,
/// completion interrupt wanted, length, header, parameters; the rest a pattern.
fn posted(size: usize, header: u32, args: &[u8]) -> Vec<u8> {
    let mut area: Vec<u8> = (0..size).map(|i| (i * 13 + 7) as u8).collect();
    area[CHANNEL_STATUS..CHANNEL_STATUS + 4].copy_from_slice(&0u32.to_le_bytes());
    area[FLAGS..FLAGS + 4].copy_from_slice(&INTR_ENABLED.to_le_bytes());
    let length = 4 + args.len() as u32;
    area[LENGTH..LENGTH + 4].copy_from_slice(&length.to_le_bytes());
    area[MSG_HEADER..MSG_HEADER + 4].copy_from_slice(&header.to_le_bytes());
    area[MSG_PAYLOAD..MSG_PAYLOAD + args.len()].copy_from_slice(args);
    area
}

fn word(area: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(area[at..at + 4].try_into().unwrap())
}

/// One message through a channel of [`AREA`] bytes. Checks that it was answered with a
/// completion interrupt and the channel freed; returns the reply's bytes from the length
/// field on (length, header, status, return values).
fn exchange(s: &mut Server<Recorder>, protocol: u8, message: u8, args: &[u8]) -> Vec<u8> {
    let h = header(protocol, message, 0x2a5);
    let mut area = posted(AREA, h, args);
    let outcome = process(&mut area, s);
    assert!(
        matches!(
            outcome,
            Outcome::Answered {
                interrupt: true,
                ..
            }
        ),
        "{outcome:?}"
    );
    assert_eq!(word(&area, CHANNEL_STATUS), CHANNEL_FREE);
    let length = word(&area, LENGTH) as usize;
    area[LENGTH..MSG_HEADER + length].to_vec()
}

/// The bytes [`exchange`] returns for a reply: length, header (token 0x2a5), status, return
/// values.
fn reply(protocol: u8, message: u8, status: i32, values: &[u8]) -> Vec<u8> {
    let length = 8 + values.len() as u32;
    let mut bytes = le(&[length, header(protocol, message, 0x2a5), status as u32]);
    bytes.extend_from_slice(values);
    bytes
}

/// Asserts that the message gets SUCCESS and exactly these return values.
#[track_caller]
fn expect_ok(s: &mut Server<Recorder>, protocol: u8, message: u8, args: &[u32], values: &[u8]) {
    let got = exchange(s, protocol, message, &le(args));
    assert_eq!(got, reply(protocol, message, SUCCESS, values));
}

/// Asserts that the message gets `status` and no return value.
#[track_caller]
fn expect_status(s: &mut Server<Recorder>, protocol: u8, message: u8, args: &[u8], status: i32) {
    let got = exchange(s, protocol, message, args);
    assert_eq!(got, reply(protocol, message, status, &[]));
}

/// A name field of `N` bytes (NUL-padded).
fn name<const N: usize>(s: &str) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    v.resize(N, 0);
    v
}

fn counter(s: &Server<Recorder>, name: &str) -> u64 {
    let snapshot = s.counters().snapshot();
    snapshot.iter().find(|(n, _)| *n == name).expect(name).1
}

#[test]
fn one_reply_byte_for_byte() {
    let mut s = server();
    // PROTOCOL_VERSION of base, token 0x2a5: header 0x2a5 << 18 | 0x10 << 10.
    assert_eq!(
        exchange(&mut s, BASE, 0x0, &[]),
        [
            0x0c, 0x00, 0x00, 0x00, // length: header, status, version
            0x00, 0x40, 0x94, 0x0a, // header echoed
            0x00, 0x00, 0x00, 0x00, // SUCCESS
            0x00, 0x00, 0x02, 0x00, // version 2.0
        ]
    );
}

#[test]
fn base_discovery_as_linux_probes() {
    let mut s = server();
    expect_ok(&mut s, BASE, 0x0, &[], &[0x00, 0x00, 0x02, 0x00]);
    // Three protocols, one agent.
    expect_ok(&mut s, BASE, 0x1, &[], &[3, 1, 0, 0]);
    expect_ok(&mut s, BASE, 0x3, &[], &name::<16>("platvmm"));
    expect_ok(&mut s, BASE, 0x4, &[], &name::<16>("kvm"));
    expect_ok(&mut s, BASE, 0x5, &[], &[1, 0, 0, 0]);
    // Skip 0: three returned, power, clock, reset, padded to a word.
    let list = [3, 0, 0, 0, 0x11, 0x14, 0x16, 0];
    expect_ok(&mut s, BASE, 0x6, &[0], &list);
    // Agent 0: the platform.
    let mut agent = vec![0, 0, 0, 0];
    agent.extend(name::<16>("platvmm"));
    expect_ok(&mut s, BASE, 0x7, &[0], &agent);
    assert_eq!(counter(&s, "base_messages"), 7);
    assert_eq!(counter(&s, "error_replies"), 0);
}

#[test]
fn base_protocol_list_skips() {
    let mut s = server();
    expect_ok(&mut s, BASE, 0x6, &[2], &[1, 0, 0, 0, 0x16, 0, 0, 0]);
    expect_ok(&mut s, BASE, 0x6, &[3], &[0, 0, 0, 0]);
    for skip in [4, u32::MAX] {
        expect_status(&mut s, BASE, 0x6, &le(&[skip]), INVALID_PARAMETERS);
    }
}

#[test]
fn base_discover_agent_names_the_guest() {
    let mut s = server();
    let mut guest = vec![1, 0, 0, 0];
    guest.extend(name::<16>("guest"));
    expect_ok(&mut s, BASE, 0x7, &[1], &guest);
    expect_ok(&mut s, BASE, 0x7, &[u32::MAX], &guest);
    for id in [2, 0xffff_fffe] {
        expect_status(&mut s, BASE, 0x7, &le(&[id]), NOT_FOUND);
    }
}

#[test]
fn message_attributes_tell_implemented_messages() {
    let mut s = server();
    let implemented: [(u8, &[u32]); 4] = [
        (BASE, &[0, 1, 2, 3, 4, 5, 6, 7]),
        (POWER, &[0, 1, 2, 3, 4, 5, 8]),
        (CLOCK, &[0, 1, 2, 3, 4, 5, 6, 7, 8]),
        (RESET, &[0, 1, 2, 3, 4, 6]),
    ];
    for (protocol, messages) in implemented {
        for &m in messages {
            expect_ok(&mut s, protocol, 0x2, &[m], &[0, 0, 0, 0]);
        }
    }
    // Notifications (which Linux 6.9 on asks about) and anything else.
    let absent: [(u8, &[u32]); 4] = [
        (BASE, &[8, 9, 0xa, 0xb, 0x10]),
        (POWER, &[6, 7, 0x10]),
        (CLOCK, &[9, 0xa, 0xb, 0xf, 0x10]),
        (RESET, &[5, 7, 0x10]),
    ];
    for (protocol, messages) in absent {
        for &m in messages.iter().chain(&[0xff, 0x100, u32::MAX]) {
            expect_status(&mut s, protocol, 0x2, &le(&[m]), NOT_FOUND);
        }
    }
}

#[test]
fn other_protocols_and_messages_are_not_supported() {
    let mut s = server();
    for protocol in [0x00, 0x12, 0x13, 0x15, 0x17, 0x19, 0x80, 0xff] {
        expect_status(&mut s, protocol, 0x0, &[], NOT_SUPPORTED);
    }
    assert_eq!(counter(&s, "unknown_protocol_messages"), 8);
    // Notification requests (a clock id as argument) and unknown messages.
    let absent: [(u8, &[u8]); 4] = [
        (BASE, &[8, 9, 0xb, 0xff]),
        (POWER, &[6, 7, 9, 0xff]),
        (CLOCK, &[9, 0xa, 0xb, 0xc, 0xff]),
        (RESET, &[5, 7, 0xff]),
    ];
    for (protocol, messages) in absent {
        for &m in messages {
            expect_status(&mut s, protocol, m, &le(&[0, 1]), NOT_SUPPORTED);
        }
    }
    // A delayed response or notification posted by the agent.
    for kind in 1..=3 {
        let h = Header::decode(header(BASE, 0x0, 1));
        let raw = Header {
            message_type: kind,
            ..h
        }
        .encode();
        let r = s.handle(raw, &[]);
        assert_eq!(r.status, Status::NotSupported);
        assert!(r.payload.is_empty());
    }
}

#[test]
fn clock_probe_as_linux_does() {
    let mut s = server();
    expect_ok(&mut s, CLOCK, 0x0, &[], &[0x00, 0x00, 0x02, 0x00]);
    // Three clocks, no asynchronous rate change.
    expect_ok(&mut s, CLOCK, 0x1, &[], &[3, 0, 0, 0]);
    // uart: enabled, its name, enable latency not reported.
    let mut uart = vec![1, 0, 0, 0];
    uart.extend(name::<16>("uart"));
    uart.extend([0, 0, 0, 0]);
    expect_ok(&mut s, CLOCK, 0x3, &[0], &uart);
    // Extended name: bit 29, the short name cut to 15 bytes, the whole name by NAME_GET.
    let mut long = vec![1, 0, 0, 0x20];
    long.extend(name::<16>(&LONG_CLOCK[..15]));
    long.extend([0, 0, 0, 0]);
    expect_ok(&mut s, CLOCK, 0x3, &[1], &long);
    let mut whole = vec![0, 0, 0, 0];
    whole.extend(name::<64>(LONG_CLOCK));
    expect_ok(&mut s, CLOCK, 0x8, &[1], &whole);
    // One discrete rate, 100 MHz (0x05f5e100).
    let rates = [1, 0, 0, 0, 0x00, 0xe1, 0xf5, 0x05, 0, 0, 0, 0];
    expect_ok(&mut s, CLOCK, 0x4, &[0, 0], &rates);
    // The settable clock: a range triplet (3 returned, bit 12), 1 Hz..=i64::MAX Hz, step 1 Hz.
    let mut range = vec![3, 0x10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0];
    range.extend([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    range.extend([1, 0, 0, 0, 0, 0, 0, 0]);
    expect_ok(&mut s, CLOCK, 0x4, &[2, 0], &range);
    expect_ok(&mut s, CLOCK, 0x6, &[0], &le(&[100_000_000, 0]));
}

#[test]
fn clock_rate_index_past_the_list_is_out_of_range() {
    let mut s = server();
    for index in [1, 2, u32::MAX] {
        expect_status(&mut s, CLOCK, 0x4, &le(&[0, index]), OUT_OF_RANGE);
    }
}

#[test]
fn clock_rate_set_of_a_fixed_clock_is_denied_and_reads_back_the_host_rate() {
    let mut s = server();
    // flags 0, clock 0, 50 MHz.
    expect_status(&mut s, CLOCK, 0x5, &le(&[0, 0, 50_000_000, 0]), DENIED);
    expect_ok(&mut s, CLOCK, 0x6, &[0], &le(&[100_000_000, 0]));
    // Its own rate (what Linux's clk core, clamping to the described rate, sends).
    expect_ok(&mut s, CLOCK, 0x5, &[0, 0, 100_000_000, 0], &[]);
    // Rounding flags are allowed.
    expect_ok(&mut s, CLOCK, 0x5, &[0b1100, 0, 100_000_000, 0], &[]);
    // A rate with a high word.
    expect_status(&mut s, CLOCK, 0x5, &le(&[0, 1, 125_000_000, 1]), DENIED);
    assert_eq!(s.clock_rate(1), Some(125_000_000));
    assert!(s.backend().rates.is_empty());
    assert_eq!(counter(&s, "clock_rate_sets_denied"), 2);
    assert_eq!(counter(&s, "clock_rate_sets"), 0);
}

#[test]
fn settable_clock_rate_goes_to_the_backend() {
    let mut s = server();
    // 0x1_0000_1234 Hz: the backend rounds down to a kHz.
    expect_ok(&mut s, CLOCK, 0x5, &[0, 2, 0x1234, 1], &[]);
    let hz = 0x1_0000_1234u64;
    assert_eq!(s.backend().rates, [RateCall { clock: 2, hz }]);
    let rounded = hz - hz % 1000;
    let back = le(&[rounded as u32, (rounded >> 32) as u32]);
    expect_ok(&mut s, CLOCK, 0x6, &[2], &back);
    assert_eq!(counter(&s, "clock_rate_sets"), 1);
}

#[test]
fn clock_rate_set_flags_are_checked() {
    let mut s = server();
    // Asynchronous (with or without the delayed response): NOT_SUPPORTED.
    for flags in [0b1, 0b11] {
        expect_status(&mut s, CLOCK, 0x5, &le(&[flags, 2, 1000, 0]), NOT_SUPPORTED);
    }
    // Reserved bits.
    for flags in [0x10, 0x8000_0000] {
        let args = le(&[flags, 2, 1000, 0]);
        expect_status(&mut s, CLOCK, 0x5, &args, INVALID_PARAMETERS);
    }
    assert!(s.backend().rates.is_empty());
}

#[test]
fn clock_enable_and_disable_are_tracked_and_counted() {
    let mut s = server();
    expect_ok(&mut s, CLOCK, 0x7, &[0, 0], &[]);
    assert_eq!(s.clock_enabled(0), Some(false));
    let mut off = vec![0, 0, 0, 0];
    off.extend(name::<16>("uart"));
    off.extend([0, 0, 0, 0]);
    expect_ok(&mut s, CLOCK, 0x3, &[0], &off);
    expect_ok(&mut s, CLOCK, 0x7, &[0, 1], &[]);
    expect_ok(&mut s, CLOCK, 0x7, &[0, 1], &[]);
    assert_eq!(s.clock_enabled(0), Some(true));
    // Clock v3.0's state "unchanged" (3) is a reserved bit in v2.0.
    for attributes in [2, 3, 0x8000_0001] {
        let args = le(&[0, attributes]);
        expect_status(&mut s, CLOCK, 0x7, &args, INVALID_PARAMETERS);
    }
    assert_eq!(counter(&s, "clock_enables"), 2);
    assert_eq!(counter(&s, "clock_disables"), 1);
    assert!(s.backend().rates.is_empty() && s.backend().resets.is_empty());
}

#[test]
fn backend_failures_are_generic_errors() {
    let mut s = server();
    s.backend_mut().fail = true;
    expect_status(&mut s, CLOCK, 0x5, &le(&[0, 2, 1000, 0]), GENERIC_ERROR);
    assert_eq!(s.clock_rate(2), Some(200_000_000));
    // A failed assert leaves the domain deasserted: the guest may retry it.
    expect_status(&mut s, RESET, 0x4, &le(&[0, 0b10, 0]), GENERIC_ERROR);
    assert_eq!(s.reset_asserted(0), Some(false));
    expect_status(&mut s, RESET, 0x4, &le(&[0, 0b01, 0]), GENERIC_ERROR);
    assert_eq!(counter(&s, "backend_errors"), 3);
    assert_eq!(counter(&s, "resets_done"), 0);
    s.backend_mut().fail = false;
    expect_ok(&mut s, RESET, 0x4, &[0, 0b10, 0], &[]);
    assert_eq!(s.reset_asserted(0), Some(true));
    assert_eq!(s.backend().resets.len(), 3);
}

#[test]
fn reset_probe_and_autonomous_resets() {
    let mut s = server();
    expect_ok(&mut s, RESET, 0x0, &[], &[0x00, 0x00, 0x03, 0x00]);
    expect_ok(&mut s, RESET, 0x1, &[], &[2, 0, 0, 0]);
    // No async, no notification, short name; latency not reported.
    let mut gem = vec![0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff];
    gem.extend(name::<16>("gem0"));
    expect_ok(&mut s, RESET, 0x3, &[0], &gem);
    let mut whole = vec![0, 0, 0, 0];
    whole.extend(name::<64>("usb"));
    expect_ok(&mut s, RESET, 0x6, &[1], &whole);
    // reset_control_reset: autonomous, architectural cold reset.
    expect_ok(&mut s, RESET, 0x4, &[0, 0b01, 0], &[]);
    let call = ResetCall {
        domain: 0,
        action: ResetAction::Device { index: 0 },
    };
    assert_eq!(s.backend().resets, [call]);
    assert_eq!(counter(&s, "resets_done"), 1);
    // A domain without an action: acknowledged only.
    expect_ok(&mut s, RESET, 0x4, &[1, 0b01, 0], &[]);
    assert_eq!(s.backend().resets, [call]);
    assert_eq!(counter(&s, "resets_acknowledged"), 1);
    // A backend that could not reset: acknowledged only, still SUCCESS.
    s.backend_mut().outcome = ResetOutcome::AcknowledgedOnly;
    expect_ok(&mut s, RESET, 0x4, &[0, 0b01, 0], &[]);
    assert_eq!(s.backend().resets, [call, call]);
    assert_eq!(counter(&s, "resets_done"), 1);
    assert_eq!(counter(&s, "resets_acknowledged"), 2);
}

#[test]
fn reset_assert_resets_once_and_deassert_releases() {
    let mut s = server();
    // reset_control_deassert at probe, never asserted: nothing to do.
    expect_ok(&mut s, RESET, 0x4, &[0, 0, 0], &[]);
    assert!(s.backend().resets.is_empty());
    // reset_control_assert: the edge into reset resets the device.
    expect_ok(&mut s, RESET, 0x4, &[0, 0b10, 0], &[]);
    assert_eq!(s.reset_asserted(0), Some(true));
    expect_ok(&mut s, RESET, 0x4, &[0, 0b10, 0], &[]);
    assert_eq!(s.backend().resets.len(), 1);
    expect_ok(&mut s, RESET, 0x4, &[0, 0, 0], &[]);
    assert_eq!(s.reset_asserted(0), Some(false));
    assert_eq!(s.backend().resets.len(), 1);
    assert_eq!(counter(&s, "resets_done"), 1);
    assert_eq!(counter(&s, "resets_acknowledged"), 1);
}

#[test]
fn reset_refuses_what_it_does_not_serve() {
    let mut s = server();
    // Asynchronous (autonomous or not).
    for flags in [0b100, 0b101] {
        expect_status(&mut s, RESET, 0x4, &le(&[0, flags, 0]), NOT_SUPPORTED);
    }
    // Both kinds at once, reserved flags, another state (architectural or vendor).
    let bad = [
        [0b11, 0],
        [0b1000, 0],
        [0b01, 1],
        [0b10, 0x8000_0000],
        [0, 5],
    ];
    for [flags, state] in bad {
        let args = le(&[0, flags, state]);
        expect_status(&mut s, RESET, 0x4, &args, INVALID_PARAMETERS);
    }
    expect_status(&mut s, RESET, 0x5, &le(&[0, 1]), NOT_SUPPORTED);
    assert!(s.backend().resets.is_empty());
    assert_eq!(s.reset_asserted(0), Some(false));
}

#[test]
fn power_probe_and_states() {
    let mut s = server();
    expect_ok(&mut s, POWER, 0x0, &[], &[0x00, 0x00, 0x03, 0x00]);
    // Two domains, no statistics area.
    expect_ok(&mut s, POWER, 0x1, &[], &le(&[2, 0, 0, 0]));
    // Synchronous changes (bit 29); the long name flagged (bit 27) and served by NAME_GET.
    let mut gem = vec![0, 0, 0, 0x20];
    gem.extend(name::<16>("gem0"));
    expect_ok(&mut s, POWER, 0x3, &[0], &gem);
    let mut long = vec![0, 0, 0, 0x28];
    long.extend(name::<16>(&LONG_POWER[..15]));
    expect_ok(&mut s, POWER, 0x3, &[1], &long);
    let mut whole = vec![0, 0, 0, 0];
    whole.extend(name::<64>(LONG_POWER));
    expect_ok(&mut s, POWER, 0x8, &[1], &whole);
    // scmi_pm_domain reads each state: on.
    expect_ok(&mut s, POWER, 0x5, &[0], &[0, 0, 0, 0]);
    // genpd turns it off, then on.
    expect_ok(&mut s, POWER, 0x4, &[0, 0, POWER_OFF], &[]);
    expect_ok(&mut s, POWER, 0x5, &[0], &[0, 0, 0, 0x40]);
    expect_ok(&mut s, POWER, 0x4, &[0, 0, POWER_OFF], &[]);
    assert_eq!(counter(&s, "power_state_changes"), 1);
    expect_ok(&mut s, POWER, 0x4, &[0, 0, POWER_ON], &[]);
    assert_eq!(s.power_state(0), Some(POWER_ON));
    assert_eq!(s.power_state(1), Some(POWER_ON));
    assert_eq!(counter(&s, "power_state_changes"), 2);
}

#[test]
fn power_refuses_what_it_does_not_serve() {
    let mut s = server();
    let bad = [[0, 0x4000_0001], [0, 1], [0, 0x8000_0000], [2, POWER_OFF]];
    for [flags, state] in bad {
        let args = le(&[flags, 0, state]);
        expect_status(&mut s, POWER, 0x4, &args, INVALID_PARAMETERS);
    }
    expect_status(&mut s, POWER, 0x4, &le(&[1, 0, POWER_OFF]), NOT_SUPPORTED);
    expect_status(&mut s, POWER, 0x6, &le(&[0, 1]), NOT_SUPPORTED);
    assert_eq!(s.power_state(0), Some(POWER_ON));
    assert_eq!(counter(&s, "power_state_changes"), 0);
}

/// Every message that names an entity, as (protocol, message, parameters before the id,
/// after it).
const BY_ID: [(u8, u8, &[u32], &[u32]); 13] = [
    (CLOCK, 0x3, &[], &[]),
    (CLOCK, 0x4, &[], &[0]),
    (CLOCK, 0x5, &[0], &[1000, 0]),
    (CLOCK, 0x6, &[], &[]),
    (CLOCK, 0x7, &[], &[1]),
    (CLOCK, 0x8, &[], &[]),
    (RESET, 0x3, &[], &[]),
    (RESET, 0x4, &[], &[0b01, 0]),
    (RESET, 0x6, &[], &[]),
    (POWER, 0x3, &[], &[]),
    (POWER, 0x4, &[0], &[POWER_OFF]),
    (POWER, 0x5, &[], &[]),
    (POWER, 0x8, &[], &[]),
];

#[test]
fn ids_past_those_given_are_not_found() {
    let mut s = server();
    for (protocol, message, before, after) in BY_ID {
        let count = match protocol {
            CLOCK => 3,
            _ => 2,
        };
        for id in [count, count + 1, 0xffff, u32::MAX] {
            let args = le(&[before, &[id], after].concat());
            expect_status(&mut s, protocol, message, &args, NOT_FOUND);
        }
    }
    assert!(s.backend().resets.is_empty() && s.backend().rates.is_empty());
    assert_eq!(counter(&s, "error_replies"), 13 * 4);
}

#[test]
fn payloads_of_the_wrong_size_are_protocol_errors() {
    let mut s = server();
    for (protocol, message, before, after) in BY_ID {
        let args = le(&[before, &[0], after].concat());
        for len in [0, 1, 3, args.len() - 1] {
            expect_status(&mut s, protocol, message, &args[..len], PROTOCOL_ERROR);
        }
        let mut longer = args.clone();
        longer.extend([0; 4]);
        expect_status(&mut s, protocol, message, &longer, PROTOCOL_ERROR);
    }
    // The messages without parameters, given one; those with one, given none.
    for protocol in [BASE, POWER, CLOCK, RESET] {
        expect_status(&mut s, protocol, 0x0, &[0; 4], PROTOCOL_ERROR);
        expect_status(&mut s, protocol, 0x1, &[0], PROTOCOL_ERROR);
        expect_status(&mut s, protocol, 0x2, &[], PROTOCOL_ERROR);
    }
    for message in [0x3, 0x4, 0x5] {
        expect_status(&mut s, BASE, message, &[0; 4], PROTOCOL_ERROR);
    }
    for message in [0x6, 0x7] {
        expect_status(&mut s, BASE, message, &[0; 2], PROTOCOL_ERROR);
    }
    assert!(s.backend().resets.is_empty() && s.backend().rates.is_empty());
    assert_eq!(s.power_state(0), Some(POWER_ON));
    assert_eq!(s.clock_enabled(0), Some(true));
}

/// Every byte but channel_status's.
fn outside_status(area: &[u8]) -> Vec<u8> {
    [&area[..CHANNEL_STATUS], &area[CHANNEL_STATUS + 4..]].concat()
}

#[test]
fn hostile_lengths_are_refused_touching_only_channel_status() {
    let room = (AREA - MSG_HEADER) as u32;
    let cases = [
        (0, Refusal::TooShort { length: 0 }),
        (3, Refusal::TooShort { length: 3 }),
        (
            room + 1,
            Refusal::TooLong {
                length: room + 1,
                room: room as usize,
            },
        ),
        (
            u32::MAX,
            Refusal::TooLong {
                length: u32::MAX,
                room: room as usize,
            },
        ),
    ];
    let mut s = server();
    for (length, reason) in cases {
        let mut area = posted(AREA, header(CLOCK, 0x6, 1), &le(&[0]));
        area[LENGTH..LENGTH + 4].copy_from_slice(&length.to_le_bytes());
        let before = area.clone();
        let outcome = process(&mut area, &mut s);
        let interrupt = true;
        assert_eq!(outcome, Outcome::Refused { reason, interrupt });
        assert_eq!(word(&area, CHANNEL_STATUS), CHANNEL_ERROR | CHANNEL_FREE);
        assert_eq!(outside_status(&area), outside_status(&before));
    }
    // Without a completion interrupt asked for.
    let mut area = posted(AREA, header(CLOCK, 0x6, 1), &le(&[0]));
    area[FLAGS..FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
    area[LENGTH..LENGTH + 4].copy_from_slice(&3u32.to_le_bytes());
    let outcome = process(&mut area, &mut s);
    let reason = Refusal::TooShort { length: 3 };
    assert_eq!(
        outcome,
        Outcome::Refused {
            reason,
            interrupt: false
        }
    );
    assert_eq!(counter(&s, "refused"), 5);
    assert_eq!(counter(&s, "clock_messages"), 0);
}

#[test]
fn a_message_filling_the_area_is_served() {
    let mut s = server();
    // RATE_GET's 4 parameters, then padding to the last byte: answered, PROTOCOL_ERROR.
    let args = vec![0u8; AREA - MSG_PAYLOAD];
    let mut area = posted(AREA, header(CLOCK, 0x6, 9), &args);
    let outcome = process(&mut area, &mut s);
    let status = Status::ProtocolError;
    assert_eq!(
        outcome,
        Outcome::Answered {
            status,
            interrupt: true
        }
    );
    assert_eq!(word(&area, LENGTH), 8);
    assert_eq!(word(&area, MSG_PAYLOAD), PROTOCOL_ERROR as u32);
}

#[test]
fn a_free_channel_is_left_alone() {
    let mut s = server();
    for status in [CHANNEL_FREE, CHANNEL_FREE | CHANNEL_ERROR, 0xffff_ffff] {
        let mut area = posted(AREA, header(BASE, 0x0, 1), &[]);
        area[CHANNEL_STATUS..CHANNEL_STATUS + 4].copy_from_slice(&status.to_le_bytes());
        let before = area.clone();
        assert_eq!(process(&mut area, &mut s), Outcome::Idle);
        assert_eq!(area, before);
    }
    assert_eq!(counter(&s, "base_messages"), 0);
    assert_eq!(counter(&s, "refused"), 0);
}

#[test]
fn an_area_too_small_is_not_touched() {
    let mut s = server();
    for size in [0, 4, 8, MSG_PAYLOAD, MIN_AREA - 1] {
        let mut area = vec![0u8; size];
        let outcome = process(&mut area, &mut s);
        let reason = Refusal::AreaTooSmall { size };
        assert_eq!(
            outcome,
            Outcome::Refused {
                reason,
                interrupt: false
            }
        );
        assert!(area.iter().all(|&b| b == 0));
    }
}

#[test]
fn a_reply_larger_than_the_area_is_a_comms_error() {
    let mut s = server();
    // 32 bytes hold a status, not a version after it.
    let mut area = posted(MIN_AREA, header(BASE, 0x0, 3), &[]);
    let outcome = process(&mut area, &mut s);
    let status = Status::CommsError;
    assert_eq!(
        outcome,
        Outcome::Answered {
            status,
            interrupt: true
        }
    );
    assert_eq!(word(&area, LENGTH), 8);
    assert_eq!(word(&area, MSG_HEADER), header(BASE, 0x0, 3));
    assert_eq!(word(&area, MSG_PAYLOAD), COMMS_ERROR as u32);
    assert_eq!(word(&area, CHANNEL_STATUS), CHANNEL_FREE);
    // 36 bytes hold it.
    let mut area = posted(MIN_AREA + 4, header(BASE, 0x0, 3), &[]);
    let status = Status::Success;
    assert_eq!(
        process(&mut area, &mut s),
        Outcome::Answered {
            status,
            interrupt: true
        }
    );
    assert_eq!(word(&area, MSG_PAYLOAD + 4), 0x2_0000);
    // CLOCK_NAME_GET's 68 bytes do not fit 0x40.
    let mut area = posted(0x40, header(CLOCK, 0x8, 3), &le(&[1]));
    process(&mut area, &mut s);
    assert_eq!(word(&area, MSG_PAYLOAD), COMMS_ERROR as u32);
    assert_eq!(counter(&s, "error_replies"), 2);
}

#[test]
fn the_header_is_echoed_whole() {
    let mut s = server();
    // Token 0x3ff and the reserved bits 31:28 set: echoed as they came.
    let raw = header(POWER, 0x5, 0x3ff) | 0xf000_0000;
    let mut area = posted(AREA, raw, &le(&[1]));
    area[FLAGS..FLAGS + 4].copy_from_slice(&0u32.to_le_bytes());
    let status = Status::Success;
    let outcome = process(&mut area, &mut s);
    assert_eq!(
        outcome,
        Outcome::Answered {
            status,
            interrupt: false
        }
    );
    assert_eq!(word(&area, MSG_HEADER), raw);
    assert_eq!(word(&area, FLAGS), 0);
    let h = Header::decode(raw);
    assert_eq!((h.protocol_id, h.message_id, h.token), (POWER, 0x5, 0x3ff));
    assert_eq!(Header::decode(h.encode()), h);
}

#[test]
fn configuration_errors_say_what_to_fix() {
    let clock = |name: &str, rate_hz| ScmiConfig {
        clocks: vec![ClockConfig {
            name: name.into(),
            rate_hz,
            settable: false,
        }],
        ..ScmiConfig::default()
    };
    let err = |c: ScmiConfig| {
        Server::new(c, Recorder::default())
            .err()
            .unwrap()
            .to_string()
    };
    assert_eq!(
        err(clock("", 1)),
        "SCMI clock 0 has an empty name; give it the name the guest should see"
    );
    let long = "x".repeat(MAX_NAME + 1);
    assert!(err(clock(&long, 1)).ends_with("(64 bytes); an SCMI name holds at most 63 bytes"));
    assert!(Server::new(clock(&long[1..], 1), Recorder::default()).is_ok());
    for name in ["tab\there", "caf\u{e9}", "nul\0"] {
        assert!(
            err(clock(name, 1)).contains("only hold printable ASCII"),
            "{name:?}"
        );
    }
    assert!(err(clock("uart", 0)).starts_with("SCMI clock 0 (\"uart\") has a rate of 0 Hz"));
    let power = PowerDomainConfig { name: "pd".into() };
    let many = ScmiConfig {
        power_domains: vec![power; MAX_ENTITIES + 1],
        ..ScmiConfig::default()
    };
    assert_eq!(
        err(many),
        "65536 SCMI power domains were configured; SCMI counts at most 65535"
    );
    let reset = ResetDomainConfig {
        name: "r\u{7f}".into(),
        action: None,
    };
    let bad_reset = ScmiConfig {
        reset_domains: vec![reset],
        ..ScmiConfig::default()
    };
    assert!(err(bad_reset).starts_with("SCMI reset domain 0 is named"));
}

#[test]
fn an_empty_platform_still_answers_discovery() {
    let mut s = Server::new(ScmiConfig::default(), Recorder::default()).unwrap();
    expect_ok(&mut s, CLOCK, 0x1, &[], &[0, 0, 0, 0]);
    expect_ok(&mut s, RESET, 0x1, &[], &[0, 0, 0, 0]);
    expect_ok(&mut s, POWER, 0x1, &[], &[0; 16]);
    expect_status(&mut s, CLOCK, 0x3, &le(&[0]), NOT_FOUND);
}

#[test]
fn counters_print_under_their_names() {
    assert_eq!(
        Counters::NAMES,
        [
            "base_messages",
            "power_messages",
            "clock_messages",
            "reset_messages",
            "unknown_protocol_messages",
            "refused",
            "error_replies",
            "clock_enables",
            "clock_disables",
            "clock_rate_sets",
            "clock_rate_sets_denied",
            "resets_done",
            "resets_acknowledged",
            "power_state_changes",
            "backend_errors",
        ]
    );
    let s = server();
    s.counters().clock_enables.fetch_add(2, Ordering::Relaxed);
    assert_eq!(counter(&s, "clock_enables"), 2);
}

/// The mailbox window driven as Linux's bcm2835 mailbox driver and SCMI mailbox transport
/// drive it.
mod mailbox_window {
    use super::*;
    use crate::bus::MmioDevice;
    use crate::scmi::mailbox::{Interrupt, ScmiMailbox, MAILBOX_SIZE, SHMEM_OFFSET, SHMEM_SIZE};
    use std::sync::atomic::AtomicU64;
    use std::sync::Arc;

    const MAIL0_RD: u64 = 0x00;
    const MAIL0_STA: u64 = 0x18;
    const MAIL0_CNF: u64 = 0x1c;
    const MAIL1_WRT: u64 = 0x20;
    const MAIL1_STA: u64 = 0x38;
    const EMPTY: u32 = 1 << 30;
    const FULL: u32 = 1 << 31;

    #[derive(Default, Clone)]
    struct Raised(Arc<AtomicU64>);

    impl Interrupt for Raised {
        fn raise(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Raised {
        fn count(&self) -> u64 {
            self.0.load(Ordering::Relaxed)
        }
    }

    fn window() -> (ScmiMailbox<Recorder, Raised>, Raised) {
        let irq = Raised::default();
        (ScmiMailbox::new(server(), irq.clone()), irq)
    }

    fn rd(m: &mut ScmiMailbox<Recorder, Raised>, offset: u64) -> u32 {
        let mut b = [0u8; 4];
        m.read(offset, &mut b);
        u32::from_le_bytes(b)
    }

    fn wr(m: &mut ScmiMailbox<Recorder, Raised>, offset: u64, v: u32) {
        m.write(offset, &v.to_le_bytes());
    }

    /// What shmem_tx_prepare writes, word by word as memcpy_toio would, then the doorbell
    /// (its value is whatever the client passed: Linux's SCMI passes a pointer).
    fn post(m: &mut ScmiMailbox<Recorder, Raised>, header: u32, args: &[u8], irq: bool) {
        let area = posted(SHMEM_SIZE as usize, header, args);
        let mut area = area;
        let flags = if irq { INTR_ENABLED } else { 0 };
        area[FLAGS..FLAGS + 4].copy_from_slice(&flags.to_le_bytes());
        for at in (0..MSG_PAYLOAD + args.len()).step_by(4) {
            m.write(SHMEM_OFFSET + at as u64, &area[at..at + 4]);
        }
        wr(m, MAIL1_WRT, 0xdead_beef);
    }

    fn shmem_word(m: &mut ScmiMailbox<Recorder, Raised>, at: usize) -> u32 {
        rd(m, SHMEM_OFFSET + at as u64)
    }

    #[test]
    fn a_message_is_answered_in_the_channel_and_signalled_by_a_reply_word() {
        let (mut m, irq) = window();
        assert_eq!(
            shmem_word(&mut m, CHANNEL_STATUS),
            CHANNEL_FREE,
            "free at start"
        );
        assert_eq!(rd(&mut m, MAIL0_STA), EMPTY);
        assert_eq!(rd(&mut m, MAIL1_STA), EMPTY, "the doorbell is never full");
        wr(&mut m, MAIL0_CNF, 1);
        let h = header(BASE, PROTOCOL_VERSION, 7);
        post(&mut m, h, &[], true);
        assert_eq!(irq.count(), 1);
        assert_eq!(shmem_word(&mut m, CHANNEL_STATUS), CHANNEL_FREE);
        assert_eq!(shmem_word(&mut m, MSG_HEADER), h);
        assert_eq!(shmem_word(&mut m, MSG_PAYLOAD), SUCCESS as u32);
        assert_eq!(shmem_word(&mut m, MSG_PAYLOAD + 4), 0x2_0000, "base v2.0");
        // The guest's handler drains the queue: one word, the header, then EMPTY.
        assert_eq!(rd(&mut m, MAIL0_STA), 1);
        assert_eq!(rd(&mut m, MAIL0_RD), h);
        assert_eq!(rd(&mut m, MAIL0_STA), EMPTY);
        assert_eq!(rd(&mut m, MAIL0_RD), 0, "an empty queue reads 0");
        let c = m.counters();
        assert_eq!(c.doorbells.load(Ordering::Relaxed), 1);
        assert_eq!(c.interrupts.load(Ordering::Relaxed), 1);
        assert_eq!(
            m.server().counters().base_messages.load(Ordering::Relaxed),
            1
        );
    }

    #[test]
    fn polled_messages_and_spurious_doorbells_raise_nothing() {
        let (mut m, irq) = window();
        wr(&mut m, MAIL0_CNF, 1);
        post(&mut m, header(CLOCK, PROTOCOL_VERSION, 1), &[], false);
        assert_eq!(shmem_word(&mut m, MSG_PAYLOAD), SUCCESS as u32, "answered");
        assert_eq!(irq.count(), 0, "the agent polls: no interrupt");
        assert_eq!(rd(&mut m, MAIL0_STA), EMPTY);
        wr(&mut m, MAIL1_WRT, 0);
        assert_eq!(irq.count(), 0);
        assert_eq!(m.counters().spurious_doorbells.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn replies_wait_for_the_interrupt_to_be_enabled_and_the_queue_is_bounded() {
        let (mut m, irq) = window();
        for t in 0..10 {
            post(&mut m, header(BASE, PROTOCOL_VERSION, t), &[], true);
        }
        assert_eq!(irq.count(), 0, "CNF off: nothing raised");
        assert_eq!(rd(&mut m, MAIL0_STA), FULL | 8);
        assert_eq!(m.counters().replies_dropped.load(Ordering::Relaxed), 2);
        wr(&mut m, MAIL0_CNF, 1);
        assert_eq!(irq.count(), 1, "raised once enabled");
        assert_eq!(
            rd(&mut m, MAIL0_RD),
            header(BASE, PROTOCOL_VERSION, 2),
            "oldest kept"
        );
    }

    #[test]
    fn a_reboot_in_place_empties_the_window() {
        let (mut m, irq) = window();
        wr(&mut m, MAIL0_CNF, 1);
        post(&mut m, header(BASE, PROTOCOL_VERSION, 3), &[], true);
        wr(&mut m, MAIL0_CNF, 0);
        post(&mut m, header(BASE, PROTOCOL_VERSION, 4), &[], true);
        assert_ne!(rd(&mut m, MAIL0_STA), EMPTY);
        m.reset();
        assert_eq!(
            rd(&mut m, MAIL0_STA),
            EMPTY,
            "no reply of the old guest waits"
        );
        assert_eq!(shmem_word(&mut m, CHANNEL_STATUS), CHANNEL_FREE);
        assert_eq!(shmem_word(&mut m, MSG_HEADER), 0, "the old message is gone");
        let raised = irq.count();
        wr(&mut m, MAIL0_CNF, 1);
        assert_eq!(irq.count(), raised, "nothing queued to raise");
    }

    /// Hostile accesses: odd sizes, past the channel, into unmapped registers, a posted
    /// length past the channel. The window answers 0, drops writes, counts them, never
    /// panics, and the next good message is served.
    #[test]
    fn hostile_accesses_are_dropped_and_counted() {
        let (mut m, irq) = window();
        let mut three = [0xffu8; 3];
        m.read(0, &mut three);
        assert_eq!(three, [0, 0, 0]);
        m.write(MAIL1_WRT, &[1, 2, 3]);
        let mut w = [0xffu8; 8];
        m.read(SHMEM_OFFSET + SHMEM_SIZE - 4, &mut w);
        assert_eq!(w, [0; 8], "an access across the channel's end");
        m.write(SHMEM_OFFSET + SHMEM_SIZE, &[1, 2, 3, 4]);
        m.write(u64::MAX - 3, &[1, 2, 3, 4]);
        wr(&mut m, 0x40, 5);
        assert_eq!(m.counters().bad_accesses.load(Ordering::Relaxed), 6);
        assert_eq!(rd(&mut m, MAILBOX_SIZE - 4), 0);
        wr(&mut m, MAIL0_CNF, 1);
        // A length past the channel: refused, the channel freed with CHANNEL_ERROR, signalled.
        post(&mut m, header(BASE, PROTOCOL_VERSION, 3), &[], true);
        wr(&mut m, SHMEM_OFFSET + LENGTH as u64, 0);
        wr(&mut m, SHMEM_OFFSET + CHANNEL_STATUS as u64, 0);
        wr(&mut m, SHMEM_OFFSET + LENGTH as u64, 0x1000);
        wr(&mut m, MAIL1_WRT, 0);
        assert_eq!(
            shmem_word(&mut m, CHANNEL_STATUS),
            CHANNEL_ERROR | CHANNEL_FREE
        );
        assert_eq!(irq.count(), 2);
        post(&mut m, header(BASE, PROTOCOL_VERSION, 4), &[], true);
        assert_eq!(shmem_word(&mut m, MSG_PAYLOAD + 4), 0x2_0000);
    }
}

#[test]
fn a_reboot_in_place_gives_the_next_guest_the_platform_as_at_start() {
    let mut s = server();
    // The old guest: a clock off, the settable one changed, a domain off, a reset held.
    expect_ok(&mut s, CLOCK, 0x7, &[0, 0], &[]);
    expect_ok(&mut s, CLOCK, 0x5, &[0, 2, 50_000_123, 0], &[]);
    expect_ok(&mut s, POWER, 0x4, &[0, 0, POWER_OFF], &[]);
    expect_ok(&mut s, RESET, 0x4, &[0, 0b10, 0], &[]);
    let before = counter(&s, "clock_messages");
    s.reset();
    assert_eq!(s.clock_enabled(0), Some(true));
    assert_eq!(s.power_state(0), Some(POWER_ON));
    assert_eq!(s.reset_asserted(0), Some(false));
    // The settable clock was set back on the host, and reads its host rate again.
    let host = 200_000_000u64;
    assert_eq!(
        s.backend().rates.last(),
        Some(&RateCall { clock: 2, hz: host })
    );
    expect_ok(
        &mut s,
        CLOCK,
        0x6,
        &[2],
        &le(&[host as u32, (host >> 32) as u32]),
    );
    // Only what changed is set back: a second reset asks the backend nothing.
    let calls = s.backend().rates.len();
    s.reset();
    assert_eq!(s.backend().rates.len(), calls);
    assert!(counter(&s, "clock_messages") > before, "the counters go on");
}
