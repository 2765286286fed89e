//! platvmm: a virtual machine monitor for aarch64 KVM guests whose purpose is handing host
//! platform devices to the guest through vfio-platform. See docs/ARCHITECTURE.md.
//!
//! Config flows one way: the command line (the binary's `cli`, the only user of clap's
//! structs) → [`config`] → the VM ([`vm`]) → its devices. Layers, top to bottom (a module
//! imports only from layers below it, so nothing imports in a circle):
//! - [`vm`]: prepare (checks before KVM), builder (setup and teardown order), device manager,
//!   event loop, console, errors, the running VM's control; [`commands`]: list, bind/unbind,
//!   inspect, preview-dt, ctl;
//! - [`api`]: the API socket (HTTP/1.1 + JSON), its routes and server;
//! - [`vstate`]: vCPU threads and exit handling;
//! - [`passthrough`] (probe → open → plan → attach), [`virtio`] (disks opened, devices
//!   attached);
//! - [`hypervisor`]: the VM operations and the context every attach path gets;
//! - [`memory`] (guest RAM, identity-mapped RAM), [`resources`] (the allocators),
//!   [`sandbox`] (privilege drop, seccomp);
//! - [`config`], [`stats`] (start-up steps, exit counters, the printer), [`host`] (files the
//!   user names, terminal), [`arch`].

pub mod api;
pub mod arch;
pub mod commands;
pub mod config;
pub mod host;
pub mod hypervisor;
pub mod memory;
pub mod passthrough;
pub mod resources;
pub mod sandbox;
pub mod stats;
pub mod virtio;
pub mod vm;
pub mod vstate;
