//! Configuration, read once from the operators' variable names into typed structs.
//! Every bad value is a start-up error that names the variable.

use std::str::FromStr;

use thiserror::Error;

use crate::app::cors::CorsPolicy;
use crate::auth::{KeyError, TokenPolicy};
use crate::history::HistoryPolicy;
use crate::rate_limit::Quota;
use crate::response_cache::{self, CacheMode, CacheSettings};
use crate::seal::SealError;
use crate::understanding::AssistantName;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("{0} must be set")]
    Missing(&'static str),
    #[error("{var}={value:?} is invalid: {reason}")]
    Invalid {
        var: &'static str,
        value: String,
        reason: String,
    },
    #[error("JWT keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

/// Generation settings the edge reports and (in full mode) forwards.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationSettings {
    pub model_name: String,
    /// Other names `/v1` accepts for the model (`CHAT_MODEL_ALIASES`, comma-separated).
    pub model_aliases: Vec<String>,
    pub max_tokens: u32,
    pub temperature: f64,
    pub top_p: f64,
    pub top_k: i32,
    pub repetition_penalty: f64,
    pub max_model_len: u32,
}

#[derive(Debug, Clone)]
pub struct AuthConfig {
    pub hs256_secret: Option<String>,
    /// A JWKS document or PEM blocks.
    pub public_keys: Option<String>,
    pub policy: TokenPolicy,
}

#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    pub max_body_bytes: usize,
    pub max_message_chars: usize,
}

/// Where full-mode turns go and how long the edge waits before answering itself.
#[derive(Debug, Clone)]
pub struct BackendConfig {
    /// gpu-backend's base URL (`http://127.0.0.1:8000`); none means every turn is minimal.
    pub url: Option<String>,
    pub api_key: Option<String>,
    /// From sending the request to the first token; past it the minimal reply answers.
    pub first_token_timeout_ms: u64,
    /// Longest silence between two tokens once the answer has started.
    pub idle_timeout_ms: u64,
    /// The whole answer.
    pub total_timeout_ms: u64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long an open breaker sends nothing before letting one probe through.
    pub breaker_open_ms: u64,
}

#[derive(Debug, Clone)]
pub struct EdgeConfig {
    pub minimal_mode: bool,
    /// Whether `GET /` serves the chat page (`CHAT_PAGE`, on by default); off, it is a 404.
    pub chat_page: bool,
    /// What the assistant is called (`ASSISTANT_NAME`, `Eindr` by default): the name replies
    /// use, and the one a spoken turn may start with ("hey eindr ...").
    pub assistant: AssistantName,
    /// Origins whose browser pages may call the API (`CORS_ALLOWED_ORIGINS`; none by default).
    pub cors: CorsPolicy,
    pub backend: BackendConfig,
    pub generation: GenerationSettings,
    pub auth: AuthConfig,
    pub rate_limit: Quota,
    pub auth_failure_limit: Quota,
    pub history: HistoryPolicy,
    pub history_encryption_key: Option<String>,
    pub limits: RequestLimits,
    /// Cached model answers (`CACHE_*`).
    pub cache: CacheSettings,
}

/// Reads variables through `lookup`, so every platform (process env, `[vars]`, Spin
/// variables) feeds the same parser.
struct Vars<F: Fn(&str) -> Option<String>>(F);

