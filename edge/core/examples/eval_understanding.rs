//! Evaluates the embedded intent model on a file in CLINC150's own format (lists of
//! `[utterance, intent]` under named splits, as `data_full.json`), through the Rust inference:
//!
//!     cargo xtask eval-understanding FILE [--split val] [--oos-split oos_val]
//!
//! Prints the figures per split and, as its last line,
//! `in-scope accuracy X %, out-of-scope recall Y %, small-talk family Z %, other as small talk W %`.
//! Small talk is CLINC's `small_talk` domain (each of its 15 intents has a reply family of
//! its own); "other as small talk" counts every other utterance, out-of-scope ones included,
//! that gets a small-talk reply.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edge_core::understanding::{self, THRESHOLDS, evaluation::Figures};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: eval_understanding FILE [--split val] [--oos-split oos_val]";
    let file = args.first().unwrap_or_else(|| panic!("{usage}"));
    let option = |name: &str, default: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or_else(|| default.to_owned(), String::clone)
    };
    let (split, oos_split) = (option("--split", "val"), option("--oos-split", "oos_val"));
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let examples = |name: &str| -> Vec<(String, String)> {
        data[name]
            .as_array()
            .unwrap_or_else(|| panic!("{file} has no split {name:?}"))
            .iter()
            .map(|pair| {
                (
                    pair[0].as_str().unwrap().to_owned(),
                    pair[1].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    };
    // Loaded before the clock starts: the figure is per message, not per load.
    understanding::model().unwrap();
    let (in_scope, out_of_scope) = (examples(&split), examples(&oos_split));
    let started = std::time::Instant::now();
    let mut figures = Figures::default();
    for (utterance, gold) in in_scope.iter().chain(&out_of_scope) {
        figures.add(utterance, gold);
    }
    let count = in_scope.len() + out_of_scope.len();
    let per_message = started.elapsed().as_secs_f64() * 1e6 / count.max(1) as f64;
    println!(
        "{file}: {split} {} utterances, {oos_split} {} (thresholds: out of scope {:.3}, small talk {:.3}; {per_message:.1} µs per message in this build)",
        in_scope.len(),
        out_of_scope.len(),
        THRESHOLDS.out_of_scope,
        THRESHOLDS.small_talk
    );
    println!(
        "small talk: {} of {} with the right reply family; other: {} of {} answered as small talk",
        figures.small_talk_right_family,
        figures.small_talk,
        figures.other_as_small_talk,
        figures.other
    );
    println!("{}", figures.summary());
}
