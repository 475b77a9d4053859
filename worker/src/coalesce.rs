//! Coalescing uploads in hand: when several jobs in this process target the same function,
//! they deploy one at a time, and a job that is not the newest in hand steps aside.
//!
//! Across processes the function's ordering tag and Lambda's `RevisionId` keep the newest
//! upload on top; this only saves the deploys that would be overwritten a moment later.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::OwnedMutexGuard;

/// The functions that jobs in this process are about to deploy.
#[derive(Debug, Default)]
pub struct InHand {
    functions: Mutex<HashMap<String, Slot>>,
}

#[derive(Debug, Default)]
struct Slot {
    lock: Arc<tokio::sync::Mutex<()>>,
    /// Ordering tokens of the jobs holding a claim (see `job::order_token`).
    tokens: Vec<String>,
}

/// One job's claim on a function; released on drop.
#[derive(Debug)]
pub struct Claim {
    registered: Registered,
    _turn: OwnedMutexGuard<()>,
}

impl InHand {
    /// Registers `token` for `function`, then waits for this job's turn to deploy it.
    /// Cancellation-safe: if the wait is cancelled (the job's deadline, shutdown), the token
    /// is withdrawn all the same, so it cannot make older uploads step aside for nothing.
    pub async fn claim(self: &Arc<Self>, function: &str, token: &str) -> Claim {
        let lock = {
            let mut map = self.functions.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = map.entry(function.to_owned()).or_default();
            slot.tokens.push(token.to_owned());
            slot.lock.clone()
        };
        let registered = Registered {
            in_hand: self.clone(),
            function: function.to_owned(),
            token: token.to_owned(),
        };
        let turn = lock.lock_owned().await;
        Claim {
            registered,
            _turn: turn,
        }
    }
}

/// A token registered for a function; withdrawn on drop.
#[derive(Debug)]
struct Registered {
    in_hand: Arc<InHand>,
    function: String,
    token: String,
}

impl Drop for Registered {
    fn drop(&mut self) {
        let mut map = self.in_hand.functions.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(slot) = map.get_mut(&self.function) {
            if let Some(i) = slot.tokens.iter().position(|t| *t == self.token) {
                slot.tokens.swap_remove(i);
            }
            if slot.tokens.is_empty() {
                map.remove(&self.function);
            }
        }
    }
}

impl Claim {
    /// The newest comparable token another job holds for this function, if newer than ours.
    pub fn newer_in_hand(&self) -> Option<String> {
        let me = &self.registered;
        let map = me.in_hand.functions.lock().unwrap_or_else(PoisonError::into_inner);
        let slot = map.get(&me.function)?;
        let kind = |t: &str| t.split(':').next().map(str::to_owned);
        slot.tokens
            .iter()
            .filter(|t| !me.token.is_empty() && kind(t) == kind(&me.token) && t.as_str() > me.token.as_str())
            .max()
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn older_claim_sees_newer_one() {
        let in_hand = Arc::new(InHand::default());
        let old = in_hand.claim("f", "time:1").await;
        assert_eq!(old.newer_in_hand(), None);
        let waiter = {
            let in_hand = in_hand.clone();
            tokio::spawn(async move { in_hand.claim("f", "time:2").await.newer_in_hand() })
        };
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        assert_eq!(old.newer_in_hand().as_deref(), Some("time:2"));
        drop(old);
        assert_eq!(waiter.await.unwrap(), None, "the newest deploys");
        assert!(in_hand.functions.lock().unwrap().is_empty(), "claims are released");
    }

    #[tokio::test]
    async fn a_claim_cancelled_while_waiting_is_withdrawn() {
        let in_hand = Arc::new(InHand::default());
        let old = in_hand.claim("f", "time:1").await;
        // A newer job waits for its turn and is cancelled (its deadline) before it gets it.
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(20), in_hand.claim("f", "time:2")).await;
        assert!(waiting.is_err(), "it was still waiting");
        assert_eq!(old.newer_in_hand(), None, "the cancelled claim does not count");
        drop(old);
        assert!(in_hand.functions.lock().unwrap().is_empty(), "nothing left behind");
    }

    #[tokio::test]
    async fn other_functions_do_not_wait() {
        let in_hand = Arc::new(InHand::default());
        let _a = in_hand.claim("a", "time:1").await;
        let b = tokio::time::timeout(std::time::Duration::from_secs(1), in_hand.claim("b", "time:1")).await;
        assert!(b.is_ok());
    }
}
