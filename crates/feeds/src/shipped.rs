//! The profiles shipped in `profiles/`, built into the binary so that `doudi feeds check
//! --profile yibao-settlement` and `doudi gen --native` work without the source tree.

/// `(name, TOML text)` of every shipped profile.
pub const PROFILES: &[(&str, &str)] = &[
    (
        "yibao-settlement",
        include_str!("../../../profiles/yibao-settlement.toml"),
    ),
    (
        "yibao-chronic",
        include_str!("../../../profiles/yibao-chronic.toml"),
    ),
    (
        "renshe-employment",
        include_str!("../../../profiles/renshe-employment.toml"),
    ),
    (
        "renshe-contributions",
        include_str!("../../../profiles/renshe-contributions.toml"),
    ),
    (
        "zhujian-dangerous-house",
        include_str!("../../../profiles/zhujian-dangerous-house.toml"),
    ),
    (
        "yingji-disaster",
        include_str!("../../../profiles/yingji-disaster.toml"),
    ),
    (
        "budongchan-property",
        include_str!("../../../profiles/budongchan-property.toml"),
    ),
    (
        "banqian-relocation",
        include_str!("../../../profiles/banqian-relocation.toml"),
    ),
    (
        "gongan-hukou",
        include_str!("../../../profiles/gongan-hukou.toml"),
    ),
    (
        "minzheng-marriage",
        include_str!("../../../profiles/minzheng-marriage.toml"),
    ),
    (
        "canlian-disability",
        include_str!("../../../profiles/canlian-disability.toml"),
    ),
];

/// A shipped profile's text by name.
pub fn text(name: &str) -> Option<&'static str> {
    PROFILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A shipped profile, read and checked.
pub fn profile(name: &str) -> Option<Result<crate::Profile, crate::ProfileError>> {
    text(name)
        .map(|t| crate::Profile::parse(t, std::path::Path::new(&format!("profiles/{name}.toml"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_shipped_profile_loads_and_together_they_make_every_kind() {
        let mut kinds = Vec::new();
        for (name, _) in PROFILES {
            let p = match profile(name) {
                Some(Ok(p)) => p,
                Some(Err(e)) => panic!("{e}"),
                None => panic!("{name} missing"),
            };
            assert_eq!(&p.name, name, "a profile's name is its file's name");
            kinds.extend(p.kinds());
        }
        kinds.sort_unstable();
        let mut all: Vec<&str> = doudi_model::ALL_KINDS.iter().map(|(_, k)| *k).collect();
        all.sort_unstable();
        assert_eq!(kinds, all, "each kind made by exactly one shipped profile");
    }
}
