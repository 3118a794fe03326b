//! Evaluates the embedded intent model on a file in CLINC150's own format (lists of
//! `[utterance, intent]` under named splits, as `data_full.json`), through the Rust inference:
//!
//!     cargo xtask eval-understanding FILE [--split val] [--oos-split oos_val]
//!
//! Prints the figures per split and, as its last line,
//! `in-scope accuracy X %, out-of-scope recall Y %, small-talk family Z %, other as small talk W %`.
//! Small talk is CLINC's `small_talk` domain (each of its 15 intents has a reply family of
//! its own); "other as small talk" counts every other utterance, out-of-scope ones included,
//! that the model takes for small talk.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edge_core::understanding;

const SMALL_TALK: [&str; 15] = [
    "who_made_you",
    "meaning_of_life",
    "who_do_you_work_for",
    "do_you_have_pets",
    "what_are_your_hobbies",
    "fun_fact",
    "what_is_your_name",
    "where_are_you_from",
    "goodbye",
    "thank_you",
    "greeting",
    "tell_joke",
    "are_you_a_bot",
    "how_old_are_you",
    "what_can_i_ask_you",
];

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
    let model = understanding::model().unwrap();
    let started = std::time::Instant::now();
    let (mut inscope, mut correct, mut small, mut small_right, mut other, mut other_small) =
        (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let in_scope = examples(&split);
    for (utterance, gold) in &in_scope {
        let predicted = model.predict(utterance).intent;
        inscope += 1;
        correct += usize::from(predicted == gold);
        if SMALL_TALK.contains(&gold.as_str()) {
            small += 1;
            small_right += usize::from(predicted == gold);
        } else {
            other += 1;
            other_small += usize::from(SMALL_TALK.contains(&predicted));
        }
    }
    let out_of_scope = examples(&oos_split);
    let mut recalled = 0usize;
    for (utterance, _) in &out_of_scope {
        let predicted = model.predict(utterance).intent;
        recalled += usize::from(predicted == "oos");
        other += 1;
        other_small += usize::from(SMALL_TALK.contains(&predicted));
    }
    let count = in_scope.len() + out_of_scope.len();
    let per_message = started.elapsed().as_secs_f64() * 1e6 / count.max(1) as f64;
    let pct = |a: usize, b: usize| 100.0 * a as f64 / b.max(1) as f64;
    println!(
        "{file}: {split} {} utterances, {oos_split} {} (threshold {:.2}, {per_message:.1} µs per message in this build)",
        in_scope.len(),
        out_of_scope.len(),
        model.threshold()
    );
    println!(
        "in-scope accuracy {:.2} %, out-of-scope recall {:.2} %, small-talk family {:.2} %, other as small talk {:.2} %",
        pct(correct, inscope),
        pct(recalled, out_of_scope.len()),
        pct(small_right, small),
        pct(other_small, other)
    );
}
