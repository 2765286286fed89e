//! What platvmm reads from the host on the user's word: the files the user names ([`input`]),
//! DTB fragments ([`overlay`]), and the controlling terminal ([`terminal`]).

pub mod input;
pub mod overlay;
#[cfg(test)]
pub mod scratch;
#[cfg(target_arch = "aarch64")]
pub mod terminal;
