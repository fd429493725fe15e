//! Recommendation rules: each `when` condition, compiled once, judged over a situation's
//! variables in `order` under the Solution's match policy.

use std::sync::Arc;

use serde_json::{Map, Value};
use sinter_core::Solution;
use sinter_core::solution::{MatchPolicy, Recommendation};

/// One rule, ready to evaluate.
pub struct CompiledRule {
    pub rule: Recommendation,
    program: cel::Program,
}

/// A rule whose condition held for a situation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleMatch {
    /// The rule's name.
    pub rule: String,
}

/// A rule that could not be judged on a situation; the other rules go on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleFailure {
    pub rule: String,
    /// What went wrong, for a person: `no such key: criticality`.
    pub reason: String,
}

/// What the rules made of one situation.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Judgement {
    pub matches: Vec<RuleMatch>,
    pub failures: Vec<RuleFailure>,
}

/// The rules of one Solution, in the order they are judged.
pub struct RuleSet {
    policy: MatchPolicy,
    rules: Vec<CompiledRule>,
    providers: Vec<String>,
    /// CEL's standard library, built once: building it took most of judging a situation.
    env: Arc<cel::Env>,
}

/// A rule whose condition does not compile; the Solution was checked when loaded, so this
/// only happens if the CEL crate changed its mind in between.
#[derive(Debug, thiserror::Error)]
#[error("spec.recommendations {rule}: the condition does not compile: {reason}")]
pub struct CompileError {
    pub rule: String,
    pub reason: String,
}

impl RuleSet {
    /// Compile every rule of `solution`.
    pub fn compile(solution: &Solution) -> Result<RuleSet, CompileError> {
        let mut rules = Vec::new();
        for rule in solution.spec.recommendations_in_order() {
            let program = rule.when.compile().map_err(|error| CompileError {
                rule: rule.name.clone(),
                reason: error.to_string(),
            })?;
            rules.push(CompiledRule {
                rule: rule.clone(),
                program,
            });
        }
        let providers = solution
            .spec
            .context
            .providers
            .iter()
            .map(|provider| provider.name.clone())
            .collect();
        Ok(RuleSet {
            policy: solution.spec.match_policy,
            rules,
            providers,
            env: Arc::new(cel::Env::stdlib()),
        })
    }

    /// The context providers whose results become variables.
    pub fn providers(&self) -> &[String] {
        &self.providers
    }

    /// The rule called `name`.
    pub fn rule(&self, name: &str) -> Option<&Recommendation> {
        self.rules
            .iter()
            .map(|compiled| &compiled.rule)
            .find(|rule| rule.name == name)
    }

    /// Judge every rule in order over `variables`. Under `first`, judging stops at the first
    /// rule that holds; a rule that fails is reported and judging goes on.
    pub fn judge(&self, variables: &Map<String, Value>) -> Judgement {
        let mut judgement = Judgement::default();
        let context = match cel_context(&self.env, variables) {
            Ok(context) => context,
            Err(reason) => {
                judgement.failures = self
                    .rules
                    .iter()
                    .map(|compiled| RuleFailure {
                        rule: compiled.rule.name.clone(),
                        reason: reason.clone(),
                    })
                    .collect();
                return judgement;
            }
        };
        for compiled in &self.rules {
            match compiled.program.execute(&context) {
                Ok(cel::Value::Bool(true)) => {
                    judgement.matches.push(RuleMatch {
                        rule: compiled.rule.name.clone(),
                    });
                    if self.policy == MatchPolicy::First {
                        break;
                    }
                }
                Ok(cel::Value::Bool(false)) => {}
                Ok(other) => judgement.failures.push(RuleFailure {
                    rule: compiled.rule.name.clone(),
                    reason: format!("the condition gave {other:?}, not true or false"),
                }),
                Err(error) => judgement.failures.push(RuleFailure {
                    rule: compiled.rule.name.clone(),
                    reason: error.to_string(),
                }),
            }
        }
        judgement
    }
}

fn cel_context(
    env: &Arc<cel::Env>,
    variables: &Map<String, Value>,
) -> Result<cel::Context<'static, 'static>, String> {
    let mut context = cel::Context::with_env(env.clone());
    for (name, value) in variables {
        let value = cel::to_value(value)
            .map_err(|error| format!("variable {name} cannot be given to CEL: {error}"))?;
        context.add_variable_from_value(name.clone(), value);
    }
    Ok(context)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn solution(policy: &str) -> Solution {
        let yaml = format!(
            r#"
apiVersion: sinter.dev/v1alpha1
kind: Solution
metadata: {{name: pumps, namespace: test}}
spec:
  devices:
    - type: pump
      match: ["p-*"]
      metrics: [{{name: temp, unit: degC}}]
  matchPolicy: {policy}
  recommendations:
    - name: broken
      when: 'asset.criticality == "high"'
      order: 1
      title: broken
    - name: hot
      when: 'detection.value > 80'
      order: 2
      title: 'Hot {{{{ asset.name }}}}'
    - name: very-hot
      when: 'detection.value > 90'
      order: 3
      title: very hot
"#
        );
        Solution::from_yaml(&yaml).expect("the test Solution is valid")
    }

    fn variables(value: f64) -> Map<String, Value> {
        let value = json!({"detection": {"value": value}, "asset": {}, "site": {}});
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn all_matches_every_rule_and_a_failure_stops_nothing() {
        let rules = RuleSet::compile(&solution("all")).unwrap();
        let judgement = rules.judge(&variables(95.0));
        let matched: Vec<&str> = judgement.matches.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(matched, ["hot", "very-hot"]);
        assert_eq!(judgement.failures.len(), 1);
        assert_eq!(judgement.failures[0].rule, "broken");
        assert!(
            judgement.failures[0].reason.contains("criticality"),
            "{}",
            judgement.failures[0].reason
        );
        // The failing rule is judged again on the next situation.
        let next = rules.judge(&variables(10.0));
        assert!(next.matches.is_empty());
        assert_eq!(next.failures.len(), 1);
    }

    #[test]
    fn first_stops_at_the_first_match_by_order() {
        let rules = RuleSet::compile(&solution("first")).unwrap();
        let judgement = rules.judge(&variables(95.0));
        let matched: Vec<&str> = judgement.matches.iter().map(|m| m.rule.as_str()).collect();
        assert_eq!(matched, ["hot"]);
    }
}
