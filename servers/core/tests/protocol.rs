//! `parse_request`: every request type, and every way a line can fail to be one.

use chat_core::{parse_request, ErrorCode, Event, Id, Request};

fn code_of(line: &str) -> ErrorCode {
    parse_request(line.as_bytes()).expect_err(line).code
}

/// Each request type parses with its fields, optional fields optional.
#[test]
fn parses_every_request_type() {
    let cases: Vec<(&str, Request)> = vec![
        (
            r#"{"type":"join","nickname":"alice"}"#,
            Request::Join {
                nickname: "alice".into(),
                room: None,
            },
        ),
        (
            r#"{"type":"join","nickname":"alice","room":"rust"}"#,
            Request::Join {
                nickname: "alice".into(),
                room: Some("rust".into()),
            },
        ),
        (
            r#"{"type":"nick","nickname":"bob"}"#,
            Request::Nick {
                nickname: "bob".into(),
            },
        ),
        (
            r#"{"type":"message","content":"hi"}"#,
            Request::Message {
                content: "hi".into(),
                id: None,
            },
        ),
        (
            r#"{"type":"message","content":"hi","id":"a:1"}"#,
            Request::Message {
                content: "hi".into(),
                id: Some(Id::Str("a:1".into())),
            },
        ),
        (
            r#"{"type":"private","to":"bob","content":"psst","id":-9223372036854775808}"#,
            Request::Private {
                to: "bob".into(),
                content: "psst".into(),
                id: Some(Id::Int(i64::MIN)),
            },
        ),
        (
            r#"{"type":"join_room","room":"b"}"#,
            Request::JoinRoom { room: "b".into() },
        ),
        (
            r#"{"type":"list_users"}"#,
            Request::ListUsers { room: None },
        ),
        (
            r#"{"type":"list_users","room":"b"}"#,
            Request::ListUsers {
                room: Some("b".into()),
            },
        ),
        (r#"{"type":"list_rooms"}"#, Request::ListRooms),
        (r#"{"type":"ping"}"#, Request::Ping { id: None }),
        (
            r#"{"type":"ping","id":42}"#,
            Request::Ping {
                id: Some(Id::Int(42)),
            },
        ),
        (r#"{"type":"quit"}"#, Request::Quit),
    ];
    for (line, expected) in cases {
        assert_eq!(
            parse_request(line.as_bytes()),
            Ok(expected.clone()),
            "{line}"
        );
        // What the client sends is what the server parses.
        let sent = expected.to_line();
        assert_eq!(parse_request(&sent[..sent.len() - 1]), Ok(expected));
    }
}

/// Unknown fields are ignored (forward compatibility), also on types with no fields.
#[test]
fn ignores_unknown_fields() {
    assert_eq!(
        parse_request(br#"{"type":"ping","room":5,"extra":[1,2]}"#),
        Ok(Request::Ping { id: None })
    );
    assert_eq!(
        parse_request(br#"{"type":"quit","nickname":null}"#),
        Ok(Request::Quit)
    );
}

/// Malformed lines are `bad_request`; an unknown type is `unknown_type`.
#[test]
fn rejects_malformed_lines() {
    for line in [
        "not json",
        "   ",
        "[1,2]",
        "42",
        r#""type""#,
        r#"{"nickname":"a"}"#,
        r#"{"type":7}"#,
        r#"{"type":null}"#,
        r#"{"type":"join"}"#,
        r#"{"type":"join","nickname":5}"#,
        r#"{"type":"join","nickname":"a","room":null}"#,
        r#"{"type":"join","nickname":"a","room":3}"#,
        r#"{"type":"message"}"#,
        r#"{"type":"message","content":""}"#,
        r#"{"type":"message","content":1}"#,
        r#"{"type":"message","content":"x","id":null}"#,
        r#"{"type":"message","content":"x","id":1.5}"#,
        r#"{"type":"message","content":"x","id":{}}"#,
        r#"{"type":"message","content":"x","id":9223372036854775808}"#,
        r#"{"type":"private","content":"x"}"#,
        r#"{"type":"join_room"}"#,
        r#"{"type":"list_users","room":[]}"#,
        r#"{"type":"ping","id":true}"#,
    ] {
        assert_eq!(code_of(line), ErrorCode::BadRequest, "{line}");
    }
    let long_id = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(65));
    assert_eq!(code_of(&long_id), ErrorCode::BadRequest);
    let max_id = format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(64));
    assert!(parse_request(max_id.as_bytes()).is_ok());
    assert_eq!(code_of(r#"{"type":"dance"}"#), ErrorCode::UnknownType);
}

/// Invalid UTF-8 is reported as `bad_request` with a message saying so.
#[test]
fn rejects_invalid_utf8() {
    let rejection = parse_request(b"{\"type\":\"ping\",\"id\":\"\xff\"}").unwrap_err();
    assert_eq!(rejection.code, ErrorCode::BadRequest);
    assert!(rejection.message.contains("UTF-8"), "{}", rejection.message);
}

/// Events serialize exactly as `PROTOCOL.md` writes them: `id` absent (not null) when there is none.
#[test]
fn events_serialize_per_spec() {
    let line = chat_core::encode(&Event::Broadcast {
        from: "a".into(),
        room: "lobby".into(),
        content: "hi".into(),
        ts: 5,
        id: None,
    });
    assert_eq!(
        &line[..],
        b"{\"type\":\"broadcast\",\"from\":\"a\",\"room\":\"lobby\",\"content\":\"hi\",\"ts\":5}\n"
    );
    let pong = chat_core::encode(&Event::Pong {
        id: Some(Id::Str("x".into())),
    });
    assert_eq!(&pong[..], b"{\"type\":\"pong\",\"id\":\"x\"}\n");
    assert_eq!(&chat_core::encode(&Event::Bye)[..], b"{\"type\":\"bye\"}\n");
    for code in ErrorCode::ALL {
        let frame = chat_core::error_frame(code, "m");
        let value: serde_json::Value = serde_json::from_slice(&frame).unwrap();
        assert_eq!(value["code"], code.as_str());
        assert_eq!(value["type"], "error");
    }
}

// ---- the parser against the one it replaced ----------------------------------------------------

/// The parser as it was written first, over a `serde_json::Value` tree: slower, and the
/// definition of what `parse_request` must answer, error messages included. The tests below
/// hold the borrowed parser to it on every line they can think of.
mod reference {
    use chat_core::{ErrorCode, Id, Inbound, Rejection, Request};
    use serde_json::{Map, Value};

    fn bad(message: impl Into<String>) -> Rejection {
        Rejection::new(ErrorCode::BadRequest, message)
    }

    pub fn parse(line: &[u8]) -> Inbound {
        let text =
            std::str::from_utf8(line).map_err(|e| bad(format!("line is not valid UTF-8 ({e})")))?;
        let value: Value =
            serde_json::from_str(text).map_err(|e| bad(format!("line is not valid JSON ({e})")))?;
        let Value::Object(obj) = value else {
            return Err(bad("a request must be a JSON object"));
        };
        let kind = match obj.get("type") {
            Some(Value::String(kind)) => kind.as_str(),
            Some(_) => return Err(bad("field `type` must be a string")),
            None => return Err(bad("missing field `type`")),
        };
        let f = Fields(&obj);
        Ok(match kind {
            "join" => Request::Join {
                nickname: f.string("nickname")?,
                room: f.optional_string("room")?,
            },
            "nick" => Request::Nick {
                nickname: f.string("nickname")?,
            },
            "message" => Request::Message {
                content: f.content()?,
                id: f.id()?,
            },
            "private" => Request::Private {
                to: f.string("to")?,
                content: f.content()?,
                id: f.id()?,
            },
            "join_room" => Request::JoinRoom {
                room: f.string("room")?,
            },
            "list_users" => Request::ListUsers {
                room: f.optional_string("room")?,
            },
            "list_rooms" => Request::ListRooms,
            "ping" => Request::Ping { id: f.id()? },
            "quit" => Request::Quit,
            other => {
                let mut end = other.len().min(64);
                while !other.is_char_boundary(end) {
                    end -= 1;
                }
                return Err(Rejection::new(
                    ErrorCode::UnknownType,
                    format!("unknown request type `{}`", &other[..end]),
                ));
            }
        })
    }

    struct Fields<'a>(&'a Map<String, Value>);

    impl Fields<'_> {
        fn string(&self, name: &str) -> Result<String, Rejection> {
            match self.0.get(name) {
                Some(Value::String(s)) => Ok(s.clone()),
                Some(_) => Err(bad(format!("field `{name}` must be a string"))),
                None => Err(bad(format!("missing field `{name}`"))),
            }
        }

        fn optional_string(&self, name: &str) -> Result<Option<String>, Rejection> {
            match self.0.get(name) {
                None => Ok(None),
                Some(_) => self.string(name).map(Some),
            }
        }

        fn content(&self) -> Result<String, Rejection> {
            let content = self.string("content")?;
            if content.is_empty() {
                return Err(bad("field `content` must not be empty"));
            }
            Ok(content)
        }

        fn id(&self) -> Result<Option<Id>, Rejection> {
            match self.0.get("id") {
                None => Ok(None),
                Some(Value::String(s)) if s.len() <= 64 => Ok(Some(Id::Str(s.clone()))),
                Some(Value::Number(n)) if n.is_i64() => Ok(n.as_i64().map(Id::Int)),
                Some(_) => Err(bad(
                    "field `id` must be a string of at most 64 bytes or a 64-bit integer",
                )),
            }
        }
    }
}

/// Asserts that both parsers, and the borrowed one turned owned, answer `line` the same.
fn assert_same_as_reference(line: &[u8]) {
    let expected = reference::parse(line);
    assert_eq!(
        parse_request(line),
        expected,
        "{}",
        String::from_utf8_lossy(line)
    );
    let borrowed = chat_core::parse_request_ref(line).map(chat_core::RequestRef::into_owned);
    assert_eq!(borrowed, expected, "{}", String::from_utf8_lossy(line));
}

/// Lines chosen to reach every rule, and the corners where skipping a value would differ from
/// parsing it: numbers out of range, lone surrogates, escapes in keys and values, repeated
/// keys, deep nesting, trailing bytes.
#[test]
fn answers_like_the_reference_parser_on_chosen_lines() {
    let deep_ok = format!(
        r#"{{"type":"ping","x":{}1{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let too_deep = format!(
        r#"{{"type":"ping","x":{}1{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    let lines: Vec<String> = vec![
        r#"{"type":"ping","x":1e999}"#.into(),
        r#"{"type":"ping","x":"\ud800"}"#.into(),
        r#"{"type":"ping","x":"\ud83e\udd80"}"#.into(),
        r#"{"type":"ping","x":-0}"#.into(),
        r#"{"type":"ping","id":-0}"#.into(),
        r#"{"type":"ping","id":18446744073709551615}"#.into(),
        r#"{"type":"ping","id":18446744073709551616}"#.into(),
        r#"{"type":"ping","id":-9223372036854775809}"#.into(),
        r#"{"type":"ping","id":1.0}"#.into(),
        r#"{"type":"ping","id":1e2}"#.into(),
        r#"{"type":"ping","id":"\u0041"}"#.into(),
        r#"{"\u0074ype":"ping","i\u0064":"x"}"#.into(),
        r#"{"type":"ping","type":"quit"}"#.into(),
        r#"{"type":5,"type":"quit"}"#.into(),
        r#"{"type":"quit","type":5}"#.into(),
        r#"{"type":"message","content":"a","content":""}"#.into(),
        r#"{"type":"message","content":"caf\u00e9 \n \"q\""}"#.into(),
        r#"{"type":"message","content":"x"} "#.into(),
        r#"{"type":"message","content":"x"}x"#.into(),
        r#"{"type":"message","content":"x",}"#.into(),
        r#"{"type":"message","content":"x""#.into(),
        r#"{"type":"mess\u0061ge","content":"x"}"#.into(),
        r#"{"type":"private","to":"b","content":"x","id":[]}"#.into(),
        r#"{"type":"private","to":1,"content":""}"#.into(),
        r#"{"type":"join","nickname":"a","room":{"nested":[1,{"k":null}]}}"#.into(),
        r#"{"type":"join","room":"r"}"#.into(),
        r#"{"type":"list_users","room":"r","extra":{"a":[true,false,null,1.5,-2]}}"#.into(),
        format!(r#"{{"type":"{}"}}"#, "é".repeat(40)),
        format!(r#"{{"type":"ping","id":"{}"}}"#, "é".repeat(33)),
        r#"{"type":"ping","x":"tab	in string"}"#.into(),
        r#"{1:2}"#.into(),
        r#"{"type":"ping"}{"#.into(),
        r#"[{"type":"ping"}]"#.into(),
        r#""{\"type\":\"ping\"}""#.into(),
        "null".into(),
        "true".into(),
        "-".into(),
        "{".into(),
        "}".into(),
        "   ".into(),
        "\u{feff}{\"type\":\"ping\"}".into(),
        deep_ok,
        too_deep,
    ];
    for line in &lines {
        assert_same_as_reference(line.as_bytes());
    }
    assert_same_as_reference(b"{\"type\":\"ping\",\"id\":\"\xff\"}");
    assert_same_as_reference(b"{\"type\":\"message\",\"content\":\"\xc3\"}");
}

mod generated {
    use super::assert_same_as_reference;
    use proptest::prelude::*;

    /// A JSON value built from pieces that matter to the rules, nested a little.
    fn json_value() -> impl Strategy<Value = String> {
        let leaf = prop_oneof![
            Just("null".to_string()),
            Just("true".to_string()),
            Just("\"\"".to_string()),
            Just("\"ping\"".to_string()),
            Just("\"message\"".to_string()),
            Just("\"join\"".to_string()),
            Just("\"caf\\u00e9\"".to_string()),
            Just("\"\\ud800\"".to_string()),
            Just("1e400".to_string()),
            Just("-0".to_string()),
            Just("9223372036854775807".to_string()),
            Just("9223372036854775808".to_string()),
            Just("-12".to_string()),
            Just("2.5".to_string()),
            "[a-z:0-9é🦀]{0,70}".prop_map(|s| format!("\"{s}\"")),
            any::<i64>().prop_map(|n| n.to_string()),
        ];
        leaf.prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4)
                    .prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec((key(), inner), 0..4).prop_map(|kv| {
                    let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k}:{v}")).collect();
                    format!("{{{}}}", fields.join(","))
                }),
            ]
        })
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof![
            Just("\"type\"".to_string()),
            Just("\"nickname\"".to_string()),
            Just("\"room\"".to_string()),
            Just("\"content\"".to_string()),
            Just("\"to\"".to_string()),
            Just("\"id\"".to_string()),
            Just("\"t\\u0079pe\"".to_string()),
            Just("\"other\"".to_string()),
        ]
    }

    /// A request-shaped object: keys the protocol knows and some it does not, any values.
    fn request_line() -> impl Strategy<Value = String> {
        prop::collection::vec((key(), json_value()), 0..6).prop_map(|kv| {
            let fields: Vec<String> = kv.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", fields.join(","))
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Request-shaped lines, well-formed or not, get the reference parser's answer.
        #[test]
        fn answers_like_the_reference_parser(line in request_line()) {
            assert_same_as_reference(line.as_bytes());
        }

        /// So do those lines cut short, or with a byte changed: broken JSON is broken alike.
        #[test]
        fn broken_lines_answer_like_the_reference_parser(
            line in request_line(),
            cut in any::<prop::sample::Index>(),
            byte in any::<u8>(),
        ) {
            let mut bytes = line.into_bytes();
            let at = cut.index(bytes.len());
            assert_same_as_reference(&bytes[..at]);
            bytes[at] = byte;
            assert_same_as_reference(&bytes);
        }
    }
}
