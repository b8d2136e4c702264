//! The program catalogue: every assistance program of the seed, with its stable code, names,
//! responsible departments, channel, review workflow and benefit kind.
//!
//! This module owns [`ProgramCode`] (the typed list of programs), [`BenefitPeriod`], [`Program`],
//! [`Department`], [`Channel`], [`ReviewWorkflow`], [`BenefitKind`] and [`Catalogue`], which is read from
//! `catalogue.toml` in the policy directory and checked against [`ProgramCode::ALL`]: every
//! program appears exactly once, every department it names is listed, no key is unknown.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::error::{PolicyError, PolicyFileProblem};
use crate::parameters::{PolicySource, line_of};
use crate::schema::CATALOGUE_FILE;

/// The period an amount is expressed in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenefitPeriod {
    Monthly,
    OneOff,
    Annual,
}

impl BenefitPeriod {
    pub fn as_str(self) -> &'static str {
        match self {
            BenefitPeriod::Monthly => "monthly",
            BenefitPeriod::OneOff => "one_off",
            BenefitPeriod::Annual => "annual",
        }
    }

    /// The Chinese text, for explanations.
    pub(crate) fn zh(self) -> &'static str {
        match self {
            BenefitPeriod::Monthly => "每月",
            BenefitPeriod::OneOff => "一次性",
            BenefitPeriod::Annual => "每年",
        }
    }
}

/// 救助项目 (assistance program): the stable code of each program in the seed's section 三 and
/// of the entitled-group subsidy of section 二(一).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProgramCode {
    /// 城市最低生活保障 (1).
    DibaoUrban,
    /// 农村最低生活保障 (1).
    DibaoRural,
    /// 特困人员救助供养 / 农村五保供养 (2).
    Tekun,
    /// 自然灾害生活救助 (3).
    Disaster,
    /// 临时应急救助 (4).
    Temporary,
    /// 居家养老服务 (5).
    HomeElderlyCare,
    /// 养老补贴 (6).
    OldAgeSubsidy,
    /// 长寿补贴 (7).
    Longevity,
    /// 计划生育家庭奖励扶助 (8).
    FamilyPlanning,
    /// 法律援助、司法救助 (9).
    LegalAid,
    /// 老党员、困难党员救助 (10).
    PartyMemberAid,
    /// 水库移民后期扶持 (11).
    ReservoirMigrantSupport,
    /// 企业军转干部 (12).
    TransferredCadreSupport,
    /// 优抚对象抚恤定补 (二(一)).
    EntitledSubsidy,
    /// 教育救助 (E).
    EducationAid,
    /// 就业援助: subsidised training (J).
    EmploymentTraining,
    /// 新型农村合作医疗 (M1).
    MedicalRuralCooperative,
    /// 城镇职工基本医疗保险 (M2).
    MedicalUrbanEmployee,
    /// 城镇居民基本医疗保险 (M3).
    MedicalUrbanResident,
    /// 优抚对象医疗救助 (M4).
    MedicalEntitledGroups,
    /// 大病医疗救助 (M5).
    MedicalSeriousIllness,
    /// 城镇住房保障 (H1).
    HousingUrbanSupport,
    /// 农村住房安居工程 (H2).
    HousingRuralSafe,
    /// 就业援助: social-insurance and post subsidies of public-welfare posts (J2, issue 20).
    EmploymentPublicWelfarePost,
    /// 低保边缘家庭 (issue 20 item 10).
    NearDibao,
    /// 刚性支出困难家庭 (issue 20 item 10).
    RigidExpenditureHardship,
}

