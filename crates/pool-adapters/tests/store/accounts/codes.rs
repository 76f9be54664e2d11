//! Verification codes: one live code per (email, purpose), every try counted atomically before
//! the code is judged, consumed once; and the send tallies per email and per address.

use std::sync::Arc;

use pool_core::account::{
    CodeKey, CodePurpose, CodeRecord, CodeVerdict, LocalDay, MAX_TRIES, Phase, SendRefused, SendRule, SendTally,
    generate_code,
};
use pool_core::ports::Store;
use pool_core::secret::Secret;
use tokio::task::JoinSet;

use super::email;
use crate::support::{T0, contract};

contract!(
    a_new_code_replaces_the_live_one_and_its_tries,
    each_try_is_counted_before_the_code_is_judged,
    twenty_concurrent_wrong_tries_burn_a_code_after_exactly_five,
    a_code_is_consumed_only_while_it_is_the_one_that_was_checked,
    sends_are_tallied_per_email_and_per_address_and_a_new_day_starts_over,
    of_concurrent_sends_each_increment_sees_the_others,
);

fn key() -> CodeKey {
    CodeKey::new(&Secret::new("server-secret-".repeat(3))).expect("long enough")
}

/// The record of `digits` (e.g. "123456") for `address`, issued at `T0`.
fn issued(address: &str, purpose: CodePurpose, digits: &str) -> CodeRecord {
    let bytes: Vec<u8> = digits.bytes().map(|b| b - b'0').collect();
    let code = generate_code(&bytes).expect("six digits");
    CodeRecord::issue(&key(), email(address), purpose, &code, T0)
}

fn day(s: &str) -> LocalDay {
    s.parse().expect("a day")
}

async fn a_new_code_replaces_the_live_one_and_its_tries(store: &Arc<dyn Store>) {
    // Arrange
    let first = issued("a@example.com", CodePurpose::Login, "111111");
    store.put_code(&first).await.expect("put");
    store.take_code_try(&first.email, CodePurpose::Login).await.expect("try").expect("a code");
    let second = CodeRecord { created_at: T0 + 60_000, ..issued("a@example.com", CodePurpose::Login, "222222") };
    // Act
    store.put_code(&second).await.expect("put again");
    let taken = store.take_code_try(&second.email, CodePurpose::Login).await.expect("try").expect("a code");
    // Assert
    assert_eq!(taken, CodeRecord { tries: 1, ..second });
    assert_eq!(taken.check(&key(), "111111", T0 + 60_000), CodeVerdict::Wrong { tries_left: MAX_TRIES - 1 });
    assert_eq!(taken.check(&key(), "222222", T0 + 60_000), CodeVerdict::Accepted);
}

async fn each_try_is_counted_before_the_code_is_judged(store: &Arc<dyn Store>) {
    // Arrange: one code per purpose for one address
    let login = issued("b@example.com", CodePurpose::Login, "123456");
    let reset = issued("b@example.com", CodePurpose::Reset, "654321");
    store.put_code(&login).await.expect("put");
    store.put_code(&reset).await.expect("put");
    // Act
    let mut tries = Vec::new();
    for _ in 0..3 {
        let taken = store.take_code_try(&login.email, CodePurpose::Login).await.expect("try").expect("a code");
        tries.push(taken.tries);
    }
    let other = store.take_code_try(&reset.email, CodePurpose::Reset).await.expect("try").expect("a code");
    let none = store.take_code_try(&login.email, CodePurpose::Register).await.expect("try");
    let elsewhere = store.take_code_try(&email("c@example.com"), CodePurpose::Login).await.expect("try");
    // Assert
    assert_eq!(tries, [1, 2, 3]);
    assert_eq!(other.tries, 1, "each purpose counts its own tries");
    assert_eq!(other.check(&key(), "654321", T0), CodeVerdict::Accepted);
    assert_eq!((none, elsewhere), (None, None));
}

async fn twenty_concurrent_wrong_tries_burn_a_code_after_exactly_five(store: &Arc<dyn Store>) {
    // Arrange
    let code = issued("brute@example.com", CodePurpose::Login, "424242");
    store.put_code(&code).await.expect("put");
    // Act: 20 guesses at once, each taking its try and judging it
    let mut tasks = JoinSet::new();
    for guess in 0..20 {
        let (store, address) = (Arc::clone(store), code.email.clone());
        tasks.spawn(async move {
            let taken = store.take_code_try(&address, CodePurpose::Login).await.expect("try").expect("a code");
            (taken.tries, taken.check(&key(), &format!("{guess:06}"), T0 + 1))
        });
    }
    let mut results = tasks.join_all().await;
    results.sort_by_key(|(tries, _)| *tries);
    // Assert
    let numbers: Vec<u32> = results.iter().map(|(tries, _)| *tries).collect();
    assert_eq!(numbers, (1..=20).collect::<Vec<u32>>(), "every try has its own number");
    let wrong = results.iter().filter(|(_, v)| matches!(v, CodeVerdict::Wrong { .. })).count();
    let burned = results.iter().filter(|(_, v)| *v == CodeVerdict::Burned).count();
    assert_eq!((wrong, burned), (5, 15));
    let after = store.take_code_try(&code.email, CodePurpose::Login).await.expect("try").expect("a code");
    assert_eq!(after.check(&key(), "424242", T0 + 2), CodeVerdict::Burned, "even the right code, now");
}

