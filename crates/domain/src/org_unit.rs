//! The district's organisation tree: division codes, tiers, units and the validated tree.
//!
//! This module owns [`OrgUnitCode`] (a 12-digit division code and the tier it implies),
//! [`OrgUnit`] and [`OrgTree`], which is loaded from a TOML data file and checked so that every
//! unit sits under the right parent. It answers "who is above whom", e.g. whether a street-town
//! may act for one of its villages.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const CODE_LENGTH: usize = 12;
const DISTRICT_PREFIX_LENGTH: usize = 6;
const STREET_TOWN_PREFIX_LENGTH: usize = 9;
const EXAMPLE_DISTRICT_TOML: &str = include_str!("../data/example-district.toml");

/// 统计用区划代码 (statistical division code): the 12-digit code of an administrative unit.
///
/// Digits 1–6 are the county-level district, 7–9 the street-town (街道 / 镇 / 乡) and 10–12 the
/// village or community within it. The tier follows from which parts are zero; see
/// [`OrgUnitCode::tier`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OrgUnitCode {
    digits: String,
}

/// Why a text is not a valid [`OrgUnitCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OrgUnitCodeError {
    #[error("division code must be 12 digits, got {actual} characters")]
    WrongLength { actual: usize },
    /// `position` is 1-based.
    #[error("division code has a non-digit at position {position}")]
    NonDigit { position: usize },
}

/// The three tiers of the assistance organisation, from the top.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OrgTier {
    /// 区: the district, home of the assistance service center.
    District,
    /// 街镇: a street-town (sub-district 街道 or town 镇 / township 乡).
    StreetTown,
    /// 村居: a village committee (村委会) or urban community committee (社区居委会).
    VillageCommunity,
}

impl OrgUnitCode {
    pub fn parse(text: &str) -> Result<OrgUnitCode, OrgUnitCodeError> {
        let character_count = text.chars().count();
        if character_count != CODE_LENGTH {
            return Err(OrgUnitCodeError::WrongLength {
                actual: character_count,
            });
        }
        for (index, character) in text.chars().enumerate() {
            if !character.is_ascii_digit() {
                return Err(OrgUnitCodeError::NonDigit {
                    position: index + 1,
                });
            }
        }
        Ok(OrgUnitCode {
            digits: text.to_owned(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.digits
    }

    /// `xxxxxx000000` is a district, `xxxxxxYYY000` (YYY ≠ 000) a street-town, anything else a
    /// village-community.
    pub fn tier(&self) -> OrgTier {
        let street_town_part = &self.digits[DISTRICT_PREFIX_LENGTH..STREET_TOWN_PREFIX_LENGTH];
        let village_part = &self.digits[STREET_TOWN_PREFIX_LENGTH..];
        match (street_town_part, village_part) {
            ("000", "000") => OrgTier::District,
            (_, "000") => OrgTier::StreetTown,
            _ => OrgTier::VillageCommunity,
        }
    }

    /// Digits 1–6: the district part.
    pub fn district_prefix(&self) -> &str {
        &self.digits[..DISTRICT_PREFIX_LENGTH]
    }

    /// Digits 1–9: the district and street-town parts.
    pub fn street_town_prefix(&self) -> &str {
        &self.digits[..STREET_TOWN_PREFIX_LENGTH]
    }

    /// The code prefix of everything this unit covers: six digits for a district, nine for a
    /// street-town, all twelve for a village (for `LIKE 'prefix%'` queries).
    pub fn scope_prefix(&self) -> &str {
        match self.tier() {
            OrgTier::District => self.district_prefix(),
            OrgTier::StreetTown => self.street_town_prefix(),
            OrgTier::VillageCommunity => &self.digits,
        }
    }

    /// Whether an officer of this unit acts for `other`, read from the codes alone: a district
    /// covers every unit under it, a street-town its villages, a village only itself.
    pub fn covers(&self, other: &OrgUnitCode) -> bool {
        match self.tier() {
            OrgTier::District => self.district_prefix() == other.district_prefix(),
            OrgTier::StreetTown => self.street_town_prefix() == other.street_town_prefix(),
            OrgTier::VillageCommunity => self.digits == other.digits,
        }
    }
}

impl fmt::Display for OrgUnitCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(&self.digits)
    }
}

impl FromStr for OrgUnitCode {
    type Err = OrgUnitCodeError;

