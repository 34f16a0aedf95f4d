"""Training pairs for the text scorer: self-supervised queries from chat turns, and synthetic rows.

Self-supervised (no question, no annotation): for a turn, pick 2-5 of its rarer content words
(IDF over all turns, stopwords and speaker names skipped), sometimes swap one for a WordNet
synonym, and wrap them in a question template naming the turn's speaker ("When did Caroline
adopt kitten?"). Positive = the turn; hard negative = the turn of its ~32-turn window sharing most
query words. Synthetic MLDR rows give (query, gold turn or caption, non-gold turn) triples.
Turns are written as the scorer reads them (`models.scorer_f2rvlm.turn_text`).

>>> turns = [("Ann", "I adopted a tabby kitten from the shelter"), ("Bo", "so cute, what's its name?"),
...          ("Ann", "Pepper, she loves the sunny windowsill")] * 2
>>> triples = self_supervised_triples([turns], n=2, seed=0, synonyms=None)
>>> len(triples), sorted(triples[0])
(2, ['negative', 'positive', 'query'])
"""

from __future__ import annotations

import math
import random
import re
from collections import Counter
from collections.abc import Iterable, Sequence

from ..models.scorer_f2rvlm import strip_speaker_names, turn_text

STOPWORDS = frozenset("""a about above after again against all also am an and any are as at be because been before
being below between both but by can cannot could did do does doing down during each few for from further had has
have having he her here hers herself him himself his how i if in into is it its itself let me more most my myself no
nor not of off on once only or other ought our ours ourselves out over own same she should so some such than that
the their theirs them themselves then there these they this those through to too under until up very was we were
what when where which while who whom why will with would you your yours yourself yourselves yeah yes hey hi hello
wow oh thanks thank really just like know think much glad great good awesome amazing cool totally definitely lot
lots get got going gonna way things thing make made sure still even feel feels felt love loved always well sounds
sound hear keep kind time one might must us see seen look looks looking take took photo picture pic image shows
showing new year years day days today now back right want wanted need something anything everything nothing someone
everyone people pretty nice happy super fun absolutely others keeps appreciate sounded support supportive proud
excited hope hoping bet tell told said say""".split())

NAMED_TEMPLATES = ("When did {name} {w}?", "What did {name} say about {w}?", "What does {name} think about {w}?",
                   "How did {name} feel about {w}?", "What did {name} share about {w}?", "Why did {name} mention {w}?",
                   "What is {name}'s {w}?", "Where did {name} {w}?", "What kind of {w} does {name} have?",
                   "Did {name} {w}?")
ANONYMOUS_TEMPLATES = ("Who talked about {w}?", "What was said about {w}?", "{w}?")
_WORD = re.compile(r"[a-z][a-z']+")
WORDNET_DIR = "/usr/share/wordnet"  # Debian's wordnet-base (WordNet 3.0)


def content_words(text: str, skip: frozenset[str] = frozenset()) -> list[str]:
    """Lower-cased words of 3+ letters, stopwords and `skip` removed, in text order."""
    words = []
    for word in _WORD.findall(text.lower()):
        word = word.removesuffix("'s").strip("'")
        if len(word) >= 3 and word not in STOPWORDS and word not in skip and word not in words:
            words.append(word)
    return words


def wordnet_synonyms(root: str = WORDNET_DIR):
    """`word -> [first-sense single-word synonyms]` read from WordNet 3.0 database files (Debian's
    wordnet-base), or None when they are missing (synonym swaps are then skipped).

    Read directly (index.* -> first synset offset -> data.*): nltk's reader refuses Debian's files
    (no `lexnames`; paths outside nltk_data) and `wn` needs a download, which these machines lack.
    """
    import functools
    import os

    parts_of_speech = ("noun", "verb", "adj")
    if not all(os.path.isfile(os.path.join(root, f"index.{pos}")) for pos in parts_of_speech):
        return None
    index: dict[str, dict[str, int]] = {}
    for pos in parts_of_speech:
        index[pos] = {}
        with open(os.path.join(root, f"index.{pos}"), encoding="latin-1") as f:
            for line in f:
                fields = line.split()
                if line.startswith(" ") or len(fields) < 7:
                    continue
                offsets = fields[6 + int(fields[3]):]
                if offsets:
                    index[pos][fields[0]] = int(offsets[0])

    @functools.lru_cache(maxsize=None)
    def synset_words(pos: str, offset: int) -> tuple[str, ...]:
        with open(os.path.join(root, f"data.{pos}"), encoding="latin-1") as f:
            f.seek(offset)
            fields = f.readline().split()
        return tuple(fields[4 + 2 * i].lower().split("(")[0] for i in range(int(fields[3], 16)))

    def synonyms(word: str) -> list[str]:
        for lemma in _lemmas(word.lower()):
            found = {w for pos in parts_of_speech if (o := index[pos].get(lemma)) is not None
                     for w in synset_words(pos, o) if w.isalpha() and w not in (lemma, word)}
            if found:
                return sorted(found)
        return []

    return synonyms


