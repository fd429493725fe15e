//! What `sinter dev` shows a new user without any devices of their own: a simulated
//! fleet of pumps, and a generated machine-temperature series in NAB's file format.

pub(crate) mod fleet;
pub(crate) mod sample;
