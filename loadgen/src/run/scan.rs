//! Reading three fields of a JSON line without decoding it.
//!
//! The generator receives every copy of every message: in rooms of 10 that is ten lines per
//! message sent, each about 150 bytes, and building a JSON value for each (as `serde_json` does,
//! even into a struct that borrows) is most of what receiving costs. The engine needs only the
//! line's `type`, `id` and `code`. [`top_level`] walks the object's top level once, validating
//! as it goes and skipping the values of every other key, and hands back those three as byte
//! slices of the line.
//!
//! It answers only when it is certain to agree with `serde_json`: a string anywhere in the line
//! that holds an escape (`"broad\u0063ast"`), which it would have to decode or validate, makes
//! it say [`Scan::Unsure`], and the caller asks `serde_json`. The generator's own messages never
//! need an escape, so the shortcut covers the traffic that matters. The codec's tests check
//! both give the same answer on tricky lines.

/// The scanner's verdict on one line.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Scan<'a> {
    /// A JSON object with a string `type`, and `id` / `code` when they are strings (`null` or
    /// absent: `None`).
    Fields {
        kind: &'a [u8],
        id: Option<&'a [u8]>,
        code: Option<&'a [u8]>,
    },
    /// Not a JSON object of that shape (broken JSON, a missing or non-string `type`, an `id`
    /// that is a number, a field twice…): `serde_json` would refuse it too.
    Invalid,
    /// An escape, or nesting deeper than the scanner follows: ask `serde_json`.
    Unsure,
}

/// Nesting deeper than this is not something a chat server sends; beyond it the scanner hands
/// the line to `serde_json` (which has its own limit) rather than recurse further.
const MAX_DEPTH: usize = 64;

/// Scans `line`, which holds one JSON value (surrounding whitespace allowed).
pub(crate) fn top_level(line: &[u8]) -> Scan<'_> {
    // serde_json refuses invalid UTF-8 anywhere; checking the whole line at once is cheap.
    if std::str::from_utf8(line).is_err() {
        return Scan::Invalid;
    }
    // A control character is an error inside a string but whitespace (tab) between tokens:
    // rare either way, so serde decides, and the strings below need not look for them. Written
    // as a fold without an early exit, so the compiler checks many bytes at a time.
    if line.iter().fold(false, |seen, &b| seen | (b < 0x20)) {
        return Scan::Unsure;
    }
    let mut s = Cursor { line, at: 0 };
    s.skip_ws();
    if s.peek() != Some(b'{') {
        // Not an object: serde has its own ideas (it reads a struct from an array, say).
        return Scan::Unsure;
    }
    match s.object() {
        Ok(scan) => {
            s.skip_ws();
            if s.at == line.len() {
                scan
            } else {
                Scan::Invalid
            }
        }
        Err(scan) => scan,
    }
}

/// A position in the line; every method moves it past what it read.
struct Cursor<'a> {
    line: &'a [u8],
    at: usize,
}

/// Early exits carry the verdict (`Invalid` or `Unsure`).
type Step<T> = Result<T, Scan<'static>>;

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Step<()> {
        self.skip_ws();
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(Scan::Invalid)
        }
    }

    /// The top-level object, collecting the three fields.
    fn object(&mut self) -> Step<Scan<'a>> {
        self.expect(b'{')?;
        let (mut kind, mut id, mut code) = (Field::Absent, Field::Absent, Field::Absent);
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            loop {
                self.skip_ws();
                let key = self.string()?;
                self.expect(b':')?;
                self.skip_ws();
                let slot = match key {
                    b"type" => Some(&mut kind),
                    b"id" => Some(&mut id),
                    b"code" => Some(&mut code),
                    _ => None,
                };
                match slot {
                    Some(slot) => slot.set(self.field_value()?)?,
                    None => self.skip_value(0)?,
                }
                self.skip_ws();
                match self.peek() {
                    Some(b',') => self.at += 1,
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return Err(Scan::Invalid),
                }
            }
        }
        // `type` is required and must be a string; `id` and `code` may be absent or null.
        let Field::Text(kind) = kind else {
            return Err(Scan::Invalid);
        };
        Ok(Scan::Fields {
            kind,
            id: id.text()?,
            code: code.text()?,
        })
    }

    /// The value of a field we read: a string, `null`, or (for the error it makes) anything
    /// else.
    fn field_value(&mut self) -> Step<Field<'a>> {
        match self.peek() {
            Some(b'"') => Ok(Field::Text(self.string()?)),
            Some(b'n') => {
                self.literal()?;
                if self.line[..self.at].ends_with(b"null") {
                    Ok(Field::Null)
                } else {
                    Ok(Field::Other)
                }
            }
            _ => {
                self.skip_value(0)?;
                Ok(Field::Other)
            }
        }
    }

    /// A string token starting at the opening quote: its bytes between the quotes. (The line
    /// holds no control characters: `top_level` checked.)
    fn string(&mut self) -> Step<&'a [u8]> {
        if self.peek() != Some(b'"') {
            return Err(Scan::Invalid);
        }
        let start = self.at + 1;
        let rest = &self.line[start..];
        // A plain loop: the strings of a chat line are a few bytes to a few dozen, too short
        // for a vectorised search to pay for its setup (memchr2 measured no better here).
        match rest.iter().position(|&b| b == b'"' || b == b'\\') {
            Some(end) if rest[end] == b'"' => {
                self.at = start + end + 1;
                Ok(&rest[..end])
            }
            Some(_) => Err(Scan::Unsure), // an escape
            None => Err(Scan::Invalid),   // unterminated
        }
    }

    /// Skips any value: string, number, literal, or a nested object or array.
    fn skip_value(&mut self, depth: usize) -> Step<()> {
        if depth > MAX_DEPTH {
            return Err(Scan::Unsure);
        }
        self.skip_ws();
        match self.peek() {
            Some(b'"') => self.string().map(drop),
            Some(open @ (b'{' | b'[')) => {
                self.at += 1;
                let close = if open == b'{' { b'}' } else { b']' };
                self.skip_ws();
                if self.peek() == Some(close) {
                    self.at += 1;
                    return Ok(());
                }
                loop {
                    if open == b'{' {
                        self.skip_ws();
                        self.string()?;
                        self.expect(b':')?;
                    }
                    self.skip_value(depth + 1)?;
                    self.skip_ws();
                    match self.peek() {
                        Some(b',') => self.at += 1,
                        Some(b) if b == close => {
                            self.at += 1;
                            return Ok(());
                        }
                        _ => return Err(Scan::Invalid),
                    }
                }
            }
            Some(_) => self.literal(),
            None => Err(Scan::Invalid),
        }
    }

    /// `true`, `false`, `null` or a number, as JSON spells them.
    fn literal(&mut self) -> Step<()> {
        let start = self.at;
        while matches!(self.peek(), Some(b) if b.is_ascii_alphanumeric() || b"+-.".contains(&b)) {
            self.at += 1;
        }
        let token = &self.line[start..self.at];
        if matches!(token, b"true" | b"false" | b"null") || is_number(token) {
            Ok(())
        } else {
            Err(Scan::Invalid)
        }
    }
}

