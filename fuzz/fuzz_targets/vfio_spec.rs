//! The `--vfio-platform PATH[,OPTS]` parser and the option parsers under it (clock-rates=,
//! mac=, fixed-link=, compatible=, handler=) and `--memory`'s size parser, on any UTF-8.
//! What they accept must be what the option means: a unicast MAC, a speed of the list, rates
//! above 0 Hz, whole KiB; and a spec round-trips through the option text it would be written
//! as. Nothing may panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use platvmm::config::{
    parse_clock_rates, parse_compatible, parse_fixed_link, parse_handler, parse_mac, parse_size,
    parse_vfio, VfioSpec,
};

/// The spec written back as an option string.
fn unparse(s: &VfioSpec) -> String {
    let mut out = s.path.to_string_lossy().into_owned();
    if let Some(c) = &s.compatible {
        out += &format!(",compatible={}", c.join(";"));
    }
    if let Some(h) = &s.handler {
        out += &format!(",handler={h}");
    }
    if !s.clock_rates.is_empty() {
        let r: Vec<String> = s
            .clock_rates
            .iter()
            .map(|r| format!("{}:{}", r.name, r.hz))
            .collect();
        out += &format!(",clock-rates={}", r.join(";"));
    }
    if let Some(m) = s.mac {
        let m: Vec<String> = m.iter().map(|b| format!("{b:02x}")).collect();
        out += &format!(",mac={}", m.join(":"));
    }
    if let Some(f) = s.fixed_link {
        let d = if f.full_duplex { "full" } else { "half" };
        out += &format!(",fixed-link={}:{d}", f.speed);
    }
    if let Some(o) = &s.overlay {
        out += &format!(",overlay={}", o.to_string_lossy());
    }
    if s.group {
        out += ",group=on";
    }
    out
}

/// Whether the written-back form can be parsed back unambiguously: values holding the
/// characters the syntax uses (',' '=' ';' ':') are not escaped by it.
fn round_trips(s: &VfioSpec) -> bool {
    let path = s.path.to_string_lossy();
    !path.contains(',')
        && s.overlay
            .as_ref()
            .is_none_or(|o| !o.to_string_lossy().contains([',', '=']))
        && s.compatible.as_ref().is_none_or(|c| {
            c.iter()
                .all(|x| !x.contains('=') && x.trim() == x && !x.contains(';'))
        })
        && s.clock_rates
            .iter()
            .all(|r| !r.name.contains([',', '=', ';', ':']) && r.name.trim() == r.name)
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(spec) = parse_vfio(s) {
        if let Some(m) = spec.mac {
            assert_eq!(m[0] & 1, 0, "multicast MAC accepted: {s:?}");
        }
        if let Some(f) = spec.fixed_link {
            assert!([10, 100, 1000, 2500, 10000].contains(&f.speed), "{s:?}");
        }
        assert!(spec.clock_rates.iter().all(|r| r.hz > 0), "{s:?}");
        if round_trips(&spec) {
            let again = unparse(&spec);
            assert_eq!(parse_vfio(&again).as_ref(), Ok(&spec), "{s:?} → {again:?}");
        }
    }
    let _ = parse_clock_rates(s);
    let _ = parse_mac(s);
    let _ = parse_fixed_link(s);
    let _ = parse_compatible(s);
    let _ = parse_handler(s);
    if let Ok(n) = parse_size(s) {
        assert_eq!(n % 1024, 0, "{s:?}: not whole KiB");
    }
});