async fn a_code_is_consumed_only_while_it_is_the_one_that_was_checked(store: &Arc<dyn Store>) {
    // Arrange
    let old = issued("d@example.com", CodePurpose::Register, "100000");
    store.put_code(&old).await.expect("put");
    let new = issued("d@example.com", CodePurpose::Register, "200000");
    store.put_code(&new).await.expect("replace");
    // Act
    let stale = store.consume_code(&old.email, CodePurpose::Register, &old.hash).await.expect("consume");
    let current = store.consume_code(&new.email, CodePurpose::Register, &new.hash).await.expect("consume");
    let twice = store.consume_code(&new.email, CodePurpose::Register, &new.hash).await.expect("consume");
    // Assert
    assert!(!stale, "a replaced code's check consumes nothing");
    assert!(current);
    assert!(!twice, "of two callers accepting one code, one consumes it");
    assert_eq!(store.take_code_try(&new.email, CodePurpose::Register).await.expect("try"), None);
}

async fn sends_are_tallied_per_email_and_per_address_and_a_new_day_starts_over(store: &Arc<dyn Store>) {
    // Arrange
    let (a, b) = (email("e@example.com"), email("f@example.com"));
    let today = day("2026-12-04");
    // Act
    let before = store.code_sends(&a, "192.0.2.1", today).await.expect("read");
    let first = store.count_code_send(&a, "192.0.2.1", today, T0).await.expect("count");
    let second = store.count_code_send(&b, "192.0.2.1", today, T0 + 61_000).await.expect("count");
    let read = store.code_sends(&a, "192.0.2.1", today).await.expect("read");
    let tomorrow = store.code_sends(&a, "192.0.2.1", day("2026-12-05")).await.expect("read");
    let next_day = store.count_code_send(&a, "192.0.2.1", day("2026-12-05"), T0 + 90_000).await.expect("count");
    // Assert
    assert_eq!(before.email, SendTally::default());
    assert_eq!(first.email, SendTally { sends: 1, last_sent: None });
    assert_eq!(second.email, SendTally { sends: 1, last_sent: None }, "another email has its own tally");
    assert_eq!(second.address, SendTally { sends: 2, last_sent: Some(T0) }, "one address, two emails");
    assert_eq!(read.email, SendTally { sends: 1, last_sent: Some(T0) });
    assert_eq!(read.address, SendTally { sends: 2, last_sent: Some(T0 + 61_000) });
    assert_eq!(tomorrow.email, SendTally { sends: 0, last_sent: Some(T0) }, "the last send spans midnight");
    assert_eq!(next_day.email, SendTally { sends: 1, last_sent: Some(T0) });
    assert_eq!(next_day.address, SendTally { sends: 1, last_sent: Some(T0 + 61_000) });
}

async fn of_concurrent_sends_each_increment_sees_the_others(store: &Arc<dyn Store>) {
    // Arrange
    let address = email("g@example.com");
    let today = day("2026-12-04");
    // Act: 12 sends at the same instant, each judged on what its increment returned
    let mut tasks = JoinSet::new();
    for _ in 0..12 {
        let (store, address) = (Arc::clone(store), address.clone());
        tasks.spawn(async move {
            let counted = store.count_code_send(&address, "198.51.100.9", today, T0).await.expect("count");
            (counted.email.sends, SendRule::default().judge(&counted, Phase::Counted, T0))
        });
    }
    let mut results = tasks.join_all().await;
    results.sort_by_key(|(sends, _)| *sends);
    // Assert
    let counts: Vec<u32> = results.iter().map(|(sends, _)| *sends).collect();
    assert_eq!(counts, (1..=12).collect::<Vec<u32>>());
    assert_eq!(results[0].1, Ok(()), "the first goes out");
    let refused: Vec<_> = results[1..].iter().map(|(_, verdict)| *verdict).collect();
    assert!(refused.iter().take(9).all(|v| *v == Err(SendRefused::TooSoon { retry_at: T0 + 60_000 })), "{refused:?}");
    assert!(refused.iter().skip(9).all(|v| *v == Err(SendRefused::DailyLimit)), "{refused:?}");
}
