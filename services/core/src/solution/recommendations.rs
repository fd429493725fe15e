//! Recommendations: when one is made, what it says, its escalations and its actions.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::duration;
use super::error::Problems;
use super::expr::{CelExpression, Template};
use super::keyword::{Severity, keyword_enum};
use super::names::{self, Unique};
use super::node::take_list;
use super::path::Path;
use super::raw::{List, RawAction, RawEscalation, RawRecommendation, RawSecretRef, RawWebhook};
use super::scalar::Scalar;
use super::url;

/// The variables every situation has, for `when` conditions and templates:
///
/// - `detection`: what analytics found, with `device`, `deviceType`, `metric`, `detector`,
///   `kind`, `severity`, `value`, `state` (`raised` or `cleared`) and `ts`;
/// - `asset`: the asset the device belongs to, from the asset registry (`name`,
///   `criticality`, `owner`, ...);
/// - `site`: the site the asset is at, from the asset registry (`name`, ...).
///
/// Each context provider adds one more variable, named after it.
pub const SITUATION_VARIABLES: [&str; 3] = ["detection", "asset", "site"];

/// The extra variable a webhook body sees: the recommendation being acted on.
pub const RECOMMENDATION_VARIABLE: &str = "recommendation";

keyword_enum! {
    /// Which recommendations a situation produces when several match.
    pub enum MatchPolicy ("match policy") {
        /// Every recommendation whose condition holds.
        All = "all",
        /// Only the first whose condition holds, by `order`.
        First = "first",
    }
}

keyword_enum! {
    /// What closes a recommendation.
    pub enum ResolveWhen ("resolveWhen policy") {
        /// The detection that caused it clears.
        Cleared = "cleared",
        /// A person closes it.
        Manual = "manual",
    }
}

/// What to recommend in a situation, and what to do about it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Recommendation {
    /// The recommendation's name, a DNS-1123 label: `bearing-overheat`.
    pub name: String,
    /// The condition, in CEL, over the situation's variables.
    pub when: CelExpression,
    /// Where the recommendation stands when they are judged in turn; its list position
    /// (from 0) unless told.
    pub order: i64,
    /// The title shown to people, a minijinja template over the situation.
    pub title: Template,
    /// A longer text, a template over the situation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<Template>,
    /// The recommendation's severity; the detection's unless told.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<Severity>,
    /// Who is told when the recommendation is still open after each delay, in rising order.
    pub escalate: Vec<EscalationStep>,
    /// What closes the recommendation; `cleared` unless told.
    pub resolve_when: ResolveWhen,
    /// What is started when the recommendation is made.
    pub actions: Vec<Action>,
}

/// One rung of an escalation ladder.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EscalationStep {
    /// How long after the recommendation was made, if still open.
    #[serde(with = "duration")]
    pub after: Duration,
    /// Who is told: a role or group known to the task service, such as `maintenance-lead`.
    pub to: String,
}

/// Something a recommendation starts.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    /// An HTTP POST to an outside system, such as a CMMS opening a work order.
    Webhook(WebhookAction),
    /// A record on the Solution's actions topic, for whoever consumes it (`topic: {}`).
    Topic(TopicAction),
}

/// An HTTP POST of the recommendation.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookAction {
    /// Where to post: an `http://` or `https://` URL, without credentials.
    pub url: String,
    /// Where the value of the authentication header is read from; no header when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<SecretRef>,
    /// The header that carries the secret, as is (write `Bearer ...` into the secret if the
    /// receiver wants it); `Authorization` unless told.
    pub header: String,
    /// The request body, a template over the situation and `recommendation`; the
    /// recommendation as JSON when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<Template>,
}

/// Where a secret is read from; secrets are never written in the Solution.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum SecretRef {
    /// An environment variable of the orchestrator.
    Env(String),
    /// A file, such as a mounted Kubernetes secret.
    File(PathBuf),
}

/// A record on the actions topic; it has no settings (yet).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct TopicAction {}

