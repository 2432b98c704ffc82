//! Every name the cluster uses in Redis, in one place. Each starts with `--redis-prefix`
//! (default `c10k:`), so several clusters, and the tests, share one Redis without meeting.
//!
//! | key or channel | type | what |
//! |---|---|---|
//! | `P nick:<lowercase nickname>` | string | the claim: `node \t conn \t Nickname` of its owner |
//! | `P room:<room>` | set | the room's members, by nickname |
//! | `P rooms` | set | the rooms that have members |
//! | `P node:<id>` | hash | a node's members: conn id -> record (for re-registering and reaping) |
//! | `P alive:<id>` | string with a TTL | the node's heartbeat: gone means dead |
//! | `P nodes` | set | every node that registered (the reaper walks it) |
//! | `P reaped:<id>` | string with a TTL | a tombstone: this node was reaped while it lived |
//! | `P chan:room:<room>` | channel | the room's events, in one order |
//! | `P chan:node:<id>` | channel | the `private` frames for the node's members |

/// Builds the names of keys and channels under one prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    /// `--redis-prefix`, prepended to everything.
    prefix: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Keys {
            prefix: prefix.to_string(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The claim on a nickname; `folded` is its lowercase form (`chat_core::names::fold`).
    pub fn nick(&self, folded: &str) -> String {
        format!("{}nick:{folded}", self.prefix)
    }

    pub fn room(&self, room: &str) -> String {
        format!("{}room:{room}", self.prefix)
    }

    pub fn rooms(&self) -> String {
        format!("{}rooms", self.prefix)
    }

    pub fn node(&self, node: &str) -> String {
        format!("{}node:{node}", self.prefix)
    }

    pub fn alive(&self, node: &str) -> String {
        format!("{}alive:{node}", self.prefix)
    }

    pub fn nodes(&self) -> String {
        format!("{}nodes", self.prefix)
    }

    pub fn reaped(&self, node: &str) -> String {
        format!("{}reaped:{node}", self.prefix)
    }

    pub fn room_channel(&self, room: &str) -> String {
        format!("{}chan:room:{room}", self.prefix)
    }

    pub fn node_channel(&self, node: &str) -> String {
        format!("{}chan:node:{node}", self.prefix)
    }

    /// The room a channel name belongs to, if it is one of our room channels.
    pub fn room_of_channel<'a>(&self, channel: &'a str) -> Option<&'a str> {
        channel
            .strip_prefix(&self.prefix)?
            .strip_prefix("chan:room:")
    }
}

/// The value of a nickname claim: who owns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub node: String,
    pub conn: u64,
    /// The nickname as its owner spelled it (the claim's key is the lowercase form).
    pub nickname: String,
}

impl Owner {
    /// `node \t conn \t nickname`: neither a node id nor a nickname contains a tab.
    pub fn encode(&self) -> String {
        format!("{}{}", owner_prefix(&self.node, self.conn), self.nickname)
    }

    pub fn decode(value: &str) -> Option<Owner> {
        let mut parts = value.splitn(3, '\t');
        let node = parts.next()?.to_string();
        let conn = parts.next()?.parse().ok()?;
        let nickname = parts.next()?.to_string();
        Some(Owner {
            node,
            conn,
            nickname,
        })
    }
}

/// The start of the claims owned by connection `conn` of `node`: scripts compare it to tell
/// "still ours" from "taken over since".
pub fn owner_prefix(node: &str, conn: u64) -> String {
    format!("{node}\t{conn}\t")
}

/// Whether `id` may name a node: it goes into key names and claim values.
pub fn is_valid_node_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_starts_with_the_prefix() {
        let keys = Keys::new("t1:");
        for name in [
            keys.nick("ada"),
            keys.room("lobby"),
            keys.rooms(),
            keys.node("n1"),
            keys.alive("n1"),
            keys.nodes(),
            keys.reaped("n1"),
            keys.room_channel("lobby"),
            keys.node_channel("n1"),
        ] {
            assert!(name.starts_with("t1:"), "{name}");
        }
        assert_eq!(keys.room_of_channel("t1:chan:room:李雷"), Some("李雷"));
        assert_eq!(keys.room_of_channel("t1:chan:node:n1"), None);
        assert_eq!(keys.room_of_channel("t2:chan:room:x"), None);
    }

    #[test]
    fn owners_round_trip() {
        let owner = Owner {
            node: "host-1".into(),
            conn: 42,
            nickname: "Ålice".into(),
        };
        assert_eq!(Owner::decode(&owner.encode()), Some(owner));
        assert_eq!(Owner::decode("nonsense"), None);
        assert!(is_valid_node_id("box-3.w2"));
        assert!(!is_valid_node_id("a\tb"));
        assert!(!is_valid_node_id(""));
    }
}
