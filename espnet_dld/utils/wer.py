"""Word error rate, computed one way for every number this project reports.

Corpus level: all substitutions, deletions and insertions over all
reference words (jiwer's alignment), not a mean of per-utterance rates.  An
empty hypothesis counts as all deletions; an empty reference is the
caller's error to report (it has no words to divide by).
"""
from __future__ import annotations

from typing import Sequence

import jiwer


def align_words(refs: Sequence[str], hyps: Sequence[str]) -> "jiwer.WordOutput":
    """jiwer's word alignment of each reference with its hypothesis (counts and chunks)."""
    return jiwer.process_words(list(refs), list(hyps))


def word_errors(words: "jiwer.WordOutput") -> int:
    """Substitutions + deletions + insertions of an alignment."""
    return words.substitutions + words.deletions + words.insertions


def corpus_wer(refs: Sequence[str], hyps: Sequence[str]) -> float:
    """Corpus-level WER in percent of ``hyps`` against ``refs`` (same order)."""
    words = align_words(refs, hyps)
    return 100.0 * word_errors(words) / (words.hits + words.substitutions + words.deletions)
