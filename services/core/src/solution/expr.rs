//! CEL conditions (`when`) and minijinja templates (titles, bodies), checked on reading.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use cel::common::ast::{EntryExpr, Expr, IdedExpr};

/// A CEL expression that compiles and refers only to variables a situation has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CelExpression {
    source: String,
}

/// CEL's names for types, which read like variables (`type(x) == int`) but are not.
const CEL_TYPE_NAMES: [&str; 11] = [
    "bool",
    "bytes",
    "double",
    "int",
    "uint",
    "string",
    "list",
    "map",
    "null_type",
    "type",
    "dyn",
];

impl CelExpression {
    /// Compile `source` and check that every free variable is one of `variables`.
    pub(crate) fn check(source: &str, variables: &BTreeSet<String>) -> Result<Self, String> {
        check_size(source)?;
        let owned = source.to_owned();
        let free = on_parser_stack(move || {
            let program = cel::Program::compile(&owned).map_err(|errors| describe_cel(&errors))?;
            let mut free = BTreeSet::new();
            free_variables(program.expression(), &mut Vec::new(), &mut free);
            Ok::<_, String>(free)
        })??;
        let unknown: Vec<String> = free
            .into_iter()
            .filter(|name| !variables.contains(name) && !CEL_TYPE_NAMES.contains(&name.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "refers to unknown variable{} {} (known: {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", "),
                variables.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        Ok(CelExpression {
            source: source.to_owned(),
        })
    }

    /// The expression as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Compile the expression for evaluation. It compiled when the Solution was checked, so
    /// this fails only if the `cel` crate changed its mind in between.
    pub fn compile(&self) -> Result<cel::Program, cel::ParseErrors> {
        let source = self.source.clone();
        match on_parser_stack(move || cel::Program::compile(&source)) {
            Ok(result) => result,
            // Only a panic inside the parser lands here; report it as a parse failure.
            Err(message) => cel::Program::compile(&format!("error: {message}")),
        }
    }
}

impl fmt::Display for CelExpression {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl serde::Serialize for CelExpression {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

/// The longest `when` expression accepted, in bytes.
const MAX_EXPRESSION_BYTES: usize = 4096;
/// The deepest nesting of brackets accepted. The CEL parser recurses once per level, so
/// without a bound a deeply nested expression would exhaust the stack of whatever
/// process reads the Solution.
const MAX_NESTING: usize = 32;

/// The stack the CEL parser runs on. It recurses deeply for each level of nesting (in a
/// debug build some hundred kilobytes a level), more than a test thread's or a Tokio
/// worker's stack holds; a thread of its own keeps every caller safe. Only touched
/// pages are committed, so the size costs address space, not memory.
const PARSER_STACK_BYTES: usize = 256 << 20;

/// Run `work` (parsing and walking a CEL expression) on a thread with a large stack.
fn on_parser_stack<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let thread = std::thread::Builder::new()
        .name("cel-parser".to_owned())
        .stack_size(PARSER_STACK_BYTES)
        .spawn(work)
        .map_err(|err| format!("cannot start the expression parser: {err}"))?;
    thread
        .join()
        .map_err(|_| "the expression parser failed on this expression".to_owned())
}

/// Refuse expressions too long or too deeply nested to parse safely.
fn check_size(source: &str) -> Result<(), String> {
    if source.len() > MAX_EXPRESSION_BYTES {
        return Err(format!(
            "is {} bytes long; at most {MAX_EXPRESSION_BYTES} are accepted",
            source.len()
        ));
    }
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for c in source.chars() {
        if let Some(q) = quote {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == q {
                quote = None;
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        return Err(format!(
            "nests brackets {deepest} levels deep; at most {MAX_NESTING} are accepted"
        ));
    }
    Ok(())
}

/// One clause per CEL syntax error: `CEL syntax error at 1:45: unexpected end of expression`.
fn describe_cel(errors: &cel::ParseErrors) -> String {
    let clauses: Vec<String> = errors
        .errors
        .iter()
        .map(|error| {
            format!(
                "CEL syntax error at {}:{}: {}",
                error.pos.0,
                error.pos.1,
                plain(&error.msg)
            )
        })
        .collect();
    if clauses.is_empty() {
        "CEL syntax error".to_owned()
    } else {
        clauses.join("; ")
    }
}

/// The parser's message in plainer words, without the long list of every token that could
/// start an expression.
fn plain(message: &str) -> String {
    let message = message.strip_prefix("Syntax error: ").unwrap_or(message);
    let (what, expecting) = match message.split_once(" expecting ") {
        Some((what, expecting)) => (what, Some(expecting)),
        None => (message, None),
    };
    let what = what
        .replace("mismatched input '<EOF>'", "unexpected end of expression")
        .replace("extraneous input '<EOF>'", "unexpected end of expression")
        .replace("mismatched input ", "unexpected ")
        .replace("extraneous input ", "unexpected ");
    match expecting {
        Some(expecting) if expecting.matches(',').count() < 4 => {
            format!("{what} (expecting {expecting})")
        }
        _ => what,
    }
}

/// Collect the variables `expr` uses that no enclosing comprehension binds (`bound`).
fn free_variables(expr: &IdedExpr, bound: &mut Vec<String>, free: &mut BTreeSet<String>) {
    match &expr.expr {
        Expr::Unspecified | Expr::Literal(_) => {}
        Expr::Ident(name) => {
            // Names starting with `@` are the accumulators macros introduce.
            if !name.starts_with('@') && !bound.contains(name) {
                free.insert(name.clone());
            }
        }
        Expr::Select(select) => free_variables(&select.operand, bound, free),
        Expr::Call(call) => {
            if let Some(target) = &call.target {
                free_variables(target, bound, free);
            }
            for arg in &call.args {
                free_variables(arg, bound, free);
            }
        }
        Expr::List(list) => {
            for element in &list.elements {
                free_variables(element, bound, free);
            }
        }
        Expr::Map(map) => {
            for entry in &map.entries {
                entry_variables(&entry.expr, bound, free);
            }
        }
        Expr::Struct(structure) => {
            for entry in &structure.entries {
                entry_variables(&entry.expr, bound, free);
            }
        }
        Expr::Comprehension(comprehension) => {
            free_variables(&comprehension.iter_range, bound, free);
            free_variables(&comprehension.accu_init, bound, free);
            let depth = bound.len();
            bound.push(comprehension.iter_var.clone());
            bound.extend(comprehension.iter_var2.iter().cloned());
            bound.push(comprehension.accu_var.clone());
            free_variables(&comprehension.loop_cond, bound, free);
            free_variables(&comprehension.loop_step, bound, free);
            free_variables(&comprehension.result, bound, free);
            bound.truncate(depth);
        }
    }
}

fn entry_variables(entry: &EntryExpr, bound: &mut Vec<String>, free: &mut BTreeSet<String>) {
    match entry {
        EntryExpr::StructField(field) => free_variables(&field.value, bound, free),
        EntryExpr::MapEntry(pair) => {
            free_variables(&pair.key, bound, free);
            free_variables(&pair.value, bound, free);
        }
    }
}

/// A minijinja template that parses and refers only to variables it will be given.
///
/// It is parsed once, when checked; rendering reuses the parsed form.
#[derive(Clone)]
pub struct Template {
    source: String,
    compiled: Arc<minijinja::Environment<'static>>,
}

/// The name of the one template in a [`Template`]'s environment.
const TEMPLATE_NAME: &str = "template";

impl PartialEq for Template {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for Template {}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Template")
            .field("source", &self.source)
            .finish()
    }
}

impl Template {
    /// Parse `source` and check that every variable it reads is one of `variables` (or one of
    /// minijinja's own globals, such as `range`).
    pub(crate) fn check(source: &str, variables: &BTreeSet<String>) -> Result<Self, String> {
        let environment = minijinja::Environment::new();
        let template = environment.template_from_str(source).map_err(|error| {
            let mut message = format!("template does not parse: {}", error.kind());
            if let Some(detail) = error.detail() {
                message.push_str(": ");
                message.push_str(detail);
            }
            if let Some(line) = error.line() {
                message.push_str(&format!(" (line {line})"));
            }
            message
        })?;
        let globals: BTreeSet<&str> = environment.globals().map(|(name, _)| name).collect();
        let unknown: BTreeSet<String> = template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| !variables.contains(name) && !globals.contains(name.as_str()))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "template refers to unknown variable{} {} (known: {})",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.into_iter().collect::<Vec<_>>().join(", "),
                variables.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
        }
        let mut compiled = minijinja::Environment::new();
        compiled
            .add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(|error| format!("template does not parse: {}", error.kind()))?;
        Ok(Template {
            source: source.to_owned(),
            compiled: Arc::new(compiled),
        })
    }

    /// The template as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Render the template with `context` (a situation, as a serialisable value).
    pub fn render<C: serde::Serialize>(&self, context: C) -> Result<String, minijinja::Error> {
        self.compiled.get_template(TEMPLATE_NAME)?.render(context)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl serde::Serialize for Template {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known() -> BTreeSet<String> {
        ["detection", "asset", "site"]
            .into_iter()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn refuses_expressions_nested_too_deep_to_parse_safely() {
        let deep = format!("{}true{}", "(".repeat(60), ")".repeat(60));
        let err = CelExpression::check(&deep, &known()).unwrap_err();
        assert!(err.contains("60 levels deep"), "{err}");
        let fine = format!("{}true{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(CelExpression::check(&fine, &known()).is_ok());
        // Brackets inside string literals do not count.
        let quoted = format!("detection.metric == \"{}\"", "(".repeat(100));
        assert!(CelExpression::check(&quoted, &known()).is_ok());
    }

    #[test]
    fn long_chains_within_the_size_limit_parse_without_exhausting_the_stack() {
        let chain = vec!["true"; 500].join(" || ");
        assert!(chain.len() <= MAX_EXPRESSION_BYTES);
        let checked = CelExpression::check(&chain, &known());
        assert!(checked.is_ok(), "{checked:?}");
        let unary = format!("{}true", "!".repeat(MAX_EXPRESSION_BYTES - 4));
        let _ = CelExpression::check(&unary, &known());
        let too_long = vec!["true"; 1200].join(" || ");
        let err = CelExpression::check(&too_long, &known()).unwrap_err();
        assert!(err.contains("at most 4096"), "{err}");
    }

    #[test]
    fn accepts_conditions_over_known_variables() {
        let when = CelExpression::check(
            r#"detection.metric == "bearing_temperature" && asset.criticality == "high""#,
            &known(),
        )
        .unwrap();
        assert!(when.compile().is_ok());
        let comprehension = r#"asset.tags.exists(t, t == "critical") && type(detection) == map"#;
        assert!(CelExpression::check(comprehension, &known()).is_ok());
    }

    #[test]
    fn refuses_syntax_errors_and_unknown_variables() {
        let message = CelExpression::check("detection.metric == ", &known()).unwrap_err();
        assert_eq!(
            message,
            "CEL syntax error at 1:21: unexpected end of expression"
        );
        let message = CelExpression::check("detection.value +* 2", &known()).unwrap_err();
        assert_eq!(message, "CEL syntax error at 1:18: unexpected '*'");
        let message = CelExpression::check("assett.name == 'x'", &known()).unwrap_err();
        assert_eq!(
            message,
            "refers to unknown variable assett (known: asset, detection, site)"
        );
    }

    #[test]
    fn templates_parse_and_render() {
        let title = Template::check("Inspect {{ asset.name }} at {{ site }}", &known()).unwrap();
        let rendered = title.render(serde_json::json!({"asset": {"name": "P-17"}, "site": "N"}));
        assert_eq!(rendered.unwrap(), "Inspect P-17 at N");
        let looped = "{% for i in range(3) %}{{ i }}{{ loop.index }}{% endfor %}";
        assert!(Template::check(looped, &known()).is_ok());
    }

    #[test]
    fn refuses_broken_templates_and_unknown_variables() {
        let message = Template::check("Inspect {{ asset.name", &known()).unwrap_err();
        assert!(
            message.starts_with("template does not parse: syntax error"),
            "{message}"
        );
        let message = Template::check("{{ assets.name }}", &known()).unwrap_err();
        assert!(message.contains("unknown variable assets"), "{message}");
    }
}
