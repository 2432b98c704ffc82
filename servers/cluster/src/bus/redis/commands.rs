//! The [`Bus`] operations on Redis: one command or one script each, timed for `/metrics`
//! (`settle`), on the command connection; the heartbeat and the reaper on the control
//! connection.

use super::{RedisBus, CHUNK, TOMBSTONE};
use crate::bus::{replaced_frame, Bus, BusResult, Entered, Record, Renamed};
use crate::keys::{owner_prefix, Owner};
use bytes::Bytes;
use chat_core::names::fold;
use redis::RedisResult;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

impl Bus for RedisBus {
    const KIND: &'static str = "redis";

    fn is_up(&self) -> bool {
        self.up.load(Ordering::SeqCst)
    }

    async fn join(&self, record: &Record, joined: Bytes) -> BusResult<Entered> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result = self
            .scripts
            .join
            .key(self.keys.nick(&fold(&record.nickname)))
            .key(self.keys.room(&record.room))
            .key(self.keys.rooms())
            .key(self.keys.node(&self.node))
            .arg(self.owner(record).encode())
            .arg(record.conn)
            .arg(&record.nickname)
            .arg(&record.room)
            .arg(self.record_json(record))
            .arg(self.keys.room_channel(&record.room))
            .arg(&joined[..])
            .arg(self.keys.prefix())
            .arg(&record.session)
            .arg(&replaced_frame()[..])
            .invoke_async(&mut con)
            .await;
        self.settle(&lost, started, result)
    }

    async fn leave(&self, record: &Record) -> BusResult<()> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result: RedisResult<i64> = self
            .scripts
            .leave
            .key(self.keys.nick(&fold(&record.nickname)))
            .key(self.keys.room(&record.room))
            .key(self.keys.rooms())
            .key(self.keys.node(&self.node))
            .arg(owner_prefix(&self.node, record.conn))
            .arg(record.conn)
            .arg(&record.nickname)
            .arg(&record.room)
            .arg(self.keys.room_channel(&record.room))
            .arg(&record.left[..])
            .invoke_async(&mut con)
            .await;
        self.settle(&lost, started, result).map(drop)
    }

    async fn rename(&self, old: &Record, new: &Record, renamed: Bytes) -> BusResult<Renamed> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result: RedisResult<i64> = self
            .scripts
            .rename
            .key(self.keys.nick(&fold(&old.nickname)))
            .key(self.keys.nick(&fold(&new.nickname)))
            .key(self.keys.room(&old.room))
            .key(self.keys.node(&self.node))
            .arg(owner_prefix(&self.node, old.conn))
            .arg(self.owner(new).encode())
            .arg(&old.nickname)
            .arg(&new.nickname)
            .arg(new.conn)
            .arg(self.record_json(new))
            .arg(self.keys.room_channel(&old.room))
            .arg(&renamed[..])
            .invoke_async(&mut con)
            .await;
        Ok(match self.settle(&lost, started, result)? {
            0 => Renamed::Done,
            1 => Renamed::Taken,
            _ => Renamed::Lost,
        })
    }

    async fn change_room(&self, old: &Record, new: &Record, joined: Bytes) -> BusResult<Entered> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result = self
            .scripts
            .moving
            .key(self.keys.nick(&fold(&old.nickname)))
            .key(self.keys.room(&old.room))
            .key(self.keys.room(&new.room))
            .key(self.keys.rooms())
            .key(self.keys.node(&self.node))
            .arg(owner_prefix(&self.node, old.conn))
            .arg(&old.nickname)
            .arg(&old.room)
            .arg(&new.room)
            .arg(new.conn)
            .arg(self.record_json(new))
            .arg(self.keys.room_channel(&old.room))
            .arg(&old.left[..])
            .arg(self.keys.room_channel(&new.room))
            .arg(&joined[..])
            .invoke_async(&mut con)
            .await;
        self.settle(&lost, started, result)
    }

    async fn publish(&self, room: &str, payload: Bytes) -> BusResult<()> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result: RedisResult<i64> = redis::cmd("PUBLISH")
            .arg(self.keys.room_channel(room))
            .arg(&payload[..])
            .query_async(&mut con)
            .await;
        self.settle(&lost, started, result).map(drop)
    }

    async fn lookup(&self, folded: &str) -> BusResult<Option<Owner>> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result: RedisResult<Option<String>> = redis::cmd("GET")
            .arg(self.keys.nick(folded))
            .query_async(&mut con)
            .await;
        Ok(self
            .settle(&lost, started, result)?
            .and_then(|value| Owner::decode(&value)))
    }

    async fn send_private(&self, folded: &str, owner: &Owner, payload: Bytes) -> BusResult<bool> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result: RedisResult<i64> = self
            .scripts
            .private
            .key(self.keys.nick(folded))
            .arg(owner.encode())
            .arg(self.keys.node_channel(&owner.node))
            .arg(&payload[..])
            .invoke_async(&mut con)
            .await;
        Ok(self.settle(&lost, started, result)? == 1)
    }

    async fn users(&self, room: &str) -> BusResult<Vec<String>> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result = redis::cmd("SMEMBERS")
            .arg(self.keys.room(room))
            .query_async(&mut con)
            .await;
        self.settle(&lost, started, result)
    }

    async fn rooms(&self) -> BusResult<Vec<(String, usize)>> {
        let (mut con, lost) = self.commands()?;
        let started = Instant::now();
        let result = self
            .scripts
            .rooms
            .key(self.keys.rooms())
            .arg(self.keys.room(""))
            .invoke_async(&mut con)
            .await;
        self.settle(&lost, started, result)
    }

    async fn subscribe(&self, channels: &[String]) -> BusResult<()> {
        let (mut sink, lost) = self.subscriptions()?;
        let started = Instant::now();
        let result = sink.subscribe(channels).await;
        self.settle(&lost, started, result)
    }

    async fn unsubscribe(&self, channels: &[String]) -> BusResult<()> {
        let (mut sink, lost) = self.subscriptions()?;
        let started = Instant::now();
        let result = sink.unsubscribe(channels).await;
        self.settle(&lost, started, result)
    }

    async fn heartbeat(&self, ttl: Duration) -> BusResult<bool> {
        let (mut con, lost) = self.control()?;
        let started = Instant::now();
        let result: RedisResult<i64> = self
            .scripts
            .heartbeat
            .key(self.keys.alive(&self.node))
            .key(self.keys.nodes())
            .key(self.keys.reaped(&self.node))
            .arg(&self.node)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut con)
            .await;
        Ok(self.settle(&lost, started, result)? == 1)
    }

    async fn reap(&self) -> BusResult<Vec<String>> {
        let (mut con, lost) = self.control()?;
        let started = Instant::now();
        let result = self
            .scripts
            .reap
            .key(self.keys.nodes())
            .arg(self.keys.prefix())
            .arg(TOMBSTONE.as_millis() as u64)
            .invoke_async(&mut con)
            .await;
        self.settle(&lost, started, result)
    }

    async fn reregister(&self, members: &[(Record, Bytes)]) -> BusResult<Vec<u64>> {
        let (mut con, lost) = self.commands()?;
        let hash = self.keys.node(&self.node);
        // 1. Records of connections that are gone (this node's previous life, or leaves that
        //    never reached a Redis that went away): release them.
        let started = Instant::now();
        let recorded: RedisResult<Vec<u64>> =
            redis::cmd("HKEYS").arg(&hash).query_async(&mut con).await;
        let live: std::collections::HashSet<u64> = members.iter().map(|(r, _)| r.conn).collect();
        let stale: Vec<u64> = self
            .settle(&lost, started, recorded)?
            .into_iter()
            .filter(|conn| !live.contains(conn))
            .collect();
        for chunk in stale.chunks(CHUNK) {
            let started = Instant::now();
            let mut call = self.scripts.release_stale.key(&hash);
            call.arg(self.keys.prefix());
            for conn in chunk {
                call.arg(conn);
            }
            let result: RedisResult<i64> = call.invoke_async(&mut con).await;
            self.settle(&lost, started, result)?;
        }
        // 2. Every current member, claimed and placed again.
        let tombstone = self.keys.reaped(&self.node);
        let mut conflicts = Vec::new();
        for chunk in members.chunks(CHUNK) {
            let started = Instant::now();
            let mut call = self.scripts.assert.key(&hash);
            call.arg(self.keys.prefix()).arg(&tombstone);
            for (record, joined) in chunk {
                call.arg(record.conn)
                    .arg(fold(&record.nickname))
                    .arg(&record.nickname)
                    .arg(&record.room)
                    .arg(self.owner(record).encode())
                    .arg(self.record_json(record))
                    .arg(&joined[..]);
            }
            let result: RedisResult<Vec<u64>> = call.invoke_async(&mut con).await;
            conflicts.extend(self.settle(&lost, started, result)?);
        }
        let started = Instant::now();
        let result: RedisResult<()> = redis::cmd("DEL")
            .arg(&tombstone)
            .query_async(&mut con)
            .await;
        self.settle(&lost, started, result)?;
        Ok(conflicts)
    }
}
