//! Nothing: this package holds benches only (see Cargo.toml).
