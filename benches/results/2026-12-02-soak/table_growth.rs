//! Does a hash table of 10,500 live keys grow while keys come and go at the soak's pace?
//!
//! `rustc -O table_growth.rs && ./table_growth sip && ./table_growth fib`
//!
//! `sip`: std's `HashMap` with SipHash, as the Hub keeps nicknames. The tombstones that removals
//! leave behind use up the table's free slots, and because more than half of it is live, the
//! table doubles instead of cleaning up in place: once, after some 54,000 reconnects.
//! `fib`: chat-core's `ConnIdHasher` (an id times a constant) over ids counted up, as the Hub and
//! the event loops keep connections: the same churn never grows the table.
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

#[derive(Default)]
struct Fibonacci(u64);

impl Hasher for Fibonacci {
    fn write_u64(&mut self, id: u64) {
        self.0 = id.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(self.0.rotate_left(8) ^ u64::from(b));
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// 10,000 members, every tenth a churner that reconnects under a new key; a closed key is
/// removed 500 reconnects later (the soak's one second of lingering at 500/s).
fn churn<S: BuildHasher>(mut map: HashMap<u64, [u8; 24], S>) {
    let mut next = 0u64;
    let mut churners = VecDeque::new();
    for i in 0..10_000 {
        map.insert(next, [0; 24]);
        if i % 10 == 9 {
            churners.push_back(next);
        }
        next += 1;
    }
    let mut lingering = VecDeque::new();
    let mut last = map.capacity();
    println!("start: room for {last}, {} live", map.len());
    for reconnect in 0..400_000u64 {
        let old = churners.pop_front().expect("a churner");
        lingering.push_back(old);
        if lingering.len() > 500 {
            let gone = lingering.pop_front().expect("a closed key");
            map.remove(&gone);
        }
        map.insert(next, [0; 24]);
        churners.push_back(next);
        next += 1;
        // capacity() moves by one as tombstones come and go; a resize moves it by thousands
        let now = map.capacity();
        if now > last + 1000 {
            println!("after {reconnect} reconnects: the table grew, room for {last} -> {now}");
        }
        last = now;
    }
    println!("end: room for {last}, {} live", map.len());
}

fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("fib") => churn(HashMap::with_hasher(BuildHasherDefault::<Fibonacci>::default())),
        _ => churn(HashMap::with_hasher(RandomState::new())),
    }
}
