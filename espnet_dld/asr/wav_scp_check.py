"""Decoding data checked before anything is decoded.

ESPnet's ``asr_inference`` reads ``wav.scp`` lazily inside its data loader:
a missing or corrupt file stops it half-way with soundfile's error and no
utterance id, and audio at another rate, NaNs or integer garbage are
decoded without a word.  :func:`screen_decoding_data` reads every
recording of the ``sound`` inputs once, up front, with the checks
``Speech2Text`` applies to a single call (:mod:`espnet_dld.asr.audio_input`),
and either stops with the key and the path of each bad entry, or, when asked,
leaves them out and lists them in ``<output_dir>/bad_utts.txt``
(``key<TAB>path<TAB>reason``, as the recipe's ``format_audio`` lists bad audio).
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Set

from espnet_dld.asr.audio_input import AudioInputError, ModelAudioInput, read_audio_file
from espnet_dld.data.atomic import write_text_atomic
from espnet_dld.data.bad_utts import BAD_UTTS, BadUtt

logger = logging.getLogger(__name__)

DECODED_KEYS = "decoded_keys.txt"


class BadDecodingData(ValueError):
    """Entries of the decoding data that cannot be decoded (named with key and path)."""


def read_key_file(key_file: str) -> List[str]:
    """The keys (first column) of ESPnet's ``--key_file``."""
    return [line.split(maxsplit=1)[0] for line in Path(key_file).read_text(encoding="utf-8").splitlines()
            if line.strip()]


def screen_sound_scp(scp: str, audio_input: ModelAudioInput, keys: Optional[Set[str]] = None) -> List[BadUtt]:
    """Every entry of ``scp`` (only ``keys``, if given) that the model cannot
    decode as it is, and why."""
    from espnet2.fileio.read_text import read_2columns_text  # the parser ESPnet's loader uses

    bad = []
    for key, path in read_2columns_text(scp).items():
        if keys is not None and key not in keys:
            continue
        try:
            data, fs = read_audio_file(path)
            if fs != audio_input.sample_rate:
                raise AudioInputError(
                    f"recorded at {fs} Hz, but the model was trained at {audio_input.sample_rate} Hz; resample "
                    f"the data to {audio_input.sample_rate} Hz first (e.g. `sox in.wav -r {audio_input.sample_rate} out.wav`; "
                    f"the recipes' audio formatting does this with --fs), or decode it through Speech2Text with fs="
                )
            audio_input.check(data, fs, what="audio")
        except AudioInputError as e:
            bad.append(BadUtt(key, path, str(e)))
    return bad


def sound_inputs(data_path_and_name_and_type: Iterable[Sequence[str]]) -> List[str]:
    """The files of ``--data_path_and_name_and_type`` of type ``sound``."""
    return [path for path, _name, kind in data_path_and_name_and_type if kind == "sound"]


def screen_decoding_data(
    audio_input: ModelAudioInput,
    data_path_and_name_and_type: Iterable[Sequence[str]],
    output_dir: str,
    key_file: Optional[str] = None,
    skip_bad_utts: bool = False,
) -> Optional[str]:
    """Check every recording that will be decoded; returns the ``key_file``
    to decode with (a new one without the bad keys when they are skipped).

    Bad entries are written to ``<output_dir>/bad_utts.txt`` either way;
    without ``skip_bad_utts`` a :class:`BadDecodingData` names them.
    """
    keys = read_key_file(key_file) if key_file else None
    bad: List[BadUtt] = []
    scps = sound_inputs(data_path_and_name_and_type)
    for scp in scps:
        bad.extend(screen_sound_scp(scp, audio_input, set(keys) if keys is not None else None))
    out = Path(output_dir)
    listing = out / BAD_UTTS
    if not bad:
        listing.unlink(missing_ok=True)  # a list from an earlier run no longer holds
        return key_file
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(listing, "".join(b.line() + "\n" for b in bad))
    shown = "\n".join(f"  {b.utt_id}  {b.file}: {b.reason}" for b in bad[:10])
    more = f"\n  ... and {len(bad) - 10} more" if len(bad) > 10 else ""
    if not skip_bad_utts:
        raise BadDecodingData(
            f"{len(bad)} utterance(s) of {', '.join(scps)} cannot be decoded (listed in {listing}):\n{shown}{more}\n"
            "fix them, or rerun with --skip_bad_utts true to decode the others"
        )
    from espnet2.fileio.read_text import read_2columns_text

    bad_keys = {b.utt_id for b in bad}
    all_keys = keys if keys is not None else list(read_2columns_text(scps[0]))
    good = [k for k in all_keys if k not in bad_keys]
    if not good:
        raise BadDecodingData(f"no utterance of {', '.join(scps)} can be decoded (listed in {listing}):\n"
                              f"{shown}{more}")
    decoded = out / DECODED_KEYS
    write_text_atomic(decoded, "".join(k + "\n" for k in good))
    logger.warning("skipping %d bad utterance(s) (--skip_bad_utts true), listed in %s:\n%s%s",
                   len(bad), listing, shown, more)
    return str(decoded)
