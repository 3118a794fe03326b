#!/usr/bin/env python3
"""Turn CLINC150 (typed text) into what a speech-to-text engine would hand the assistant.

    python3 models/spoken_clinc.py CLINC_JSON OUT_JSON [--name eindr] [--seed 32]

Reads CLINC150's own format (`{"val": [[utterance, intent], ...], ...}`) and writes the same
splits, same labels, same order, each utterance in spoken form, so that
`cargo xtask eval-understanding OUT_JSON` measures the understanding on it like on the typed
file. Standard library only; deterministic: each utterance's choices come from its own
generator seeded with (seed, split, index), so one utterance's form never depends on another.

The rules, in the order applied:

1. Written forms become the words a recogniser without punctuation models writes: money
   (`$1,500` -> "one thousand five hundred dollars"), percentages ("fifteen percent"), times
   (`6:30pm` -> "six thirty pm", `2:00` -> "two o'clock", `10am` -> "ten am", `1030am` ->
   "ten thirty am"), dates (`3/14` -> "march fourteenth", `2/21/17` -> "february twenty first
   twenty seventeen"), ordinals (`3rd` -> "third"), years 1950-2049 in pairs ("twenty
   nineteen", "two thousand seven"), ranges (`1-10` -> "one to ten"), decimals ("three point
   five"), codes of five or more digits or with a leading zero digit by digit ("zero nine
   eight..."), any other number in words ("one thousand two hundred thirty four"); letters
   glued to digits are split off, and three or more digits glued to letters are a code said
   digit by digit (`dl123` -> "d l one two three", `401k` -> "four oh one k").
2. No capitals and no punctuation except the apostrophe; `&` -> "and", `+` -> "plus",
   `=` -> "equals".
3. A restart (20 %): the first one or two words said twice ("i i want", "what is what is").
4. Fillers (35 %): one or two of "um", "uh", "er", "hmm" at word boundaries; a third of the
   time "like", "you know" or "so" at the start or right after a filler, where people say them.
5. The wake phrase (40 %): "hey NAME", "ok NAME", "okay NAME", "hi NAME" or "NAME" first; the
   name as recognisers spell an unknown word, exactly or with one letter more ("einder").
6. The name as a vocative at the end (5 %): "..., NAME".
"""

import argparse
import json
import random
import re

ONES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
        "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
        "eighteen", "nineteen"]
TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
ORDINAL_WORDS = {"one": "first", "two": "second", "three": "third", "five": "fifth",
                 "eight": "eighth", "nine": "ninth", "twelve": "twelfth"}
MONTHS = ["january", "february", "march", "april", "may", "june", "july", "august",
          "september", "october", "november", "december"]
UNITS = {"kg": "kilograms", "lb": "pounds", "lbs": "pounds", "k": "k", "s": "s", "d": "d"}


