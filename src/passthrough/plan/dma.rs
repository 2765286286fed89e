//! The DMA hint: whether a passed-through device looks like a DMA master (the guest then
//! programs it with guest-physical addresses).

use devices::guest_node::hostdt::HostNode;

/// Why a host node looks like a DMA master, if it does.
pub fn looks_dma_capable(h: &HostNode) -> Option<String> {
    const DMA_COMPATIBLES: &[&str] = &[
        "virtio,mmio",
        "ahci",
        "xhci",
        "ehci",
        "ohci",
        "dwc3",
        "sdhci",
        "mmc",
        "ethernet",
        "gmac",
        "dwmac",
        "sec-v",
        "caam",
        "pcie",
        "dma",
    ];
    // The NXP SEC's secure monitor (the i.MX SNVS) and its RTC and power-key cells share the
    // "fsl,sec-v4.0" prefix but move no data.
    const NOT_DMA: &[&str] = &["sec-v4.0-mon", "sec-v4.0-pwrkey"];
    if let Some(c) = h.strings("compatible").and_then(|cs| {
        cs.into_iter().find(|c| {
            DMA_COMPATIBLES.iter().any(|d| c.contains(d)) && !NOT_DMA.iter().any(|n| c.contains(n))
        })
    }) {
        return Some(format!("compatible \"{c}\""));
    }
    ["iommus", "dmas", "dma-coherent", "dma-ranges"]
        .iter()
        .find(|p| h.prop(p).is_some())
        .map(|p| format!("has '{p}'"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(compatible: &str) -> HostNode {
        HostNode {
            name: "n@0".into(),
            props: vec![("compatible".into(), format!("{compatible}\0").into_bytes())],
            children: vec![],
        }
    }

    #[test]
    fn the_sec_is_a_dma_master_its_secure_monitor_cells_are_not() {
        assert!(looks_dma_capable(&node("fsl,sec-v4.0-job-ring")).is_some());
        assert!(looks_dma_capable(&node("fsl,sec-v4.0")).is_some());
        for c in [
            "fsl,sec-v4.0-mon",
            "fsl,sec-v4.0-mon-rtc-lp",
            "fsl,sec-v4.0-pwrkey",
        ] {
            assert_eq!(looks_dma_capable(&node(c)), None, "{c}");
        }
    }
}
