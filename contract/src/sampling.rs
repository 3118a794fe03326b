//! The bounds of the generation settings. The edge checks its configuration against them and
//! gpu-backend checks each request (and its own configuration) against the same ones.

/// `CHAT_MAX_TOKENS` / `max_tokens`.
pub fn max_tokens_ok(n: u32) -> bool {
    (1..=4096).contains(&n)
}
pub const MAX_TOKENS: &str = "1..=4096";

/// `CHAT_TEMPERATURE` / `temperature`.
pub fn temperature_ok(t: f64) -> bool {
    (0.0..=2.0).contains(&t)
}
pub const TEMPERATURE: &str = "a number in 0..=2";

/// `CHAT_TOP_P` / `top_p`.
pub fn top_p_ok(p: f64) -> bool {
    p > 0.0 && p <= 1.0
}
pub const TOP_P: &str = "a number in (0, 1]";

/// `CHAT_TOP_K` / `top_k`: -1 turns it off.
pub fn top_k_ok(k: i32) -> bool {
    k == -1 || k >= 1
}
pub const TOP_K: &str = "-1 (off) or >= 1";

/// `CHAT_REPETITION_PENALTY` / `repetition_penalty`.
pub fn repetition_penalty_ok(r: f64) -> bool {
    r > 0.0 && r <= 2.0
}
pub const REPETITION_PENALTY: &str = "a number in (0, 2]";

/// `VLLM_MAX_MODEL_LEN`.
pub fn max_model_len_ok(n: u32) -> bool {
    (16..=1_048_576).contains(&n)
}
pub const MAX_MODEL_LEN: &str = "16..=1048576";
