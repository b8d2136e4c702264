//! Deadline watch: statutory limits in working days (from the policy and the holiday
//! calendar) for every open case; a breach is recorded once as `DeadlineBreached`.

use sqlx::Row as _;
use sunshine_platform::ApiError;
use sunshine_proto::v1 as pb;

use crate::api::{
    ReviewState, append_case_events, applies, case_deadlines, load_case, overdue_entry,
};
use crate::case::CaseStatus;

pub const MIGRATIONS: &[sunshine_eventlog::schema::Migration] = &[
    sunshine_eventlog::schema::Migration {
        version: 1,
        description: "review: open cases by org unit",
        script: |_kind| {
            "CREATE TABLE review_cases (case_id TEXT PRIMARY KEY, hukou_org_unit_code TEXT NOT NULL, status TEXT NOT NULL);
         CREATE INDEX review_cases_scope ON review_cases (hukou_org_unit_code, status);"
            .to_owned()
        },
    },
];

/// Records new breaches of open cases whose org unit starts with `prefix`, as of the clock's
/// today; returns every overdue deadline.
pub async fn record_breaches(
    state: &ReviewState,
    prefix: &str,
) -> Result<Vec<pb::OverdueCase>, ApiError> {
    let rows = sqlx::query("SELECT case_id FROM review_cases WHERE hukou_org_unit_code LIKE $1 AND status = 'open' ORDER BY case_id")
        .bind(format!("{prefix}%"))
        .fetch_all(state.log.store.pool())
        .await
        .map_err(ApiError::internal)?;
    let today = state.clock.today();
    let mut overdue = Vec::new();
    for row in rows {
        let case_id: String = row.try_get(0).map_err(ApiError::internal)?;
        let loaded = load_case(state, &case_id).await?;
        if loaded.state.status != CaseStatus::Open {
            continue;
        }
        let Some(accepted_on) = loaded.accepted_on else {
            continue;
        };
        let deadlines: Vec<(&str, time::Date)> = case_deadlines(state, accepted_on)?
            .into_iter()
            .filter(|(name, _)| applies(name, &loaded.state))
            .collect();
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
