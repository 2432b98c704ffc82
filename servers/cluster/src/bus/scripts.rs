//! The Lua scripts of the Redis bus. Redis runs a script atomically: no other client's command
//! runs in the middle of one, so each script is one indivisible step of the cluster's rules.
//! (`redis::Script` sends them by SHA with EVALSHA and falls back to EVAL when the server does
//! not know them, for example after a restart.)
//!
//! Keys and channels follow `keys.rs`. A member's record in `P node:<id>` is JSON:
//! `{"fold", "nickname", "room", "owner", "left", "session"}`, where `owner` is the claim prefix
//! `node \t conn \t`, `left` the envelope to publish when it is released, and `session` its
//! WebSocket session key ("" for none).

/// Shared by the scripts that release members of a node: frees the claim (only if the
/// record's connection still owns it), takes the nickname out of its room, and publishes the
/// recorded `left` envelope.
const RELEASE_FN: &str = r#"
local function release(prefix, m)
  local nick = prefix .. 'nick:' .. m.fold
  local owner = redis.call('GET', nick)
  if owner and string.sub(owner, 1, #m.owner) == m.owner then
    redis.call('DEL', nick)
    local room = prefix .. 'room:' .. m.room
    redis.call('SREM', room, m.nickname)
    if redis.call('SCARD', room) == 0 then redis.call('SREM', prefix .. 'rooms', m.room) end
    redis.call('PUBLISH', prefix .. 'chan:room:' .. m.room, m.left)
  end
end
"#;

/// The heartbeat: refresh this node's key (with its TTL), make sure it is registered, and
/// say whether a reaper declared it dead meanwhile (1: reaped, the node must re-register).
///
/// KEYS: alive key, nodes set, tombstone. ARGV: node id, TTL in ms.
pub const HEARTBEAT: &str = r#"
redis.call('SET', KEYS[1], '1', 'PX', ARGV[2])
redis.call('SADD', KEYS[2], ARGV[1])
return redis.call('EXISTS', KEYS[3])
"#;

/// `join`: claim the nickname, enter the room, record the member, publish `joined`, return
/// the members. A taken nickname returns nil and changes nothing, unless its holder's record
/// has the joiner's session key: then the holder is released first (its room gets `left`) and
/// its node is told, on its channel, to close it (see "Taking a nickname back" in `bus/mod.rs`).
///
/// KEYS: nick, room set, rooms set, node hash.
/// ARGV: owner value, conn, nickname, room, record, room channel, joined envelope, prefix,
/// session key ("" for none), the frame for the replaced connection.
pub fn join() -> String {
    format!(
        "{RELEASE_FN}{}",
        r#"
local holder = redis.call('GET', KEYS[1])
if holder then
  if ARGV[9] == '' then return false end
  local node, conn = string.match(holder, '^([^\t]+)\t([^\t]+)\t')
  if not node then return false end
  local hash = ARGV[8] .. 'node:' .. node
  local rec = redis.call('HGET', hash, conn)
  if not rec then return false end
  local old = cjson.decode(rec)
  if old.session ~= ARGV[9] then return false end
  release(ARGV[8], old)
  redis.call('HDEL', hash, conn)
  local header = cjson.encode({kind = 'replaced', node = node, conn = tonumber(conn), seq = 0})
  redis.call('PUBLISH', ARGV[8] .. 'chan:node:' .. node, header .. '\n' .. ARGV[10])
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[2], ARGV[5])
redis.call('PUBLISH', ARGV[6], ARGV[7])
return redis.call('SMEMBERS', KEYS[2])
"#
    )
}

