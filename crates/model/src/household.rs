//! Households and members of the low-income register (低收入人口动态监测信息库).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::id_number::IdNumber;
use crate::money::Money;
use crate::region::{RegionCode, RegionLevel};
pub use crate::sex::Sex;

/// The category a household is registered under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// 低保对象: receives the minimum living allowance.
    Dibao,
    /// 特困人员: extreme-poverty support.
    Tekun,
    /// 低保边缘家庭: income between the 低保 standard and 1.5× of it.
    DibaoEdge,
    /// 支出型困难家庭: rigid spending pushes them below the line.
    Expenditure,
    /// 脱贫不稳定户: left poverty, not securely.
    Unstable,
    /// 边缘易致贫户: near the line, prone to falling into poverty.
    EdgeProne,
    /// 突发严重困难户: struck by sudden hardship.
    Sudden,
}

impl Category {
    pub const ALL: [Category; 7] = [
        Category::Dibao,
        Category::Tekun,
        Category::DibaoEdge,
        Category::Expenditure,
        Category::Unstable,
        Category::EdgeProne,
        Category::Sudden,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Category::Dibao => "dibao",
            Category::Tekun => "tekun",
            Category::DibaoEdge => "dibao_edge",
            Category::Expenditure => "expenditure",
            Category::Unstable => "unstable",
            Category::EdgeProne => "edge_prone",
            Category::Sudden => "sudden",
        }
    }

    /// The Chinese name an officer knows.
    pub fn name_zh(self) -> &'static str {
        match self {
            Category::Dibao => "低保对象",
            Category::Tekun => "特困人员",
            Category::DibaoEdge => "低保边缘家庭",
            Category::Expenditure => "支出型困难家庭",
            Category::Unstable => "脱贫不稳定户",
            Category::EdgeProne => "边缘易致贫户",
            Category::Sudden => "突发严重困难户",
        }
    }

    pub fn from_code(code: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.code() == code)
    }
}

display_by_code!(Category);

/// Urban or rural: standards differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Area {
    Urban,
    Rural,
}

impl Area {
    pub fn code(self) -> &'static str {
        match self {
            Area::Urban => "urban",
            Area::Rural => "rural",
        }
    }
}

/// Relation to the head of household.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Relation {
    Head,
    Spouse,
    Child,
    Parent,
    Grandchild,
    Grandparent,
    Sibling,
    Other,
}

/// Capacity to work (劳动能力).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WorkCapacity {
    Full,
    Partial,
    None,
}

/// A member of a registered household.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Member {
    /// Register-assigned member id, stable across imports.
    pub member_id: String,
    pub id_number: IdNumber,
    pub name: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    pub relation: Relation,
    pub work_capacity: WorkCapacity,
    /// Disability certificate grade 1 (most severe) to 4, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disability_grade: Option<u8>,
    /// Whether the member currently has paid work.
    #[serde(default)]
    pub employed: bool,
    /// Monthly income in fen as last assessed.
    #[serde(rename = "monthly_income_fen", default)]
    pub monthly_income: Money,
}

impl Member {
    /// Age in whole years on `on`.
    pub fn age_on(&self, on: NaiveDate) -> u32 {
        on.years_since(self.birth_date).unwrap_or(0)
    }
}

/// A registered household with its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Household {
    pub household_id: String,
    /// The village (12 digits) the household lives in.
    pub region_code: RegionCode,
    pub address: String,
    pub category: Category,
    pub area: Area,
    /// Monthly benefit paid to the household, in fen.
    #[serde(rename = "monthly_benefit_fen", default)]
    pub monthly_benefit: Money,
    pub enrolled_on: NaiveDate,
    pub members: Vec<Member>,
}

/// Why a register record was refused. `member` is the index (from 0) of the member concerned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    #[error("household_id is empty")]
    EmptyHouseholdId,
    #[error("household has no members")]
    NoMembers,
    #[error("region_code must be a 12-digit village code, got a {0:?} code")]
    NotVillage(RegionLevel),
    #[error("members[{member}].member_id is empty")]
    EmptyMemberId { member: usize },
    #[error("members[{member}].name is empty")]
    EmptyName { member: usize },
    #[error("members[{member}].disability_grade must be 1 to 4, got {grade}")]
    BadDisabilityGrade { member: usize, grade: u8 },
    #[error(
        "members[{member}].birth_date disagrees with the birth date in the member's ID number"
    )]
    BirthDateMismatch { member: usize },
    #[error("members[{member}].sex disagrees with the sex in the member's ID number")]
    SexMismatch { member: usize },
    #[error("members[{member}] repeats member_id {member_id:?} of an earlier member")]
    DuplicateMemberId { member: usize, member_id: String },
    #[error("members[{member}] repeats the ID number of an earlier member")]
    DuplicateIdNumber { member: usize },
    #[error("more than one member is the head of household")]
    TwoHeads,
}

