//! What every CLI command prints and reads the same way: `--json` documents, left-aligned tables,
//! and JSON arguments (inline, or `-` for standard input).

use std::io::Read;

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

/// Prints `value` as indented JSON (the `--json` output).
pub(crate) fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// JSON from the argument, or from standard input when it is `-`; `what` names it in errors
/// ("the config", "the payload").
pub(crate) fn read_json(arg: &str, what: &str) -> anyhow::Result<Value> {
    let text = if arg == "-" {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .with_context(|| format!("reading {what} from standard input"))?;
        s
    } else {
        arg.to_owned()
    };
    serde_json::from_str(&text).with_context(|| format!("{what} is not valid JSON"))
}

/// Left-aligned columns, two spaces apart, widths in characters.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}
