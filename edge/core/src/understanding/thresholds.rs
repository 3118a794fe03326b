//! How sure the model must be: below the out-of-scope threshold a turn is out of scope, and a
//! small-talk reading below the small-talk threshold is too (a wrong small-talk reply, "I was
//! made by the Eindr team" to a question about a president, misleads, while the general reply
//! to real small talk only disappoints).
//!
//! Both are chosen by rules ([`Rule`]) on labelled utterances, and the edge's values by
//! cross-validation ([`cross_validate`]): fitted on all of `val`, they promise on `val` what
//! they do not give on data that chose nothing (issue 32 saw 55 % out-of-scope recall on `val`
//! and below 50 % beyond it). `cargo xtask fit-thresholds` prints the folds.

use super::evaluation::Figures;
use super::{Prediction, Reading, TurnKind};

/// The two thresholds on the model's top softmax probability.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    pub out_of_scope: f32,
    pub small_talk: f32,
}

/// What the edge uses: the median of ten folds' choices with [`Rule::EDGE`] on CLINC150
/// `val` + `oos_val` (`cargo xtask fit-thresholds` prints how they were chosen and what they
/// give on the folds that did not choose them; `models/intent/README.md` has the figures).
pub const THRESHOLDS: Thresholds = Thresholds {
    out_of_scope: 0.125,
    small_talk: 0.39,
};

impl Thresholds {
    /// The model's prediction read with these thresholds.
    pub fn read(&self, prediction: &Prediction<'static>) -> Reading<'static> {
        let kind = TurnKind::of(prediction.argmax).unwrap_or(TurnKind::OutOfScope);
        let unsure = prediction.confidence < self.out_of_scope
            || (kind.is_small_talk() && prediction.confidence < self.small_talk);
        Reading {
            intent: if unsure { "oos" } else { prediction.argmax },
            confidence: prediction.confidence,
            kind: if unsure { TurnKind::OutOfScope } else { kind },
            upstream: false,
        }
    }
}

/// What the thresholds must give on the utterances they are fitted on.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rule {
    /// The out-of-scope threshold: the highest in-scope accuracy with at least this
    /// out-of-scope recall (%).
    pub min_out_of_scope_recall: f64,
    /// The small-talk threshold: the most small talk with its own reply family with at most
    /// this share of other utterances answered as small talk (%); of equals, the highest.
    pub max_other_as_small_talk: f64,
}

impl Rule {
    /// The targets themselves: 50 % and 0.5 %. Fitted on all of `val` this rule gave
    /// the thresholds the edge had before cross-validation (0.09 and 0.20).
    pub const TARGETS: Rule = Rule {
        min_out_of_scope_recall: 50.0,
        max_other_as_small_talk: 0.5,
    };

    /// The least strict rule whose thresholds meet [`Rule::TARGETS`] on held-out folds of
    /// `val` + `oos_val` with 95 % confidence, as [`choose`] finds it.
    pub const EDGE: Rule = Rule {
        min_out_of_scope_recall: 58.0,
        max_other_as_small_talk: 0.2,
    };
}

/// How far a share measured on `n` utterances may be from the true one: the Wilson score
/// interval at 95 % (z = 1.96), in %, which stays sensible at 0 of n.
fn wilson(share_percent: f64, n: usize) -> (f64, f64) {
    const Z: f64 = 1.96;
    let n = n.max(1) as f64;
    let p = share_percent / 100.0;
    let centre = p + Z * Z / (2.0 * n);
    let margin = Z * (p * (1.0 - p) / n + Z * Z / (4.0 * n * n)).sqrt();
    let scale = 1.0 + Z * Z / n;
    (
        100.0 * (centre - margin) / scale,
        100.0 * (centre + margin) / scale,
    )
}

/// The least strict rule whose thresholds, measured on folds that did not choose them, meet
/// `targets` with 95 % confidence (the pooled held-out out-of-scope recall's lower bound at
/// or above the target recall, the other-as-small-talk share's upper bound at or below the
/// target share), with the cross-validation it gave. Recall is asked in steps of one point,
/// the share in steps of 0.05 points.
pub fn choose(utterances: &[Scored], k: usize, targets: Rule) -> (Rule, Vec<Fold>) {
    let mut rule = targets;
    let mut folds = cross_validate(utterances, k, rule);
    let recall_holds = |folds: &[Fold]| {
        let held_out = pooled(folds);
        wilson(held_out.out_of_scope_recall(), held_out.out_of_scope).0
            >= targets.min_out_of_scope_recall
    };
    while !recall_holds(&folds) && rule.min_out_of_scope_recall < 100.0 {
        rule.min_out_of_scope_recall += 1.0;
        folds = cross_validate(utterances, k, rule);
    }
    let share_holds = |folds: &[Fold]| {
        let held_out = pooled(folds);
        wilson(held_out.other_as_small_talk(), held_out.other).1 <= targets.max_other_as_small_talk
    };
    let mut steps = 0;
    while !share_holds(&folds) && rule.max_other_as_small_talk > 0.05 {
        steps += 1;
        // Counted in steps, so that the share is 0.2, not 0.5 - 6 × 0.05 in floats.
        rule.max_other_as_small_talk =
            (targets.max_other_as_small_talk * 100.0 - 5.0 * f64::from(steps)).round() / 100.0;
        folds = cross_validate(utterances, k, rule);
    }
    (rule, folds)
}

