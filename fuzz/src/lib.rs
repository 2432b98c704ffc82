//! # What the fuzz targets share: independent judges of chat-core
//!
//! Each target feeds chat-core arbitrary input and asserts *invariants*, not only "no panic".
//! The judges here are written from the protocol (PROTOCOL.md) and never call the code they
//! judge: a judge that reused chat-core's parser would agree with chat-core's bugs.
//!
//! | module | judges | used by |
//! |---|---|---|
//! | [`reference`](mod@reference) | how a byte stream splits into lines under `--max-line` | `decoder` |
//! | [`spec`] | the naming rules, and what a request line must parse to | `parse_request`, `hub` |
//! | [`events`] | whether a frame the server sends is a valid event | `parse_request`, `hub` |
//! | [`hub_input`], [`seeds`] | (not judges) the `hub` target's operations, and its seed scenarios | `hub` |
//! | [`model`] | what the Hub must send to whom for each call, and who is where | `hub` |

pub mod events;
pub mod hub_input;
pub mod model;
pub mod reference;
pub mod seeds;
pub mod spec;
