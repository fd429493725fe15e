//! The commands, one module per noun (`sinter solution ...` is in `solution`).

pub(crate) mod bench;
pub(crate) mod solution;