impl<F: Fn(&str) -> Option<String>> Vars<F> {
    fn raw(&self, var: &'static str) -> Option<String> {
        (self.0)(var)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn required(&self, var: &'static str) -> Result<String, ConfigError> {
        self.raw(var).ok_or(ConfigError::Missing(var))
    }

    fn parse<T: FromStr>(
        &self,
        var: &'static str,
        default: T,
        valid: impl Fn(&T) -> bool,
        expected: &str,
    ) -> Result<T, ConfigError> {
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.parse::<T>() {
            Ok(v) if valid(&v) => Ok(v),
            _ => Err(ConfigError::Invalid {
                var,
                value,
                reason: format!("expected {expected}"),
            }),
        }
    }

    fn flag(&self, var: &'static str, default: bool) -> Result<bool, ConfigError> {
        let Some(value) = self.raw(var) else {
            return Ok(default);
        };
        match value.to_ascii_lowercase().as_str() {
            "1" | "true" | "yes" | "on" => Ok(true),
            "0" | "false" | "no" | "off" => Ok(false),
            _ => Err(ConfigError::Invalid {
                var,
                value,
                reason: "expected true or false".into(),
            }),
        }
    }
}

/// `ASSISTANT_NAME`: a name with a word in it, short enough to say.
fn assistant_name<F: Fn(&str) -> Option<String>>(
    v: &Vars<F>,
) -> Result<AssistantName, ConfigError> {
    const MAX_CHARS: usize = 40;
    let Some(value) = v.raw("ASSISTANT_NAME") else {
        return Ok(AssistantName::default());
    };
    let has_word = value.chars().any(char::is_alphanumeric);
    if !has_word || value.chars().count() > MAX_CHARS || value.chars().any(char::is_control) {
        return Err(ConfigError::Invalid {
            var: "ASSISTANT_NAME",
            value,
            reason: format!(
                "expected a name of 1 to {MAX_CHARS} characters with a letter or digit"
            ),
        });
    }
    Ok(AssistantName::new(&value))
}

impl GenerationSettings {
    /// Whether `/v1` serves `model`: the model's name or one of its aliases.
    pub fn serves(&self, model: &str) -> bool {
        model == self.model_name || self.model_aliases.iter().any(|a| a == model)
    }

    /// The generation settings alone (the GPU backend reads the same names, bounds and
    /// defaults as the edge).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::read(&Vars(lookup))
    }

