//! Community accounts: users (unique emails, pages with search and total, setters, deletion
//! with what belongs to the user) and invite codes (used once). Codes and their send tallies are
//! in `codes`, daily sign-ins in `sign_ins`.

mod codes;
mod sign_ins;

use std::sync::Arc;

use pool_core::account::{Email, InviteRecord, LocalDay, PasswordHash, UserQuery, UserRecord, UserStatus, invite_hash};
use pool_core::ids::{InviteId, UserId};
use pool_core::ports::{Store, StoreError};
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::keys::HOSTILE;
use crate::support::{T0, contract, token};

contract!(
    a_user_is_found_by_id_and_by_email_and_a_second_account_for_the_email_conflicts,
    the_user_page_filters_by_search_and_status_and_counts_every_match,
    a_search_takes_like_wildcards_literally,
    each_setter_changes_its_field_and_says_whether_the_user_exists,
    deleting_a_user_removes_their_sign_ins_and_their_client_token,
    hostile_emails_and_names_round_trip_unchanged,
    an_invite_is_used_once_even_by_racing_registrations,
    an_expired_invite_is_refused_and_invites_list_newest_first,
);

pub fn email(raw: &str) -> Email {
    Email::parse(raw).expect("a valid email")
}

/// A user record with its own client token id (not inserted).
pub fn user(email: Email, created_at: i64) -> UserRecord {
    UserRecord {
        id: UserId::from_uuid(Uuid::now_v7()),
        email,
        password_hash: None,
        status: UserStatus::Active,
        created_at,
        last_login: None,
        token: pool_core::ids::TokenId::from_uuid(Uuid::now_v7()),
        name: None,
    }
}

/// Inserts a user and their client token (expiring at `T0`).
pub async fn registered(store: &Arc<dyn Store>, address: &str) -> UserRecord {
    let mut credential = token(address, &format!("sk-{address}"));
    credential.expires_at = Some(T0);
    store.insert_token(&credential).await.expect("token");
    let user = UserRecord { token: credential.id, ..user(email(address), T0) };
    store.insert_user(&user).await.expect("user");
    user
}

pub async fn token_expiry(store: &Arc<dyn Store>, user: &UserRecord) -> Option<Option<i64>> {
    let tokens = store.load_tokens().await.expect("tokens");
    tokens.into_iter().find(|t| t.id == user.token).map(|t| t.expires_at)
}

fn page(search: Option<&str>, status: Option<UserStatus>, offset: u64, limit: u32) -> UserQuery {
    UserQuery { search: search.map(str::to_owned), status, offset, limit }
}

async fn emails(store: &Arc<dyn Store>, query: UserQuery) -> (Vec<String>, u64) {
    let page = store.user_page(&query).await.expect("page");
    (page.users.iter().map(|u| u.email.to_string()).collect(), page.total)
}

async fn a_user_is_found_by_id_and_by_email_and_a_second_account_for_the_email_conflicts(store: &Arc<dyn Store>) {
    // Arrange
    let alice = UserRecord {
        password_hash: Some(PasswordHash::new("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA")),
        last_login: Some(T0 + 5),
        name: Some("Alice".to_owned()),
        ..user(email("alice@example.com"), T0)
    };
    store.insert_user(&alice).await.expect("insert");
    // Act
    let by_id = store.user_by_id(alice.id).await.expect("by id");
    let by_email = store.user_by_email(&email("ALICE@example.com")).await.expect("by email");
    let again = store.insert_user(&user(email("alice@example.com"), T0 + 1)).await;
    // Assert
    assert_eq!(by_id.as_ref(), Some(&alice));
    assert_eq!(by_email.as_ref(), Some(&alice));
    assert!(matches!(again, Err(StoreError::Conflict)), "{again:?}");
    assert_eq!(store.user_by_email(&email("bob@example.com")).await.expect("read"), None);
    assert_eq!(store.user_by_id(UserId::from_uuid(Uuid::now_v7())).await.expect("read"), None);
}