/// Read and check `spec.recommendations`; `providers` are the context providers' names.
pub(crate) fn build(
    raw: List<RawRecommendation>,
    providers: &[String],
    match_policy: MatchPolicy,
    path: &Path,
    problems: &mut Problems,
) -> Vec<Recommendation> {
    let mut variables: BTreeSet<String> = SITUATION_VARIABLES
        .iter()
        .map(|name| (*name).to_owned())
        .collect();
    variables.extend(providers.iter().cloned());
    let mut recommendation_names = Unique::new("recommendation");
    let mut orders = Unique::new("order");
    let mut recommendations = Vec::new();
    let items = raw.take(path, problems).unwrap_or_default();
    for (position, item) in items.into_iter().enumerate() {
        let item_path = path.index(position);
        let Some(raw_item) = item.take(&item_path, problems) else {
            continue;
        };
        let order_path = item_path.field("order");
        let given_order = raw_item.order.integer(&order_path, problems);
        let order = given_order.unwrap_or(i64::try_from(position).unwrap_or(i64::MAX));
        if match_policy == MatchPolicy::First {
            // With `first`, order decides which recommendation wins: a tie would be arbitrary.
            orders.claim(&order.to_string(), &order_path, problems);
        }
        if let Some(recommendation) = build_one(raw_item, order, &variables, &item_path, problems) {
            recommendation_names.claim(&recommendation.name, &item_path.field("name"), problems);
            recommendations.push(recommendation);
        }
    }
    recommendations
}

fn build_one(
    raw: RawRecommendation,
    order: i64,
    variables: &BTreeSet<String>,
    path: &Path,
    problems: &mut Problems,
) -> Option<Recommendation> {
    let name_path = path.field("name");
    let name = raw
        .name
        .required(&name_path, problems)
        .text(&name_path, problems);
    let name = name.filter(|name| match names::dns_label(name) {
        Ok(()) => true,
        Err(message) => {
            problems.report(&name_path, message);
            false
        }
    });
    let when_path = path.field("when");
    let when = raw
        .when
        .required(&when_path, problems)
        .non_empty_text(&when_path, problems)
        .and_then(|source| {
            checked(
                CelExpression::check(&source, variables),
                &when_path,
                problems,
            )
        });
    let title = template(&raw.title, true, variables, &path.field("title"), problems);
    let description = template(
        &raw.description,
        false,
        variables,
        &path.field("description"),
        problems,
    );
    let severity = raw.severity.keyword(&path.field("severity"), problems);
    let escalate = build_escalation(raw.escalate, &path.field("escalate"), problems);
    let resolve_when = raw
        .resolve_when
        .keyword(&path.field("resolveWhen"), problems)
        .unwrap_or(ResolveWhen::Cleared);
    let mut body_variables = variables.clone();
    body_variables.insert(RECOMMENDATION_VARIABLE.to_owned());
    let mut actions = Vec::new();
    for (action_path, raw_action) in take_list(raw.actions, &path.field("actions"), problems) {
        if let Some(action) = build_action(raw_action, &body_variables, &action_path, problems) {
            actions.push(action);
        }
    }
    Some(Recommendation {
        name: name?,
        when: when?,
        order,
        title: title?,
        description,
        severity,
        escalate,
        resolve_when,
        actions,
    })
}

/// The template at `raw`, checked; reports a missing one when `required`.
fn template(
    raw: &Scalar,
    required: bool,
    variables: &BTreeSet<String>,
    path: &Path,
    problems: &mut Problems,
) -> Option<Template> {
    if required {
        raw.required(path, problems);
    }
    let source = raw.non_empty_text(path, problems)?;
    checked(Template::check(&source, variables), path, problems)
}

fn checked<T>(result: Result<T, String>, path: &Path, problems: &mut Problems) -> Option<T> {
    result
        .map_err(|message| problems.report(path, message))
        .ok()
}

fn build_escalation(
    raw: List<RawEscalation>,
    path: &Path,
    problems: &mut Problems,
) -> Vec<EscalationStep> {
    let mut steps: Vec<EscalationStep> = Vec::new();
    for (step_path, raw_step) in take_list(raw, path, problems) {
        let after_path = step_path.field("after");
        let after = raw_step
            .after
            .required(&after_path, problems)
            .positive_duration(&after_path, problems);
        let to_path = step_path.field("to");
        let to = raw_step
            .to
            .required(&to_path, problems)
            .non_empty_text(&to_path, problems);
        let latest = steps.iter().map(|step| step.after).max();
        if let (Some(after), Some(latest)) = (after, latest)
            && after <= latest
        {
            problems.report(
                &after_path,
                format!(
                    "escalation steps must come later and later: {} is not after an earlier \
                     step's {}",
                    duration::format(after),
                    duration::format(latest)
                ),
            );
        }
        if let (Some(after), Some(to)) = (after, to) {
            steps.push(EscalationStep { after, to });
        }
    }
    steps
}

fn build_action(
    raw: RawAction,
    body_variables: &BTreeSet<String>,
    path: &Path,
    problems: &mut Problems,
) -> Option<Action> {
    let webhook_path = path.field("webhook");
    let webhook = raw.webhook.take(&webhook_path, problems);
    let topic = raw.topic.take(&path.field("topic"), problems);
    match (webhook, topic) {
        (Some(_), Some(_)) => {
            problems.report(path, "an action is either a webhook or a topic, not both");
            None
        }
        (Some(webhook), None) => {
            build_webhook(webhook, body_variables, &webhook_path, problems).map(Action::Webhook)
        }
        (None, Some(_)) => Some(Action::Topic(TopicAction {})),
        (None, None) => {
            if !problems.any_at_or_below(path) {
                problems.report(
                    path,
                    "an action needs one of: webhook, topic (write `topic: {}` for the \
                     Solution's actions topic)",
                );
            }
            None
        }
    }
}

