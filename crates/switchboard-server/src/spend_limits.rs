//! The per-instance pieces of spend control the shared state holds: the request rate limiter and
//! the clock budgets are reckoned at. Apart from [`crate::spend`], which uses them, so that the
//! state can hold them without the two modules importing each other.

/// The time budget periods are reckoned at: the system's, unless a test has set it (so a test can
/// step over a period's end without waiting for midnight). Never set outside tests.
#[derive(Default)]
pub struct BudgetClock {
    /// ms since the Unix epoch; 0 for the system clock.
    fixed_ms: std::sync::atomic::AtomicI64,
}

impl BudgetClock {
    pub fn now_ms(&self) -> i64 {
        match self.fixed_ms.load(std::sync::atomic::Ordering::Relaxed) {
            0 => switchboard_chat::now_ms(),
            fixed => fixed,
        }
    }

    /// Holds the clock at `ms`, or gives it back to the system with `None`.
    pub fn set(&self, ms: Option<i64>) {
        self.fixed_ms
            .store(ms.unwrap_or(0), std::sync::atomic::Ordering::Relaxed);
    }
}

/// Per-workspace request rate limits (`SWITCHBOARD_RATE_LIMIT`), GCRA by `governor`, per instance.
pub struct RateLimiter {
    limiter: governor::DefaultKeyedRateLimiter<String>,
    clock: governor::clock::DefaultClock,
}

impl RateLimiter {
    pub fn new(limit: switchboard_core::budget::RateLimit) -> RateLimiter {
        let burst = std::num::NonZeroU32::new(limit.requests).unwrap_or(std::num::NonZeroU32::MIN);
        let quota = governor::Quota::with_period(limit.per / limit.requests.max(1))
            .unwrap_or_else(|| governor::Quota::per_second(burst))
            .allow_burst(burst);
        RateLimiter {
            limiter: governor::RateLimiter::keyed(quota),
            clock: governor::clock::DefaultClock::default(),
        }
    }

    /// `Err(wait)` when `workspace` must wait before its next request.
    pub(crate) fn check(&self, workspace: &str) -> Result<(), std::time::Duration> {
        use governor::clock::Clock;
        self.limiter
            .check_key(&workspace.to_owned())
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}
