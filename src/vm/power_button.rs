//! The guest's power button, as Firecracker gives aarch64 guests one: an emulated PL061 GPIO
//! controller ([`devices::gpio::Pl061`]) on a page of the emulated-device area with an SPI
//! from the allocator (an irqfd, edge: the model pulses it), its `apb_pclk` a fixed clock, and
//! a `gpio-keys` node whose one key, KEY_POWER, is the PL061's line 3. A stock Linux guest
//! (gpio-pl061 and gpio_keys; systemd-logind, or any reader of the key) powers off cleanly.
//!
//! A press raises the line; a timer lowers it [`PRESS`] later (gpio_keys debounces and then
//! reads the line's level, so press and release must be apart). SIGTERM and the API's
//! `vm.power-button` press it. [`PowerButton::listening`]: the guest's driver enabled the
//! line's interrupt (a guest without the drivers never does: SIGTERM then stops at once).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use devices::dt::GuestNode;
use devices::gpio::{power_button_nodes, Pl061};
use event_manager::{EventOps, Events, MutEventSubscriber};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::timerfd::TimerFd;

use crate::hypervisor::{kvm_err, AttachContext};
use crate::resources::{Exhausted, Resources};
use crate::vm::error::{host_err, Error};

pub use devices::gpio::{KEY_POWER, POWER_LINE as LINE};
/// How long a press holds the line high.
pub const PRESS: Duration = Duration::from_millis(100);

/// The button: the PL061 on the bus and the timer that releases a press.
pub struct PowerButton {
    gpio: Arc<Mutex<Pl061>>,
    release: Mutex<TimerFd>,
    /// Guest address of the PL061's registers.
    pub base: u64,
    pub spi: u32,
    presses: AtomicU64,
}

impl PowerButton {
    /// The PL061 on a page and an SPI from the allocators (after the virtio devices, so their
    /// addresses and SPIs do not move), its irqfd, and its guest nodes: the clock, the
    /// controller and `gpio-keys`.
    pub fn attach(t: &mut AttachContext<'_>) -> Result<(Arc<Self>, Vec<GuestNode>), Error> {
        let Placed { base, spi, nodes } = place(t.res, t.page)?;
        let irq = EventFd::new(libc::EFD_NONBLOCK).map_err(host_err("eventfd"))?;
        t.vm.register_irqfd(&irq, spi)
            .map_err(kvm_err("cannot wire the power button's interrupt (irqfd)"))?;
        let gpio = Arc::new(Mutex::new(Pl061::new(Box::new(move || {
            if let Err(e) = irq.write(1) {
                log::warn!("power button: cannot raise its interrupt: {e}");
            }
        }))));
        t.bus.insert(base, Pl061::SIZE, gpio.clone())?;
        let release = TimerFd::new().map_err(|e| {
            host_err("cannot create the power button's timer")(std::io::Error::from(e))
        })?;
        log::info!("power button: PL061 at guest {base:#x}, SPI {spi}, line {LINE}");
        let button = Self {
            gpio,
            release: Mutex::new(release),
            base,
            spi,
            presses: AtomicU64::new(0),
        };
        Ok((Arc::new(button), nodes))
    }

    /// Whether the guest's GPIO driver enabled the key line's interrupt.
    pub fn listening(&self) -> bool {
        self.gpio().listening(LINE)
    }

    /// Presses the button: the line goes high, the release timer starts.
    pub fn press(&self) -> std::io::Result<()> {
        self.presses.fetch_add(1, Ordering::Relaxed);
        self.gpio().set_input(LINE, true);
        let mut t = self.release.lock().unwrap_or_else(|p| p.into_inner());
        t.reset(PRESS, None).map_err(std::io::Error::from)
    }

    /// How many times it was pressed.
    pub fn presses(&self) -> u64 {
        self.presses.load(Ordering::Relaxed)
    }

    fn gpio(&self) -> std::sync::MutexGuard<'_, Pl061> {
        self.gpio.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The release timer fired: the line goes low.
    fn release(&self) {
        let _ = self
            .release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .wait();
        self.gpio().set_input(LINE, false);
    }
}

/// Releases the button when its timer fires (an event-loop subscriber).
pub struct ReleaseWatcher(pub Arc<PowerButton>);

impl MutEventSubscriber for ReleaseWatcher {
    fn process(&mut self, _events: Events, _ops: &mut EventOps) {
        self.0.release();
    }

    fn init(&mut self, ops: &mut EventOps) {
        let fd = self
            .0
            .release
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_raw_fd();
        if let Err(e) = ops.add(Events::new_raw(fd, EventSet::IN)) {
            log::error!("cannot watch the power button's timer: {e:?}");
        }
    }
}

/// Where the button goes and its guest nodes.
pub struct Placed {
    pub base: u64,
    pub spi: u32,
    pub nodes: Vec<GuestNode>,
}

/// The button's page, SPI and two phandles from `res` (pages of `page` bytes), and its guest
/// nodes: what setup attaches and `preview-dt` shows.
pub fn place(res: &mut Resources, page: u64) -> Result<Placed, Exhausted> {
    let size = page.max(Pl061::SIZE);
    let base = res.emulated(size, size)?;
    let spi = res.emulated_spi()?;
    let clock = res.phandle()?;
    let gpio = res.phandle()?;
    let nodes = power_button_nodes(base, spi, clock, gpio);
    Ok(Placed { base, spi, nodes })
}

#[cfg(test)]
mod tests;
