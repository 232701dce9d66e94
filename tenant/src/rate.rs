//! A sans-IO token bucket for a tenant's request rate on one serving node.
//!
//! The bucket holds at most `rate` tokens (one second's worth of burst) and
//! refills continuously at `rate` tokens per second of elapsed `now_ms`. Each
//! request takes one token; without one it is refused with `ThrottledOp` (-127).
//! Time only ever comes in as an argument, so tests drive it with a fake clock.
//! A clock that steps backwards refills nothing and is otherwise ignored.
//!
//! Tokens are kept in thousandths so a rate below 1000/s still refills a
//! fraction of a token every millisecond instead of losing it to rounding.

use crate::TenantError;

const MILLI: u64 = 1000;

/// A token bucket of `rate` requests per second.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    rate_per_sec: u64,
    tokens_milli: u64,
    last_ms: u64,
}

impl RateLimiter {
    /// A full bucket at time `now_ms`.
    pub fn new(rate_per_sec: u64, now_ms: u64) -> RateLimiter {
        RateLimiter {
            rate_per_sec,
            tokens_milli: capacity_milli(rate_per_sec),
            last_ms: now_ms,
        }
    }

    pub fn rate_per_sec(&self) -> u64 {
        self.rate_per_sec
    }

    /// Whole tokens available at the last refill.
    pub fn available(&self) -> u64 {
        self.tokens_milli / MILLI
    }

    /// Takes one token if there is one at `now_ms`.
    pub fn try_acquire(&mut self, now_ms: u64) -> bool {
        self.refill(now_ms);
        if self.tokens_milli >= MILLI {
            self.tokens_milli -= MILLI;
            true
        } else {
            false
        }
    }

    /// [`try_acquire`](Self::try_acquire) as a result carrying `ThrottledOp`.
    pub fn acquire(&mut self, now_ms: u64) -> Result<(), TenantError> {
        if self.try_acquire(now_ms) {
            Ok(())
        } else {
            Err(TenantError::Throttled)
        }
    }

    /// Applies a changed quota (registry update) without resetting the bucket:
    /// tokens are clamped to the new capacity, never raised.
    pub fn set_rate(&mut self, rate_per_sec: u64, now_ms: u64) {
        self.refill(now_ms);
        self.rate_per_sec = rate_per_sec;
        self.tokens_milli = self.tokens_milli.min(capacity_milli(rate_per_sec));
    }

    fn refill(&mut self, now_ms: u64) {
        if now_ms <= self.last_ms {
            return;
        }
        let elapsed_ms = now_ms - self.last_ms;
        // rate tokens/s is exactly rate milli-tokens per ms.
        let add = elapsed_ms.saturating_mul(self.rate_per_sec);
        self.tokens_milli = self
            .tokens_milli
            .saturating_add(add)
            .min(capacity_milli(self.rate_per_sec));
        self.last_ms = now_ms;
    }
}

fn capacity_milli(rate_per_sec: u64) -> u64 {
    rate_per_sec.saturating_mul(MILLI)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zero_rate_refuses_everything() {
        // Goal: a rate of 0 never grants a token, however much time passes.
        let mut r = RateLimiter::new(0, 0);
        assert!(!r.try_acquire(0));
        assert!(!r.try_acquire(1_000_000));
        assert_eq!(
            r.acquire(2_000_000).expect_err("throttled").code(),
            corral_proto::ErrorCode::ThrottledOp
        );
    }

    #[test]
    fn huge_rate_does_not_overflow() {
        // Goal: extreme rates and gaps saturate instead of wrapping.
        let mut r = RateLimiter::new(u64::MAX, 0);
        assert!(r.try_acquire(u64::MAX));
        assert!(r.try_acquire(u64::MAX));
    }
}
