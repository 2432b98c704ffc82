//! Checking a lesson's links: every relative link points at a file that exists, and a code
//! reference [`name`](../servers/x/src/main.rs) names something that file defines.

use crate::markdown::{Document, Link};
use regex::Regex;
use std::path::Path;

/// Checks every link of the lesson at `path`; Err lists the broken ones.
pub fn check_links(path: &Path) -> Result<(), String> {
    check_links_allowing(path, |_| false)
}

/// [`check_links`], except that a link to a missing file for which `may_be_missing` is true
/// passes (a translation being written on another branch:
/// [`is_awaiting_translation`](crate::editions::is_awaiting_translation)).
pub fn check_links_allowing(
    path: &Path,
    may_be_missing: impl Fn(&Path) -> bool,
) -> Result<(), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.display();
    let failures: Vec<String> = Document::parse(&text)
        .links()
        .iter()
        .filter_map(|link| check_link(dir, link, &may_be_missing).err())
        .map(|why| format!("{name}: {why}"))
        .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

/// How many code references (links to `.rs` files naming an item) the lesson has.
pub fn count_code_refs(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    Document::parse(&text)
        .links()
        .iter()
        .filter(|l| l.target.ends_with(".rs") && item_name(&l.text).is_some())
        .count()
}

fn check_link(
    dir: &Path,
    link: &Link,
    may_be_missing: &impl Fn(&Path) -> bool,
) -> Result<(), String> {
    let target = link.target.split('#').next().unwrap_or("");
    if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
        return Ok(()); // an anchor in the same page, or the web
    }
    let file = dir.join(target);
    if !file.exists() && may_be_missing(&file) {
        return Ok(());
    }
    if !file.exists() {
        return Err(format!(
            "line {}: {} does not exist",
            link.line, link.target
        ));
    }
    if !target.ends_with(".rs") {
        return Ok(());
    }
    let Some(item) = item_name(&link.text) else {
        return Ok(()); // a link to the file itself
    };
    let source = std::fs::read_to_string(&file).map_err(|e| format!("{target}: {e}"))?;
    for part in item.split("::") {
        if !defines(&source, part) {
            return Err(format!(
                "line {}: {target} defines no `{part}` (from [{}])",
                link.line, link.text
            ));
        }
    }
    Ok(())
}

/// The item a link text names: `` `serve` ``, `` `serve()` ``, `` `fn serve` ``,
/// `` `Peer::on_readable` ``. None for plain text.
pub fn item_name(text: &str) -> Option<&str> {
    let inner = text.strip_prefix('`')?.strip_suffix('`')?;
    let inner = inner.strip_suffix("()").unwrap_or(inner);
    let inner = ["fn ", "struct ", "enum ", "trait ", "const ", "mod "]
        .iter()
        .find_map(|k| inner.strip_prefix(k))
        .unwrap_or(inner);
    let ident = |s: &str| {
        !s.is_empty()
            && s.chars().all(|c| c.is_alphanumeric() || c == '_')
            && !s.starts_with(|c: char| c.is_ascii_digit())
    };
    inner.split("::").all(ident).then_some(inner)
}

/// Whether `source` defines `name` (fn, type, const, module or macro).
pub fn defines(source: &str, name: &str) -> bool {
    let pattern = format!(
        r"\b(fn|struct|enum|trait|type|const|static|mod|union|macro_rules!)\s+{}\b",
        regex::escape(name)
    );
    Regex::new(&pattern).is_ok_and(|re| re.is_match(source))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Link texts name items in the documented shapes, and plain text names none.
    #[test]
    fn reads_item_names() {
        assert_eq!(item_name("`serve`"), Some("serve"));
        assert_eq!(item_name("`serve()`"), Some("serve"));
        assert_eq!(item_name("`fn on_bytes`"), Some("on_bytes"));
        assert_eq!(item_name("`Hub::connect`"), Some("Hub::connect"));
        assert_eq!(item_name("the source"), None);
        assert_eq!(item_name("`a b`"), None);
    }

    /// Definitions are found by keyword, not by mere mention.
    #[test]
    fn finds_definitions() {
        let src = "pub fn serve(x: u8) {}\nstruct Peer;\nconst ACCEPT_BACKOFF: u8 = 1;\n// calls helper()";
        assert!(defines(src, "serve"));
        assert!(defines(src, "Peer"));
        assert!(defines(src, "ACCEPT_BACKOFF"));
        assert!(!defines(src, "helper"));
        assert!(!defines(src, "ser"));
    }
}
