//! The commands, one module per noun (`sinter solution ...` is in `solution`).

pub(crate) mod assets;
pub(crate) mod bench;
pub(crate) mod bench_e2e;
pub(crate) mod client;
pub(crate) mod nab;
pub(crate) mod publish;
pub(crate) mod recs;
pub(crate) mod replay;
pub(crate) mod sample;
pub(crate) mod simulate;
pub(crate) mod solution;
