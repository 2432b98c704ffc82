//! A request that borrows its strings from the line it was parsed from.
//!
//! A server reads a few kilobytes, cuts them into lines and hands each line's request to the Hub
//! at once; the read buffer outlives that. So there is no need to copy a message's `content`
//! into a `String` of its own only for the Hub to copy it again into the frame it sends: the
//! request can point into the buffer. `Cow<'a, str>` says "borrowed, unless it had to be
//! changed": a JSON string with an escape in it (`"caf\u00e9"`) is not the same bytes as its
//! value, so that one is decoded into a `String`.
//!
//! [`RequestRef`] has the variants and fields of [`Request`], one for one; `into_owned` and
//! `From<Request>` go from one to the other.

use super::{Id, Rejection, Request};
use serde::Serialize;
use std::borrow::Cow;

/// An [`Id`] that borrows its string.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum IdRef<'a> {
    Int(i64),
    Str(Cow<'a, str>),
}

/// A [`Request`] whose strings may borrow from the line it was parsed from (see the module
/// docs). Made by [`parse_request_ref`](super::parse_request_ref) and
/// [`LineDecoder::feed_ref`](crate::LineDecoder::feed_ref), handled by
/// [`Hub::handle_ref`](crate::Hub::handle_ref).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RequestRef<'a> {
    Join {
        nickname: Cow<'a, str>,
        room: Option<Cow<'a, str>>,
    },
    Nick {
        nickname: Cow<'a, str>,
    },
    Message {
        content: Cow<'a, str>,
        id: Option<IdRef<'a>>,
    },
    Private {
        to: Cow<'a, str>,
        content: Cow<'a, str>,
        id: Option<IdRef<'a>>,
    },
    JoinRoom {
        room: Cow<'a, str>,
    },
    ListUsers {
        room: Option<Cow<'a, str>>,
    },
    ListRooms,
    Ping {
        id: Option<IdRef<'a>>,
    },
    Quit,
}

/// What [`LineDecoder::feed_ref`](crate::LineDecoder::feed_ref) yields for each line: a
/// borrowed request, or the reason the line is not one.
pub type InboundRef<'a> = Result<RequestRef<'a>, Rejection>;

impl RequestRef<'_> {
    /// Requests allowed before a successful `join`.
    pub fn allowed_before_join(&self) -> bool {
        matches!(
            self,
            RequestRef::Join { .. } | RequestRef::Ping { .. } | RequestRef::Quit
        )
    }

    /// The same request with strings of its own (a copy of each borrowed one).
    pub fn into_owned(self) -> Request {
        let own = Cow::into_owned;
        match self {
            RequestRef::Join { nickname, room } => Request::Join {
                nickname: own(nickname),
                room: room.map(own),
            },
            RequestRef::Nick { nickname } => Request::Nick {
                nickname: own(nickname),
            },
            RequestRef::Message { content, id } => Request::Message {
                content: own(content),
                id: id.map(IdRef::into_owned),
            },
            RequestRef::Private { to, content, id } => Request::Private {
                to: own(to),
                content: own(content),
                id: id.map(IdRef::into_owned),
            },
            RequestRef::JoinRoom { room } => Request::JoinRoom { room: own(room) },
            RequestRef::ListUsers { room } => Request::ListUsers {
                room: room.map(own),
            },
            RequestRef::ListRooms => Request::ListRooms,
            RequestRef::Ping { id } => Request::Ping {
                id: id.map(IdRef::into_owned),
            },
            RequestRef::Quit => Request::Quit,
        }
    }
}

impl IdRef<'_> {
    /// The same id with a string of its own.
    pub fn into_owned(self) -> Id {
        match self {
            IdRef::Int(n) => Id::Int(n),
            IdRef::Str(s) => Id::Str(s.into_owned()),
        }
    }
}

/// An owned request handed to code that takes borrowed ones: its strings move, nothing is
/// copied.
impl From<Request> for RequestRef<'_> {
    fn from(request: Request) -> Self {
        let cow = Cow::Owned;
        match request {
            Request::Join { nickname, room } => RequestRef::Join {
                nickname: cow(nickname),
                room: room.map(cow),
            },
            Request::Nick { nickname } => RequestRef::Nick {
                nickname: cow(nickname),
            },
            Request::Message { content, id } => RequestRef::Message {
                content: cow(content),
                id: id.map(IdRef::from),
            },
            Request::Private { to, content, id } => RequestRef::Private {
                to: cow(to),
                content: cow(content),
                id: id.map(IdRef::from),
            },
            Request::JoinRoom { room } => RequestRef::JoinRoom { room: cow(room) },
            Request::ListUsers { room } => RequestRef::ListUsers {
                room: room.map(cow),
            },
            Request::ListRooms => RequestRef::ListRooms,
            Request::Ping { id } => RequestRef::Ping {
                id: id.map(IdRef::from),
            },
            Request::Quit => RequestRef::Quit,
        }
    }
}

impl From<Id> for IdRef<'_> {
    fn from(id: Id) -> Self {
        match id {
            Id::Int(n) => IdRef::Int(n),
            Id::Str(s) => IdRef::Str(Cow::Owned(s)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Owned to borrowed and back gives the same request, for every variant.
    #[test]
    fn owned_and_borrowed_convert_both_ways() {
        let requests = [
            Request::Join {
                nickname: "a".into(),
                room: Some("r".into()),
            },
            Request::Nick {
                nickname: "b".into(),
            },
            Request::Message {
                content: "hi".into(),
                id: Some(Id::Str("a:1".into())),
            },
            Request::Private {
                to: "b".into(),
                content: "psst".into(),
                id: Some(Id::Int(-3)),
            },
            Request::JoinRoom { room: "r".into() },
            Request::ListUsers { room: None },
            Request::ListRooms,
            Request::Ping { id: None },
            Request::Quit,
        ];
        for request in requests {
            let allowed = request.allowed_before_join();
            let borrowed = RequestRef::from(request.clone());
            assert_eq!(borrowed.allowed_before_join(), allowed);
            assert_eq!(borrowed.into_owned(), request);
        }
    }

    /// A borrowed id serializes exactly as an owned one (it is echoed in `pong`, `broadcast`).
    #[test]
    fn ids_serialize_alike() {
        for id in [Id::Int(i64::MIN), Id::Str("x:1".into())] {
            let borrowed = IdRef::from(id.clone());
            assert_eq!(
                serde_json::to_string(&borrowed).unwrap(),
                serde_json::to_string(&id).unwrap()
            );
        }
    }
}
