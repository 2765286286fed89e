//! The subcommands that do not run a VM: `list`, `bind`/`unbind`, `inspect`, `preview-dt`.
//! `inspect` and `preview-dt` plan with `passthrough::plan`, exactly as setup does.

pub mod bind;
pub mod inspect;
pub mod list;
pub mod preview;
