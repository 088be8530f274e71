"""A small English sentence grammar for the synthetic corpus.

Sentences rather than isolated words give the recognizer word context to
learn (agreement, word order), while a closed vocabulary of a few hundred
words keeps the task learnable from about an hour of synthetic speech.
Sentences are short (mostly 3-10 words, 1.5-4 s when spoken) and drawn from a
seeded :class:`numpy.random.Generator`, so the corpus is reproducible.

Example: ``the red cat sees two small boats near the old house``.
"""

from typing import List, Sequence, Set, Tuple

import numpy as np

# (singular, plural)
ANIMATE_NOUNS: Tuple[Tuple[str, str], ...] = (
    ("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("horse", "horses"),
    ("mouse", "mice"), ("child", "children"), ("man", "men"), ("woman", "women"),
    ("teacher", "teachers"), ("farmer", "farmers"), ("doctor", "doctors"),
    ("sailor", "sailors"), ("rabbit", "rabbits"), ("king", "kings"),
)
THING_NOUNS: Tuple[Tuple[str, str], ...] = (
    ("boat", "boats"), ("car", "cars"), ("train", "trains"), ("house", "houses"),
    ("tree", "trees"), ("garden", "gardens"), ("window", "windows"), ("door", "doors"),
    ("table", "tables"), ("chair", "chairs"), ("book", "books"), ("box", "boxes"),
    ("cup", "cups"), ("apple", "apples"), ("letter", "letters"), ("key", "keys"),
    ("ball", "balls"), ("hat", "hats"), ("lamp", "lamps"), ("flower", "flowers"),
    ("bottle", "bottles"), ("basket", "baskets"), ("coat", "coats"), ("shoe", "shoes"),
)
PLACE_NOUNS: Tuple[str, ...] = (
    "house", "tree", "river", "bridge", "garden", "window", "door", "table",
    "hill", "road", "church", "station", "market", "school", "wall", "fence",
)
NAMES: Tuple[str, ...] = (
    "anna", "peter", "maria", "james", "lucy", "david", "emma", "tom", "sarah", "paul",
)
ADJECTIVES: Tuple[str, ...] = (
    "red", "blue", "green", "yellow", "black", "white", "brown", "small", "big",
    "little", "tall", "old", "young", "new", "happy", "sad", "quiet", "loud",
    "warm", "cold", "dark", "bright", "soft", "heavy", "lazy", "clever", "funny",
    "gentle", "strange", "empty",
)
# (third person singular, base, past)
TRANSITIVE_VERBS: Tuple[Tuple[str, str, str], ...] = (
    ("sees", "see", "saw"), ("finds", "find", "found"), ("likes", "like", "liked"),
    ("wants", "want", "wanted"), ("carries", "carry", "carried"),
    ("paints", "paint", "painted"), ("watches", "watch", "watched"),
    ("follows", "follow", "followed"), ("opens", "open", "opened"),
    ("cleans", "clean", "cleaned"), ("moves", "move", "moved"), ("buys", "buy", "bought"),
    ("sells", "sell", "sold"), ("holds", "hold", "held"), ("pulls", "pull", "pulled"),
    ("pushes", "push", "pushed"), ("brings", "bring", "brought"), ("keeps", "keep", "kept"),
)
INTRANSITIVE_VERBS: Tuple[Tuple[str, str, str], ...] = (
    ("sleeps", "sleep", "slept"), ("runs", "run", "ran"), ("sits", "sit", "sat"),
    ("waits", "wait", "waited"), ("sings", "sing", "sang"), ("jumps", "jump", "jumped"),
    ("walks", "walk", "walked"), ("plays", "play", "played"), ("stops", "stop", "stopped"),
    ("laughs", "laugh", "laughed"),
)
PREPOSITIONS: Tuple[str, ...] = (
    "near", "under", "behind", "beside", "above", "inside", "across", "around", "past",
)
ADVERBS: Tuple[str, ...] = (
    "quickly", "slowly", "quietly", "today", "again", "often", "now", "later",
    "yesterday", "together",
)
SINGULAR_DETERMINERS: Tuple[str, ...] = (
    "the", "a", "this", "that", "every", "my", "your", "his", "her", "our",
)
PLURAL_DETERMINERS: Tuple[str, ...] = (
    "the", "some", "many", "these", "those", "my", "our", "two", "three", "four",
    "five", "six", "seven", "eight", "nine", "ten",
)
FUNCTION_WORDS: Tuple[str, ...] = (
    "an", "there", "is", "are", "was", "were", "where", "can", "you",
    "please", "and", "to",
)

# probabilities of the optional parts; chosen so most sentences last 1.5-4 s
P_ADJECTIVE = 0.4
P_PREPOSITION = 0.35
P_ADVERB = 0.2


def _pick(rng: np.random.Generator, seq: Sequence):
    return seq[int(rng.integers(len(seq)))]


def _article(det: str, next_word: str) -> str:
    return "an" if det == "a" and next_word[0] in "aeiou" else det


def noun_phrase(
    rng: np.random.Generator, nouns: Sequence[Tuple[str, str]], plural: bool
) -> List[str]:
    """``[det] [adjective] noun`` agreeing in number."""
    noun = _pick(rng, nouns)[1 if plural else 0]
    words = [_pick(rng, ADJECTIVES)] if rng.random() < P_ADJECTIVE else []
    words.append(noun)
    det = _pick(rng, PLURAL_DETERMINERS if plural else SINGULAR_DETERMINERS)
    return [_article(det, words[0])] + words


def subject(rng: np.random.Generator) -> Tuple[List[str], bool]:
    """An animate subject and whether it is plural."""
    if rng.random() < 0.25:
        return [_pick(rng, NAMES)], False
    plural = bool(rng.random() < 0.4)
    return noun_phrase(rng, ANIMATE_NOUNS, plural), plural


def place_phrase(rng: np.random.Generator) -> List[str]:
    words = [_pick(rng, ADJECTIVES)] if rng.random() < P_ADJECTIVE / 2 else []
    return [_pick(rng, PREPOSITIONS), "the"] + words + [_pick(rng, PLACE_NOUNS)]


def _verb(rng: np.random.Generator, verbs, plural: bool, past: bool) -> str:
    sg, base, past_form = _pick(rng, verbs)
    return past_form if past else (base if plural else sg)


def _optional_tail(rng: np.random.Generator) -> List[str]:
    words: List[str] = []
    if rng.random() < P_PREPOSITION:
        words += place_phrase(rng)
    if rng.random() < P_ADVERB:
        words.append(_pick(rng, ADVERBS))
    return words


def sentence(rng: np.random.Generator) -> str:
    """Draw one sentence (lower case words separated by single spaces)."""
    kind = rng.random()
    past = bool(rng.random() < 0.3)
    if kind < 0.45:  # the red cat sees two small boats near the old house
        subj, plural = subject(rng)
        obj = noun_phrase(rng, THING_NOUNS + ANIMATE_NOUNS, bool(rng.random() < 0.4))
        words = subj + [_verb(rng, TRANSITIVE_VERBS, plural, past)] + obj + _optional_tail(rng)
    elif kind < 0.65:  # the old man sleeps under the tree today
        subj, plural = subject(rng)
        words = subj + [_verb(rng, INTRANSITIVE_VERBS, plural, past)]
        tail = _optional_tail(rng)
        words += tail if tail else place_phrase(rng)
    elif kind < 0.75:  # there are three dogs behind the door
        plural = bool(rng.random() < 0.5)
        be = ("were" if plural else "was") if past else ("are" if plural else "is")
        words = ["there", be] + noun_phrase(rng, THING_NOUNS + ANIMATE_NOUNS, plural)
        words += place_phrase(rng)
    elif kind < 0.85:  # where is the small key / can you see the tall tree
        if rng.random() < 0.5:
            plural = bool(rng.random() < 0.5)
            words = ["where", "are" if plural else "is"] + noun_phrase(rng, THING_NOUNS, plural)
        else:
            plural = bool(rng.random() < 0.5)
            words = ["can", "you", "see"] + noun_phrase(rng, THING_NOUNS + ANIMATE_NOUNS, plural)
            words += _optional_tail(rng)
    elif kind < 0.93:  # please bring the green basket to the station
        words = ["please", _pick(rng, TRANSITIVE_VERBS)[1]]
        words += noun_phrase(rng, THING_NOUNS, bool(rng.random() < 0.4))
        if rng.random() < 0.5:
            words += ["to", "the", _pick(rng, PLACE_NOUNS)]
    else:  # anna and tom watched the horses
        first, second = _pick(rng, NAMES), _pick(rng, NAMES)
        while second == first:
            second = _pick(rng, NAMES)
        words = [first, "and", second, _verb(rng, TRANSITIVE_VERBS, True, past)]
        words += noun_phrase(rng, THING_NOUNS + ANIMATE_NOUNS, bool(rng.random() < 0.5))
    return " ".join(words)


def vocabulary() -> Set[str]:
    """Every word the grammar can produce."""
    words: Set[str] = set(FUNCTION_WORDS) | set(NAMES) | set(ADJECTIVES)
    words |= set(PREPOSITIONS) | set(ADVERBS) | set(PLACE_NOUNS)
    words |= set(SINGULAR_DETERMINERS) | set(PLURAL_DETERMINERS)
    for forms in ANIMATE_NOUNS + THING_NOUNS + TRANSITIVE_VERBS + INTRANSITIVE_VERBS:
        words |= set(forms)
    return words
