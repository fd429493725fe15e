//! Context providers: SQL queries that join each detection with enterprise data.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::error::Problems;
use super::names::{self, Unique};
use super::node::{Node, take_list};
use super::path::Path;
use super::raw::RawContext;
use super::recommendations::SITUATION_VARIABLES;
use super::sql::NamedQuery;

/// The parameters a provider's query may use: fields of the detection being joined.
///
/// The `asset*`, `criticality`, `ownerTeam` and `siteId` parameters come from the asset
/// registry; they are NULL when the registry does not know the device.
pub const QUERY_PARAMETERS: [&str; 14] = [
    "device",
    "deviceType",
    "metric",
    "detector",
    "severity",
    "value",
    "namespace",
    "solution",
    "assetId",
    "assetExternalId",
    "assetName",
    "criticality",
    "ownerTeam",
    "siteId",
];

/// Where enterprise context comes from.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContextSpec {
    /// The providers, run for every detection; each result is a variable named after it.
    pub providers: Vec<Provider>,
}

/// One SQL query whose result joins the situation under the provider's name.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Provider {
    /// The provider's name, which is also the CEL and template variable holding its result.
    pub name: String,
    /// Where the database URL is read from; never written in the Solution itself.
    #[serde(flatten)]
    pub url: DatabaseUrl,
    /// The query, with `:named` parameters from [`QUERY_PARAMETERS`].
    pub query: NamedQuery,
    /// How long the query may take before the situation goes on without it; 2s unless told.
    #[serde(with = "duration")]
    pub timeout: Duration,
}

/// Where a secret database URL is read from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub enum DatabaseUrl {
    /// An environment variable of the context service (`urlEnv` in YAML).
    #[serde(rename = "urlEnv")]
    Env(String),
    /// A file, such as a mounted Kubernetes secret (`urlFile` in YAML).
    #[serde(rename = "urlFile")]
    File(PathBuf),
}

/// Read and check `spec.context`.
pub(crate) fn build(raw: Node<RawContext>, path: &Path, problems: &mut Problems) -> ContextSpec {
    let Some(raw) = raw.take(path, problems) else {
        return ContextSpec::default();
    };
    let providers_path = path.field("providers");
    let mut provider_names = Unique::new("provider");
    let mut providers = Vec::new();
    for (item_path, raw_provider) in take_list(raw.providers, &providers_path, problems) {
        let name_path = item_path.field("name");
        let name = raw_provider
            .name
            .required(&name_path, problems)
            .text(&name_path, problems);
        if let Some(name) = &name {
            match names::cel_variable(name) {
                Ok(()) if SITUATION_VARIABLES.contains(&name.as_str()) => problems.report(
                    &name_path,
                    format!(
                        "{name:?} is already a variable of every situation ({}); name the \
                         provider after what it adds",
                        SITUATION_VARIABLES.join(", ")
                    ),
                ),
                Ok(()) => provider_names.claim(name, &name_path, problems),
                Err(message) => problems.report(&name_path, message),
            }
        }
        let url = database_url(
            &raw_provider.url_env,
            &raw_provider.url_file,
            &item_path,
            problems,
        );
        let query_path = item_path.field("query");
        let query = raw_provider
            .query
            .required(&query_path, problems)
            .non_empty_text(&query_path, problems)
            .and_then(|sql| match NamedQuery::parse(&sql) {
                Ok(query) => Some(query),
                Err(message) => {
                    problems.report(&query_path, message);
                    None
                }
            });
        if let Some(query) = &query {
            check_parameters(query, &query_path, problems);
        }
        let timeout = raw_provider
            .timeout
            .positive_duration(&item_path.field("timeout"), problems)
            .unwrap_or(Duration::from_secs(2));
        if let (Some(name), Some(url), Some(query)) = (name, url, query) {
            providers.push(Provider {
                name,
                url,
                query,
                timeout,
            });
        }
    }
    ContextSpec { providers }
}

fn database_url(
    env: &super::scalar::Scalar,
    file: &super::scalar::Scalar,
    path: &Path,
    problems: &mut Problems,
) -> Option<DatabaseUrl> {
    match (env.is_present(), file.is_present()) {
        (true, true) => {
            problems.report(path, "give either urlEnv or urlFile, not both");
            None
        }
        (false, false) => {
            problems.report(
                path,
                "needs urlEnv (an environment variable) or urlFile (a file) holding the \
                 database URL",
            );
            None
        }
        (true, false) => {
            let env_path = path.field("urlEnv");
            let name = env.text(&env_path, problems)?;
            match names::env_var(&name) {
                Ok(()) => Some(DatabaseUrl::Env(name)),
                Err(message) => {
                    problems.report(&env_path, message);
                    None
                }
            }
        }
        (false, true) => {
            let file_path = path.field("urlFile");
            let file = file.non_empty_text(&file_path, problems)?;
            if file.contains("://") {
                problems.report(
                    &file_path,
                    "urlFile names a file holding the URL, not the URL itself; keep the URL \
                     (and its password) out of the Solution",
                );
                return None;
            }
            Some(DatabaseUrl::File(PathBuf::from(file)))
        }
    }
}