impl ProgramCode {
    pub const ALL: [ProgramCode; 26] = [
        ProgramCode::DibaoUrban,
        ProgramCode::DibaoRural,
        ProgramCode::Tekun,
        ProgramCode::Disaster,
        ProgramCode::Temporary,
        ProgramCode::HomeElderlyCare,
        ProgramCode::OldAgeSubsidy,
        ProgramCode::Longevity,
        ProgramCode::FamilyPlanning,
        ProgramCode::LegalAid,
        ProgramCode::PartyMemberAid,
        ProgramCode::ReservoirMigrantSupport,
        ProgramCode::TransferredCadreSupport,
        ProgramCode::EntitledSubsidy,
        ProgramCode::EducationAid,
        ProgramCode::EmploymentTraining,
        ProgramCode::MedicalRuralCooperative,
        ProgramCode::MedicalUrbanEmployee,
        ProgramCode::MedicalUrbanResident,
        ProgramCode::MedicalEntitledGroups,
        ProgramCode::MedicalSeriousIllness,
        ProgramCode::HousingUrbanSupport,
        ProgramCode::HousingRuralSafe,
        ProgramCode::EmploymentPublicWelfarePost,
        ProgramCode::NearDibao,
        ProgramCode::RigidExpenditureHardship,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ProgramCode::DibaoUrban => "dibao_urban",
            ProgramCode::DibaoRural => "dibao_rural",
            ProgramCode::Tekun => "tekun",
            ProgramCode::Disaster => "disaster",
            ProgramCode::Temporary => "temporary",
            ProgramCode::HomeElderlyCare => "home_elderly_care",
            ProgramCode::OldAgeSubsidy => "old_age_subsidy",
            ProgramCode::Longevity => "longevity",
            ProgramCode::FamilyPlanning => "family_planning",
            ProgramCode::LegalAid => "legal_aid",
            ProgramCode::PartyMemberAid => "party_member_aid",
            ProgramCode::ReservoirMigrantSupport => "reservoir_migrant_support",
            ProgramCode::TransferredCadreSupport => "transferred_cadre_support",
            ProgramCode::EntitledSubsidy => "entitled_subsidy",
            ProgramCode::EducationAid => "education_aid",
            ProgramCode::EmploymentTraining => "employment_training",
            ProgramCode::MedicalRuralCooperative => "medical_rural_cooperative",
            ProgramCode::MedicalUrbanEmployee => "medical_urban_employee",
            ProgramCode::MedicalUrbanResident => "medical_urban_resident",
            ProgramCode::MedicalEntitledGroups => "medical_entitled_groups",
            ProgramCode::MedicalSeriousIllness => "medical_serious_illness",
            ProgramCode::HousingUrbanSupport => "housing_urban_support",
            ProgramCode::HousingRuralSafe => "housing_rural_safe",
            ProgramCode::EmploymentPublicWelfarePost => "employment_public_welfare_post",
            ProgramCode::NearDibao => "near_dibao",
            ProgramCode::RigidExpenditureHardship => "rigid_expenditure_hardship",
        }
    }

    /// The period in which the program's amount is expressed. Checked against each
    /// program's [`BenefitKind`] in the catalogue by a test.
    /// The parameter sections the program's rule reads (besides `district` and `income`, which
    /// every rule may read): evaluating it on a date resolves only these (issue 20 item 12).
    pub fn parameter_sections(self) -> &'static [&'static str] {
        match self {
            ProgramCode::DibaoUrban | ProgramCode::DibaoRural => &["dibao"],
            ProgramCode::Tekun => &["tekun"],
            // The hardship coefficient's income gap reads the dibao standards.
            ProgramCode::Temporary => &["temporary", "hardship", "dibao"],
            ProgramCode::LegalAid => &["hardship", "dibao"],
            ProgramCode::Disaster => &["disaster"],
            ProgramCode::HomeElderlyCare => &["home_care"],
            ProgramCode::OldAgeSubsidy => &["old_age_subsidy"],
            ProgramCode::Longevity => &["longevity"],
            ProgramCode::FamilyPlanning => &["family_planning"],
            ProgramCode::PartyMemberAid => &["party_member_aid"],
            ProgramCode::ReservoirMigrantSupport => &["reservoir_migrant"],
            ProgramCode::TransferredCadreSupport => &["transferred_cadre"],
            ProgramCode::EntitledSubsidy => &["entitled_subsidy"],
            ProgramCode::EducationAid => &["education"],
            ProgramCode::EmploymentTraining | ProgramCode::EmploymentPublicWelfarePost => {
                &["employment"]
            }
            ProgramCode::MedicalUrbanEmployee => &[],
            ProgramCode::MedicalRuralCooperative
            | ProgramCode::MedicalUrbanResident
            | ProgramCode::MedicalEntitledGroups => &["medical_insurance"],
            ProgramCode::MedicalSeriousIllness => &["medical_serious_illness"],
            ProgramCode::HousingUrbanSupport => &["housing_urban"],
            ProgramCode::HousingRuralSafe => &["housing_rural"],
            ProgramCode::NearDibao => &["near_dibao", "dibao"],
            ProgramCode::RigidExpenditureHardship => &["rigid_expenditure", "near_dibao", "dibao"],
        }
    }

    pub fn period(self) -> BenefitPeriod {
        match self {
            ProgramCode::DibaoUrban
            | ProgramCode::DibaoRural
            | ProgramCode::Tekun
            | ProgramCode::HomeElderlyCare
            | ProgramCode::OldAgeSubsidy
            | ProgramCode::Longevity
            | ProgramCode::TransferredCadreSupport
            | ProgramCode::EntitledSubsidy
            | ProgramCode::HousingUrbanSupport
            | ProgramCode::EmploymentPublicWelfarePost
            | ProgramCode::NearDibao
            | ProgramCode::RigidExpenditureHardship => BenefitPeriod::Monthly,
            ProgramCode::Disaster
            | ProgramCode::Temporary
            | ProgramCode::LegalAid
            | ProgramCode::EmploymentTraining
            | ProgramCode::MedicalSeriousIllness
            | ProgramCode::HousingRuralSafe => BenefitPeriod::OneOff,
            ProgramCode::FamilyPlanning
            | ProgramCode::PartyMemberAid
            | ProgramCode::ReservoirMigrantSupport
            | ProgramCode::EducationAid
            | ProgramCode::MedicalRuralCooperative
            | ProgramCode::MedicalUrbanEmployee
            | ProgramCode::MedicalUrbanResident
            | ProgramCode::MedicalEntitledGroups => BenefitPeriod::Annual,
        }
    }
}

