//! The budget of bytes the gateway holds in memory at once: request bodies read whole,
//! upstream answers read whole (non-stream answers, error bodies kept while other keys are
//! tried) and the first event of a stream, held until the gateway commits to it.
//!
//! A [`Reservation`] owns its bytes of the budget and gives them back when dropped, so no path
//! can leak them (like a limit's `Admission`). A body of known length reserves its length up
//! front; one of unknown length grows its reservation as chunks arrive.
//!
//! A key design decision: only a *new* request waits for room ([`BufferBudget::reserve`], with
//! the caller's timeout). An upstream answer never waits: its request already holds a
//! reservation and an upstream connection, and requests waiting on each other's answers could
//! hold the budget until every one of them timed out. An answer that does not fit fails its
//! request (503), and no key is blamed. The waiting is woken by an `event-listener` event, which
//! needs no runtime, so the budget stays in the domain crate where the answers are read.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};

use event_listener::Event;

/// The cap on buffered bytes, shared by every request.
pub struct BufferBudget {
    limit: usize,
    in_use: AtomicUsize,
    /// Requests refused because their bytes did not fit.
    refused: AtomicU64,
    /// Fired whenever bytes are given back, for requests waiting for room.
    freed: Event,
}

/// The bytes asked for do not fit in the budget now (or never: more than the whole budget).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the gateway's buffer budget of {limit} bytes is in use")]
pub struct OverBudget {
    pub limit: usize,
}

impl BufferBudget {
    pub fn new(limit: usize) -> Arc<Self> {
        Arc::new(Self { limit, in_use: AtomicUsize::new(0), refused: AtomicU64::new(0), freed: Event::new() })
    }

    /// The budget, in bytes.
    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes reserved now.
    pub fn in_use(&self) -> usize {
        self.in_use.load(Relaxed)
    }

    /// Requests refused for want of room since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Relaxed)
    }

    /// Counts a request refused because its bytes did not fit.
    pub fn count_refused(&self) {
        self.refused.fetch_add(1, Relaxed);
    }

    /// A reservation of nothing yet, to grow.
    pub fn empty(self: &Arc<Self>) -> Reservation {
        Reservation { budget: Arc::clone(self), bytes: 0 }
    }

    /// `bytes` of the budget if they fit now.
    pub fn try_reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, OverBudget> {
        let mut reservation = self.empty();
        reservation.grow(bytes)?;
        Ok(reservation)
    }

    /// `bytes` of the budget, waiting until they fit; at once an error if they never can. The
    /// caller bounds the wait (drop the future to give up).
    pub async fn reserve(self: &Arc<Self>, bytes: usize) -> Result<Reservation, OverBudget> {
        let mut reservation = self.empty();
        reservation.grow_waiting(bytes).await?;
        Ok(reservation)
    }

    /// Takes `bytes` if the total stays within the limit.
    fn take(&self, bytes: usize) -> Result<(), OverBudget> {
        let over = OverBudget { limit: self.limit };
        self.in_use
            .fetch_update(Relaxed, Relaxed, |used| used.checked_add(bytes).filter(|total| *total <= self.limit))
            .map(drop)
            .map_err(|_| over)
    }

    fn give_back(&self, bytes: usize) {
        if bytes > 0 {
            self.in_use.fetch_sub(bytes, Relaxed);
            self.freed.notify(usize::MAX);
        }
    }
}

/// Bytes of the budget held by one buffer; given back on drop.
pub struct Reservation {
    budget: Arc<BufferBudget>,
    bytes: usize,
}

impl Reservation {
    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Holds `more` bytes as well, if they fit now.
    pub fn grow(&mut self, more: usize) -> Result<(), OverBudget> {
        self.budget.take(more)?;
        self.bytes += more;
        Ok(())
    }

    /// Holds at least `total` bytes, growing if they fit now.
    pub fn cover(&mut self, total: usize) -> Result<(), OverBudget> {
        self.grow(total.saturating_sub(self.bytes))
    }

    /// Gives back what is held beyond `total` bytes (a buffer that shrank, or a copy that is gone).
    pub fn release_to(&mut self, total: usize) {
        let excess = self.bytes.saturating_sub(total);
        if excess > 0 {
            self.budget.give_back(excess);
            self.bytes -= excess;
        }
    }

    /// Holds `more` bytes as well, waiting until they fit; at once an error if they never can.
    pub async fn grow_waiting(&mut self, more: usize) -> Result<(), OverBudget> {
        let limit = self.budget.limit;
        if more > limit.saturating_sub(self.bytes) {
            return Err(OverBudget { limit });
        }
        loop {
            if self.grow(more).is_ok() {
                return Ok(());
            }
            let freed = self.budget.freed.listen();
            // Bytes given back between the failed try and `listen` would wake no one: try again.
            if self.grow(more).is_ok() {
                return Ok(());
            }
            freed.await;
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.give_back(self.bytes);
    }
}

impl std::fmt::Debug for Reservation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reservation").field("bytes", &self.bytes).finish()
    }
}

#[cfg(test)]
mod tests {
    use std::future::Future;
    use std::task::{Context, Waker};
    use std::time::Duration;

    use super::*;

    #[test]
    fn reservations_fit_under_the_limit_and_give_their_bytes_back_when_dropped() {
        let budget = BufferBudget::new(100);
        let first = budget.try_reserve(60).expect("fits");
        assert_eq!(budget.try_reserve(50).err(), Some(OverBudget { limit: 100 }));
        let mut second = budget.try_reserve(40).expect("fits exactly");
        assert_eq!(budget.in_use(), 100);
        assert!(second.grow(1).is_err(), "growing past the limit fails and takes nothing");
        assert_eq!(second.bytes(), 40);
        drop(first);
        second.cover(90).expect("the freed bytes can be grown into");
        assert_eq!((second.bytes(), budget.in_use()), (90, 90));
        drop(second);
        assert_eq!(budget.in_use(), 0);
    }

    #[test]
    fn releasing_down_to_a_size_gives_back_only_the_excess() {
        let budget = BufferBudget::new(100);
        let mut held = budget.try_reserve(70).expect("fits");
        held.release_to(30);
        assert_eq!((held.bytes(), budget.in_use()), (30, 30));
        held.release_to(50);
        assert_eq!((held.bytes(), budget.in_use()), (30, 30), "releasing never grows");
        drop(held);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn a_waiting_reservation_is_served_when_bytes_are_given_back() {
        let budget = BufferBudget::new(100);
        let held = budget.try_reserve(80).expect("fits");
        let mut waiting = std::pin::pin!(budget.reserve(50));
        let mut cx = Context::from_waker(Waker::noop());
        assert!(waiting.as_mut().poll(&mut cx).is_pending(), "it waits while the bytes are held");
        drop(held);
        let served = tokio::time::timeout(Duration::from_secs(5), waiting).await;
        assert!(matches!(served, Ok(Ok(ref r)) if r.bytes() == 50), "{served:?}");
        drop(served);
        assert_eq!(budget.in_use(), 0);
    }

    #[tokio::test]
    async fn more_than_the_whole_budget_is_refused_without_waiting() {
        let budget = BufferBudget::new(100);
        assert_eq!(budget.reserve(101).await.err(), Some(OverBudget { limit: 100 }));
    }
}
