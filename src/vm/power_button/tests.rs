use devices::Bus;

use super::*;
use crate::arch::aarch64::layout::EMULATED_MMIO_BASE;
use crate::hypervisor::fake::{with_context, Call, FakeVm};
use devices::dt::{self, cells_of};

/// GPIOIE, the PL061's interrupt mask register.
const GPIOIE: u64 = 0x410;

fn attach_to(vm: &FakeVm, bus: &mut Bus) -> (Arc<PowerButton>, Vec<GuestNode>) {
    with_context(vm, bus, |ctx| PowerButton::attach(ctx).unwrap())
}

#[test]
fn the_button_is_a_pl061_on_the_bus_with_a_gpio_keys_power_key() {
    let (vm, mut bus) = (FakeVm::default(), Bus::new());
    let (b, nodes) = attach_to(&vm, &mut bus);
    assert_eq!((b.base, b.spi), (EMULATED_MMIO_BASE, 1));
    assert_eq!(vm.calls(), [Call::Irqfd { gsi: 1 }]);
    let names: Vec<&str> = nodes.iter().map(|n| n.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "clock-gpio-apb-pclk",
            &format!("gpio@{:x}", b.base),
            "gpio-keys-power"
        ]
    );
    let cells = |n: &GuestNode, p: &str| cells_of(n.prop(p).unwrap());
    let clock = cells(&nodes[0], "phandle")[0];
    let pl061 = &nodes[1];
    assert_eq!(pl061.strings("compatible"), ["arm,pl061", "arm,primecell"]);
    assert_eq!(cells(pl061, "clocks"), [clock]);
    assert_eq!(pl061.strings("clock-names"), ["apb_pclk"]);
    assert_eq!(cells(pl061, "interrupts"), dt::spi_specifier(1, false));
    let gpio = cells(pl061, "phandle")[0];
    let key = &nodes[2].children[0];
    assert_eq!(key.name, "key-power");
    assert_eq!(cells(key, "linux,code"), [KEY_POWER]);
    assert_eq!(cells(key, "gpios"), [gpio, u32::from(LINE), 0]);
    // The PL061 answers on the bus: its AMBA PeriphID0.
    let mut id = [0u8; 1];
    assert!(bus.read(b.base + 0xfe0, &mut id));
    assert_eq!(id, [0x61]);
}

#[test]
fn the_guest_listens_once_its_driver_enables_the_line_and_a_press_is_released() {
    let (vm, mut bus) = (FakeVm::default(), Bus::new());
    let (b, _) = attach_to(&vm, &mut bus);
    assert!(!b.listening(), "no driver yet");
    // gpio_keys' request: both edges on line 3 (IS=0, IBE=1), then its interrupt enabled.
    assert!(bus.write(b.base + 0x408, &[1 << LINE]));
    assert!(bus.write(b.base + GPIOIE, &[1 << LINE]));
    assert!(b.listening());
    b.press().unwrap();
    assert_eq!(b.presses(), 1);
    let data = |bus: &Bus| {
        let mut v = [0u8; 1];
        // GPIODATA with the line's mask bit in the address.
        bus.read(b.base + (4u64 << LINE), &mut v);
        v[0]
    };
    assert_eq!(data(&bus), 1 << LINE, "pressed: the line reads high");
    b.release();
    assert_eq!(data(&bus), 0, "released: the line reads low");
}
