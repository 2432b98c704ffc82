//! Links and code references in the course, in both editions: every relative link points at a
//! file that exists, and every code reference [`name`](../servers/x/src/main.rs) names an item
//! that file defines.

use lessons::editions::{is_awaiting_translation, links_stay_in_chinese};
use lessons::refs::{check_links_allowing, count_code_refs};

/// No lesson, English or Chinese, links to a missing file or to a function, type or constant
/// that is not there. (A Chinese lesson may link to a Chinese file listed in
/// `lessons::editions::AWAITING_TRANSLATION` before it exists.)
#[test]
fn every_link_and_code_reference_resolves() {
    let failures = lessons::failures(&lessons::all_markdown_files(), |p| {
        check_links_allowing(p, is_awaiting_translation)
    });
    assert!(
        failures.is_empty(),
        "broken links:\n{}",
        failures.join("\n")
    );
}

/// The Chinese edition links to Chinese lessons: a reader who chose Chinese stays in Chinese.
#[test]
fn chinese_lessons_link_to_chinese_lessons() {
    let failures = lessons::failures(&lessons::zh_markdown_files(), |p| links_stay_in_chinese(p));
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Each model lesson (01..07), in each edition, tours its server's code with at least a few
/// code references.
#[test]
fn model_lessons_have_a_code_tour() {
    for path in lessons::all_markdown_files() {
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let Some(name) = name else { continue };
        let is_model = name.starts_with("0") && ('1'..='7').any(|d| name.as_bytes()[1] == d as u8);
        if is_model {
            let refs = count_code_refs(&path);
            assert!(
                refs >= 4,
                "{} has only {refs} code references",
                path.display()
            );
        }
    }
}
