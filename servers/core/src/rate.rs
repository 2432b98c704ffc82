//! The per-connection rate limit: a token bucket.
//!
//! The bucket holds at most `rate` tokens and refills at `rate` tokens per second. Each request
//! takes one; a request that finds the bucket empty is answered `rate_limited` and dropped. A
//! client may therefore burst `rate` requests at once, then sustain `rate` per second.

use std::time::Instant;

#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Tokens per second, and also the bucket's capacity (the burst).
    rate: f64,
    /// Tokens available at `updated`.
    tokens: f64,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl TokenBucket {
    /// A full bucket of `rate` tokens refilling at `rate` per second.
    pub fn new(rate: u32, now: Instant) -> Self {
        TokenBucket {
            rate: f64::from(rate),
            tokens: f64::from(rate),
            updated: now,
        }
    }

    /// Takes one token if there is one.
    pub fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.updated).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        self.updated = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_then_refills_at_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(5, t0);
        assert_eq!((0..8).filter(|_| bucket.try_take(t0)).count(), 5);
        assert!(!bucket.try_take(t0 + Duration::from_millis(100)));
        assert!(bucket.try_take(t0 + Duration::from_millis(300)));
        // A long pause refills only up to the burst size.
        let later = t0 + Duration::from_secs(60);
        assert_eq!((0..20).filter(|_| bucket.try_take(later)).count(), 5);
    }
}
