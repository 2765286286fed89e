//! The sandbox platvmm enters once every fd is open: the privilege drop ([`jail`]) and the
//! per-thread seccomp filters ([`seccomp`]).

pub mod jail;
pub mod seccomp;
