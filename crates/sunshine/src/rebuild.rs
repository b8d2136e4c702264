//! `sunshine rebuild <service|all>`: with the services stopped, resets every projection of the
//! named service (or of every service that has projections) and replays the case-event log
//! into it from position 0. Each service builds its own projections, exactly as it does when it
//! serves (`sunshine_intake::rebuild`, `sunshine_review::rebuild`); this module only picks the
//! services, in the table's order, and stops at the first that fails.

use sunshine_platform::Config;

use crate::services::{Rebuilt, SERVICES, ServiceEntry};

/// The services `target` names: one by name, or `all` of those with projections.
pub fn targets(target: &str) -> anyhow::Result<Vec<&'static ServiceEntry>> {
    if target == "all" {
        return Ok(SERVICES
            .iter()
            .filter(|entry| entry.rebuild.is_some())
            .collect());
    }
    let with_projections: Vec<&str> = SERVICES
        .iter()
        .filter(|entry| entry.rebuild.is_some())
        .map(|entry| entry.name)
        .collect();
    match crate::services::find(target) {
        Some(entry) if entry.rebuild.is_some() => Ok(vec![entry]),
        Some(entry) => anyhow::bail!(
            "{} has no projections to rebuild; those with projections: all, {}",
            entry.name,
            with_projections.join(", ")
        ),
        None => anyhow::bail!(
            "unknown service {target}; one of: all, {}",
            with_projections.join(", ")
        ),
    }
}

/// Rebuilds every projection of the services `target` names, one service after another;
/// `on_rebuilt` hears each projection as it finishes.
pub async fn run(
    config: &Config,
    target: &str,
    mut on_rebuilt: impl FnMut(&Rebuilt),
) -> anyhow::Result<Vec<Rebuilt>> {
    let mut rebuilt = Vec::new();
    for entry in targets(target)? {
        let Some(rebuild) = entry.rebuild else {
            continue;
        };
        let projections = rebuild(config.clone())
            .await
            .map_err(|error| error.context(format!("rebuilding {}", entry.name)))?;
        for projection in projections {
            on_rebuilt(&projection);
            rebuilt.push(projection);
        }
    }
    Ok(rebuilt)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_names_every_service_with_projections_in_order() {
        let names: Vec<&str> = targets("all")
            .expect("all")
            .iter()
            .map(|entry| entry.name)
            .collect();
        assert_eq!(names, ["intake", "review", "payment"]);
    }

    #[test]
    fn a_service_without_projections_or_an_unknown_name_is_refused() {
        let no_projections = targets("disclosure").expect_err("disclosure has none");
        assert!(
            no_projections.to_string().contains("no projections"),
            "{no_projections}"
        );
        let unknown = targets("nope").expect_err("not a service");
        assert!(
            unknown.to_string().contains("unknown service nope"),
            "{unknown}"
        );
    }
}
