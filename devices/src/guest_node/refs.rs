//! Properties that refer to other nodes: recognised by name, decoded with the provider's
//! `#…-cells`, and sorted by what the reference stands for, so that the property policy can
//! keep, translate or drop each one (and its `…-names` companion, and the settings a binding
//! makes depend on it, [`depends_on`]) with a reason.
//!
//! A property is a reference when the DT specification or Linux's supplier list says so
//! (`clocks`, `resets`, `dmas`, `phys`, `*-supply`, `*-gpios`, `pinctrl-N`...), when its name
//! ends like one (`…-handle`, `…syscon`, `…-grf`), or when upstream bindings type a vendor
//! property as a phandle ([`vendor::VENDOR_REFS`], generated from them).

mod vendor;

use crate::dt::whole_cells;

/// What a reference stands for: decides the advice given when it is dropped and where a
/// provider could come from (the guest's fixed clocks today; a system controller later).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefKind {
    Clock,
    Reset,
    PowerDomain,
    Dma,
    Phy,
    Gpio,
    Pinctrl,
    Supply,
    Iommu,
    Interrupt,
    Nvmem,
    MemoryRegion,
    Interconnect,
    Mailbox,
    Pwm,
    /// A node inside the device (a MAC's `phy-handle` to its own PHY) or anything else.
    Other,
}

/// A reference property: its kind and how its entries are laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefProp {
    pub kind: RefKind,
    pub layout: Layout,
}

/// How a reference property's cells split into entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// `<&provider args...>` entries, the provider's `#…-cells` (this name) giving how many
    /// args.
    Cells(&'static str),
    /// Phandles only (`pinctrl-0`, `*-supply`, `memory-region`, `syscon`...).
    Phandles,
    /// A map or a layout this code does not decode (`iommu-map`, `interrupt-map`, vendor
    /// references): one cell is read as one phandle, anything longer is never kept.
    Opaque,
}

const fn r(kind: RefKind, layout: Layout) -> RefProp {
    RefProp { kind, layout }
}

