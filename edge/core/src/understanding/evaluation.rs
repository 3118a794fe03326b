//! The figures of the understanding on labelled utterances (CLINC150's format): the model's
//! 151-way accuracy and out-of-scope recall, and how often a small-talk utterance gets the
//! reply family of its intent, or another utterance a small-talk reply. Shared by the
//! evaluation command (`cargo xtask eval-understanding`) and the tests that hold the targets.

use super::{Reading, TurnKind, read};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Figures {
    pub in_scope: usize,
    pub in_scope_right: usize,
    pub out_of_scope: usize,
    pub out_of_scope_recalled: usize,
    pub small_talk: usize,
    pub small_talk_right_family: usize,
    pub other: usize,
    pub other_as_small_talk: usize,
}

impl std::ops::Add for Figures {
    type Output = Figures;

    fn add(self, other: Figures) -> Figures {
        Figures {
            in_scope: self.in_scope + other.in_scope,
            in_scope_right: self.in_scope_right + other.in_scope_right,
            out_of_scope: self.out_of_scope + other.out_of_scope,
            out_of_scope_recalled: self.out_of_scope_recalled + other.out_of_scope_recalled,
            small_talk: self.small_talk + other.small_talk,
            small_talk_right_family: self.small_talk_right_family + other.small_talk_right_family,
            other: self.other + other.other,
            other_as_small_talk: self.other_as_small_talk + other.other_as_small_talk,
        }
    }
}

fn percent(part: usize, whole: usize) -> f64 {
    100.0 * part as f64 / whole.max(1) as f64
}

impl Figures {
    /// Counts one utterance labelled `gold` (`oos` for out of scope) as the edge reads it.
    pub fn add(&mut self, utterance: &str, gold: &str) {
        self.count(gold, &read(utterance, None));
    }

    /// Counts one utterance labelled `gold` read as `reading`.
    pub fn count(&mut self, gold: &str, reading: &Reading<'_>) {
        if gold == "oos" {
            self.out_of_scope += 1;
            self.out_of_scope_recalled += usize::from(reading.intent == "oos");
        } else {
            self.in_scope += 1;
            self.in_scope_right += usize::from(reading.intent == gold);
        }
        match TurnKind::of(gold) {
            Some(family @ TurnKind::SmallTalk(_)) => {
                self.small_talk += 1;
                self.small_talk_right_family += usize::from(reading.kind == family);
            }
            _ => {
                self.other += 1;
                self.other_as_small_talk += usize::from(reading.kind.is_small_talk());
            }
        }
    }

    pub fn in_scope_accuracy(&self) -> f64 {
        percent(self.in_scope_right, self.in_scope)
    }

    pub fn out_of_scope_recall(&self) -> f64 {
        percent(self.out_of_scope_recalled, self.out_of_scope)
    }

    pub fn small_talk_family(&self) -> f64 {
        percent(self.small_talk_right_family, self.small_talk)
    }

    pub fn other_as_small_talk(&self) -> f64 {
        percent(self.other_as_small_talk, self.other)
    }

    /// The evaluation command's last line.
    pub fn summary(&self) -> String {
        format!(
            "in-scope accuracy {:.2} %, out-of-scope recall {:.2} %, small-talk family {:.2} %, other as small talk {:.2} %",
            self.in_scope_accuracy(),
            self.out_of_scope_recall(),
            self.small_talk_family(),
            self.other_as_small_talk()
        )
    }
}