impl fmt::Display for ProgramCode {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for ProgramCode {
    type Err = PolicyError;

    fn from_str(text: &str) -> Result<ProgramCode, PolicyError> {
        ProgramCode::ALL
            .iter()
            .copied()
            .find(|code| code.as_str() == text)
            .ok_or_else(|| PolicyError::UnknownProgram {
                code: text.to_owned(),
            })
    }
}

/// How an application reaches a decision (seed section 二).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// Accepted by street-town and village, reviewed, approved and paid by the district center.
    DistrictCenter,
    /// 应急救助: the street-town assists at once; severe cases go to the center for evaluation.
    Emergency,
    /// A department's own routine assistance, connected to the shared system.
    DepartmentRoutine,
}

/// The review workflow a program's cases follow; the review service defines the stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReviewWorkflow {
    /// Acceptance, home visit, economic-status verification, street-town opinion, publicity,
    /// district decision.
    MeansTestedReview,
    /// 特困人员认定 (issue 20 item 11): the means-tested stages with the 特困 rules' limits —
    /// the street-town's 15 working days, the county's 15 — and the county's home visits of a
    /// sample of the cases it receives.
    ExtremePovertyReview,
    /// Acceptance at the street-town, center review and approval.
    CenterReview,
    /// Assist first (先行救助), then village investigation, street-town review, center evaluation.
    EmergencyEvaluation,
    /// The responsible department's own procedure.
    DepartmentRoutine,
}

/// What the program gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BenefitKind {
    MonthlyCash,
    OneOffCash,
    /// Cash paid per year (rewards and grants the seed states per year).
    AnnualCash,
    Service,
    FeeExemption,
    PremiumSubsidy,
    /// Enrolment in an insurance scheme; the program itself pays nothing.
    InsuranceEnrolment,
    Housing,
}

/// 责任单位 (responsible unit): a department with its stable code.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Department {
    pub code: String,
    pub name_zh: String,
    pub name_en: String,
}

/// One program of the catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Program {
    pub code: ProgramCode,
    /// Where the seed states it, e.g. `三(一)1`.
    pub seed_item: String,
    pub name_zh: String,
    pub name_en: String,
    /// Department codes, the leading one first.
    pub departments: Vec<String>,
    pub channel: Channel,
    pub workflow: ReviewWorkflow,
    pub benefit_kind: BenefitKind,
    /// Document kinds an application must carry (申请材料), e.g. `household_register`; intake
    /// lists every missing one at once.
    pub required_documents: Vec<String>,
    /// Issue 20 item 10: the program's recipients are never publicised (公示); disclosure
    /// reads this flag. `never_publicised = true` in `catalogue.toml`; default false.
    pub never_publicised: bool,
}

/// The validated catalogue: one [`Program`] per [`ProgramCode`], in [`ProgramCode::ALL`] order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Catalogue {
    departments: Vec<Department>,
    programs: Vec<Program>,
}

impl Catalogue {
    pub fn program(&self, code: ProgramCode) -> &Program {
        // Validation guarantees one program per code, in ProgramCode::ALL order.
        &self.programs[code as usize]
    }

    pub fn programs(&self) -> &[Program] {
        &self.programs
    }

    pub fn departments(&self) -> &[Department] {
        &self.departments
    }