impl Household {
    /// Check what serde cannot: non-empty ids, village-level region, consistent ID numbers.
    pub fn validate(&self) -> Result<(), RegisterError> {
        if self.household_id.trim().is_empty() {
            return Err(RegisterError::EmptyHouseholdId);
        }
        if self.region_code.level() != RegionLevel::Village {
            return Err(RegisterError::NotVillage(self.region_code.level()));
        }
        if self.members.is_empty() {
            return Err(RegisterError::NoMembers);
        }
        let mut heads = 0;
        for (i, m) in self.members.iter().enumerate() {
            if m.member_id.trim().is_empty() {
                return Err(RegisterError::EmptyMemberId { member: i });
            }
            if m.name.trim().is_empty() {
                return Err(RegisterError::EmptyName { member: i });
            }
            if let Some(g) = m.disability_grade {
                if !(1..=4).contains(&g) {
                    return Err(RegisterError::BadDisabilityGrade {
                        member: i,
                        grade: g,
                    });
                }
            }
            if m.id_number.birth_date() != m.birth_date {
                return Err(RegisterError::BirthDateMismatch { member: i });
            }
            if m.id_number.sex() != m.sex {
                return Err(RegisterError::SexMismatch { member: i });
            }
            if let Some(prev) = self.members[..i]
                .iter()
                .find(|p| p.member_id == m.member_id)
            {
                return Err(RegisterError::DuplicateMemberId {
                    member: i,
                    member_id: prev.member_id.clone(),
                });
            }
            if self.members[..i].iter().any(|p| p.id_number == m.id_number) {
                return Err(RegisterError::DuplicateIdNumber { member: i });
            }
            if m.relation == Relation::Head {
                heads += 1;
            }
        }
        if heads > 1 {
            return Err(RegisterError::TwoHeads);
        }
        Ok(())
    }

    /// Total monthly income of all members.
    pub fn monthly_income(&self) -> Money {
        self.members.iter().map(|m| m.monthly_income).sum()
    }

    pub fn member(&self, member_id: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.member_id == member_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Household {
        serde_json::from_str(
            r#"{"household_id":"H1","region_code":"341502001001","address":"金安区三十铺镇一村12号",
            "category":"dibao","area":"rural","monthly_benefit_fen":73200,"enrolled_on":"2023-05-01",
            "members":[{"member_id":"M1","id_number":"11010519491231002X","name":"王秀英","sex":"female",
            "birth_date":"1949-12-31","relation":"head","work_capacity":"none","monthly_income_fen":0}]}"#,
        )
        .unwrap()
    }

    #[test]
    fn valid_household_passes() {
        let h = sample();
        assert_eq!(h.validate(), Ok(()));
        assert_eq!(h.category.name_zh(), "低保对象");
    }

    #[test]
    fn inconsistent_member_is_refused_with_its_index() {
        let mut h = sample();
        h.members[0].sex = Sex::Male;
        assert_eq!(h.validate(), Err(RegisterError::SexMismatch { member: 0 }));
        let mut h = sample();
        h.region_code = RegionCode::parse("341502001").unwrap();
        assert!(matches!(h.validate(), Err(RegisterError::NotVillage(_))));
        let mut h = sample();
        let mut twin = h.members[0].clone();
        twin.member_id = "M2".into();
        h.members.push(twin);
        assert_eq!(
            h.validate(),
            Err(RegisterError::DuplicateIdNumber { member: 1 })
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = serde_json::from_str::<Household>(
            r#"{"household_id":"H1","region_code":"341502001001","address":"x","category":"dibao",
            "area":"rural","enrolled_on":"2023-05-01","members":[],"colour":"red"}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("colour"), "{e}");
    }
}
