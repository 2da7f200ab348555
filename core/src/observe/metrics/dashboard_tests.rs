//! The Grafana dashboard (docs/grafana/annex.json) and the alert rules
//! (docs/prometheus/annex-rules.yml) name only metrics annex exports: a renamed metric breaks
//! this test, not an operator's dashboard.

use std::collections::BTreeSet;

use super::Metrics;

const DASHBOARD: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/grafana/annex.json"));
const RULES: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/prometheus/annex-rules.yml"));

/// PromQL words that are not metric names: keywords and the functions the files use are
/// recognised by the `(` that follows them; these stand alone.
const KEYWORDS: &[&str] = &[
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    // Aggregations may take their grouping before the parenthesis: `sum by (x) (…)`.
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
];

/// The metric names a PromQL expression reads: identifiers outside label matchers, strings,
/// ranges and grouping clauses, not called as functions and not keywords.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let chars: Vec<char> = expr.chars().collect();
    let mut i = 0;
    let mut after_grouping = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '"' | '\'' => {
                i += 1;
                while i < chars.len() && chars[i] != c {
                    i += usize::from(chars[i] == '\\') + 1;
                }
                i += 1;
            }
            '{' | '[' => {
                let close = if c == '{' { '}' } else { ']' };
                while i < chars.len() && chars[i] != close {
                    if chars[i] == '"' {
                        i += 1;
                        while i < chars.len() && chars[i] != '"' {
                            i += usize::from(chars[i] == '\\') + 1;
                        }
                    }
                    i += 1;
                }
                i += 1;
            }
            '(' if after_grouping => {
                while i < chars.len() && chars[i] != ')' {
                    i += 1;
                }
                i += 1;
                after_grouping = false;
            }
            c if c.is_ascii_digit() => {
                // A number, such as 0.99 or 1e-9: its letters are not names.
                while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                    i += 1;
                }
            }
            c if c.is_ascii_alphabetic() || c == '_' || c == ':' || c == '$' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], '_' | ':' | '$'))
                {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                let mut j = i;
                while j < chars.len() && chars[j].is_whitespace() {
                    j += 1;
                }
                let called = chars.get(j) == Some(&'(');
                after_grouping = matches!(
                    word.as_str(),
                    "by" | "without" | "on" | "ignoring" | "group_left" | "group_right"
                );
                if !called && !word.starts_with('$') && !KEYWORDS.contains(&word.as_str()) {
                    names.insert(word);
                }
            }
            _ => i += 1,
        }
    }
    names
}

/// Every `expr` of the dashboard's panels (and its variable queries' metrics).
fn dashboard_exprs() -> Vec<(String, String)> {
    let dashboard: serde_json::Value = serde_json::from_str(DASHBOARD).expect("the dashboard is JSON");
    let mut out = Vec::new();
    let panels = dashboard["panels"].as_array().expect("panels");
    for panel in panels {
        let title = panel["title"].as_str().unwrap_or("?").to_owned();
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().expect("every target has an expr");
            out.push((title.clone(), expr.to_owned()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().into_iter().flatten() {
        if let Some(q) = var["query"]["query"].as_str() {
            // label_values(<metric>, <label>)
            let inner = q.trim_start_matches("label_values(").split(',').next().unwrap_or_default();
            out.push((format!("variable {}", var["name"]), inner.trim().to_owned()));
        }
    }
    out
}

/// Every `expr:` of the rules file, block scalars (`|`, `>-`) included.
fn rule_exprs() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let lines: Vec<&str> = RULES.lines().collect();
    let mut alert = String::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        if let Some(name) = line.strip_prefix("- alert:") {
            alert = name.trim().to_owned();
        }
        if let Some(rest) = line.strip_prefix("expr:") {
            let rest = rest.trim();
            if rest.starts_with('|') || rest.starts_with('>') {
                let indent = lines[i].len() - line.len();
                let mut expr = String::new();
                i += 1;
                while i < lines.len()
                    && (lines[i].trim().is_empty() || lines[i].len() - lines[i].trim_start().len() > indent)
                {
                    expr.push_str(lines[i].trim());
                    expr.push('\n');
                    i += 1;
                }
                out.push((alert.clone(), expr));
                continue;
            }
            out.push((alert.clone(), rest.to_owned()));
        }
        i += 1;
    }
    out
}

fn exported() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for name in Metrics::family_names() {
        for suffix in ["", "_bucket", "_sum", "_count"] {
            names.insert(format!("{name}{suffix}"));
        }
    }
    // Written by Prometheus itself for every scrape target.
    names.insert("up".to_owned());
    names
}

#[test]
fn the_expression_reader_finds_metrics_and_skips_labels_functions_and_groupings() {
    let found = metric_names(
        r#"histogram_quantile(0.99, sum by (extension, le) (rate(a_bucket{extension=~"x|y", route="/{id}"}[5m]))) / b or vector(0) and on (x) c"#,
    );
    assert_eq!(found, ["a_bucket", "b", "c"].map(String::from).into_iter().collect());
}

#[test]
fn every_dashboard_panel_and_alert_rule_names_only_metrics_annex_exports() {
    let exported = exported();
    let dashboard = dashboard_exprs();
    let rules = rule_exprs();
    assert!(dashboard.len() >= 30, "the dashboard has its panels' queries: {}", dashboard.len());
    assert!(rules.len() >= 10, "the rules file has its alerts: {}", rules.len());
    let mut unknown = Vec::new();
    let mut used = BTreeSet::new();
    for (owner, expr) in dashboard.iter().chain(&rules) {
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{owner}: `{expr}` reads no metric");
        for name in names {
            if !exported.contains(&name) {
                unknown.push(format!("{owner}: {name}"));
            }
            used.insert(name);
        }
    }
    assert!(unknown.is_empty(), "metrics annex does not export: {unknown:#?}");
    // The dashboard covers what the issue asks for.
    for needed in [
        "extension_requests_total",
        "extension_errors_total",
        "extension_request_duration_seconds_bucket",
        "extension_hook_duration_seconds_bucket",
        "extension_health_status",
        "extension_resource_usage",
        "pipeline_stage_health_score",
        "pipeline_stage_circuit_open",
    ] {
        assert!(used.contains(needed), "the dashboard shows {needed}");
    }
}
