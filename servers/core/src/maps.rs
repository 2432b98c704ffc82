//! Hash maps for tables that live as long as the server: connections, peers, nicknames.
//!
//! Two things make a server's long-lived tables different from an ordinary map:
//!
//! - **The keys.** Connection ids are counted up by the Hub, never chosen by a peer, so
//!   [`ConnIdMap`] hashes them with one multiplication ([`ConnIdHasher`]) instead of SipHash.
//!   Maps keyed by what a peer sends (nicknames, rooms) keep SipHash, which resists keys chosen
//!   to collide.
//! - **Churn.** Connections come and go for days while the number open stays about the same.
//!   The standard `HashMap` (hashbrown, a Swiss table) marks a removed entry with a *tombstone*
//!   so that lookups still probe past it. Tombstones use up the table's free slots, and when
//!   none are left hashbrown either cleans them up in place or, if more than half of the table is
//!   live, **doubles the table**. A server that keeps a table more than half full (as hashbrown
//!   sizes tables, it usually is) sees it double after enough reconnects, although it never held
//!   more connections than at the start: a step in memory long after warm-up, at a time set by
//!   the churn. The soak bench (`benches/benches/soak.rs`) caught it in every server; when, and
//!   how big, is measured in `benches/results/2026-12-02-soak-steady/`.
//!
//! [`SteadyMap`] sizes the table for churn *when the number of entries reaches a new peak*: it
//! keeps the table at least twice as large as the most entries it has held, so hashbrown always
//! cleans tombstones in place, and the table only grows when the server holds more than ever
//! before. Its memory is a function of the peak, not of how long the server has run. The price
//! is paid up front: the table is at most half full, as a churned hashbrown table ends up anyway.
//! An empty slot is as large as a key and a value, so a map of large values boxes them (the
//! Hub's connections, the event loops' peers): the empty half then costs a pointer a slot.
//! `benches/results/2026-12-04-boxed-tables/` measures what that saved.

use std::collections::hash_map::{Entry, RandomState};
use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hash, Hasher};
use std::ops::{Deref, DerefMut};

use crate::outbox::ConnId;

/// A map keyed by connection id: the Hub's table of connections, a server's table of peers.
///
/// Every request looks its sender up, and every frame its recipient, so the hash is on the hot
/// path: one multiplication ([`ConnIdHasher`]) instead of SipHash. And connections churn, so it
/// is a [`SteadyMap`].
pub type ConnIdMap<V> = SteadyMap<ConnId, V, BuildHasherDefault<ConnIdHasher>>;

/// The hasher of [`ConnIdMap`]: an id times a large odd constant (Fibonacci hashing), so that
/// consecutive ids spread over the whole table, high bits included.
#[derive(Debug, Default, Clone, Copy)]
pub struct ConnIdHasher(u64);

impl Hasher for ConnIdHasher {
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    /// Only `write_u64` is used for a `ConnId`; this keeps the hasher correct for anything else.
    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(byte));
        }
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// A `HashMap` whose table grows only when it holds more entries than ever before, however
/// many come and go (see the [module docs](self) for why a plain `HashMap` does not).
///
/// It derefs to the `HashMap` for everything else (lookups, `remove`, iteration); only
/// [`insert`](SteadyMap::insert) and [`entry`](SteadyMap::entry), the two ways in, are its own.
pub struct SteadyMap<K, V, S = RandomState> {
    map: HashMap<K, V, S>,
    /// The largest capacity the table has shown: a lower bound of its real capacity, which
    /// tombstones hide (`capacity()` counts only the slots still free), and exact right after
    /// the table was cleaned or grown.
    shown: usize,
}

impl<K, V, S: Default> Default for SteadyMap<K, V, S> {
    fn default() -> Self {
        SteadyMap {
            map: HashMap::default(),
            shown: 0,
        }
    }
}

impl<K: std::fmt::Debug, V: std::fmt::Debug, S> std::fmt::Debug for SteadyMap<K, V, S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

impl<K: Eq + Hash, V, S: BuildHasher> SteadyMap<K, V, S> {
    /// Inserts like [`HashMap::insert`], first making room for churn if this is a new peak.
    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.make_room();
        self.map.insert(key, value)
    }

    /// Like [`HashMap::entry`], first making room for churn if this could be a new peak.
    pub fn entry(&mut self, key: K) -> Entry<'_, K, V> {
        self.make_room();
        self.map.entry(key)
    }

    /// Keeps the table's capacity at twice the entries or more (one more included).
    ///
    /// Why that holds hashbrown to cleaning in place: when an insert finds no free slot left,
    /// hashbrown rehashes in place if the entries after the insert are at most half the table's
    /// capacity, and doubles the table otherwise. So while the capacity is at least twice the
    /// entries, churn never doubles it. Only a new peak can ask for more: `reserve` then leaves
    /// room for as many entries again, which grows the table once.
    fn make_room(&mut self) {
        self.shown = self.shown.max(self.map.capacity());
        let needed = 2 * (self.map.len() + 1);
        if needed > self.shown {
            self.map.reserve(needed - self.map.len());
            self.shown = self.map.capacity();
        }
    }
}

