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
    if let Some(c) = h.strings("compatible").and_then(|cs| {
        cs.into_iter()
            .find(|c| DMA_COMPATIBLES.iter().any(|d| c.contains(d)))
    }) {
        return Some(format!("compatible \"{c}\""));
    }
    ["iommus", "dmas", "dma-coherent", "dma-ranges"]
        .iter()
        .find(|p| h.prop(p).is_some())
        .map(|p| format!("has '{p}'"))
}
