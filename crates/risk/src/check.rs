//! How a rules file is refused: [`RuleSetError`] names the dotted key that is wrong and says what
//! is wrong with it, and [`Section`] checks the values of one table (`levels.orange`,
//! `rules.death`) under its own key. A leaf: every part of the rule set validates with it.

/// Why a rules file was refused. `key` is the dotted path of the offending entry
/// (e.g. `levels.orange.min_score`), so the person editing the file knows where to look.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleSetError {
    /// The file is not TOML, or an entry is missing, unknown or of the wrong type.
    #[error("rules file: `{key}`: {message}")]
    Parse { key: String, message: String },
    /// The file parsed but a value is out of range or inconsistent with another.
    #[error("rules file: `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl RuleSetError {
    /// The dotted key the error is about.
    pub fn key(&self) -> &str {
        match self {
            RuleSetError::Parse { key, .. } | RuleSetError::Invalid { key, .. } => key,
        }
    }

    /// What is wrong, without the key.
    pub fn message(&self) -> &str {
        match self {
            RuleSetError::Parse { message, .. } | RuleSetError::Invalid { message, .. } => message,
        }
    }
}

/// An entry that is out of range or inconsistent, at `key`.
pub fn invalid<T>(key: &str, message: &str) -> Result<T, RuleSetError> {
    Err(RuleSetError::Invalid {
        key: key.to_string(),
        message: message.to_string(),
    })
}

/// One table of the rules file, by its dotted name: checks its entries under their full keys.
#[derive(Clone, Copy, Debug)]
pub struct Section<'k>(pub &'k str);

impl Section<'_> {
    /// The full key of `entry` in this table.
    pub fn key(&self, entry: &str) -> String {
        format!("{}.{entry}", self.0)
    }

    /// Refuse `entry` with `message`.
    pub fn invalid<T>(&self, entry: &str, message: &str) -> Result<T, RuleSetError> {
        invalid(&self.key(entry), message)
    }

    /// `value` must lie in `min..=max`.
    pub fn range(&self, entry: &str, value: i64, min: i64, max: i64) -> Result<(), RuleSetError> {
        if value < min || value > max {
            self.invalid(entry, &format!("{value} is out of range {min}..={max}"))
        } else {
            Ok(())
        }
    }

    /// Rule points must be sane: 0 (rule switched off) to 1000.
    pub fn points(&self, entry: &str, value: i64) -> Result<(), RuleSetError> {
        self.range(entry, value, 0, 1000)
    }

    /// Two entries each in `min..=max`, `high` not below `low` (each given as key and value).
    pub fn ordered(
        &self,
        (low, low_value): (&str, i64),
        (high, high_value): (&str, i64),
        min: i64,
        max: i64,
    ) -> Result<(), RuleSetError> {
        self.range(low, low_value, min, max)?;
        self.range(high, high_value, min, max)?;
        if high_value < low_value {
            return self.invalid(high, &format!("must not be below {}", self.key(low)));
        }
        Ok(())
    }

    /// Each of `entries` (key, value) must be sane points ([`Section::points`]), checked in order.
    pub fn all_points(&self, entries: &[(&str, i64)]) -> Result<(), RuleSetError> {
        entries
            .iter()
            .try_for_each(|(entry, value)| self.points(entry, *value))
    }

    /// A share in permille from 1 to 100 times the whole (1..=100,000).
    pub fn share(&self, entry: &str, value: i64) -> Result<(), RuleSetError> {
        self.range(entry, value, 1, 100_000)
    }
}
