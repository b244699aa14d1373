//! The `anju` binary.
fn main() {}