fn build_webhook(
    raw: RawWebhook,
    body_variables: &BTreeSet<String>,
    path: &Path,
    problems: &mut Problems,
) -> Option<WebhookAction> {
    let url_path = path.field("url");
    let url = raw
        .url
        .required(&url_path, problems)
        .text(&url_path, problems)
        .and_then(|url| {
            checked(
                url::check(&url, &["http", "https"]).map(|()| url),
                &url_path,
                problems,
            )
        });
    let secret_path = path.field("secretRef");
    let secret_present = raw.secret_ref.is_present();
    let secret_ref = raw
        .secret_ref
        .take(&secret_path, problems)
        .and_then(|raw| build_secret_ref(raw, &secret_path, problems));
    let header_path = path.field("header");
    let header = raw.header.text(&header_path, problems);
    if let Some(header) = &header {
        if !is_header_name(header) {
            problems.report(
                &header_path,
                format!("{header:?} is not an HTTP header name"),
            );
        }
        if !secret_present {
            problems.report(&header_path, "header only applies with secretRef");
        }
    }
    let body = template(
        &raw.body,
        false,
        body_variables,
        &path.field("body"),
        problems,
    );
    Some(WebhookAction {
        url: url?,
        secret_ref,
        header: header.unwrap_or_else(|| "Authorization".to_owned()),
        body,
    })
}

fn build_secret_ref(raw: RawSecretRef, path: &Path, problems: &mut Problems) -> Option<SecretRef> {
    match (raw.env.is_present(), raw.file.is_present()) {
        (true, false) => {
            let env_path = path.field("env");
            let name = raw.env.text(&env_path, problems)?;
            checked(
                names::env_var(&name).map(|()| SecretRef::Env(name)),
                &env_path,
                problems,
            )
        }
        (false, true) => {
            let file = raw.file.non_empty_text(&path.field("file"), problems)?;
            Some(SecretRef::File(PathBuf::from(file)))
        }
        (true, true) => {
            problems.report(path, "give either env or file, not both");
            None
        }
        (false, false) => {
            if !problems.any_at_or_below(path) {
                problems.report(
                    path,
                    "needs env (an environment variable) or file (a file) holding the secret",
                );
            }
            None
        }
    }
}

