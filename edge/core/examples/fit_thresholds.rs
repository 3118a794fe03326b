//! Chooses the understanding's two thresholds so that they hold beyond the data that chose
//! them, and prints how sure that is:
//!
//!     cargo xtask fit-thresholds FILE [--folds 10] [--recall 50] [--other 0.5]
//!
//! FILE is in CLINC150's format; its `val` + `oos_val` are dealt into folds (each intent's
//! utterances round-robin). For each fold a rule (the highest in-scope accuracy with
//! out-of-scope recall >= R %, then the most small talk with its own reply with other
//! utterances answered as small talk <= S %) is fitted on the other folds and measured on it.
//! R and S start at the targets (`--recall`, `--other`) and tighten until the figures pooled
//! over the held-out folds meet the targets with 95 % confidence. Prints each fold, the
//! held-out figures pooled and their spread over the folds, and as its last line the median
//! of the folds' thresholds: what the edge uses (`THRESHOLDS`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use edge_core::understanding::thresholds::{self, Rule, Scored};
use edge_core::understanding::{self, AssistantName, transcript};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: fit_thresholds FILE [--folds 10] [--recall 50] [--other 0.5]";
    let file = args.first().unwrap_or_else(|| panic!("{usage}"));
    let option = |name: &str, default: f64| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{usage}")))
    };
    let folds = option("--folds", 10.0) as usize;
    let targets = Rule {
        min_out_of_scope_recall: option("--recall", Rule::TARGETS.min_out_of_scope_recall),
        max_other_as_small_talk: option("--other", Rule::TARGETS.max_other_as_small_talk),
    };
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{file}: {e}"));
    let data: serde_json::Value = serde_json::from_str(&text).unwrap();
    let model = understanding::model().unwrap();
    let name = AssistantName::default();
    let scored: Vec<Scored> = ["val", "oos_val"]
        .iter()
        .flat_map(|split| data[split].as_array().unwrap().iter())
        .map(|pair| Scored {
            gold: pair[1].as_str().unwrap().to_owned(),
            prediction: model
                .predict_words(&transcript::typed_words(pair[0].as_str().unwrap(), &name)),
        })
        .collect();
    let (rule, results) = thresholds::choose(&scored, folds, targets);
    println!(
        "{file}: {} utterances in {folds} folds; targets: out-of-scope recall >= {} %, other as small talk <= {} %; rule that meets them held out: >= {} %, <= {:.2} %",
        scored.len(),
        targets.min_out_of_scope_recall,
        targets.max_other_as_small_talk,
        rule.min_out_of_scope_recall,
        rule.max_other_as_small_talk
    );
    for (i, fold) in results.iter().enumerate() {
        println!(
            "fold {i}: fitted on the others {:.2} / {:.2}; on this fold: {}",
            fold.thresholds.out_of_scope,
            fold.thresholds.small_talk,
            fold.held_out.summary()
        );
    }
    let spread = |figure: fn(&understanding::evaluation::Figures) -> f64| {
        let values: Vec<f64> = results.iter().map(|f| figure(&f.held_out)).collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let (min, max) = values
            .iter()
            .fold((f64::MAX, f64::MIN), |(lo, hi), v| (lo.min(*v), hi.max(*v)));
        format!("{mean:.2} ({min:.2} to {max:.2})")
    };
    println!(
        "held-out folds, mean (min to max): in-scope accuracy {}, out-of-scope recall {}, small-talk family {}, other as small talk {}",
        spread(|f| f.in_scope_accuracy()),
        spread(|f| f.out_of_scope_recall()),
        spread(|f| f.small_talk_family()),
        spread(|f| f.other_as_small_talk()),
    );
    println!(
        "held-out, pooled: {}",
        thresholds::pooled(&results).summary()
    );
    let median = thresholds::median(&results);
    println!(
        "median of the folds: out of scope {:.3}, small talk {:.3}; on all of {file}: {}",
        median.out_of_scope,
        median.small_talk,
        thresholds::figures(&scored, median).summary()
    );
}