/// `leave`: forget the record; if the claim is still this connection's, free it, leave the
/// room (dropping it from the room list when empty) and publish `left`.
///
/// KEYS: nick, room set, rooms set, node hash.
/// ARGV: owner prefix, conn, nickname, room, room channel, left envelope.
pub const LEAVE: &str = r#"
redis.call('HDEL', KEYS[4], ARGV[2])
local owner = redis.call('GET', KEYS[1])
if not owner or string.sub(owner, 1, #ARGV[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[3])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[3], ARGV[4]) end
redis.call('PUBLISH', ARGV[5], ARGV[6])
return 1
"#;

/// `nick`: move the claim to the new nickname (a new case of one's own is allowed), rename in
/// the room, publish `renamed`. Returns 0 done, 1 taken, 2 the old claim is not ours.
///
/// KEYS: old nick, new nick, room set, node hash.
/// ARGV: owner prefix, new owner value, old nickname, new nickname, conn, new record,
/// room channel, renamed envelope.
pub const RENAME: &str = r#"
local owner = redis.call('GET', KEYS[1])
if not owner or string.sub(owner, 1, #ARGV[1]) ~= ARGV[1] then return 2 end
if KEYS[1] ~= KEYS[2] and redis.call('EXISTS', KEYS[2]) == 1 then return 1 end
redis.call('DEL', KEYS[1])
redis.call('SET', KEYS[2], ARGV[2])
redis.call('SREM', KEYS[3], ARGV[3])
redis.call('SADD', KEYS[3], ARGV[4])
redis.call('HSET', KEYS[4], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
return 0
"#;

/// `join_room`: leave the old room (publishing `left` there) and enter the new one
/// (publishing `joined`), in one step. Returns the new room's members, or nil if the claim is
/// not ours.
///
/// KEYS: nick, old room set, new room set, rooms set, node hash.
/// ARGV: owner prefix, nickname, old room, new room, conn, new record, old channel, left
/// envelope, new channel, joined envelope.
pub const MOVE: &str = r#"
local owner = redis.call('GET', KEYS[1])
if not owner or string.sub(owner, 1, #ARGV[1]) ~= ARGV[1] then return false end
redis.call('SREM', KEYS[2], ARGV[2])
if redis.call('SCARD', KEYS[2]) == 0 then redis.call('SREM', KEYS[4], ARGV[3]) end
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('HSET', KEYS[5], ARGV[5], ARGV[6])
redis.call('PUBLISH', ARGV[7], ARGV[8])
redis.call('PUBLISH', ARGV[9], ARGV[10])
return redis.call('SMEMBERS', KEYS[3])
"#;

/// `private`: publish on the recipient's node channel only if the claim is still exactly the
/// one looked up (it did not leave, rename or move meanwhile). Returns 1 sent, 0 not.
///
/// KEYS: nick. ARGV: owner value, node channel, envelope.
pub const PRIVATE: &str = r#"
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PUBLISH', ARGV[2], ARGV[3])
return 1
"#;

/// `list_rooms`: every room with its member count, flattened as name, count, name, count...
///
/// KEYS: rooms set. ARGV: the room set prefix (`P room:`).
pub const ROOMS: &str = r#"
local out = {}
for _, name in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local count = redis.call('SCARD', ARGV[1] .. name)
  if count > 0 then
    table.insert(out, name)
    table.insert(out, count)
  end
end
return out
"#;

/// The reaper: every registered node whose heartbeat key has expired is released member by
/// member, forgotten, and marked with a tombstone (so that, should it come back, it knows the
/// cluster saw its members leave). Atomic, so two nodes reaping at once cannot both publish a
/// dead member's `left`: the second finds nothing left to reap.
///
/// KEYS: nodes set. ARGV: prefix, tombstone TTL in ms.
pub fn reap() -> String {
    format!(
        "{RELEASE_FN}{}",
        r#"
local prefix = ARGV[1]
local reaped = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('EXISTS', prefix .. 'alive:' .. id) == 0 then
    local hash = prefix .. 'node:' .. id
    for _, rec in ipairs(redis.call('HVALS', hash)) do
      release(prefix, cjson.decode(rec))
    end
    redis.call('DEL', hash)
    redis.call('SREM', KEYS[1], id)
    redis.call('SET', prefix .. 'reaped:' .. id, '1', 'PX', ARGV[2])
    table.insert(reaped, id)
  end
end
return reaped
"#
    )
}

/// Re-registration, part 1: release the records of connections this node no longer has.
///
/// KEYS: node hash. ARGV: prefix, then the conn ids to release.
pub fn release_stale() -> String {
    format!(
        "{RELEASE_FN}{}",
        r#"
local released = 0
for i = 2, #ARGV do
  local rec = redis.call('HGET', KEYS[1], ARGV[i])
  if rec then
    release(ARGV[1], cjson.decode(rec))
    redis.call('HDEL', KEYS[1], ARGV[i])
    released = released + 1
  end
end
return released
"#
    )
}

/// Re-registration, part 2: claim and place each current member again. A nickname someone
/// else holds now is a conflict (returned, not taken). A member re-added to its room after the
/// node was reaped gets its `joined` published, since the cluster saw it leave; after a plain
/// Redis restart nobody saw anything, so nothing is published.
///
/// KEYS: node hash. ARGV: prefix, tombstone key, then groups of seven: conn, folded nickname,
/// nickname, room, owner value, record, joined envelope.
pub const ASSERT: &str = r#"
local prefix = ARGV[1]
local reaped = redis.call('EXISTS', ARGV[2]) == 1
local conflicts = {}
for i = 3, #ARGV, 7 do
  local conn, fold, nick, room, owner = ARGV[i], ARGV[i+1], ARGV[i+2], ARGV[i+3], ARGV[i+4]
  local key = prefix .. 'nick:' .. fold
  local holder = redis.call('GET', key)
  if holder and holder ~= owner then
    table.insert(conflicts, conn)
  else
    redis.call('SET', key, owner)
    local added = redis.call('SADD', prefix .. 'room:' .. room, nick)
    redis.call('SADD', prefix .. 'rooms', room)
    redis.call('HSET', KEYS[1], conn, ARGV[i+5])
    if reaped and added == 1 then
      redis.call('PUBLISH', prefix .. 'chan:room:' .. room, ARGV[i+6])
    end
  end
end
return conflicts
"#;
