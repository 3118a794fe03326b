//! The model's input: hashed features of a message, defined exactly as in
//! `models/train_intent.py` (the model only works on the features it was trained on).
//!
//! Words are the runs of letters, digits and apostrophes of the lower-cased message; the
//! features are each word (`w word`), each pair of neighbouring words (`b word word`), and the
//! 3- to 5-character n-grams of each word marked as `<word>` (`c gram`). Each feature string is
//! hashed with 32-bit FNV-1a over its UTF-8 bytes, modulo the model's bucket count.

const FNV_OFFSET: u32 = 0x811c_9dc5;
const FNV_PRIME: u32 = 0x0100_0193;

fn fnv1a(parts: &[&str]) -> u32 {
    let mut hash = FNV_OFFSET;
    for part in parts {
        for byte in part.bytes() {
            hash ^= u32::from(byte);
            hash = hash.wrapping_mul(FNV_PRIME);
        }
    }
    hash
}

/// Lower-case words: letters, digits and apostrophes; anything else separates.
pub fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    for c in text.chars().flat_map(char::to_lowercase) {
        if c.is_alphanumeric() || c == '\'' {
            current.push(c);
        } else if !current.is_empty() {
            out.push(std::mem::take(&mut current));
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// The bucket of every feature of `text` (bucket 0 alone when it has none, as in training).
pub fn bucket_ids(text: &str, buckets: u32, out: &mut Vec<u32>) {
    bucket_ids_of_words(&words(text), buckets, out);
}

/// [`bucket_ids`] of a text already split by [`words`].
pub fn bucket_ids_of_words(words: &[String], buckets: u32, out: &mut Vec<u32>) {
    out.clear();
    let bucket = |parts: &[&str]| fnv1a(parts) % buckets;
    for word in words {
        out.push(bucket(&["w ", word]));
    }
    for pair in words.windows(2) {
        out.push(bucket(&["b ", &pair[0], " ", &pair[1]]));
    }
    let mut marked = String::new();
    let mut bounds: Vec<usize> = Vec::new();
    for word in words {
        marked.clear();
        marked.push('<');
        marked.push_str(word);
        marked.push('>');
        // Character boundaries, so that n-grams are counted in characters as in Python.
        bounds.clear();
        bounds.extend(marked.char_indices().map(|(i, _)| i));
        bounds.push(marked.len());
        let chars = bounds.len() - 1;
        for n in 3..=5 {
            for start in 0..(chars + 1).saturating_sub(n) {
                out.push(bucket(&["c ", &marked[bounds[start]..bounds[start + n]]]));
            }
        }
    }
    if out.is_empty() {
        out.push(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_reference_vectors() {
        // From the FNV reference (draft-eastlake-fnv): "" and "a" and "foobar".
        assert_eq!(fnv1a(&[""]), 0x811c_9dc5);
        assert_eq!(fnv1a(&["a"]), 0xe40c_292c);
        assert_eq!(fnv1a(&["foo", "bar"]), 0xbf9c_f968);
    }

    #[test]
    fn words_and_features_as_in_training() {
        assert_eq!(
            words("What's the WEATHER, in Köln?"),
            ["what's", "the", "weather", "in", "köln"]
        );
        let mut ids = Vec::new();
        bucket_ids("hi there", 1 << 14, &mut ids);
        // 2 words + 1 pair + n-grams of "<hi>" (2 + 1 + 0) and "<there>" (5 + 4 + 3).
        assert_eq!(ids.len(), 2 + 1 + 3 + 12);
        bucket_ids("?!", 1 << 14, &mut ids);
        assert_eq!(ids, [0]);
    }
}