/// The references known by exact name.
const NAMED: &[(&str, RefProp)] = {
    use Layout::{Cells, Opaque, Phandles};
    use RefKind::*;
    &[
        ("clocks", r(Clock, Cells("#clock-cells"))),
        ("assigned-clocks", r(Clock, Cells("#clock-cells"))),
        ("assigned-clock-parents", r(Clock, Cells("#clock-cells"))),
        ("resets", r(Reset, Cells("#reset-cells"))),
        (
            "power-domains",
            r(PowerDomain, Cells("#power-domain-cells")),
        ),
        ("dmas", r(Dma, Cells("#dma-cells"))),
        ("phys", r(Phy, Cells("#phy-cells"))),
        ("usb-phy", r(Phy, Phandles)),
        ("gpios", r(Gpio, Cells("#gpio-cells"))),
        ("gpio", r(Gpio, Cells("#gpio-cells"))),
        ("iommus", r(Iommu, Cells("#iommu-cells"))),
        ("iommu-map", r(Iommu, Opaque)),
        ("msi-parent", r(Interrupt, Cells("#msi-cells"))),
        ("msi-map", r(Interrupt, Opaque)),
        ("interrupt-parent", r(Interrupt, Phandles)),
        (
            "interrupts-extended",
            r(Interrupt, Cells("#interrupt-cells")),
        ),
        ("interrupt-map", r(Interrupt, Opaque)),
        ("wakeup-parent", r(Interrupt, Phandles)),
        ("nvmem-cells", r(Nvmem, Phandles)),
        ("nvmem", r(Nvmem, Phandles)),
        ("memory-region", r(MemoryRegion, Phandles)),
        ("sram", r(MemoryRegion, Phandles)),
        (
            "interconnects",
            r(Interconnect, Cells("#interconnect-cells")),
        ),
        ("mboxes", r(Mailbox, Cells("#mbox-cells"))),
        ("pwms", r(Pwm, Cells("#pwm-cells"))),
        ("io-channels", r(Other, Cells("#io-channel-cells"))),
        ("io-backends", r(Other, Cells("#io-backend-cells"))),
        ("hwlocks", r(Other, Cells("#hwlock-cells"))),
        ("mux-controls", r(Other, Cells("#mux-control-cells"))),
        ("mux-states", r(Other, Cells("#mux-state-cells"))),
        ("sound-dai", r(Other, Cells("#sound-dai-cells"))),
        ("thermal-sensors", r(Other, Cells("#thermal-sensor-cells"))),
        (
            "access-controllers",
            r(Other, Cells("#access-controller-cells")),
        ),
        ("operating-points-v2", r(Other, Phandles)),
        ("required-opps", r(Other, Phandles)),
        ("syscon", r(Other, Phandles)),
        ("extcon", r(Other, Phandles)),
        ("phy", r(Other, Phandles)),
        ("phy-device", r(Other, Phandles)),
        ("remote-endpoint", r(Other, Phandles)),
        ("companion", r(Other, Phandles)),
        ("ptp-timer", r(Other, Phandles)),
        ("sfp", r(Other, Phandles)),
        ("leds", r(Other, Phandles)),
        ("backlight", r(Other, Phandles)),
        ("panel", r(Other, Phandles)),
        ("power-supplies", r(Other, Phandles)),
        ("post-init-providers", r(Other, Phandles)),
        ("cooling-device", r(Other, Opaque)),
        ("mmc-pwrseq", r(Other, Phandles)),
        ("ddc-i2c-bus", r(Other, Phandles)),
        ("i2c-bus", r(Other, Phandles)),
        ("nand-ecc-engine", r(Other, Phandles)),
        ("next-level-cache", r(Other, Phandles)),
        ("cpu", r(Other, Phandles)),
        ("secure-monitor", r(Other, Phandles)),
        ("peer-hub", r(Other, Phandles)),
        ("mdio-parent-bus", r(Other, Phandles)),
        ("regmap", r(Other, Phandles)),
        ("devfreq", r(Other, Phandles)),
        ("monitored-battery", r(Other, Phandles)),
    ]
};

/// The reference property `name` is, if it is one.
pub fn reference(name: &str) -> Option<RefProp> {
    use Layout::{Cells, Opaque, Phandles};
    if let Some((_, p)) = NAMED.iter().find(|(n, _)| *n == name) {
        return Some(*p);
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if name.strip_prefix("pinctrl-").is_some_and(digits) {
        return Some(r(RefKind::Pinctrl, Phandles));
    }
    if name.ends_with("-supply") {
        return Some(r(RefKind::Supply, Phandles));
    }
    if (name.ends_with("-gpios") || name.ends_with("-gpio")) && !name.ends_with(",nr-gpios") {
        return Some(r(RefKind::Gpio, Cells("#gpio-cells")));
    }
    if name.ends_with("-handle") || name.ends_with("-phandle") {
        return Some(r(RefKind::Other, Phandles));
    }
    if vendor::VENDOR_PHANDLE_LISTS.binary_search(&name).is_ok() {
        return Some(r(RefKind::Other, Phandles));
    }
    let vendor = vendor::VENDOR_REFS.binary_search(&name).is_ok();
    let refish = name.ends_with("syscon") || name.ends_with("-grf") || name.ends_with(",grf");
    (vendor || refish).then_some(r(RefKind::Other, Opaque))
}

/// The reference property a `…-names` (or rates) property goes with, if `name` is one: it is
/// dropped when that reference is.
pub fn companion_of(name: &str) -> Option<&'static str> {
    Some(match name {
        "clock-names" => "clocks",
        "assigned-clock-rates" | "assigned-clock-rates-u64" => "assigned-clocks",
        "reset-names" => "resets",
        "power-domain-names" => "power-domains",
        "dma-names" => "dmas",
        "phy-names" => "phys",
        "pinctrl-names" => "pinctrl-0",
        "nvmem-cell-names" => "nvmem-cells",
        "nvmem-names" => "nvmem",
        "memory-region-names" => "memory-region",
        "interconnect-names" => "interconnects",
        "mbox-names" => "mboxes",
        "pwm-names" => "pwms",
        "io-channel-names" => "io-channels",
        "hwlock-names" => "hwlocks",
        "mux-control-names" => "mux-controls",
        "mux-state-names" => "mux-states",
        "iommu-names" => "iommus",
        "pcs-handle-names" => "pcs-handle",
        _ => return None,
    })
}