    fn read<F: Fn(&str) -> Option<String>>(v: &Vars<F>) -> Result<Self, ConfigError> {
        let generation = GenerationSettings {
            model_name: v
                .raw("CHAT_MODEL_NAME")
                .unwrap_or_else(|| "bigscience/bloom-560m".into()),
            model_aliases: v
                .raw("CHAT_MODEL_ALIASES")
                .map(|list| {
                    list.split(',')
                        .map(str::trim)
                        .filter(|a| !a.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            max_tokens: v.parse(
                "CHAT_MAX_TOKENS",
                150,
                |x| (1..=4096).contains(x),
                "1..=4096",
            )?,
            temperature: v.parse(
                "CHAT_TEMPERATURE",
                0.7,
                |x: &f64| (0.0..=2.0).contains(x),
                "a number in 0..=2",
            )?,
            top_p: v.parse(
                "CHAT_TOP_P",
                0.9,
                |x: &f64| *x > 0.0 && *x <= 1.0,
                "a number in (0, 1]",
            )?,
            top_k: v.parse(
                "CHAT_TOP_K",
                50,
                |x| *x == -1 || *x >= 1,
                "-1 (off) or >= 1",
            )?,
            repetition_penalty: v.parse(
                "CHAT_REPETITION_PENALTY",
                1.1,
                |x: &f64| *x > 0.0 && *x <= 2.0,
                "a number in (0, 2]",
            )?,
            max_model_len: v.parse(
                "VLLM_MAX_MODEL_LEN",
                2048,
                |x| (16..=1_048_576).contains(x),
                "16..=1048576",
            )?,
        };
        if generation.max_tokens >= generation.max_model_len {
            return Err(ConfigError::Invalid {
                var: "CHAT_MAX_TOKENS",
                value: generation.max_tokens.to_string(),
                reason: format!(
                    "must be below VLLM_MAX_MODEL_LEN ({}) to leave room for the prompt",
                    generation.max_model_len
                ),
            });
        }
        Ok(generation)
    }
}

impl EdgeConfig {
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let v = Vars(lookup);
        let generation = GenerationSettings::read(&v)?;
        let auth = AuthConfig {
            hs256_secret: v.raw("JWT_HS256_SECRET"),
            public_keys: v.raw("JWT_PUBLIC_KEYS"),
            policy: TokenPolicy {
                issuer: v.required("JWT_ISSUER")?,
                audience: v.required("JWT_AUDIENCE")?,
                leeway_s: v.parse("JWT_LEEWAY_SECONDS", 30, |x| *x <= 300, "0..=300 seconds")?,
                max_token_bytes: v.parse(
                    "JWT_MAX_TOKEN_BYTES",
                    4096,
                    |x| (256..=65536).contains(x),
                    "256..=65536",
                )?,
                cache_size: v.parse(
                    "JWT_CACHE_SIZE",
                    1024,
                    |x| *x <= 1_000_000,
                    "0 (off) ..= 1000000 tokens",
                )?,
            },
        };
        if auth.hs256_secret.is_none() && auth.public_keys.is_none() {
            return Err(ConfigError::Missing("JWT_HS256_SECRET or JWT_PUBLIC_KEYS"));
        }
        let positive = |x: &u32| (1..=1_000_000).contains(x);
        let ms = |x: &u64| (1..=600_000).contains(x);
        let backend = BackendConfig {
            url: v
                .raw("BACKEND_URL")
                .map(|u| u.trim_end_matches('/').to_owned()),
            api_key: v.raw("BACKEND_API_KEY"),
            // The seed's target is a reply in under 2 s; leave room for the edge's own work.
            first_token_timeout_ms: v.parse(
                "BACKEND_FIRST_TOKEN_TIMEOUT_MS",
                1500,
                ms,
                "milliseconds in 1..=600000",
            )?,
            idle_timeout_ms: v.parse(
                "BACKEND_IDLE_TIMEOUT_MS",
                5000,
                ms,
                "milliseconds in 1..=600000",
            )?,
            total_timeout_ms: v.parse(
                "BACKEND_TOTAL_TIMEOUT_MS",
                30_000,
                ms,
                "milliseconds in 1..=600000",
            )?,
            breaker_failures: v.parse(
                "BACKEND_BREAKER_FAILURES",
                3,
                |x| (1..=1000).contains(x),
                "an integer in 1..=1000",
            )?,
            breaker_open_ms: v.parse(
                "BACKEND_BREAKER_OPEN_MS",
                10_000,
                ms,
                "milliseconds in 1..=600000",
            )?,
        };
        if let Some(url) = &backend.url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::Invalid {
                var: "BACKEND_URL",
                value: url.clone(),
                reason: "expected an http:// or https:// URL".into(),
            });
        }
        Ok(Self {
            minimal_mode: v.flag("MINIMAL_MODE", true)?,
            chat_page: v.flag("CHAT_PAGE", true)?,
            assistant: assistant_name(&v)?,
            cors: CorsPolicy::parse(&v.raw("CORS_ALLOWED_ORIGINS").unwrap_or_default())?,
            backend,
            generation,
            auth,
            rate_limit: Quota {
                per_minute: v.parse(
                    "RATE_LIMIT_PER_MINUTE",
                    60,
                    positive,
                    "an integer in 1..=1000000",
                )?,
                burst: v.parse(
                    "RATE_LIMIT_BURST",
                    10,
                    positive,
                    "an integer in 1..=1000000",
                )?,
            },
            auth_failure_limit: Quota {
                per_minute: v.parse(
                    "AUTH_FAILURE_LIMIT_PER_MINUTE",
                    10,
                    positive,
                    "an integer in 1..=1000000",
                )?,
                burst: v.parse(
                    "AUTH_FAILURE_BURST",
                    20,
                    positive,
                    "an integer in 1..=1000000",
                )?,
            },
            history: HistoryPolicy {
                max_turns: v.parse(
                    "HISTORY_MAX_TURNS",
                    50,
                    |x| (2..=10_000).contains(x),
                    "2..=10000",
                )?,
                // Fractional days are allowed (short retention for tests and trials).
                retention_ms: (v.parse::<f64>(
                    "HISTORY_RETENTION_DAYS",
                    30.0,
                    |x| *x > 0.0 && *x <= 3650.0,
                    "days in (0, 3650]",
                )? * 86_400_000.0)
                    .max(1.0) as u64,
            },
            history_encryption_key: v.raw("HISTORY_ENCRYPTION_KEY"),
            limits: RequestLimits {
                max_body_bytes: v.parse(
                    "MAX_BODY_BYTES",
                    16 * 1024,
                    |x| (1024..=1_048_576).contains(x),
                    "1024..=1048576",
                )?,
                max_message_chars: v.parse(
                    "MAX_MESSAGE_CHARS",
                    4000,
                    |x| (1..=100_000).contains(x),
                    "1..=100000",
                )?,
            },
            cache: CacheSettings {
                mode: v.parse(
                    "CACHE_MODE",
                    CacheMode::Fallback,
                    |_| true,
                    "off, fallback or serve",
                )?,
                pool_size: v.parse("CACHE_POOL_SIZE", 8, |x| (1..=64).contains(x), "1..=64")?,
                // Workers KV keeps nothing for less than 60 s.
                ttl_s: v.parse(
                    "CACHE_TTL_SECONDS",
                    86_400,
                    |x| (60..=2_592_000).contains(x),
                    "seconds in 60..=2592000 (30 days)",
                )?,
                namespace: v.raw("CACHE_NAMESPACE").unwrap_or_else(|| "1".into()),
                shared_intents: match v.raw("CACHE_SHARED_INTENTS") {
                    None => response_cache::shared::all_small_talk(),
                    Some(value) => {
                        response_cache::shared::parse_shared_intents(&value).map_err(|reason| {
                            ConfigError::Invalid {
                                var: "CACHE_SHARED_INTENTS",
                                value,
                                reason,
                            }
                        })?
                    }
                },
                intent_min_confidence: v.parse(
                    "CACHE_INTENT_MIN_CONFIDENCE",
                    response_cache::shared::DEFAULT_MIN_CONFIDENCE,
                    |x| (0.0..=1.0).contains(x),
                    "a confidence in 0..=1",
                )?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn lookup(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    const BASE: [(&str, &str); 3] = [
        ("JWT_ISSUER", "iss"),
        ("JWT_AUDIENCE", "aud"),
        ("JWT_HS256_SECRET", "0123456789abcdef0123456789abcdef"),
    ];

    #[test]
    fn defaults() {
        let c = EdgeConfig::from_lookup(lookup(&BASE)).unwrap();
        assert!(c.minimal_mode);
        assert_eq!(c.generation.model_name, "bigscience/bloom-560m");
        assert_eq!(c.history.max_turns, 50);
        assert_eq!(c.auth.policy.leeway_s, 30);
        assert_eq!(c.limits.max_body_bytes, 16384);
        assert_eq!(c.cache, CacheSettings::default());
        assert_eq!(c.cache.mode, CacheMode::Fallback);
        assert_eq!(c.assistant.display(), "Eindr");
        let mut named = BASE.to_vec();
        named.push(("ASSISTANT_NAME", " Nova "));
        let c = EdgeConfig::from_lookup(lookup(&named)).unwrap();
        assert_eq!(c.assistant.display(), "Nova");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (var, value) in [
            ("CHAT_TEMPERATURE", "hot"),
            ("CHAT_TOP_P", "1.5"),
            ("MINIMAL_MODE", "maybe"),
            ("RATE_LIMIT_BURST", "0"),
            ("CHAT_MAX_TOKENS", "4000"),
            ("CACHE_MODE", "always"),
            ("CACHE_POOL_SIZE", "0"),
            ("CACHE_TTL_SECONDS", "10"),
            ("CACHE_SHARED_INTENTS", "greeting,weather"),
            ("CACHE_INTENT_MIN_CONFIDENCE", "1.5"),
            ("ASSISTANT_NAME", "?!"),
            (
                "ASSISTANT_NAME",
                "a name far longer than anyone would want to say aloud",
            ),
        ] {
            let mut pairs = BASE.to_vec();
            pairs.push((var, value));
            let err = EdgeConfig::from_lookup(lookup(&pairs))
                .unwrap_err()
                .to_string();
            assert!(err.contains(var), "{err}");
        }
        let err = EdgeConfig::from_lookup(lookup(&BASE[..2])).unwrap_err();
        assert!(err.to_string().contains("JWT_HS256_SECRET"), "{err}");
        let err = EdgeConfig::from_lookup(lookup(&BASE[1..])).unwrap_err();
        assert!(matches!(err, ConfigError::Missing("JWT_ISSUER")));
    }
}