/// JSON's number grammar: `-? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)?`.
fn is_number(token: &[u8]) -> bool {
    let digits = |t: &[u8], from: usize| -> usize {
        t[from..].iter().take_while(|b| b.is_ascii_digit()).count()
    };
    let mut i = usize::from(token.first() == Some(&b'-'));
    match token.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i += digits(token, i),
        _ => return false,
    }
    if token.get(i) == Some(&b'.') {
        let n = digits(token, i + 1);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if matches!(token.get(i), Some(b'e' | b'E')) {
        i += 1;
        if matches!(token.get(i), Some(b'+' | b'-')) {
            i += 1;
        }
        let n = digits(token, i);
        if n == 0 {
            return false;
        }
        i += n;
    }
    i == token.len()
}

/// What one of the three fields held.
enum Field<'a> {
    Absent,
    Null,
    Text(&'a [u8]),
    /// A number, object, array or boolean: the wrong type.
    Other,
}

impl<'a> Field<'a> {
    /// Fills the slot; a field given twice is refused, as `serde_json` refuses it.
    fn set(&mut self, value: Field<'a>) -> Step<()> {
        if !matches!(self, Field::Absent) {
            return Err(Scan::Invalid);
        }
        *self = value;
        Ok(())
    }

    /// An optional string field's value.
    fn text(self) -> Step<Option<&'a [u8]>> {
        match self {
            Field::Absent | Field::Null => Ok(None),
            Field::Text(text) => Ok(Some(text)),
            Field::Other => Err(Scan::Invalid),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields come back as slices of the line, in any order, with others skipped.
    #[test]
    fn finds_the_fields() {
        let line = br#"{"ts":1,"id":"9:8:7:6","extra":[{"a":"b"},null,true],"type":"broadcast"}"#;
        assert_eq!(
            top_level(line),
            Scan::Fields {
                kind: b"broadcast",
                id: Some(b"9:8:7:6"),
                code: None
            }
        );
        assert_eq!(top_level(br#"{"type":"x","id":null}"#), {
            Scan::Fields {
                kind: b"x",
                id: None,
                code: None,
            }
        });
        assert_eq!(top_level(br#"{"type":"x","id":nul}"#), Scan::Invalid);
        assert_eq!(top_level(br#"{"type":"x\"y"}"#), Scan::Unsure);
        assert_eq!(top_level(b"{\"type\":\"x\",\"c\":\"\xff\"}"), Scan::Invalid);
        let deep = format!(
            "{{\"type\":\"x\",\"a\":{}1{}}}",
            "[".repeat(100),
            "]".repeat(100)
        );
        assert_eq!(top_level(deep.as_bytes()), Scan::Unsure);
    }

    /// Numbers follow JSON's grammar exactly.
    #[test]
    fn numbers() {
        for good in ["0", "-0", "12", "1.5", "-1.5e3", "2E+10", "3e-2"] {
            assert!(is_number(good.as_bytes()), "{good}");
        }
        for bad in [
            "", "-", "01", "1.", ".5", "1e", "1e+", "+1", "1.2.3", "0x10",
        ] {
            assert!(!is_number(bad.as_bytes()), "{bad}");
        }
    }
}
