//! Just enough Markdown for the lesson tests: fenced code blocks, and links outside them.

use regex::Regex;
use std::sync::OnceLock;

/// A fenced code block: ```` ```sh ````, ```` ```text ````, ```` ```measured ````...
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    /// The first word of the info string (`sh`, `text`, `measured`, ...), empty when none.
    pub lang: String,
    /// The lines between the fences.
    pub lines: Vec<String>,
    /// 1-based line number of the opening fence, for error messages.
    pub line: usize,
}

/// A Markdown link `[text](target)` found outside code blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub text: String,
    pub target: String,
    /// 1-based line number.
    pub line: usize,
}

/// A lesson split into its code blocks and its prose.
#[derive(Debug, Clone, Default)]
pub struct Document {
    pub blocks: Vec<Block>,
    /// Prose lines (outside code blocks) with their 1-based numbers.
    pub prose: Vec<(usize, String)>,
}

impl Document {
    pub fn parse(text: &str) -> Document {
        let mut doc = Document::default();
        let mut open: Option<(String, Block)> = None; // (fence, block)
        for (i, line) in text.lines().enumerate() {
            let number = i + 1;
            let trimmed = line.trim_start();
            match open.take() {
                Some((fence, mut block)) => {
                    if trimmed.starts_with(fence.as_str()) && trimmed.trim_end() == fence {
                        doc.blocks.push(block);
                    } else {
                        block.lines.push(line.to_string());
                        open = Some((fence, block));
                    }
                }
                None => match fence_of(trimmed) {
                    Some(fence) => {
                        let info = trimmed[fence.len()..].trim();
                        let lang = info.split_whitespace().next().unwrap_or("").to_string();
                        let block = Block {
                            lang,
                            lines: Vec::new(),
                            line: number,
                        };
                        open = Some((fence, block));
                    }
                    None => doc.prose.push((number, line.to_string())),
                },
            }
        }
        if let Some((_, block)) = open {
            doc.blocks.push(block); // unterminated: keep it, the tests still see its commands
        }
        doc
    }

    /// The blocks of one language, in order.
    pub fn blocks_of<'a>(&'a self, lang: &'a str) -> impl Iterator<Item = &'a Block> + 'a {
        self.blocks.iter().filter(move |b| b.lang == lang)
    }

    /// Every link in the prose (inline code spans included: a link's text is often one).
    pub fn links(&self) -> Vec<Link> {
        static LINK: OnceLock<Regex> = OnceLock::new();
        let re = LINK.get_or_init(|| Regex::new(r"\[([^\]]+)\]\(([^)\s]+)\)").expect("regex"));
        let mut links = Vec::new();
        for (number, line) in &self.prose {
            for cap in re.captures_iter(line) {
                links.push(Link {
                    text: cap[1].to_string(),
                    target: cap[2].to_string(),
                    line: *number,
                });
            }
        }
        links
    }
}

/// The fence that opens a code block on this line (three or more backticks or tildes). As in
/// CommonMark, a backtick fence's info string has no backtick: a line that starts with inline
/// code such as ```` ```` ```sh ```` ```` is prose.
fn fence_of(trimmed: &str) -> Option<String> {
    for mark in ['`', '~'] {
        let count = trimmed.chars().take_while(|&c| c == mark).count();
        if count >= 3 && !(mark == '`' && trimmed[count..].contains('`')) {
            return Some(mark.to_string().repeat(count));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Blocks keep their language and lines; prose keeps links; code is not prose.
    #[test]
    fn splits_blocks_and_links() {
        let text = "intro [`serve`](../servers/blocking/src/main.rs)\n\n```sh\nls  # expect: x\n```\nafter\n````text\n```\ninner\n````\n";
        let doc = Document::parse(text);
        assert_eq!(doc.blocks.len(), 2);
        assert_eq!(doc.blocks[0].lang, "sh");
        assert_eq!(doc.blocks[0].lines, vec!["ls  # expect: x"]);
        assert_eq!(doc.blocks[0].line, 3);
        assert_eq!(doc.blocks[1].lines, vec!["```", "inner"]);
        let links = doc.links();
        assert_eq!(links.len(), 1);
        assert_eq!(links[0].text, "`serve`");
        assert_eq!(links[0].target, "../servers/blocking/src/main.rs");
        assert!(doc.prose.iter().all(|(_, l)| !l.contains("expect")));
    }

    /// A line that starts with inline code made of backticks is prose, not a fence.
    #[test]
    fn inline_backticks_open_no_block() {
        let text = "Its\n```` ```sh ```` blocks, see [x](a.md).\n\n```sh\nls\n```\n";
        let doc = Document::parse(text);
        assert_eq!(doc.blocks.len(), 1);
        assert_eq!(doc.blocks[0].lines, vec!["ls"]);
        assert_eq!(doc.links().len(), 1);
    }
}