/// The companions of reference `name` (its `…-names`) among `props`.
pub fn companions<'a>(name: &str, props: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    props.filter(|p| companion_of(p) == Some(name)).collect()
}

/// Plain settings that a binding makes depend on a reference (`dependencies:` or
/// `dependentRequired:` in the Linux 6.12 bindings), as (dependent, reference): they describe
/// what the reference points at, so they go when it is dropped (the binding rejects them
/// alone). Unlike a `…-names` companion, a dependent stays when its reference was never there.
const DEPENDENTS: &[(&str, &str)] = &[
    // net/snps,dwmac.yaml: polarity of the PHY reset line.
    ("snps,reset-active-low", "snps,reset-gpio"),
    // net/snps,dwmac.yaml: timing of the PHY reset line.
    ("snps,reset-delays-us", "snps,reset-gpio"),
    // usb/mediatek,mtk-xhci.yaml, usb/mediatek,mtu3.yaml: wakeup goes through that syscon.
    ("wakeup-source", "mediatek,syscon-wakeup"),
    // mmc/mmc-controller.yaml: debounce of the card-detect GPIO.
    ("cd-debounce-delay-ms", "cd-gpios"),
    // ufs/ufs-common.yaml: the frequency range of each clock (not when the clocks are
    // rewritten: see `Copier`).
    ("freq-table-hz", "clocks"),
    // power/supply/gpio-charger.yaml: the current limit of each state of those GPIOs.
    ("charge-current-limit-mapping", "charge-current-limit-gpios"),
    // input/gpio-keys.yaml: the value the key's GPIO reports.
    ("linux,input-value", "gpios"),
    // net/bluetooth/brcm,bluetooth.yaml: autobaud needs the shutdown GPIO to reset the chip.
    ("brcm,requires-autobaud-mode", "shutdown-gpios"),
    // regulator/maxim,max8997.yaml: DVS by the shared DVS GPIOs, one setting per buck.
    (
        "max8997,pmic-buck1-uses-gpio-dvs",
        "max8997,pmic-buck125-dvs-gpios",
    ),
    (
        "max8997,pmic-buck2-uses-gpio-dvs",
        "max8997,pmic-buck125-dvs-gpios",
    ),
    (
        "max8997,pmic-buck5-uses-gpio-dvs",
        "max8997,pmic-buck125-dvs-gpios",
    ),
    // mfd/samsung,s5m8767.yaml: DVS voltages and their use by the DVS GPIOs, per buck.
    (
        "s5m8767,pmic-buck2-dvs-voltage",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
    (
        "s5m8767,pmic-buck3-dvs-voltage",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
    (
        "s5m8767,pmic-buck4-dvs-voltage",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
    (
        "s5m8767,pmic-buck2-uses-gpio-dvs",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
    (
        "s5m8767,pmic-buck3-uses-gpio-dvs",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
    (
        "s5m8767,pmic-buck4-uses-gpio-dvs",
        "s5m8767,pmic-buck-dvs-gpios",
    ),
];

/// The references that property `name` depends on (none for almost every property): it is
/// dropped when one of them was there and is dropped.
pub fn depends_on(name: &str) -> impl Iterator<Item = &'static str> + '_ {
    DEPENDENTS
        .iter()
        .filter(move |(d, _)| *d == name)
        .map(|(_, r)| *r)
}

/// The dependents of reference `name` among `props`.
pub fn dependents<'a>(name: &str, props: impl Iterator<Item = &'a str>) -> Vec<&'a str> {
    props.filter(|p| depends_on(p).any(|r| r == name)).collect()
}

/// One entry of a reference property: the provider's phandle and the specifier cells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub phandle: u32,
    pub args: Vec<u32>,
}

/// The entries of reference property `value` laid out as `layout`, the number of args of a
/// `Cells` provider told by `provider_cells(phandle)` (its `#…-cells`; an unknown provider
/// counts none). `None` when the value does not decode (an opaque layout, a ragged length,
/// a provider whose args run past the end).
pub fn decode(
    value: &[u8],
    layout: Layout,
    provider_cells: &dyn Fn(u32, &str) -> Option<u32>,
) -> Option<Vec<Entry>> {
    let c = whole_cells(value)?;
    match layout {
        Layout::Opaque if c.len() == 1 => Some(vec![Entry {
            phandle: c[0],
            args: Vec::new(),
        }]),
        Layout::Opaque => None,
        Layout::Phandles => Some(
            c.into_iter()
                .map(|phandle| Entry {
                    phandle,
                    args: Vec::new(),
                })
                .collect(),
        ),
        Layout::Cells(name) => {
            let mut out = Vec::new();
            let mut i = 0;
            while i < c.len() {
                let phandle = c[i];
                let n = provider_cells(phandle, name).unwrap_or(0) as usize;
                let args = c.get(i + 1..i + 1 + n)?.to_vec();
                out.push(Entry { phandle, args });
                i += 1 + n;
            }
            Some(out)
        }
    }
}

/// The cells of `entries` with each phandle passed through `map` (none stay unmapped).
pub fn encode(entries: &[Entry], map: &dyn Fn(u32) -> Option<u32>) -> Option<Vec<u8>> {
    let mut v = Vec::new();
    for e in entries {
        v.extend(map(e.phandle)?.to_be_bytes());
        e.args.iter().for_each(|a| v.extend(a.to_be_bytes()));
    }
    Some(v)
}

/// What the host must do for a dependency the guest loses, by the dropped property.
pub fn drop_advice(name: &str, kind: RefKind) -> &'static str {
    match kind {
        RefKind::Reset => {
            "the guest cannot reset it; the host must have taken it out of reset, and platvmm \
             never resets it either"
        }
        RefKind::PowerDomain => {
            "the host must keep its power domain on while VFIO holds the device"
        }
        RefKind::Iommu => {
            "DMA goes through the host's IOMMU (or identity-mapped RAM in no-IOMMU mode)"
        }
        RefKind::Dma => {
            "the host's DMA engine stays with the host: pass the DMA controller in the same VM \
             to keep it, or the guest driver must work without it"
        }
        RefKind::Phy => "the host must have powered and configured the PHY",
        RefKind::Pinctrl => "the pins keep the host's configuration",
        RefKind::Supply => "the host must keep the regulator on",
        RefKind::Gpio => "the GPIO lines stay with the host",
        RefKind::Clock => "the host keeps the clock running",
        RefKind::Interrupt if name == "interrupts" || name == "interrupts-extended" => {
            "a host interrupt line that is not one of this VFIO device's: pass the device it \
             belongs to"
        }
        _ => "refers to a host node outside the passed-through device",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vendor_list_is_sorted_for_binary_search() {
        for list in [vendor::VENDOR_PHANDLE_LISTS, vendor::VENDOR_REFS] {
            assert!(list.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(vendor::VENDOR_PHANDLE_LISTS.len() + vendor::VENDOR_REFS.len() > 200);
        assert!(vendor::VENDOR_PHANDLE_LISTS
            .iter()
            .all(|n| vendor::VENDOR_REFS.binary_search(n).is_err()));
    }

    #[test]
    fn recognises_references_by_name() {
        let k = |n: &str| reference(n).map(|p| p.kind);
        assert_eq!(k("clocks"), Some(RefKind::Clock));
        assert_eq!(k("pinctrl-0"), Some(RefKind::Pinctrl));
        assert_eq!(k("pinctrl-names"), None, "a companion, not a reference");
        assert_eq!(k("pinctrl-"), None);
        assert_eq!(k("vmmc-supply"), Some(RefKind::Supply));
        assert_eq!(k("cd-gpios"), Some(RefKind::Gpio));
        assert_eq!(k("snps,reset-gpio"), Some(RefKind::Gpio));
        assert_eq!(k("rockchip,grf"), Some(RefKind::Other));
        assert_eq!(k("fsl,usbphy"), Some(RefKind::Other), "from the bindings");
        assert_eq!(k("altr,sysmgr-syscon"), Some(RefKind::Other));
        assert_eq!(k("phy-handle"), Some(RefKind::Other));
        // A vendor list of bare phandles decodes entry by entry; one with arguments does not.
        let layout = |n: &str| reference(n).map(|p| p.layout);
        assert_eq!(layout("fsl,fman-ports"), Some(Layout::Phandles));
        assert_eq!(layout("mediatek,gce-client-reg"), Some(Layout::Opaque));
        // Plain data stays data.
        for n in [
            "#dma-cells",
            "bus-width",
            "max-frequency",
            "dma-channels",
            "snps,dis-u2-freeclk-exists-quirk",
            "fsl,num-tx-queues",
            "ngpios",
        ] {
            assert_eq!(reference(n), None, "{n}");
        }
    }

    #[test]
    fn companions() {
        assert_eq!(companion_of("clock-names"), Some("clocks"));
        assert_eq!(companion_of("dma-names"), Some("dmas"));
        assert_eq!(companion_of("pcs-handle-names"), Some("pcs-handle"));
        assert_eq!(companion_of("reg-names"), None);
        assert_eq!(companion_of("interrupt-names"), None);
    }

    #[test]
    fn dependents_are_plain_settings_of_references() {
        for (d, r) in DEPENDENTS {
            assert!(reference(r).is_some(), "{r} is not a reference");
            assert!(reference(d).is_none(), "{d} is a reference");
            assert!(companion_of(d).is_none(), "{d} is a companion");
        }
        assert_eq!(
            depends_on("snps,reset-delays-us").collect::<Vec<_>>(),
            ["snps,reset-gpio"]
        );
        assert_eq!(depends_on("bus-width").count(), 0);
        let props = ["snps,reset-gpio", "snps,reset-active-low", "phy-mode"];
        assert_eq!(
            dependents("snps,reset-gpio", props.into_iter()),
            ["snps,reset-active-low"]
        );
        assert!(dependents("phy-handle", props.into_iter()).is_empty());
    }

    #[test]
    fn decodes_with_each_providers_cells() {
        // dmas = <&edma 1 2>, <&pdma 7>: providers with 2 and 1 #dma-cells.
        let v: Vec<u8> = [5u32, 1, 2, 9, 7]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        let cells = |ph: u32, name: &str| {
            assert_eq!(name, "#dma-cells");
            Some(if ph == 5 { 2 } else { 1 })
        };
        let e = decode(&v, Layout::Cells("#dma-cells"), &cells).unwrap();
        assert_eq!(
            e,
            [
                Entry {
                    phandle: 5,
                    args: vec![1, 2]
                },
                Entry {
                    phandle: 9,
                    args: vec![7]
                }
            ]
        );
        let back = encode(&e, &|ph| Some(ph + 100)).unwrap();
        let want: Vec<u8> = [105u32, 1, 2, 109, 7]
            .iter()
            .flat_map(|c| c.to_be_bytes())
            .collect();
        assert_eq!(back, want);
        assert!(encode(&e, &|ph| (ph == 5).then_some(1)).is_none());
        // Args running past the end, a ragged value, an opaque layout: no entries.
        assert!(decode(&v[..16], Layout::Cells("#dma-cells"), &cells).is_none());
        assert!(decode(&v[..3], Layout::Phandles, &cells).is_none());
        assert!(decode(&v, Layout::Opaque, &cells).is_none());
        assert_eq!(
            decode(&v[..4], Layout::Opaque, &cells).unwrap()[0].phandle,
            5
        );
    }
}
