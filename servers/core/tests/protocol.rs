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
