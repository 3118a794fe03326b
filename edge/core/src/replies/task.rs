//! Task acknowledgments from the context the upstream pipeline sends: what was done
//! (`intent`), with what (`processing_result.data`), and whether it worked.

use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskKind {
    Reminder,
    Alarm,
    Timer,
    Event,
    Note,
    ListItem,
    Other,
}

impl TaskKind {
    /// The task an intent name describes, if it describes one.
    pub fn from_intent(intent: &str) -> Option<Self> {
        let i = intent.to_ascii_lowercase();
        let has = |words: &[&str]| words.iter().any(|w| i.contains(w));
        Some(if has(&["reminder", "remind"]) {
            Self::Reminder
        } else if has(&["alarm"]) {
            Self::Alarm
        } else if has(&["timer"]) {
            Self::Timer
        } else if has(&["event", "calendar", "meeting", "appointment", "schedule"]) {
            Self::Event
        } else if has(&["note"]) {
            Self::Note
        } else if has(&["todo", "to_do", "shopping", "list"]) {
            Self::ListItem
        } else {
            return None;
        })
    }

    pub fn noun(self) -> &'static str {
        match self {
            Self::Reminder => "reminder",
            Self::Alarm => "alarm",
            Self::Timer => "timer",
            Self::Event => "event",
            Self::Note => "note",
            Self::ListItem => "list item",
            Self::Other => "request",
        }
    }
}

/// The slots a task reply can use, already formatted for speech.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaskSlots {
    pub title: Option<String>,
    /// " at 2 PM on November 25", or "".
    pub when: String,
    /// " for 10 minutes", or "".
    pub duration: String,
}

const MAX_SLOT_CHARS: usize = 80;

/// Makes user-supplied text safe to speak: no control characters, markdown or emoji, and
/// not too long.
pub fn speakable(text: &str) -> String {
    let cleaned: String = text
        .chars()
        .filter(|c| {
            !c.is_control()
                && !matches!(
                    c,
                    '*' | '_' | '#' | '`' | '~' | '<' | '>' | '|' | '\u{FE0F}'
                )
                && !matches!(u32::from(*c), 0x1F000..=0x1FAFF | 0x2600..=0x27BF)
        })
        .collect();
    let cleaned = cleaned.split_whitespace().collect::<Vec<_>>().join(" ");
    match cleaned.char_indices().nth(MAX_SLOT_CHARS) {
        Some((cut, _)) => cleaned[..cut].trim_end().to_owned(),
        None => cleaned,
    }
}

