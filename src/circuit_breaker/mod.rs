//! cb
/// x
#[derive(Debug)] pub struct CircuitOpen; impl std::fmt::Display for CircuitOpen { fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result { f.write_str("x") } } impl std::error::Error for CircuitOpen {}