async fn the_user_page_filters_by_search_and_status_and_counts_every_match(store: &Arc<dyn Store>) {
    // Arrange: five users, newest last; two disabled; one named
    for (i, address) in ["a@one.com", "b@two.com", "c@one.com", "d@three.org", "e@one.com"].iter().enumerate() {
        let mut u = user(email(address), T0 + i64::try_from(i).expect("small"));
        u.status = if i % 2 == 1 { UserStatus::Disabled } else { UserStatus::Active };
        u.name = (i == 3).then(|| "Dora ONE-Way".to_owned());
        store.insert_user(&u).await.expect("insert");
    }
    // Act
    let all = emails(store, page(None, None, 0, 2)).await;
    let second = emails(store, page(None, None, 2, 2)).await;
    let one = emails(store, page(Some("ONE"), None, 0, 10)).await;
    let disabled = emails(store, page(None, Some(UserStatus::Disabled), 0, 10)).await;
    let one_active = emails(store, page(Some("one"), Some(UserStatus::Active), 1, 1)).await;
    let none = emails(store, page(Some("nobody"), None, 0, 10)).await;
    // Assert
    assert_eq!(all, (vec!["e@one.com".to_owned(), "d@three.org".to_owned()], 5));
    assert_eq!(second, (vec!["c@one.com".to_owned(), "b@two.com".to_owned()], 5));
    assert_eq!(one.1, 4, "three emails and one name contain 'one', in any case");
    assert_eq!(one.0, ["e@one.com", "d@three.org", "c@one.com", "a@one.com"]);
    assert_eq!(disabled, (vec!["d@three.org".to_owned(), "b@two.com".to_owned()], 2));
    assert_eq!(one_active, (vec!["c@one.com".to_owned()], 3));
    assert_eq!(none, (vec![], 0));
}

async fn a_search_takes_like_wildcards_literally(store: &Arc<dyn Store>) {
    // Arrange
    for (address, name) in [("x@a.com", "50% off"), ("y@a.com", "500 off"), ("z@a.com", "under_score")] {
        let u = UserRecord { name: Some(name.to_owned()), ..user(email(address), T0) };
        store.insert_user(&u).await.expect("insert");
    }
    // Act
    let percent = emails(store, page(Some("0%"), None, 0, 10)).await;
    let underscore = emails(store, page(Some("r_s"), None, 0, 10)).await;
    let not_underscore = emails(store, page(Some("0_"), None, 0, 10)).await;
    // Assert
    assert_eq!(percent, (vec!["x@a.com".to_owned()], 1));
    assert_eq!(underscore, (vec!["z@a.com".to_owned()], 1));
    assert_eq!(not_underscore, (vec![], 0), "_ is not 'any character'");
}

async fn each_setter_changes_its_field_and_says_whether_the_user_exists(store: &Arc<dyn Store>) {
    // Arrange
    let u = user(email("set@example.com"), T0);
    store.insert_user(&u).await.expect("insert");
    let missing = UserId::from_uuid(Uuid::now_v7());
    let hash = PasswordHash::new("$argon2id$v=19$new");
    // Act
    let changed = [
        store.set_user_status(u.id, UserStatus::Disabled).await.expect("status"),
        store.set_user_password(u.id, Some(&hash)).await.expect("password"),
        store.set_user_name(u.id, Some("New name")).await.expect("name"),
        store.set_last_login(u.id, T0 + 9).await.expect("login"),
    ];
    let unknown = [
        store.set_user_status(missing, UserStatus::Active).await.expect("status"),
        store.set_user_password(missing, None).await.expect("password"),
        store.set_user_name(missing, None).await.expect("name"),
        store.set_last_login(missing, T0).await.expect("login"),
    ];
    // Assert
    assert_eq!(changed, [true; 4]);
    assert_eq!(unknown, [false; 4]);
    let read = store.user_by_id(u.id).await.expect("read").expect("there");
    let want = UserRecord {
        status: UserStatus::Disabled,
        password_hash: Some(hash),
        name: Some("New name".to_owned()),
        last_login: Some(T0 + 9),
        ..u.clone()
    };
    assert_eq!(read, want);
    store.set_user_password(u.id, None).await.expect("clear");
    store.set_user_name(u.id, None).await.expect("clear");
    let cleared = store.user_by_id(u.id).await.expect("read").expect("there");
    assert_eq!((cleared.password_hash, cleared.name), (None, None));
}

