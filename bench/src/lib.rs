//! Benchmarks of cipherdm (criterion benches in `benches/`).
