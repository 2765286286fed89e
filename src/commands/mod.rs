//! The subcommands that do not run a VM: `list`, `bind`/`unbind`, `inspect`, `preview-dt`, and
//! `ctl`, the client of a running VM's API socket.
//! `inspect` and `preview-dt` plan with `passthrough::plan`, exactly as setup does.

pub mod bind;
pub mod ctl;
pub mod inspect;
pub mod list;
pub mod preview;
