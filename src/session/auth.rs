//! Tokens and roles: where a token may come from, and what role it grants.

use crate::config::TokenConfig;
use crate::protocol::Role;
use actix_web::dev::RequestHead;
use actix_web::http::header::AUTHORIZATION;

/// Who a token belongs to, as others may see it: its role and label, never the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub role: Role,
    pub label: String,
}

/// The configured tokens, shared by every route and session and replaceable at run time
/// (SIGHUP): clones share one list. Lookup compares against every token in constant
/// time per byte, so response timing does not reveal how much of a guess was right.
/// `Debug` never prints the tokens.
#[derive(Clone)]
pub struct Tokens {
    entries: std::sync::Arc<parking_lot::RwLock<Vec<TokenConfig>>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokens({} configured)", self.entries.read().len())
    }
}

/// Token equality whose time does not depend on where the bytes differ. `subtle` keeps
/// the optimizer from turning the comparison back into an early-exit loop, which a
/// hand-written fold does not guarantee. (The length is not secret: tokens are random
/// strings of a configured shape.)
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    use subtle::ConstantTimeEq;
    a.ct_eq(b).into()
}

impl Tokens {
    pub fn new(entries: Vec<TokenConfig>) -> Self {
        Tokens {
            entries: std::sync::Arc::new(parking_lot::RwLock::new(entries)),
        }
    }

    /// Replaces every token at once. Sessions already authenticated keep their role;
    /// new connections and HTTP requests use the new list.
    pub fn replace(&self, entries: Vec<TokenConfig>) {
        *self.entries.write() = entries;
    }

    pub fn role_of(&self, token: &str) -> Option<Role> {
        self.identify(token).map(|id| id.role)
    }

    /// The role and label of `token`. Every entry is compared (in constant time), so
    /// the time taken says nothing about which one matched.
    pub fn identify(&self, token: &str) -> Option<Identity> {
        let mut found = None;
        let mut per_role = [0usize; 2];
        for entry in self.entries.read().iter() {
            let n = &mut per_role[usize::from(entry.role == Role::Operator)];
            *n += 1;
            if ct_eq(entry.token.as_bytes(), token.as_bytes()) {
                let label = entry
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("{}-{n}", entry.role.as_str()));
                found = Some(Identity {
                    role: entry.role,
                    label,
                });
            }
        }
        found
    }

    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.read().is_empty()
    }
}

#[derive(serde::Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

/// The token a request carries: `?token=T`, else `Authorization: Bearer T`. Takes the
/// head, which routes (`req.head()`) and the WebSocket upgrade (a bare request) share.
pub fn token_from_request(head: &RequestHead) -> Option<String> {
    let query = head.uri.query().unwrap_or("");
    if let Ok(q) = actix_web::web::Query::<TokenQuery>::from_query(query) {
        if let Some(t) = q.into_inner().token {
            return Some(t);
        }
    }
    let header = head.headers().get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test::TestRequest;

    fn tokens() -> Tokens {
        Tokens::new(vec![
            TokenConfig {
                token: "op".into(),
                role: Role::Operator,
                name: None,
            },
            TokenConfig {
                token: "view".into(),
                role: Role::Viewer,
                name: None,
            },
        ])
    }

    #[test]
    fn roles_by_token() {
        let t = tokens();
        assert_eq!(t.role_of("op"), Some(Role::Operator));
        assert_eq!(t.role_of("view"), Some(Role::Viewer));
        assert_eq!(t.role_of("vie"), None);
        assert_eq!(t.role_of(""), None);
    }

    #[test]
    fn replace_applies_to_every_clone_and_debug_hides_tokens() {
        let t = tokens();
        let shared = t.clone();
        t.replace(vec![TokenConfig {
            token: "new".into(),
            role: Role::Viewer,
            name: None,
        }]);
        assert_eq!(shared.role_of("op"), None);
        assert_eq!(shared.role_of("new"), Some(Role::Viewer));
        assert!(!format!("{shared:?}").contains("new"));
    }

    #[test]
    fn token_from_query_or_bearer_header() {
        let req = TestRequest::get().uri("/ws?token=a%20b").to_http_request();
        assert_eq!(token_from_request(req.head()), Some("a b".into()));
        let req = TestRequest::get()
            .uri("/ws")
            .insert_header((AUTHORIZATION, "Bearer xyz"))
            .to_http_request();
        assert_eq!(token_from_request(req.head()), Some("xyz".into()));
        let req = TestRequest::get()
            .uri("/ws")
            .insert_header((AUTHORIZATION, "Basic xyz"))
            .to_http_request();
        assert_eq!(token_from_request(req.head()), None);
        let req = TestRequest::get().uri("/ws").to_http_request();
        assert_eq!(token_from_request(req.head()), None);
    }
}
