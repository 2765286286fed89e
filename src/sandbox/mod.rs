//! The sandbox platvmm enters once every fd is open: the privilege drop ([`jail`]) and the
//! per-thread seccomp filters ([`seccomp`]) of the per-thread allowlists ([`allowlist`]).

pub mod allowlist;
pub mod jail;
pub mod seccomp;
