//! The claims the edge reads beyond the registered ones.

use serde::{Deserialize, Serialize};

/// `scope` as OAuth 2.0 writes it (one space-separated string) or as a list.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Scope {
    Text(String),
    List(Vec<String>),
}

impl Scope {
    pub fn contains(&self, wanted: &str) -> bool {
        match self {
            Self::Text(s) => s.split_ascii_whitespace().any(|s| s == wanted),
            Self::List(l) => l.iter().any(|s| s == wanted),
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct EdgeClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<Scope>,
}
