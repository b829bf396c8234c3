//! Sessions against a model, with a paused clock: random creates, uses, deletes, clock advances,
//! reaps and token switches must agree with a few lines of obvious bookkeeping; and a reaped or
//! deleted session's child must be gone.
//!
//! The children are real processes (`cat`), so process-group handling is exercised too.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gateway::config::Config;
use gateway::core::session::{EndReason, Limits, Lookup, Session, SessionStore};
use gateway::core::spawner::Spawner;
use gateway::identity::Identity;
use proptest::prelude::*;
use tokio::time::Instant;

const IDLE: Duration = Duration::from_secs(60);
const LIFETIME: Duration = Duration::from_secs(300);

#[derive(Clone, Debug)]
enum Op {
    Create { user: usize },
    Use { slot: usize, user: usize },
    Delete { slot: usize },
    Advance { secs: u64 },
    Reap,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0..2usize).prop_map(|user| Op::Create { user }),
        4 => (0..8usize, 0..2usize).prop_map(|(slot, user)| Op::Use { slot, user }),
        1 => (0..8usize).prop_map(|slot| Op::Delete { slot }),
        3 => (1..90u64).prop_map(|secs| Op::Advance { secs }),
        1 => Just(Op::Reap),
    ]
}

fn identity(user: usize) -> Identity {
    Identity {
        subject: format!("user-{user}@example.com"),
        token_hash: None,
        credential: None,
    }
}

/// What the model knows of one session.
struct Model {
    user: usize,
    created: Instant,
    last_active: Instant,
}

impl Model {
    fn expired(&self, now: Instant) -> bool {
        now >= self.created + LIFETIME || now >= self.last_active + IDLE
    }
}

async fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let config = Config::with_command("cat");
    let spawner = Spawner::new(&config.children, &config.sse);
    let store = SessionStore::new(
        Limits {
            idle_ttl: IDLE,
            max_lifetime: LIFETIME,
            max_sessions: 6,
        },
        Arc::new(|_, _| {}),
    );
    let mut ids: Vec<String> = Vec::new();
    let mut sessions: HashMap<String, Arc<Session>> = HashMap::new();
    let mut model: HashMap<String, Model> = HashMap::new();
    for op in ops {
        let now = Instant::now();
        match op {
            Op::Create { user } => {
                // Lazily expired sessions still count until a lookup or reap ends them.
                let Some(reservation) = store.reserve() else {
                    prop_assert!(store.len() >= 6, "refused below the cap");
                    continue;
                };
                let id = SessionStore::new_session_id();
                let channel = spawner.new_channel(store.next_key());
                let router = spawner
                    .spawn_dedicated("model", channel.clone(), None, Box::new(|_| {}))
                    .expect("cat starts");
                let session = Arc::new(Session::new(
                    id.clone(),
                    identity(user),
                    channel,
                    router,
                    true,
                ));
                store.insert(session.clone(), reservation);
                ids.push(id.clone());
                sessions.insert(id.clone(), session);
                model.insert(
                    id,
                    Model {
                        user,
                        created: now,
                        last_active: now,
                    },
                );
            }
            Op::Use { slot, user } => {
                let Some(id) = ids.get(slot % ids.len().max(1)).cloned() else {
                    continue;
                };
                let found = matches!(store.get(&id, &identity(user)).await, Lookup::Found(_));
                let expected = match model.get(&id) {
                    Some(m) if m.expired(now) => {
                        // The lookup ends an expired session whoever asks, as the reaper would.
                        if m.user == user {
                            model.remove(&id);
                        }
                        false
                    }
                    Some(m) => m.user == user,
                    None => false,
                };
                prop_assert_eq!(found, expected, "lookup of {} by user {}", &id[..8], user);
                if let Some(m) = model.get_mut(&id) {
                    if found {
                        m.last_active = now;
                    }
                }
            }
            Op::Delete { slot } => {
                let Some(id) = ids.get(slot % ids.len().max(1)).cloned() else {
                    continue;
                };
                let ended = store.end(&id, EndReason::Deleted).await.is_some();
                prop_assert_eq!(ended, model.remove(&id).is_some());
            }
            Op::Advance { secs } => tokio::time::advance(Duration::from_secs(secs)).await,
            Op::Reap => {
                store.reap().await;
                model.retain(|_, m| !m.expired(now));
                prop_assert_eq!(store.len(), model.len());
            }
        }
        // A session the model has forgotten has no child left.
        for (id, session) in &sessions {
            if !model.contains_key(id) {
                prop_assert!(
                    !still_running(session),
                    "the child of ended session {} lives",
                    &id[..8]
                );
            }
        }
    }
    store.end_all(EndReason::Shutdown).await;
    for session in sessions.values() {
        prop_assert!(!still_running(session), "no child outlives the store");
    }
    Ok(())
}

fn still_running(session: &Session) -> bool {
    let pid = session.router.child().pid() as i32;
    // SAFETY: signal 0 only checks whether the process exists.
    let alive = unsafe { libc::kill(pid, 0) } == 0;
    alive && !is_zombie(pid)
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|stat| {
            stat.rsplit(')')
                .next()
                .map(|rest| rest.trim_start().starts_with('Z'))
                .unwrap_or(false)
        })
        .unwrap_or(true)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn sessions_follow_the_model(ops in proptest::collection::vec(op(), 1..40)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().unwrap();
        runtime.block_on(run(ops))?;
    }
}

/// The reaper alone (no lookups) ends an idle session and its child once the TTL passes.
#[tokio::test(start_paused = true)]
async fn reaper_ends_idle_sessions_and_their_children() {
    let config = Config::with_command("cat");
    let spawner = Spawner::new(&config.children, &config.sse);
    let store = SessionStore::new(
        Limits {
            idle_ttl: IDLE,
            max_lifetime: LIFETIME,
            max_sessions: 4,
        },
        Arc::new(|_, _| {}),
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(store.clone().run_reaper(stop_rx));
    let reservation = store.reserve().unwrap();
    let channel = spawner.new_channel(store.next_key());
    let router = spawner
        .spawn_dedicated("reaper", channel.clone(), None, Box::new(|_| {}))
        .unwrap();
    let session = Arc::new(Session::new(
        SessionStore::new_session_id(),
        identity(0),
        channel,
        router,
        true,
    ));
    store.insert(session.clone(), reservation);
    tokio::time::advance(IDLE - Duration::from_secs(1)).await;
    tokio::task::yield_now().await;
    assert_eq!(store.len(), 1, "still alive just before the TTL");
    tokio::time::advance(Duration::from_secs(2)).await;
    // Let the reaper run and the child's group be ended.
    session.router.child().exited().await;
    assert_eq!(store.len(), 0);
    assert!(!still_running(&session));
    let _ = stop_tx.send(true);
}