def _lemmas(word: str) -> list[str]:
    """The word and its naive de-inflections (enough to find a WordNet lemma)."""
    out = [word]
    for suffix, replacement in (("ies", "y"), ("es", ""), ("s", ""), ("ed", ""), ("ed", "e"), ("ing", ""), ("ing", "e")):
        if word.endswith(suffix) and len(word) - len(suffix) >= 3:
            out.append(word[: -len(suffix)] + replacement)
    return out


def self_supervised_triples(conversations: Sequence[Sequence[tuple[str, str]]], n: int, seed: int = 0,
                            synonyms="wordnet", p_synonym: float = 0.3, p_anonymous: float = 0.1,
                            p_strip_names: float = 0.5, window: int = 32) -> list[dict]:
    """`n` {"query", "positive", "negative"} triples from conversations of (speaker, text) turns."""
    rng = random.Random(seed)
    if synonyms == "wordnet":
        synonyms = wordnet_synonyms()
    names = frozenset(s.split()[0].lower() for turns in conversations for s, _ in turns if s.strip())
    documents = Counter()
    for turns in conversations:
        for _, text in turns:
            documents.update(set(content_words(text, names)))
    total = sum(len(t) for t in conversations)
    idf = {w: math.log(total / c) for w, c in documents.items()}
    eligible = [(c, i) for c, turns in enumerate(conversations) for i, (_, text) in enumerate(turns)
                if len(content_words(text, names)) >= 2]
    if not eligible:
        raise ValueError("no turn has two content words to build a query from")
    out: list[dict] = []
    while len(out) < n:
        order = list(eligible)
        rng.shuffle(order)
        for c, i in order[: n - len(out)]:
            turns = conversations[c]
            speaker, text = turns[i]
            candidates = content_words(text, names)
            picked = _pick(candidates, idf, rng)
            if synonyms is not None and rng.random() < p_synonym:
                k = rng.randrange(len(picked))
                options = synonyms(picked[k])[:3]
                if options:
                    picked[k] = rng.choice(options)
            words = " ".join(picked)
            if rng.random() < p_anonymous:
                query = rng.choice(ANONYMOUS_TEMPLATES).format(w=words)
            else:
                query = rng.choice(NAMED_TEMPLATES).format(name=speaker.split()[0] if speaker.strip() else "they",
                                                           w=words)
                if rng.random() < p_strip_names:  # as the scorer sees it with strip_names on
                    query = strip_speaker_names(query, [s for s, _ in turns])
            out.append({"query": query, "positive": turn_text(speaker, text),
                        "negative": turn_text(*turns[_hard_negative(turns, i, picked, window, rng)])})
    return out


def _pick(candidates: list[str], idf: dict[str, float], rng: random.Random) -> list[str]:
    """2-5 words, rarer ones likelier (weight idf^2), kept in text order."""
    pool, picked = list(candidates), []
    for _ in range(rng.randint(2, min(5, len(candidates)))):
        choice = rng.choices(pool, weights=[idf.get(w, 0.0) ** 2 + 1e-6 for w in pool], k=1)[0]
        picked.append(choice)
        pool.remove(choice)
    return [w for w in candidates if w in picked]


def _hard_negative(turns, i: int, words: list[str], window: int, rng: random.Random) -> int:
    low = max(0, min(i - window // 2, len(turns) - window))
    stems = {w[:5] for w in words}
    pool = [j for j in range(low, min(len(turns), low + window))
            if j != i and turns[j][1].strip().lower() != turns[i][1].strip().lower()]
    if not pool:
        return (i + 1) % len(turns)
    scored = [(len(stems & {w[:5] for w in _WORD.findall(turns[j][1].lower())}), rng.random(), j) for j in pool]
    return max(scored)[2]


def synthetic_triples(rows: Iterable[dict], seed: int = 0) -> list[dict]:
    """One triple per (row, gold turn) and per (row, gold image caption): the query, the gold item,
    a non-gold turn of the same dialogue as the hard negative. Rows without gold give none."""
    from ..data.schema import row_example

    rng = random.Random(seed)
    out = []
    for row in rows:
        dialogue, query, gold_utts, gold_imgs = row_example(row)
        texts = [turn_text(u.speaker, u.text, [img.caption for img in u.images]) for u in dialogue.utterances]
        negatives = [t for k, t in enumerate(texts) if k not in set(gold_utts)]
        if not negatives:
            continue
        captions = [img.caption for img in dialogue.images]
        positives = [texts[k] for k in gold_utts] + [captions[k] for k in gold_imgs if captions[k]]
        for positive in positives:
            out.append({"query": query, "positive": positive, "negative": rng.choice(negatives)})
    return out


__all__ = ["content_words", "self_supervised_triples", "synthetic_triples", "wordnet_synonyms"]
