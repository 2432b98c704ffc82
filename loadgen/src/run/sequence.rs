//! Checking one sender's stream as one receiver sees it: lost, duplicated, out of order.
//!
//! Every message carries its sender's sequence number (0, 1, 2…). A receiver keeps, per sender,
//! the next number it expects and the set of numbers it skipped over. A number that fills a gap
//! arrived out of order; a number below the next expected that fills no gap is a duplicate; the
//! gaps still open at the end (after the drain window), plus whatever the sender sent beyond the
//! last number seen, are lost. Memory is one small struct per (receiver, sender) pair, plus the
//! open gaps.
//!
//! A receiver knows in advance whom it hears from (its room's members, its private partner,
//! itself), so [`Streams`] keeps their checks in a vector found by binary search over the sorted
//! sender list: no hashing on the path of every copy.

use std::collections::{BTreeSet, HashMap};

/// Open gaps kept per stream. A server losing more than this many messages of one sender is
/// plainly broken; beyond it, skipped numbers are counted as lost at once (and a late arrival of
/// one of them would then count as a duplicate).
const MAX_OPEN_GAPS: usize = 65_536;

/// One sender's stream at one receiver.
#[derive(Debug, Default, Clone)]
pub(crate) struct StreamCheck {
    /// The sequence number expected next: one past the highest seen.
    next: u64,
    /// Numbers below `next` not seen yet.
    gaps: BTreeSet<u64>,
    /// Numbers skipped when `gaps` was full: counted as lost at once.
    overflow_lost: u64,
    pub duplicated: u64,
    pub out_of_order: u64,
}

impl StreamCheck {
    /// Records the arrival of `seq`.
    pub(crate) fn observe(&mut self, seq: u64) {
        if seq == self.next {
            self.next += 1;
        } else if seq > self.next {
            // A jump: the numbers in between are missing, for now.
            for missing in self.next..seq {
                if self.gaps.len() < MAX_OPEN_GAPS {
                    self.gaps.insert(missing);
                } else {
                    self.overflow_lost += 1;
                }
            }
            self.next = seq + 1;
        } else if self.gaps.remove(&seq) {
            self.out_of_order += 1;
        } else {
            self.duplicated += 1;
        }
    }

    /// Messages lost for good: the open gaps, plus the tail beyond the highest number seen when
    /// the sender is known to have sent `sent` messages (`None` when the sender's count cannot
    /// be trusted, e.g. it was disconnected mid-run).
    pub(crate) fn lost(&self, sent: Option<u64>) -> u64 {
        let tail = sent.map_or(0, |sent| sent.saturating_sub(self.next));
        self.gaps.len() as u64 + self.overflow_lost + tail
    }
}

/// Every stream one receiver checks.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// The senders this receiver expects, sorted.
    senders: Vec<u32>,
    /// `checks[i]` is the stream of `senders[i]`.
    checks: Vec<StreamCheck>,
    /// Senders it did not expect (a server delivering across rooms): still checked for
    /// duplicates and order.
    others: HashMap<u32, StreamCheck>,
}

impl Streams {
    /// Streams for `senders` (any order, duplicates ignored).
    pub(crate) fn new(mut senders: Vec<u32>) -> Streams {
        senders.sort_unstable();
        senders.dedup();
        Streams {
            checks: vec![StreamCheck::default(); senders.len()],
            senders,
            others: HashMap::new(),
        }
    }

    /// Records that `seq` of `sender` arrived.
    pub(crate) fn observe(&mut self, sender: u32, seq: u64) {
        match self.senders.binary_search(&sender) {
            Ok(i) => self.checks[i].observe(seq),
            Err(_) => self.others.entry(sender).or_default().observe(seq),
        }
    }

    /// The stream of `sender`, if anything of it arrived or it was expected.
    pub(crate) fn get(&self, sender: u32) -> Option<&StreamCheck> {
        match self.senders.binary_search(&sender) {
            Ok(i) => Some(&self.checks[i]),
            Err(_) => self.others.get(&sender),
        }
    }

    /// One past the highest sequence number of `sender` seen so far (0: none yet).
    pub(crate) fn received_up_to(&self, sender: u32) -> u64 {
        self.get(sender).map_or(0, |s| s.next)
    }

    /// Duplicates and reorderings over every stream.
    pub(crate) fn duplicated_and_out_of_order(&self) -> (u64, u64) {
        self.checks
            .iter()
            .chain(self.others.values())
            .fold((0, 0), |(d, o), s| (d + s.duplicated, o + s.out_of_order))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(seqs: &[u64]) -> StreamCheck {
        let mut c = StreamCheck::default();
        for &s in seqs {
            c.observe(s);
        }
        c
    }

    /// An in-order stream is clean; a missing tail counts as lost.
    #[test]
    fn in_order_and_tail() {
        let c = check(&[0, 1, 2, 3]);
        assert_eq!((c.duplicated, c.out_of_order, c.lost(Some(4))), (0, 0, 0));
        assert_eq!(c.lost(Some(6)), 2);
        assert_eq!(c.lost(None), 0);
    }

    /// A swap is out of order but not lost; a gap never filled is lost; a repeat is a duplicate.
    #[test]
    fn swap_gap_duplicate() {
        let c = check(&[1, 0, 2, 4, 4, 2]);
        assert_eq!(c.out_of_order, 1);
        assert_eq!(c.duplicated, 2);
        assert_eq!(c.lost(Some(5)), 1); // 3 never came
    }

    /// Expected and unexpected senders are both checked, each on its own stream.
    #[test]
    fn streams_of_a_receiver() {
        let mut s = Streams::new(vec![9, 3, 5, 3]);
        for (sender, seq) in [(3, 0), (9, 0), (3, 1), (3, 1), (7, 1), (7, 0)] {
            s.observe(sender, seq);
        }
        assert_eq!(s.get(3).map(|c| c.lost(Some(2))), Some(0));
        assert_eq!(s.get(5).map(|c| c.lost(Some(1))), Some(1));
        assert_eq!(s.get(7).map(|c| c.out_of_order), Some(1));
        assert!(s.get(8).is_none());
        assert_eq!(s.duplicated_and_out_of_order(), (1, 1));
    }
}
