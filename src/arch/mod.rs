//! Architecture support. platvmm runs aarch64 guests on aarch64 hosts; the pure parts (memory
//! map, Image header, device tree) build everywhere so they are unit-tested on any host.

pub mod aarch64;
