//! Deadline watch: statutory limits in working days (from the policy and the holiday
//! calendar) for every open case; a breach is recorded once as `DeadlineBreached`.

use sqlx::Row as _;
use sunshine_platform::ApiError;
use sunshine_proto::v1 as pb;

use crate::api::{ReviewState, append_case_events, limits_for, load_case, overdue_entry};

pub const MIGRATIONS: &[sunshine_eventlog::schema::Migration] = &[
    sunshine_eventlog::schema::Migration {
        version: 1,
        description: "review: open cases by org unit",
        script: |_kind| {
            "CREATE TABLE review_cases (case_id TEXT PRIMARY KEY, household_id TEXT NOT NULL, hukou_org_unit_code TEXT NOT NULL, status TEXT NOT NULL);
         CREATE INDEX review_cases_scope ON review_cases (hukou_org_unit_code, status);
         CREATE INDEX review_cases_household ON review_cases (household_id);"
            .to_owned()
        },
    },
];

/// Records new breaches of open and running cases whose org unit starts with `prefix`, as of
/// the clock's today; returns every overdue deadline.
pub async fn record_breaches(
    state: &ReviewState,
    prefix: &str,
) -> Result<Vec<pb::OverdueCase>, ApiError> {
    let today = state.clock.today();
    let mut overdue = Vec::new();
    for case_id in cases_in_scope(state, prefix).await? {
        let loaded = match load_case(state, &case_id).await {
            Ok(loaded) => loaded,
            // Listed a moment before its CaseOpened is appended: not a case yet.
            Err(ApiError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let Some(limits) = limits_for(state, &loaded)? else {
            continue;
        };
        let deadlines = loaded.state.deadlines(&limits);
        let breaches = loaded.state.breached_deadlines(today, &deadlines);
        if !breaches.is_empty() {
            let actor = sunshine_eventlog::Actor {
                subject: "review-deadline-watch".into(),
                role: "system".into(),
                org_unit: String::new(),
                department_code: None,
            };
            let command_id = format!("deadlines-{case_id}-{today}");
            match append_case_events(
                state,
                &case_id,
                loaded.version,
                actor,
                &command_id,
                &breaches,
            )
            .await
            {
                Ok(_) | Err(ApiError::Conflict(_)) => {}
                Err(error) => return Err(error),
            }
        }
        for (name, due_on) in deadlines {
            if today > due_on {
                overdue.push(overdue_entry(&loaded.state, name, due_on));
            }
        }
    }
    Ok(overdue)
}

async fn cases_in_scope(state: &ReviewState, prefix: &str) -> Result<Vec<String>, ApiError> {
    let rows = sqlx::query(
        "SELECT case_id FROM review_cases WHERE hukou_org_unit_code LIKE $1 AND status IN ('open', 'approved', 'rejected') ORDER BY case_id",
    )
    .bind(format!("{prefix}%"))
    .fetch_all(state.log.store.pool())
    .await
    .map_err(ApiError::internal)?;
    rows.iter()
        .map(|row| row.try_get::<String, _>(0).map_err(ApiError::internal))
        .collect()
}

/// Open cases in scope by stage and nearest deadline; what `subject` must do is marked.
pub async fn work_queue(
    state: &ReviewState,
    prefix: &str,
    subject: &str,
) -> Result<Vec<pb::WorkItem>, ApiError> {
    let mut items = Vec::new();
    for case_id in cases_in_scope(state, prefix).await? {
        let loaded = match load_case(state, &case_id).await {
            Ok(loaded) => loaded,
            // Listed a moment before its CaseOpened is appended: not a case yet.
            Err(ApiError::NotFound { .. }) => continue,
            Err(error) => return Err(error),
        };
        let case = &loaded.state;
        let next = match limits_for(state, &loaded)? {
            Some(limits) => case
                .deadlines(&limits)
                .into_iter()
                .min_by_key(|(_, due_on)| *due_on),
            None => None,
        };
        let visited: Vec<&str> = case
            .visits
            .iter()
            .map(|(visitor, _)| visitor.as_str())
            .collect();
        items.push(pb::WorkItem {
            case_id: case.case_id.clone(),
            program_code: case.program_code.clone(),
            stage: case
                .current_stage()
                .map(|stage| stage.as_str().to_owned())
                .unwrap_or_default(),
            next_deadline: next.map(|(name, _)| name.to_owned()).unwrap_or_default(),
            due_on: next.map(|(_, due_on)| crate::case::proto_date(due_on)),
            assigned_to_caller: case
                .investigators
                .iter()
                .any(|investigator| investigator == subject)
                && !visited.contains(&subject),
            status: format!("{:?}", case.status).to_lowercase(),
        });
    }
    items.sort_by_key(|item| item.due_on.map(|date| (date.year, date.month, date.day)));
    Ok(items)
}
