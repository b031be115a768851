//! The profiles shipped in `profiles/`, built into the binary so that `doudi feeds check
//! --profile yibao-settlement` and `doudi gen --native` work without the source tree.

/// `(name, TOML text)` of every shipped profile.
pub const PROFILES: &[(&str, &str)] = &[];

/// A shipped profile's text by name.
pub fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A shipped profile, read and checked.
pub fn profile(name: &str) -> Option<Result<crate::Profile, crate::ProfileError>> {
    text(name)
        .map(|t| crate::Profile::parse(t, std::path::Path::new(&format!("profiles/{name}.toml"))))
}
