//! Configuration from Spin variables. Spin variable names are lower case
//! (`jwt_hs256_secret`); the core asks by the operators' names (`JWT_HS256_SECRET`).

/// The Spin variable for a configuration name; `None` when the variable is not set.
pub fn lookup(name: &str) -> Option<String> {
    spin_sdk::variables::get(&name.to_ascii_lowercase()).ok()
}