def cardinal(n):
    """English words for 0 <= n < 10**12, without "and" ("one hundred five")."""
    if n < 20:
        return ONES[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + cardinal(rest))
    for size, name in ((10**9, "billion"), (10**6, "million"), (1000, "thousand")):
        if n >= size:
            rest = n % size
            return cardinal(n // size) + " " + name + ("" if rest == 0 else " " + cardinal(rest))
    raise ValueError(n)


def ordinal(n):
    words = cardinal(n).split()
    last = words[-1]
    if last in ORDINAL_WORDS:
        words[-1] = ORDINAL_WORDS[last]
    elif last.endswith("y"):
        words[-1] = last[:-1] + "ieth"
    else:
        words[-1] = last + "th"
    return " ".join(words)


def digits(s):
    return " ".join(ONES[int(c)] for c in s)


def number(s):
    """A run of digits as it is said: codes digit by digit, years in pairs, else in words."""
    if len(s) >= 5 or (len(s) > 1 and s[0] == "0"):
        return digits(s)
    n = int(s)
    if len(s) == 4 and 1950 <= n <= 2049:
        if 2000 <= n <= 2009:
            return cardinal(n)
        return cardinal(n // 100) + " " + (cardinal(n % 100) if n % 100 >= 10 else
                                            "oh " + ONES[n % 100] if n % 100 else "hundred")
    return cardinal(n)


def clock(hours, minutes, suffix):
    said = cardinal(int(hours))
    if minutes and int(minutes) != 0:
        m = int(minutes)
        said += " " + (cardinal(m) if m >= 10 else "oh " + ONES[m])
    elif not suffix:
        said += " o'clock"
    return said + (" " + suffix if suffix else "")


def year_suffix(yy):
    return number(yy) if len(yy) == 4 else "twenty " + (cardinal(int(yy)) if int(yy) >= 10 else
                                                         "oh " + ONES[int(yy)])


def spoken_token(tok):
    """One whitespace-separated written token in spoken words (lower case, punctuation kept
    for the next rule to drop)."""
    t = tok.lower().replace(",", "") if re.search(r"\d,\d", tok) else tok.lower()
    lead = re.match(r"^[^\w$#]*", t).group(0)
    trail = re.search(r"[^\w%]*$", t).group(0)
    core = t[len(lead):len(t) - len(trail)] if trail else t[len(lead):]
    if not re.search(r"\d", core):
        return tok.lower()
    m = re.fullmatch(r"\$(\d+)(?:\.(\d\d))?", core)
    if m:
        said = number(m.group(1)) + " dollars"
        if m.group(2) and int(m.group(2)):
            said += " and " + cardinal(int(m.group(2))) + " cents"
        return lead + said + trail
    m = re.fullmatch(r"(\d+)%", core)
    if m:
        return lead + number(m.group(1)) + " percent" + trail
    m = re.fullmatch(r"(\d{1,2}):(\d\d)(am|pm)?", core)
    if m:
        return lead + clock(m.group(1), m.group(2), m.group(3)) + trail
    m = re.fullmatch(r"(\d{1,2})(\d\d)?(am|pm)", core)
    if m:
        return lead + clock(m.group(1), m.group(2), m.group(3)) + trail
    m = re.fullmatch(r"(\d{1,2})/(\d{1,2})(?:/(\d\d|\d{4}))?", core)
    if m and 1 <= int(m.group(1)) <= 12 and 1 <= int(m.group(2)) <= 31:
        said = MONTHS[int(m.group(1)) - 1] + " " + ordinal(int(m.group(2)))
        if m.group(3):
            said += " " + year_suffix(m.group(3))
        return lead + said + trail
    m = re.fullmatch(r"(\d+)(st|nd|rd|th)('s|s)?", core)
    if m:
        return lead + ordinal(int(m.group(1))) + (m.group(3) or "") + trail
    m = re.fullmatch(r"(\d+)\.(\d+)", core)
    if m:
        return lead + number(m.group(1)) + " point " + digits(m.group(2)) + trail
    m = re.fullmatch(r"(\d+)-(\d+)", core)
    if m:
        return lead + number(m.group(1)) + " to " + number(m.group(2)) + trail
    # Anything else: letters and digits apart, operators as words.
    parts = []
    glued = bool(re.search(r"[a-z]", core))
    for piece in re.findall(r"\d+|[a-z]+|[+=\-/#]", core):
        if piece.isdigit() and glued and len(piece) >= 3:
            parts.append(" ".join("oh" if c == "0" else ONES[int(c)] for c in piece))
        elif piece.isdigit():
            parts.append(number(piece))
        elif piece == "-":
            continue  # "2-way", "w-2": said as two words
        elif piece in "+=/#":
            parts.append({"+": "plus", "=": "equals", "/": "over", "#": "number"}[piece])
        elif parts and piece in UNITS:
            parts.append(UNITS[piece])
        elif len(piece) <= 2:
            parts.append(" ".join(piece))
        else:
            parts.append(piece)
    return lead + " ".join(parts) + trail


def plain(text):
    """Rules 1 and 2: numbers said, then lower case words and apostrophes only."""
    said = " ".join(spoken_token(tok) for tok in text.split())
    said = said.replace("&", " and ").replace("+", " plus ").replace("=", " equals ")
    return " ".join(re.findall(r"[\w']+", said.lower())).replace("_", " ").strip()


FILLERS = ["um", "uh", "er", "hmm"]
DISCOURSE = ["like", "you know", "so"]
WAKE = ["hey {}", "ok {}", "okay {}", "hi {}", "{}"]


def heard_name(name, rng):
    """The assistant's name as a recogniser spells it: as written, or with an `e` before the
    final consonant ("eindr" -> "einder")."""
    if rng.random() < 0.3 and len(name) > 2 and name[-2] not in "aeiou":
        return name[:-1] + "e" + name[-1]
    return name


def speak(text, rng, name):
    words = plain(text).split()
    if not words:
        return text.lower()
    if rng.random() < 0.20:
        n = 1 if len(words) < 3 or rng.random() < 0.6 else 2
        words = words[:n] + words
    if rng.random() < 0.35:
        for _ in range(1 if rng.random() < 0.7 else 2):
            at = rng.randrange(len(words))
            filler = [rng.choice(FILLERS)]
            if rng.random() < 0.33:
                filler.append(rng.choice(DISCOURSE))
            words[at:at] = filler
    elif rng.random() < 0.1:
        words = rng.choice(DISCOURSE).split() + words
    if rng.random() < 0.40:
        words = rng.choice(WAKE).format(heard_name(name, rng)).split() + words
    elif rng.random() < 0.05 / 0.60:
        words = words + [heard_name(name, rng)]
    return " ".join(words)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("source")
    parser.add_argument("out")
    parser.add_argument("--name", default="eindr", help="the assistant's name (ASSISTANT_NAME)")
    parser.add_argument("--seed", type=int, default=32)
    args = parser.parse_args()
    with open(args.source, encoding="utf-8") as f:
        data = json.load(f)
    name = args.name.lower()
    spoken = {}
    for split, examples in data.items():
        if not isinstance(examples, list):
            continue
        spoken[split] = [
            [speak(text, random.Random(f"{args.seed}:{split}:{i}"), name), label]
            for i, (text, label) in enumerate(examples)
        ]
    with open(args.out, "w", encoding="utf-8") as f:
        json.dump(spoken, f, ensure_ascii=False, indent=0)
        f.write("\n")
    total = sum(len(v) for v in spoken.values())
    print(f"wrote {args.out}: {total} utterances in spoken form ({', '.join(spoken)})")


if __name__ == "__main__":
    main()