impl<K, V, S> Deref for SteadyMap<K, V, S> {
    type Target = HashMap<K, V, S>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

/// For `remove`, `get_mut`, `values_mut`, `clear`...: none of them can grow the table.
impl<K, V, S> DerefMut for SteadyMap<K, V, S> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `capacity()` is the table's full capacity right after it was cleaned or grown (no
    /// tombstones then), and less in between, so its highest value over a run is the largest
    /// table the run had.
    fn churn<M>(
        mut insert: impl FnMut(&mut M, u64),
        remove: impl Fn(&mut M, u64),
        capacity: impl Fn(&M) -> usize,
        map: &mut M,
    ) -> (usize, usize) {
        const LIVE: usize = 10_000;
        let mut live: Vec<u64> = (0..LIVE as u64).collect();
        for &id in &live {
            insert(map, id);
        }
        let after_warmup = capacity(map);
        let mut largest = after_warmup;
        // 600,000 steps of churn, as a server sees it: a connection picked at random leaves, or
        // a new one (a new id) arrives, so the number open wanders, and its peak creeps up by
        // 30 over the run. (If the oldest always left, hashbrown would rarely leave a
        // tombstone: the slots freed would be next to each other. Random departures do.)
        let mut seed = 0x2545_F491_4F6C_DD1D_u64;
        let mut next = LIVE as u64;
        for step in 0..600_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let ceiling = LIVE + step / 20_000;
            if live.len() < ceiling && (seed & 1 == 0 || live.len() < LIVE - 100) {
                insert(map, next);
                live.push(next);
                next += 1;
            } else {
                let leaving = live.swap_remove((seed >> 1) as usize % live.len());
                remove(map, leaving);
            }
            largest = largest.max(capacity(map));
        }
        (after_warmup, largest)
    }

    #[test]
    fn a_steady_map_never_grows_under_churn() {
        let mut map = ConnIdMap::<u64>::default();
        let (after_warmup, largest) = churn(
            |m: &mut ConnIdMap<u64>, id| {
                m.insert(ConnId(id), id);
            },
            |m, id| {
                m.remove(&ConnId(id));
            },
            |m| m.capacity(),
            &mut map,
        );
        assert_eq!(
            largest, after_warmup,
            "the table grew from {after_warmup} to {largest} slots under churn alone"
        );
        assert!(after_warmup >= 20_000, "sized for churn: {after_warmup}");
        assert!((9_900..=10_300).contains(&map.len()), "{}", map.len());
    }

    /// Why the type exists: the same churn doubles a plain `HashMap`'s table. If a future
    /// hashbrown stops doing this, this test says so, and `SteadyMap` can go.
    #[test]
    fn a_plain_hash_map_doubles_under_the_same_churn() {
        let mut map = HashMap::<u64, u64, BuildHasherDefault<ConnIdHasher>>::default();
        let (after_warmup, largest) = churn(
            |m: &mut HashMap<u64, u64, _>, id| {
                m.insert(id, id);
            },
            |m, id| {
                m.remove(&id);
            },
            |m| m.capacity(),
            &mut map,
        );
        assert!(
            largest >= 2 * after_warmup - 1,
            "expected a doubling: {after_warmup} → {largest}"
        );
    }

    #[test]
    fn nicknames_keep_their_table_too() {
        let mut map = SteadyMap::<String, u64>::default();
        let (after_warmup, largest) = churn(
            |m: &mut SteadyMap<String, u64>, id| {
                m.entry(format!("user{id}")).or_insert(id);
            },
            |m, id| {
                m.remove(&format!("user{id}"));
            },
            |m| m.capacity(),
            &mut map,
        );
        assert_eq!(largest, after_warmup);
    }

    #[test]
    fn it_still_grows_for_a_new_peak() {
        let mut map = ConnIdMap::<()>::default();
        for id in 0..1_000 {
            map.insert(ConnId(id), ());
        }
        let small = map.capacity();
        for id in 1_000..100_000 {
            map.insert(ConnId(id), ());
        }
        assert!(map.capacity() >= 200_000 && map.capacity() > small);
        assert_eq!(map.len(), 100_000);
        assert_eq!(map.get(&ConnId(54_321)), Some(&()));
    }
}
