//! Daily sign-ins: one row per (user, local day), recorded together with the new expiry of the
//! user's client token, exactly once however many arrive together; history paged with a total.

use std::sync::Arc;

use pool_core::account::{LocalDay, SignInRecord};
use pool_core::ids::UserId;
use pool_core::ports::Store;
use tokio::task::JoinSet;
use uuid::Uuid;

use super::{registered, token_expiry};
use crate::support::{T0, contract};

contract!(
    one_hundred_concurrent_sign_ins_of_one_user_for_one_day_extend_exactly_once,
    a_sign_in_on_another_day_counts_again_and_history_pages_newest_first_with_a_total,
    a_sign_in_of_an_unknown_user_changes_nothing,
);

const DAY_MS: i64 = 86_400_000;

fn day(s: &str) -> LocalDay {
    s.parse().expect("a day")
}

async fn one_hundred_concurrent_sign_ins_of_one_user_for_one_day_extend_exactly_once(store: &Arc<dyn Store>) {
    // Arrange
    let user = registered(store, "racer@example.com").await;
    let today = day("2026-12-04");
    // Act: each caller asks for a different expiry, so the stored one names the winner
    let mut tasks = JoinSet::new();
    for i in 0..100 {
        let (store, id) = (Arc::clone(store), user.id);
        tasks.spawn(async move { store.sign_in(id, today, T0 + i, T0 + DAY_MS + i).await.expect("sign in") });
    }
    let results: Vec<Option<SignInRecord>> = tasks.join_all().await;
    // Assert
    let signed: Vec<&SignInRecord> = results.iter().flatten().collect();
    assert_eq!(signed.len(), 1, "exactly one sign-in counts");
    let winner = signed[0];
    assert_eq!((winner.user, winner.day), (user.id, today));
    assert_eq!(token_expiry(store, &user).await, Some(Some(T0 + DAY_MS + (winner.at - T0))), "the winner's expiry");
    let history = store.sign_in_page(user.id, 0, 10).await.expect("history");
    assert_eq!((history.total, history.items), (1, vec![winner.clone()]));
}

async fn a_sign_in_on_another_day_counts_again_and_history_pages_newest_first_with_a_total(store: &Arc<dyn Store>) {
    // Arrange
    let user = registered(store, "daily@example.com").await;
    let other = registered(store, "other@example.com").await;
    let days = ["2026-12-01", "2026-12-02", "2026-12-04"];
    // Act
    let mut expiries = Vec::new();
    for (i, d) in days.iter().enumerate() {
        let n = i64::try_from(i).expect("small");
        store
            .sign_in(user.id, day(d), T0 + n * DAY_MS, T0 + (n + 1) * DAY_MS)
            .await
            .expect("sign in")
            .expect("new day");
        expiries.push(token_expiry(store, &user).await);
    }
    let repeat = store.sign_in(user.id, day("2026-12-02"), T0 + 5 * DAY_MS, T0 + 9 * DAY_MS).await.expect("again");
    store.sign_in(other.id, day("2026-12-02"), T0, T0 + 1).await.expect("sign in").expect("their own day");
    let first = store.sign_in_page(user.id, 0, 2).await.expect("page");
    let second = store.sign_in_page(user.id, 2, 2).await.expect("page");
    // Assert
    assert_eq!(expiries, [Some(Some(T0 + DAY_MS)), Some(Some(T0 + 2 * DAY_MS)), Some(Some(T0 + 3 * DAY_MS))]);
    assert_eq!(repeat, None, "a day already signed changes nothing");
    assert_eq!(token_expiry(store, &user).await, Some(Some(T0 + 3 * DAY_MS)));
    let shown = |p: &pool_core::account::SignInPage| p.items.iter().map(|s| s.day.to_string()).collect::<Vec<_>>();
    assert_eq!((shown(&first), first.total), (vec!["2026-12-04".to_owned(), "2026-12-02".to_owned()], 3));
    assert_eq!((shown(&second), second.total), (vec!["2026-12-01".to_owned()], 3));
    assert!(first.items[0].id > first.items[1].id, "ids grow with every sign-in");
    assert_eq!(token_expiry(store, &other).await, Some(Some(T0 + 1)), "another user's credential is their own");
}

async fn a_sign_in_of_an_unknown_user_changes_nothing(store: &Arc<dyn Store>) {
    // Arrange
    let user = registered(store, "real@example.com").await;
    let stranger = UserId::from_uuid(Uuid::now_v7());
    // Act
    let signed = store.sign_in(stranger, day("2026-12-04"), T0, T0 + DAY_MS).await.expect("sign in");
    // Assert
    assert_eq!(signed, None);
    assert_eq!(store.sign_in_page(stranger, 0, 10).await.expect("history").total, 0);
    assert_eq!(token_expiry(store, &user).await, Some(Some(T0)));
}