    pub fn department(&self, code: &str) -> Option<&Department> {
        self.departments
            .iter()
            .find(|department| department.code == code)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogueFile {
    #[serde(default)]
    department: Vec<Spanned<DepartmentRecord>>,
    #[serde(default)]
    program: Vec<Spanned<ProgramRecord>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DepartmentRecord {
    code: Spanned<String>,
    name_zh: String,
    name_en: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramRecord {
    code: Spanned<String>,
    seed_item: String,
    name_zh: String,
    name_en: String,
    departments: Spanned<Vec<String>>,
    channel: Channel,
    workflow: ReviewWorkflow,
    benefit_kind: BenefitKind,
    #[serde(default)]
    required_documents: Vec<String>,
    #[serde(default)]
    never_publicised: bool,
}

/// Reads and checks `catalogue.toml`; returns every problem found.
pub(crate) fn read_catalogue(source: &PolicySource) -> Result<Catalogue, Vec<PolicyFileProblem>> {
    let problem = |offset: usize, subject: &str, text: String| PolicyFileProblem {
        file: CATALOGUE_FILE.to_owned(),
        line: line_of(&source.text, offset),
        parameter: subject.to_owned(),
        problem: text,
    };
    let file: CatalogueFile = match toml::from_str(&source.text) {
        Ok(file) => file,
        Err(error) => {
            let offset = error.span().map_or(0, |span| span.start);
            return Err(vec![problem(offset, "", error.message().to_owned())]);
        }
    };

    let mut problems = Vec::new();
    let mut departments: Vec<Department> = Vec::new();
    for record in &file.department {
        let record_offset = record.span().start;
        let record = record.get_ref();
        if departments
            .iter()
            .any(|known| known.code == *record.code.get_ref())
        {
            problems.push(problem(
                record.code.span().start,
                record.code.get_ref(),
                "department listed twice".to_owned(),
            ));
            continue;
        }
        if !is_snake_case(record.code.get_ref()) {
            problems.push(problem(
                record_offset,
                record.code.get_ref(),
                "department code must be lowercase snake_case".to_owned(),
            ));
        }
        departments.push(Department {
            code: record.code.get_ref().clone(),
            name_zh: record.name_zh.clone(),
            name_en: record.name_en.clone(),
        });
    }

    let mut programs_by_code: Vec<Option<Program>> = vec![None; ProgramCode::ALL.len()];
    for record in &file.program {
        let record_offset = record.span().start;
        let record = record.get_ref();
        let code_text = record.code.get_ref();
        let Ok(code) = code_text.parse::<ProgramCode>() else {
            problems.push(problem(
                record.code.span().start,
                code_text,
                "unknown program code".to_owned(),
            ));
            continue;
        };
        if programs_by_code[code as usize].is_some() {
            problems.push(problem(
                record.code.span().start,
                code_text,
                "program listed twice".to_owned(),
            ));
            continue;
        }
        if record.departments.get_ref().is_empty() {
            problems.push(problem(
                record.departments.span().start,
                code_text,
                "a program needs at least one responsible department".to_owned(),
            ));
        }
        for department_code in record.departments.get_ref() {
            if !departments
                .iter()
                .any(|known| known.code == *department_code)
            {
                problems.push(problem(
                    record.departments.span().start,
                    code_text,
                    format!("unknown department {department_code:?}"),
                ));
            }
        }
        if record.name_zh.trim().is_empty() || record.name_en.trim().is_empty() {
            problems.push(problem(
                record_offset,
                code_text,
                "names must not be empty".to_owned(),
            ));
        }
        programs_by_code[code as usize] = Some(Program {
            code,
            seed_item: record.seed_item.clone(),
            name_zh: record.name_zh.clone(),
            name_en: record.name_en.clone(),
            departments: record.departments.get_ref().clone(),
            channel: record.channel,
            workflow: record.workflow,
            benefit_kind: record.benefit_kind,
            required_documents: record.required_documents.clone(),
            never_publicised: record.never_publicised,
        });
    }

    let mut programs = Vec::with_capacity(ProgramCode::ALL.len());
    for (code, program) in ProgramCode::ALL.iter().zip(programs_by_code) {
        match program {
            Some(program) => programs.push(program),
            None => problems.push(problem(
                source.text.len(),
                code.as_str(),
                "missing value: program not in the catalogue".to_owned(),
            )),
        }
    }
    if problems.is_empty() {
        Ok(Catalogue {
            departments,
            programs,
        })
    } else {
        Err(problems)
    }
}

fn is_snake_case(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn program_codes_index_their_own_position_and_round_trip() {
        for (index, code) in ProgramCode::ALL.iter().enumerate() {
            assert_eq!(*code as usize, index);
            assert_eq!(code.as_str().parse::<ProgramCode>(), Ok(*code));
        }
        assert!("dibao".parse::<ProgramCode>().is_err());
    }
}