    fn from_str(text: &str) -> Result<OrgUnitCode, OrgUnitCodeError> {
        OrgUnitCode::parse(text)
    }
}

impl Serialize for OrgUnitCode {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.digits)
    }
}

impl<'de> Deserialize<'de> for OrgUnitCode {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<OrgUnitCode, D::Error> {
        let text = String::deserialize(deserializer)?;
        OrgUnitCode::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for OrgTier {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            OrgTier::District => "district",
            OrgTier::StreetTown => "street-town",
            OrgTier::VillageCommunity => "village-community",
        };
        formatter.write_str(name)
    }
}

/// One unit of the tree. Only [`OrgTree`] builds these, so `tier` always matches `code` and
/// `parent` is always the unit directly above.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgUnit {
    code: OrgUnitCode,
    name: String,
    tier: OrgTier,
    parent: Option<OrgUnitCode>,
}

impl OrgUnit {
    pub fn code(&self) -> &OrgUnitCode {
        &self.code
    }

    /// The official Chinese name, e.g. `东华街道`.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn tier(&self) -> OrgTier {
        self.tier
    }

    /// The unit directly above; `None` only for the district.
    pub fn parent(&self) -> Option<&OrgUnitCode> {
        self.parent.as_ref()
    }
}

/// Why an org tree data file was rejected. Every semantic error names the offending code.
#[derive(Debug, thiserror::Error)]
pub enum OrgTreeError {
    #[error("cannot read org tree file {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("malformed org tree file")]
    Toml(#[from] toml::de::Error),
    #[error("invalid division code {code:?}")]
    InvalidCode {
        code: String,
        #[source]
        source: OrgUnitCodeError,
    },
    #[error("org tree has no district")]
    NoDistrict,
    #[error("org tree has more than one district: {first} and {second}")]
    MultipleDistricts {
        first: OrgUnitCode,
        second: OrgUnitCode,
    },
    #[error("unit {code} is listed as a {expected} but its code is a {actual} code")]
    WrongTier {
        code: OrgUnitCode,
        expected: OrgTier,
        actual: OrgTier,
    },
    #[error("unit {code} is not under its parent {parent}")]
    NotUnderParent {
        code: OrgUnitCode,
        parent: OrgUnitCode,
    },
    #[error("unit {code} appears more than once")]
    DuplicateCode { code: OrgUnitCode },
    #[error("unit {code} has an empty name")]
    EmptyName { code: OrgUnitCode },
}

/// The validated organisation tree of one district: the district, its street-towns and their
/// village-communities.
#[derive(Debug, Clone)]
pub struct OrgTree {
    /// All units in file order; the district is first.
    units: Vec<OrgUnit>,
    index_by_code: HashMap<OrgUnitCode, usize>,
    child_indexes_by_code: HashMap<OrgUnitCode, Vec<usize>>,
}

/// File format: one `[district]`, then `[[street_town]]` tables each with nested
/// `[[street_town.village]]` tables. `district` may also be written as an array so that a
/// file with two districts is reported by code rather than as a TOML syntax error.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgTreeFile {
    district: Option<OneOrManyDistricts>,
    #[serde(default)]
    street_town: Vec<StreetTownEntry>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrManyDistricts {
    One(UnitEntry),
    Many(Vec<UnitEntry>),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnitEntry {
    code: String,
    name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StreetTownEntry {
    code: String,
    name: String,
    #[serde(default)]
    village: Vec<UnitEntry>,
}

impl OrgTree {
    /// Parses and validates a tree from TOML text.
    pub fn from_toml_str(text: &str) -> Result<OrgTree, OrgTreeError> {
        let file: OrgTreeFile = toml::from_str(text)?;
        let district_entries = match file.district {
            None => Vec::new(),
            Some(OneOrManyDistricts::One(entry)) => vec![entry],
            Some(OneOrManyDistricts::Many(entries)) => entries,
        };

        let mut builder = OrgTreeBuilder::default();
        let mut district_code: Option<OrgUnitCode> = None;
        for district_entry in &district_entries {
            let code = builder.add(district_entry, OrgTier::District, None)?;
            if let Some(first) = &district_code {
                return Err(OrgTreeError::MultipleDistricts {
                    first: first.clone(),
                    second: code,
                });
            }
            district_code = Some(code);
        }
        let district_code = district_code.ok_or(OrgTreeError::NoDistrict)?;

        for street_town_entry in &file.street_town {
            let street_town_entry_as_unit = UnitEntry {
                code: street_town_entry.code.clone(),
                name: street_town_entry.name.clone(),
            };
            let street_town_code = builder.add(
                &street_town_entry_as_unit,
                OrgTier::StreetTown,
                Some(&district_code),
            )?;
            for village_entry in &street_town_entry.village {
                builder.add(
                    village_entry,
                    OrgTier::VillageCommunity,
                    Some(&street_town_code),
                )?;
            }
        }
        Ok(builder.finish())
    }

    /// Reads and validates a tree from a TOML file.
    pub fn load(path: impl AsRef<Path>) -> Result<OrgTree, OrgTreeError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| OrgTreeError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        OrgTree::from_toml_str(&text)
    }

    /// The fictitious example district shipped in `data/example-district.toml`, for tests and
    /// demos. Its codes use the non-existent province prefix `99`.
    pub fn example() -> Result<OrgTree, OrgTreeError> {
        OrgTree::from_toml_str(EXAMPLE_DISTRICT_TOML)
    }

    pub fn get(&self, code: &OrgUnitCode) -> Option<&OrgUnit> {
        let index = self.index_by_code.get(code)?;
        self.units.get(*index)
    }

    /// The unit directly above `code`; `None` for the district or an unknown code.
    pub fn parent(&self, code: &OrgUnitCode) -> Option<&OrgUnit> {
        let parent_code = self.get(code)?.parent.as_ref()?;
        self.get(parent_code)
    }

    /// The units directly below `code`, in file order; empty for a village or unknown code.
    pub fn children(&self, code: &OrgUnitCode) -> Vec<&OrgUnit> {
        let mut children = Vec::new();
        if let Some(child_indexes) = self.child_indexes_by_code.get(code) {
            for child_index in child_indexes {
                if let Some(child) = self.units.get(*child_index) {
                    children.push(child);
                }
            }
        }
        children
    }

    /// The tier of a unit in this tree; `None` if the code is not in the tree.
    pub fn tier(&self, code: &OrgUnitCode) -> Option<OrgTier> {
        self.get(code).map(OrgUnit::tier)
    }

    /// Whether `descendant` is `ancestor` itself or lies below it. False when either code is not
    /// in the tree. This is the check behind "a street-town acts for its villages".
    pub fn contains(&self, ancestor: &OrgUnitCode, descendant: &OrgUnitCode) -> bool {
        if self.get(ancestor).is_none() {
            return false;
        }
        let mut current = self.get(descendant);
        while let Some(unit) = current {
            if &unit.code == ancestor {
                return true;
            }
            current = unit.parent.as_ref().and_then(|parent| self.get(parent));
        }
        false
    }

    pub fn district(&self) -> &OrgUnit {
        // The constructor puts the district first and refuses a tree without one.
        debug_assert_eq!(self.units[0].tier, OrgTier::District);
        &self.units[0]
    }

    pub fn street_towns(&self) -> Vec<&OrgUnit> {
        self.units_of_tier(OrgTier::StreetTown)
    }

    pub fn villages(&self) -> Vec<&OrgUnit> {
        self.units_of_tier(OrgTier::VillageCommunity)
    }

    /// Every unit, the district first, then each street-town followed by its villages.
    pub fn units(&self) -> &[OrgUnit] {
        &self.units
    }

    fn units_of_tier(&self, tier: OrgTier) -> Vec<&OrgUnit> {
        let mut matching = Vec::new();
        for unit in &self.units {
            if unit.tier == tier {
                matching.push(unit);
            }
        }
        matching
    }
}

/// Collects units while checking each one as it is added.
#[derive(Default)]
struct OrgTreeBuilder {
    units: Vec<OrgUnit>,
    seen_codes: HashSet<OrgUnitCode>,
}

impl OrgTreeBuilder {
    fn add(
        &mut self,
        entry: &UnitEntry,
        expected_tier: OrgTier,
        parent: Option<&OrgUnitCode>,
    ) -> Result<OrgUnitCode, OrgTreeError> {
        let code = OrgUnitCode::parse(&entry.code).map_err(|source| OrgTreeError::InvalidCode {
            code: entry.code.clone(),
            source,
        })?;
        let actual_tier = code.tier();
        if actual_tier != expected_tier {
            return Err(OrgTreeError::WrongTier {
                code,
                expected: expected_tier,
                actual: actual_tier,
            });
        }
        if let Some(parent_code) = parent {
            let is_under_parent = match expected_tier {
                OrgTier::District => false,
                OrgTier::StreetTown => code.district_prefix() == parent_code.district_prefix(),
                OrgTier::VillageCommunity => {
                    code.street_town_prefix() == parent_code.street_town_prefix()
                }
            };
            if !is_under_parent {
                return Err(OrgTreeError::NotUnderParent {
                    code,
                    parent: parent_code.clone(),
                });
            }
        }
        if entry.name.trim().is_empty() {
            return Err(OrgTreeError::EmptyName { code });
        }
        if !self.seen_codes.insert(code.clone()) {
            return Err(OrgTreeError::DuplicateCode { code });
        }
        self.units.push(OrgUnit {
            code: code.clone(),
            name: entry.name.clone(),
            tier: expected_tier,
            parent: parent.cloned(),
        });
        Ok(code)
    }

    fn finish(self) -> OrgTree {
        let mut index_by_code = HashMap::new();
        let mut child_indexes_by_code: HashMap<OrgUnitCode, Vec<usize>> = HashMap::new();
        for (index, unit) in self.units.iter().enumerate() {
            index_by_code.insert(unit.code.clone(), index);
            if let Some(parent_code) = &unit.parent {
                child_indexes_by_code
                    .entry(parent_code.clone())
                    .or_default()
                    .push(index);
            }
        }
        OrgTree {
            units: self.units,
            index_by_code,
            child_indexes_by_code,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn code(text: &str) -> OrgUnitCode {
        OrgUnitCode::parse(text).unwrap()
    }

    const SMALL_TREE: &str = r#"
[district]
code = "990101000000"
name = "示例区"

[[street_town]]
code = "990101001000"
name = "东华街道"

[[street_town.village]]
code = "990101001001"
name = "东华社区居委会"

[[street_town.village]]
code = "990101001002"
name = "花园社区居委会"

[[street_town]]
code = "990101101000"
name = "青石镇"

[[street_town.village]]
code = "990101101201"
name = "青石村委会"
"#;

    #[test]
    fn code_parsing_and_tiers() {
        assert_eq!(code("990101000000").tier(), OrgTier::District);
        assert_eq!(code("990101001000").tier(), OrgTier::StreetTown);
        assert_eq!(code("990101001001").tier(), OrgTier::VillageCommunity);
        assert_eq!(code("990101000001").tier(), OrgTier::VillageCommunity);
        assert_eq!(code("990101101201").street_town_prefix(), "990101101");
        assert_eq!(code("990101101201").district_prefix(), "990101");
        assert_eq!(
            OrgUnitCode::parse("99010100000"),
            Err(OrgUnitCodeError::WrongLength { actual: 11 })
        );
        assert_eq!(
            OrgUnitCode::parse("99010100000a"),
            Err(OrgUnitCodeError::NonDigit { position: 12 })
        );
        assert_eq!(
            OrgUnitCode::parse(" 99010100000"),
            Err(OrgUnitCodeError::NonDigit { position: 1 })
        );
    }

    #[test]
    fn small_tree_answers_queries() {
        let tree = OrgTree::from_toml_str(SMALL_TREE).unwrap();
        assert_eq!(tree.district().code(), &code("990101000000"));
        assert_eq!(tree.district().name(), "示例区");
        assert_eq!(tree.district().parent(), None);
        assert_eq!(tree.street_towns().len(), 2);
        assert_eq!(tree.villages().len(), 3);

        let children: Vec<&str> = tree
            .children(&code("990101001000"))
            .iter()
            .map(|unit| unit.name())
            .collect();
        assert_eq!(children, vec!["东华社区居委会", "花园社区居委会"]);
        assert!(tree.children(&code("990101001001")).is_empty());

        let village = code("990101101201");
        assert_eq!(tree.parent(&village).unwrap().name(), "青石镇");
        assert_eq!(
            tree.parent(&code("990101101000")).unwrap().code(),
            &code("990101000000")
        );
        assert_eq!(tree.tier(&village), Some(OrgTier::VillageCommunity));
        assert_eq!(tree.tier(&code("990101999999")), None);
        assert!(tree.get(&code("990101999999")).is_none());
    }

    #[test]
    fn scope_prefixes_follow_the_tier() {
        assert_eq!(code("990101000000").scope_prefix(), "990101");
        assert_eq!(code("990101001000").scope_prefix(), "990101001");
        assert_eq!(code("990101001002").scope_prefix(), "990101001002");
    }

    #[test]
    fn covers_agrees_with_the_example_tree() {
        let tree = OrgTree::example().unwrap();
        for holder in tree.units() {
            for target in tree.units() {
                assert_eq!(
                    holder.code().covers(target.code()),
                    tree.contains(holder.code(), target.code()),
                    "{} over {}",
                    holder.code(),
                    target.code()
                );
            }
        }
    }

    #[test]
    fn contains_works_across_tiers() {
        let tree = OrgTree::from_toml_str(SMALL_TREE).unwrap();
        let district = code("990101000000");
        let east_street = code("990101001000");
        let east_village = code("990101001001");
        let town = code("990101101000");
        let town_village = code("990101101201");

        assert!(tree.contains(&district, &district));
        assert!(tree.contains(&district, &east_street));
        assert!(tree.contains(&district, &east_village));
        assert!(tree.contains(&east_street, &east_village));
        assert!(tree.contains(&east_village, &east_village));
        assert!(tree.contains(&town, &town_village));

        assert!(!tree.contains(&east_street, &town_village));
        assert!(!tree.contains(&east_village, &east_street));
        assert!(!tree.contains(&east_street, &district));
        assert!(!tree.contains(&east_street, &code("990101001099")));
        assert!(!tree.contains(&code("990101001099"), &code("990101001099")));
    }

    #[test]
    fn example_district_loads_with_expected_shape() {
        let tree = OrgTree::example().unwrap();
        assert_eq!(tree.district().tier(), OrgTier::District);
        assert!(tree.district().code().as_str().starts_with("99"));
        assert_eq!(tree.street_towns().len(), 10);
        assert!(tree.villages().len() >= 60, "{}", tree.villages().len());
        assert_eq!(
            tree.units().len(),
            1 + tree.street_towns().len() + tree.villages().len()
        );
        for street_town in tree.street_towns() {
            assert!(!tree.children(street_town.code()).is_empty());
            assert!(tree.contains(tree.district().code(), street_town.code()));
        }
        for village in tree.villages() {
            let street_town = tree.parent(village.code()).unwrap();
            assert_eq!(street_town.tier(), OrgTier::StreetTown);
            assert!(tree.contains(tree.district().code(), village.code()));
        }
        assert!(EXAMPLE_DISTRICT_TOML.contains("EXAMPLE DATA"));
    }

    #[test]
    fn rejects_village_under_wrong_street_town() {
        let text = SMALL_TREE.replace("990101101201", "990101001003");
        let error = OrgTree::from_toml_str(&text).unwrap_err();
        assert!(matches!(
            &error,
            OrgTreeError::NotUnderParent { code: bad, parent }
                if bad.as_str() == "990101001003" && parent.as_str() == "990101101000"
        ));
        assert!(error.to_string().contains("990101001003"));
    }

    #[test]
    fn rejects_street_town_under_another_district() {
        let text = SMALL_TREE
            .replace("990101101000", "990102101000")
            .replace("990101101201", "990102101201");
        let error = OrgTree::from_toml_str(&text).unwrap_err();
        assert!(error.to_string().contains("990102101000"), "{error}");
    }

    #[test]
    fn rejects_duplicate_code() {
        let text = SMALL_TREE.replace("990101001002", "990101001001");
        let error = OrgTree::from_toml_str(&text).unwrap_err();
        assert!(matches!(
            &error,
            OrgTreeError::DuplicateCode { code: duplicate } if duplicate.as_str() == "990101001001"
        ));
        assert!(error.to_string().contains("990101001001"));
    }

    #[test]
    fn rejects_two_districts() {
        let text = r#"
[[district]]
code = "990101000000"
name = "示例区"

[[district]]
code = "990102000000"
name = "另一区"
"#;
        let error = OrgTree::from_toml_str(text).unwrap_err();
        assert!(matches!(&error, OrgTreeError::MultipleDistricts { .. }));
        assert!(error.to_string().contains("990102000000"), "{error}");
    }

    #[test]
    fn rejects_district_code_listed_as_street_town() {
        let text = SMALL_TREE.replace("code = \"990101101000\"", "code = \"990102000000\"");
        let error = OrgTree::from_toml_str(&text).unwrap_err();
        assert!(matches!(
            &error,
            OrgTreeError::WrongTier {
                expected: OrgTier::StreetTown,
                actual: OrgTier::District,
                ..
            }
        ));
        assert!(error.to_string().contains("990102000000"), "{error}");
    }

    #[test]
    fn rejects_missing_district_empty_name_and_bad_code() {
        let no_district = "[[street_town]]\ncode = \"990101001000\"\nname = \"东华街道\"\n";
        assert!(matches!(
            OrgTree::from_toml_str(no_district),
            Err(OrgTreeError::NoDistrict)
        ));

        let empty_name = SMALL_TREE.replace("name = \"青石镇\"", "name = \"  \"");
        let error = OrgTree::from_toml_str(&empty_name).unwrap_err();
        assert!(matches!(&error, OrgTreeError::EmptyName { .. }));
        assert!(error.to_string().contains("990101101000"));

        let bad_code = SMALL_TREE.replace("990101001002", "99010100100X");
        let error = OrgTree::from_toml_str(&bad_code).unwrap_err();
        assert!(error.to_string().contains("99010100100X"));
    }

    #[test]
    fn rejects_unknown_fields() {
        let text = SMALL_TREE.replace("name = \"示例区\"", "name = \"示例区\"\nnmae = \"x\"");
        assert!(matches!(
            OrgTree::from_toml_str(&text),
            Err(OrgTreeError::Toml(_))
        ));
    }

    #[test]
    fn load_reports_missing_file() {
        let error = OrgTree::load("/nonexistent/org-tree.toml").unwrap_err();
        assert!(matches!(error, OrgTreeError::Io { .. }));
    }
}