fn text_field(data: &Map<String, Value>, names: &[&str]) -> Option<String> {
    names.iter().find_map(|n| match data.get(*n)? {
        Value::String(s) if !s.trim().is_empty() => Some(speakable(s)),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

impl TaskSlots {
    pub fn from_data(data: Option<&Map<String, Value>>) -> Self {
        let Some(data) = data else {
            return Self::default();
        };
        let title = text_field(
            data,
            &[
                "title", "name", "subject", "task", "item", "content", "text", "label",
            ],
        )
        .filter(|t| !t.is_empty());
        let mut time = text_field(data, &["time"]);
        let mut date = text_field(data, &["date", "day"]);
        // A combined ISO date-time ("2026-11-25T14:00:00") fills both.
        if let Some(dt) = text_field(data, &["datetime", "date_time", "due", "when", "at"]) {
            match dt.split_once(['T', ' ']) {
                Some((d, t)) if is_iso_date(d) => {
                    date.get_or_insert_with(|| d.to_owned());
                    time.get_or_insert_with(|| t.to_owned());
                }
                _ => {
                    time.get_or_insert(dt);
                }
            }
        }
        let mut when = String::new();
        if let Some(t) = time {
            when.push_str(" at ");
            when.push_str(&spoken_time(&t));
        }
        if let Some(d) = date {
            when.push_str(&spoken_date(&d));
        }
        let duration = text_field(data, &["duration", "length", "minutes"])
            .map(|d| {
                if d.chars().all(|c| c.is_ascii_digit()) {
                    format!(" for {d} minutes")
                } else {
                    format!(" for {d}")
                }
            })
            .unwrap_or_default();
        Self {
            title,
            when,
            duration,
        }
    }
}

/// "14:00" → "2 PM", "09:05:00" → "9:05 AM"; anything else is spoken as written.
pub fn spoken_time(text: &str) -> String {
    let core = text.trim().trim_end_matches('Z');
    let core = core.split(['+', '.']).next().unwrap_or(core);
    let mut parts = core.split(':');
    let (Some(h), Some(m)) = (parts.next(), parts.next()) else {
        return text.to_owned();
    };
    let (Ok(h), Ok(m)) = (h.parse::<u32>(), m.parse::<u32>()) else {
        return text.to_owned();
    };
    if h > 23 || m > 59 || parts.clone().count() > 1 {
        return text.to_owned();
    }
    let suffix = if h < 12 { "AM" } else { "PM" };
    let h12 = match h % 12 {
        0 => 12,
        x => x,
    };
    if m == 0 {
        format!("{h12} {suffix}")
    } else {
        format!("{h12}:{m:02} {suffix}")
    }
}

fn is_iso_date(text: &str) -> bool {
    let b = text.as_bytes();
    b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit())
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

/// " on November 25" for an ISO date; " tomorrow" for relative words; " on X" otherwise.
pub fn spoken_date(text: &str) -> String {
    let t = text.trim();
    if is_iso_date(t) {
        let month = t[5..7].parse::<usize>().ok();
        let day = t[8..10].parse::<u32>().ok();
        if let (Some(m @ 1..=12), Some(d @ 1..=31)) = (month, day) {
            return format!(" on {} {d}", MONTHS[m - 1]);
        }
    }
    let lower = t.to_lowercase();
    if ["today", "tonight", "tomorrow", "this ", "next "]
        .iter()
        .any(|w| lower.starts_with(w))
    {
        format!(" {t}")
    } else {
        format!(" on {t}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_are_spoken() {
        assert_eq!(spoken_time("14:00"), "2 PM");
        assert_eq!(spoken_time("14:30:00"), "2:30 PM");
        assert_eq!(spoken_time("00:00"), "12 AM");
        assert_eq!(spoken_time("12:05"), "12:05 PM");
        assert_eq!(spoken_time("9:05"), "9:05 AM");
        assert_eq!(spoken_time("2 PM"), "2 PM");
        assert_eq!(spoken_time("25:00"), "25:00");
    }

    #[test]
    fn dates_are_spoken() {
        assert_eq!(spoken_date("2026-11-25"), " on November 25");
        assert_eq!(spoken_date("tomorrow"), " tomorrow");
        assert_eq!(spoken_date("Friday"), " on Friday");
    }

    #[test]
    fn slots_from_data() {
        let data = json!({"title": "meeting", "time": "14:00", "date": "2026-11-25"});
        let slots = TaskSlots::from_data(data.as_object());
        assert_eq!(slots.title.as_deref(), Some("meeting"));
        assert_eq!(slots.when, " at 2 PM on November 25");
        let data = json!({"datetime": "2026-01-02T09:30:00"});
        assert_eq!(
            TaskSlots::from_data(data.as_object()).when,
            " at 9:30 AM on January 2"
        );
        let data = json!({"duration": 10});
        assert_eq!(
            TaskSlots::from_data(data.as_object()).duration,
            " for 10 minutes"
        );
    }

    #[test]
    fn speakable_strips_markup_and_caps_length() {
        assert_eq!(speakable("**buy** milk \u{1F95B}\n"), "buy milk");
        assert_eq!(speakable(&"a".repeat(500)).len(), MAX_SLOT_CHARS);
    }

    #[test]
    fn kinds_from_intents() {
        assert_eq!(
            TaskKind::from_intent("create_reminder"),
            Some(TaskKind::Reminder)
        );
        assert_eq!(TaskKind::from_intent("set_alarm"), Some(TaskKind::Alarm));
        assert_eq!(
            TaskKind::from_intent("calendar_update"),
            Some(TaskKind::Event)
        );
        assert_eq!(TaskKind::from_intent("greeting"), None);
    }
}