/// Whether `name` is an HTTP header field name (an RFC 9110 token).
fn is_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{DEVICES, document, spec_errors};
    use super::*;

    /// The errors of one recommendation written as inline YAML mapping entries.
    fn recommendation_errors(entries: &str) -> Vec<String> {
        spec_errors(&format!("    recommendations:\n      - {{{entries}}}\n"))
    }

    const BASICS: &str = "name: hot, when: 'detection.value > 80', title: 'Hot {{ asset.name }}'";

    #[test]
    fn a_recommendation_reads_with_defaults() {
        let yaml = document(&format!("{DEVICES}    recommendations: [{{{BASICS}}}]\n"));
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        let recommendation = solution.spec.recommendation("hot").unwrap();
        assert_eq!(recommendation.order, 0);
        assert_eq!(recommendation.resolve_when, ResolveWhen::Cleared);
        assert_eq!(recommendation.severity, None);
        assert!(recommendation.actions.is_empty());
        assert_eq!(solution.spec.match_policy, MatchPolicy::All);
        assert!(recommendation.when.compile().is_ok());
    }

    #[test]
    fn names_are_unique_labels() {
        let found = spec_errors(&format!(
            "    recommendations:\n      - {{{BASICS}}}\n      - {{{BASICS}}}\n      - {{{}}}\n",
            BASICS.replace("name: hot", "name: Hot")
        ));
        assert_eq!(found.len(), 2, "{found:#?}");
        assert_eq!(
            found[0],
            r#"spec.recommendations[1].name: duplicate recommendation "hot" (first at spec.recommendations[0].name)"#
        );
        assert!(
            found[1].starts_with(r#"spec.recommendations[2].name: "Hot" is not a DNS-1123 label"#)
        );
    }

    #[test]
    fn conditions_compile_and_use_known_variables() {
        let found = recommendation_errors("name: a, when: 'detection.value >', title: x");
        assert_eq!(
            found,
            [
                "spec.recommendations[0].when: CEL syntax error at 1:18: unexpected end of expression"
            ]
        );
        let found = recommendation_errors("name: a, when: 'sensor.value > 1', title: x");
        assert_eq!(
            found,
            [
                "spec.recommendations[0].when: refers to unknown variable sensor (known: asset, detection, site)"
            ]
        );
        let with_provider =
            "    context: {providers: [{name: spares, urlEnv: A, query: 'SELECT 1'}]}
    recommendations: [{name: a, when: 'size(spares) == 0', title: '{{ spares | length }}'}]
";
        assert!(spec_errors(with_provider).is_empty());
        let found = recommendation_errors("name: a, title: x");
        assert_eq!(found, ["spec.recommendations[0].when: is required"]);
    }

    #[test]
    fn templates_parse_and_use_known_variables() {
        let found = recommendation_errors(
            "name: a, when: 'true', title: 'Hot {{ asset.name', description: '{{ recommendation.title }}'",
        );
        assert_eq!(
            found,
            [
                "spec.recommendations[0].title: template does not parse: syntax error: unexpected end of input, expected end of variable block (line 1)",
                "spec.recommendations[0].description: template refers to unknown variable recommendation (known: asset, detection, site)",
            ]
        );
        let body =
            "actions: [{webhook: {url: 'https://x.example', body: '{{ recommendation.title }}'}}]";
        assert!(recommendation_errors(&format!("{BASICS}, {body}")).is_empty());
    }

    #[test]
    fn escalation_steps_come_later_and_later() {
        let found = recommendation_errors(&format!(
            "{BASICS}, escalate: [{{after: 1h, to: lead}}, {{after: 30m, to: manager}}, {{after: 1h, to: x}}, {{after: 2h}}]"
        ));
        assert_eq!(
            found,
            [
                "spec.recommendations[0].escalate[1].after: escalation steps must come later and later: 30m is not after an earlier step's 1h",
                "spec.recommendations[0].escalate[2].after: escalation steps must come later and later: 1h is not after an earlier step's 1h",
                "spec.recommendations[0].escalate[3].to: is required",
            ]
        );
    }

    #[test]
    fn webhooks_are_checked() {
        let found = recommendation_errors(&format!(
            "{BASICS}, actions: [\
             {{webhook: {{url: 'ftp://x.example'}}}}, \
             {{webhook: {{url: 'https://x.example', secretRef: {{env: A, file: /b}}}}}}, \
             {{webhook: {{url: 'https://x.example', secretRef: {{}}}}}}, \
             {{webhook: {{url: 'https://x.example', header: X-Token}}}}, \
             {{webhook: {{url: 'https://x.example', secretRef: {{env: T}}, header: 'Bad Header'}}}}, \
             {{webhook: {{url: 'https://x.example'}}, topic: {{}}}}, \
             {{}}]"
        ));
        let actions = "spec.recommendations[0].actions";
        assert_eq!(
            found,
            [
                format!(
                    r#"{actions}[0].webhook.url: "ftp://x.example" must start with http:// or https://"#
                ),
                format!("{actions}[1].webhook.secretRef: give either env or file, not both"),
                format!(
                    "{actions}[2].webhook.secretRef: needs env (an environment variable) or file (a file) holding the secret"
                ),
                format!("{actions}[3].webhook.header: header only applies with secretRef"),
                format!(r#"{actions}[4].webhook.header: "Bad Header" is not an HTTP header name"#),
                format!("{actions}[5]: an action is either a webhook or a topic, not both"),
                format!(
                    "{actions}[6]: an action needs one of: webhook, topic (write `topic: {{}}` for the Solution's actions topic)"
                ),
            ]
        );
    }

    #[test]
    fn order_must_be_unambiguous_when_the_first_match_wins() {
        let two = format!(
            "      - {{{BASICS}, order: 1}}\n      - {{{}, order: 1}}\n",
            BASICS.replace("hot", "warm")
        );
        assert!(spec_errors(&format!("    recommendations:\n{two}")).is_empty());
        let found = spec_errors(&format!(
            "    matchPolicy: first\n    recommendations:\n{two}"
        ));
        assert_eq!(
            found,
            [
                r#"spec.recommendations[1].order: duplicate order "1" (first at spec.recommendations[0].order)"#
            ]
        );
        let yaml = document(&format!(
            "{DEVICES}    matchPolicy: first\n    recommendations:\n      - {{{BASICS}, order: 5}}\n      - {{{}}}\n",
            BASICS.replace("hot", "warm")
        ));
        let solution = super::super::Solution::from_yaml(&yaml).unwrap();
        let names: Vec<&str> = solution
            .spec
            .recommendations_in_order()
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        assert_eq!(names, ["warm", "hot"]);
    }
}
