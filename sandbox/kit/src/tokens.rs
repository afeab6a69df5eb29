//! Bearer tokens and sessions with a lifetime: issued, checked, expired by time or by fault.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde_json::Value;

use crate::{Clock, Faults};

/// The outcome of checking a token.
#[derive(Debug, Clone, PartialEq)]
pub enum TokenCheck {
    /// Valid; carries what was attached when it was issued (app key, user, tenant...).
    Valid(Value),
    /// Issued by this system but past its lifetime or expired by a fault.
    Expired,
    /// Never issued here.
    Unknown,
}

#[derive(Debug)]
struct Issued {
    expires_ms: i64,
    epoch: u64,
    subject: Value,
}

/// Tokens of one kind (access tokens, session ids, CSRF tokens...) for one system.
#[derive(Debug)]
pub struct Tokens {
    prefix: &'static str,
    issued: Mutex<HashMap<String, Issued>>,
    clock: Clock,
    faults: Arc<Faults>,
    csrf: bool,
}

impl Tokens {
    /// Tokens starting with `prefix`, expired by [`Faults::expire_tokens`].
    pub fn new(prefix: &'static str, clock: Clock, faults: Arc<Faults>) -> Self {
        Self { prefix, issued: Mutex::default(), clock, faults, csrf: false }
    }

    /// CSRF tokens, invalidated by [`Faults::invalidate_csrf`] as well as by token expiry.
    pub fn csrf(prefix: &'static str, clock: Clock, faults: Arc<Faults>) -> Self {
        Self { csrf: true, ..Self::new(prefix, clock, faults) }
    }

    fn epoch(&self) -> u64 {
        // The two epochs only grow, so their sum changes whenever either does.
        if self.csrf {
            self.faults.token_epoch() + self.faults.csrf_epoch()
        } else {
            self.faults.token_epoch()
        }
    }

    /// Issues a fresh token valid for `ttl_secs`, carrying `subject`.
    pub fn issue(&self, ttl_secs: i64, subject: Value) -> String {
        let token = format!("{}{:016x}{:016x}", self.prefix, fastrand::u64(..), fastrand::u64(..));
        let issued =
            Issued { expires_ms: self.clock.now_ms() + ttl_secs * 1000, epoch: self.epoch(), subject };
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).insert(token.clone(), issued);
        token
    }

    /// Checks `token`.
    pub fn check(&self, token: &str) -> TokenCheck {
        let issued = self.issued.lock().unwrap_or_else(|p| p.into_inner());
        match issued.get(token) {
            None => TokenCheck::Unknown,
            Some(t) if t.epoch != self.epoch() || self.clock.now_ms() >= t.expires_ms => TokenCheck::Expired,
            Some(t) => TokenCheck::Valid(t.subject.clone()),
        }
    }

    /// How many tokens were issued (tests assert a token was cached rather than re-fetched).
    pub fn issued_count(&self) -> usize {
        self.issued.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tokens_expire_by_time_and_by_fault() {
        let clock = Clock::new();
        let faults = Arc::new(Faults::default());
        let t = Tokens::new("tok", clock.clone(), faults.clone());
        let a = t.issue(7200, json!({"app": "demo"}));
        assert_eq!(t.check(&a), TokenCheck::Valid(json!({"app": "demo"})));
        assert_eq!(t.check("nope"), TokenCheck::Unknown);
        clock.advance_ms(7_200_000);
        assert_eq!(t.check(&a), TokenCheck::Expired);
        let b = t.issue(7200, json!(null));
        faults.expire_tokens();
        assert_eq!(t.check(&b), TokenCheck::Expired);
    }

    #[test]
    fn csrf_tokens_die_alone() {
        let clock = Clock::new();
        let faults = Arc::new(Faults::default());
        let session = Tokens::new("s", clock.clone(), faults.clone());
        let csrf = Tokens::csrf("c", clock, faults.clone());
        let (s, c) = (session.issue(60, json!(1)), csrf.issue(60, json!(1)));
        faults.invalidate_csrf();
        assert_eq!(csrf.check(&c), TokenCheck::Expired);
        assert!(matches!(session.check(&s), TokenCheck::Valid(_)));
    }
}
