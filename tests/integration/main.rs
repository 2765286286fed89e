//! Host-side integration tests of the platvmm binary: bad input must give a one-line error
//! naming the problem, a non-zero exit status, and never a panic. (The end-to-end tests that
//! boot guests run on the emulated board: ci/e2e.sh.)

mod cli;