async fn deleting_a_user_removes_their_sign_ins_and_their_client_token(store: &Arc<dyn Store>) {
    // Arrange
    let gone = registered(store, "gone@example.com").await;
    let kept = registered(store, "kept@example.com").await;
    let day: LocalDay = "2026-12-04".parse().expect("day");
    for u in [&gone, &kept] {
        store.sign_in(u.id, day, T0, T0 + 1).await.expect("sign in").expect("first today");
    }
    // Act
    let deleted = store.delete_user(gone.id).await.expect("delete");
    let again = store.delete_user(gone.id).await.expect("delete again");
    // Assert
    assert!(deleted);
    assert!(!again);
    assert_eq!(store.user_by_id(gone.id).await.expect("read"), None);
    assert_eq!(token_expiry(store, &gone).await, None, "the credential went with the user");
    assert_eq!(store.sign_in_page(gone.id, 0, 10).await.expect("history").total, 0);
    assert_eq!(token_expiry(store, &kept).await, Some(Some(T0 + 1)));
    assert_eq!(store.sign_in_page(kept.id, 0, 10).await.expect("history").total, 1);
    let re_registered = registered(store, "gone@example.com").await;
    assert_eq!(store.sign_in_page(re_registered.id, 0, 10).await.expect("history").total, 0);
}

async fn hostile_emails_and_names_round_trip_unchanged(store: &Arc<dyn Store>) {
    // Arrange: emails as a store may hold them (parsed under another rule), names as typed
    let users: Vec<UserRecord> = HOSTILE
        .iter()
        .enumerate()
        .map(|(i, s)| UserRecord {
            name: Some((*s).to_owned()),
            ..user(Email::from_stored((*s).to_owned()), T0 + i64::try_from(i).expect("small"))
        })
        .collect();
    for u in &users {
        store.insert_user(u).await.expect("insert");
    }
    // Act + Assert
    for u in &users {
        assert_eq!(store.user_by_email(&u.email).await.expect("read").as_ref(), Some(u));
        assert_eq!(store.user_by_id(u.id).await.expect("read").as_ref(), Some(u));
        let lower = u.email.as_ref().to_ascii_lowercase();
        let found = store.user_page(&page(Some(&lower), None, 0, 100)).await.expect("search");
        assert!(found.users.contains(u), "searching {lower:?} finds its user");
    }
    assert_eq!(store.user_page(&page(None, None, 0, 100)).await.expect("page").total, HOSTILE.len() as u64);
}

fn invite(code: &str, created_at: i64, expires_at: Option<i64>) -> InviteRecord {
    InviteRecord {
        id: InviteId::from_uuid(Uuid::now_v7()),
        hash: invite_hash(code),
        note: Some("for 'bob' <b>".to_owned()),
        created_at,
        expires_at,
        used_by: None,
        used_at: None,
    }
}

async fn an_invite_is_used_once_even_by_racing_registrations(store: &Arc<dyn Store>) {
    // Arrange
    let code = invite("inv-race", T0, None);
    store.insert_invite(&code).await.expect("insert");
    let users: Vec<UserId> = (0..20).map(|_| UserId::from_uuid(Uuid::now_v7())).collect();
    // Act
    let mut tasks = JoinSet::new();
    for &u in &users {
        let (store, hash) = (Arc::clone(store), code.hash);
        tasks.spawn(async move { (u, store.use_invite(&hash, u, T0 + 1).await.expect("use")) });
    }
    let results: Vec<(UserId, bool)> = tasks.join_all().await;
    // Assert
    let winners: Vec<UserId> = results.iter().filter(|(_, won)| *won).map(|(u, _)| *u).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    let listed = store.list_invites().await.expect("list");
    assert_eq!(listed, [InviteRecord { used_by: Some(winners[0]), used_at: Some(T0 + 1), ..code.clone() }]);
    assert!(!store.use_invite(&code.hash, users[0], T0 + 2).await.expect("use again"));
}

async fn an_expired_invite_is_refused_and_invites_list_newest_first(store: &Arc<dyn Store>) {
    // Arrange
    let (old, new) = (invite("inv-old", T0, Some(T0 + 10)), invite("inv-new", T0 + 1, None));
    store.insert_invite(&old).await.expect("insert");
    store.insert_invite(&new).await.expect("insert");
    let u = UserId::from_uuid(Uuid::now_v7());
    // Act
    let expired = store.use_invite(&old.hash, u, T0 + 10).await.expect("use");
    let unknown = store.use_invite(&invite_hash("inv-none"), u, T0).await.expect("use");
    let duplicate = store.insert_invite(&InviteRecord { id: InviteId::from_uuid(Uuid::now_v7()), ..new.clone() }).await;
    // Assert
    assert!(!expired, "an invite is valid only before its expiry");
    assert!(!unknown);
    assert!(matches!(duplicate, Err(StoreError::Conflict)), "{duplicate:?}");
    assert_eq!(store.list_invites().await.expect("list"), [new, old]);
}
