//! Nightly cross-checks of the register against full department snapshots (placeholder: being built).