fn check_parameters(query: &NamedQuery, path: &Path, problems: &mut Problems) {
    let unknown: Vec<String> = query
        .params()
        .iter()
        .filter(|name| !QUERY_PARAMETERS.contains(&name.as_str()))
        .map(|name| format!(":{name}"))
        .collect();
    if !unknown.is_empty() {
        let found: Vec<String> = query
            .params()
            .iter()
            .map(|name| format!(":{name}"))
            .collect();
        let known: Vec<String> = QUERY_PARAMETERS
            .iter()
            .map(|name| format!(":{name}"))
            .collect();
        problems.report(
            path,
            format!(
                "unknown query parameter{} {} (found {}; available: {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                found.join(", "),
                known.join(", ")
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    fn provider_errors(provider: &str) -> Vec<String> {
        spec_errors(&format!(
            "    context:\n      providers:\n        - {provider}\n"
        ))
    }

    #[test]
    fn a_provider_reads_with_defaults() {
        let yaml = document(&format!(
            "{DEVICES}    context: {{providers: [{{name: workOrders, urlEnv: CMMS_DB, \
             query: \"SELECT * FROM wo WHERE device = :device\"}}]}}\n"
        ));
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        let provider = solution.spec.provider("workOrders").unwrap();
        assert_eq!(provider.url, DatabaseUrl::Env("CMMS_DB".to_owned()));
        assert_eq!(provider.timeout, Duration::from_secs(2));
        assert_eq!(provider.query.params(), ["device"]);
    }

    #[test]
    fn the_database_url_comes_from_exactly_one_place_and_is_never_inline() {
        let query = "query: \"SELECT 1 WHERE d = :device\"";
        assert_eq!(
            provider_errors(&format!("{{name: a, urlEnv: A, urlFile: /f, {query}}}")),
            ["spec.context.providers[0]: give either urlEnv or urlFile, not both"]
        );
        assert_eq!(
            provider_errors(&format!("{{name: a, {query}}}")),
            [
                "spec.context.providers[0]: needs urlEnv (an environment variable) or urlFile (a file) holding the database URL"
            ]
        );
        assert_eq!(
            provider_errors(&format!("{{name: a, urlEnv: 'db-url', {query}}}")),
            [r#"spec.context.providers[0].urlEnv: "db-url" is not an environment variable name"#]
        );
        let found = provider_errors(&format!(
            "{{name: a, urlFile: 'postgres://u:p@h/db', {query}}}"
        ));
        assert!(found[0].starts_with("spec.context.providers[0].urlFile: urlFile names a file"));
    }

    #[test]
    fn queries_use_known_named_parameters_only() {
        let found = provider_errors(
            "{name: a, urlEnv: A, query: \"SELECT 1 WHERE a = $1 AND b = :device\"}",
        );
        assert_eq!(
            found,
            [
                "spec.context.providers[0].query: query uses positional placeholders ($1); write :named parameters instead (named parameters found: :device)"
            ]
        );
        let found = provider_errors(
            "{name: a, urlEnv: A, query: \"SELECT 1 WHERE a = :asset_id AND b = :device\"}",
        );
        assert_eq!(found.len(), 1);
        assert!(
            found[0].starts_with("spec.context.providers[0].query: unknown query parameter :asset_id (found :asset_id, :device; available: :device, "),
            "{}",
            found[0]
        );
    }

    #[test]
    fn provider_names_are_unique_cel_variables() {
        let found = spec_errors(
            "    context:
      providers:
        - {name: spares, urlEnv: A, query: \"SELECT 1\"}
        - {name: spares, urlEnv: A, query: \"SELECT 1\"}
        - {name: asset, urlEnv: A, query: \"SELECT 1\"}
        - {name: in, urlEnv: A, query: \"SELECT 1\"}
        - {name: work-orders, urlEnv: A, query: \"SELECT 1\"}
",
        );
        assert_eq!(found.len(), 4, "{found:#?}");
        assert_eq!(
            found[0],
            r#"spec.context.providers[1].name: duplicate provider "spares" (first at spec.context.providers[0].name)"#
        );
        assert!(found[1].starts_with(
            r#"spec.context.providers[2].name: "asset" is already a variable of every situation"#
        ));
        assert_eq!(
            found[2],
            r#"spec.context.providers[3].name: "in" is a reserved word in CEL"#
        );
        assert!(
            found[3].starts_with(
                r#"spec.context.providers[4].name: "work-orders" is not a valid name"#
            )
        );
    }
}