/// One labelled utterance as the model read it.
#[derive(Debug, Clone)]
pub struct Scored {
    pub gold: String,
    pub prediction: Prediction<'static>,
}

/// The candidate thresholds: 0.01 to 0.99 by 0.01.
fn grid() -> impl Iterator<Item = f32> {
    (1..100).map(|step| step as f32 / 100.0)
}

/// The figures of `thresholds` on `utterances`.
pub fn figures<'a>(
    utterances: impl IntoIterator<Item = &'a Scored>,
    thresholds: Thresholds,
) -> Figures {
    let mut figures = Figures::default();
    for scored in utterances {
        figures.count(&scored.gold, &thresholds.read(&scored.prediction));
    }
    figures
}

/// The thresholds `rule` chooses on `utterances`.
pub fn fit(utterances: &[&Scored], rule: Rule) -> Thresholds {
    let figures_at = |out_of_scope: f32, small_talk: f32| {
        figures(
            utterances.iter().copied(),
            Thresholds {
                out_of_scope,
                small_talk,
            },
        )
    };
    // Small talk is not yet held back while the out-of-scope threshold is chosen.
    let out_of_scope = grid()
        .map(|t| (t, figures_at(t, 0.0)))
        .filter(|(_, f)| f.out_of_scope_recall() >= rule.min_out_of_scope_recall)
        .fold(None::<(f32, f64)>, |best, (t, f)| match best {
            Some((_, accuracy)) if accuracy >= f.in_scope_accuracy() => best,
            _ => Some((t, f.in_scope_accuracy())),
        })
        .map_or(0.99, |(t, _)| t);
    let small_talk = grid()
        .filter(|t| *t >= out_of_scope)
        .map(|t| (t, figures_at(out_of_scope, t)))
        .filter(|(_, f)| f.other_as_small_talk() <= rule.max_other_as_small_talk)
        .fold(None::<(f32, usize)>, |best, (t, f)| match best {
            Some((_, right)) if right > f.small_talk_right_family => best,
            _ => Some((t, f.small_talk_right_family)),
        })
        .map_or(0.99, |(t, _)| t);
    Thresholds {
        out_of_scope,
        small_talk,
    }
}

/// One fold of a cross-validation: the thresholds fitted without it and what they give on it.
#[derive(Debug, Clone)]
pub struct Fold {
    pub thresholds: Thresholds,
    pub held_out: Figures,
}

/// `utterances` in `k` folds, each intent's utterances dealt round-robin so that every fold
/// holds each intent (and out of scope) alike; for each fold, `rule` fits the thresholds on
/// the others and they are measured on it.
pub fn cross_validate(utterances: &[Scored], k: usize, rule: Rule) -> Vec<Fold> {
    let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    let fold_of: Vec<usize> = utterances
        .iter()
        .map(|u| {
            let n = seen.entry(u.gold.as_str()).or_default();
            *n += 1;
            (*n - 1) % k
        })
        .collect();
    (0..k)
        .map(|fold| {
            let (held_out, fitting): (Vec<_>, Vec<_>) = utterances
                .iter()
                .zip(&fold_of)
                .partition(|(_, f)| **f == fold);
            let fitting: Vec<&Scored> = fitting.into_iter().map(|(u, _)| u).collect();
            let thresholds = fit(&fitting, rule);
            Fold {
                thresholds,
                held_out: figures(held_out.into_iter().map(|(u, _)| u), thresholds),
            }
        })
        .collect()
}

/// Each fold's held-out figures added up: every utterance read with thresholds that were
/// not fitted on it.
pub fn pooled(folds: &[Fold]) -> Figures {
    folds
        .iter()
        .fold(Figures::default(), |sum, fold| sum + fold.held_out)
}

/// The median of the folds' choices, each threshold on its own: what no single split decides.
pub fn median(folds: &[Fold]) -> Thresholds {
    let middle = |pick: fn(&Thresholds) -> f32| {
        let mut values: Vec<f32> = folds.iter().map(|f| pick(&f.thresholds)).collect();
        values.sort_by(f32::total_cmp);
        match values.len() {
            0 => 0.0,
            n if n % 2 == 1 => values[n / 2],
            n => (values[n / 2 - 1] + values[n / 2]) / 2.0,
        }
    };
    Thresholds {
        out_of_scope: middle(|t| t.out_of_scope),
        small_talk: middle(|t| t.small_talk),
    }
}
