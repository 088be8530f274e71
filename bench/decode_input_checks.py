#!/usr/bin/env python3
"""What the decoding input checks (issue 19) cost next to decoding itself.

* the minimum-length probe, run once when ``Speech2Text`` is built;
* ``prepare`` per utterance (file read, or array checks), inside every call;
* ``asr_inference``'s screening of a ``wav.scp`` before decoding, per utterance;
* decoding one utterance (``s2t(samples)``, checks included), for scale.

    python bench/decode_input_checks.py --asr_train_config exp/x/config.yaml \\
        --asr_model_file exp/x/valid.loss.ave.pth --wav_scp data/test/wav.scp [--ctc_greedy]
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import soundfile as sf  # noqa: E402

from common import write_json  # noqa: E402


def per_item(fn, items, repeat: int = 3) -> float:
    """Median over ``repeat`` passes of the mean seconds of ``fn(item)``."""
    runs = []
    for _ in range(repeat):
        start = time.perf_counter()
        for item in items:
            fn(item)
        runs.append((time.perf_counter() - start) / len(items))
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asr_train_config", required=True)
    parser.add_argument("--asr_model_file", required=True)
    parser.add_argument("--wav_scp", required=True)
    parser.add_argument("--max_utts", type=int, default=20)
    parser.add_argument("--ctc_greedy", action="store_true")
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from espnet_dld import Speech2Text
    from espnet_dld.asr.audio_input import ModelAudioInput
    from espnet_dld.asr.wav_scp_check import screen_sound_scp

    s2t = Speech2Text(args.asr_train_config, args.asr_model_file, ctc_greedy=args.ctc_greedy, beam_size=2)
    paths = [line.split(maxsplit=1)[1] for line in Path(args.wav_scp).read_text().splitlines()[: args.max_utts]]
    arrays = [sf.read(p, dtype="float32")[0] for p in paths]
    probe = per_item(lambda _: ModelAudioInput.for_model(s2t.asr_model, s2t.asr_train_args, s2t.device, s2t.dtype),
                     [None])
    result = {
        "utterances": len(paths),
        "mean_seconds_of_audio": sum(len(a) for a in arrays) / len(arrays) / s2t.sample_rate,
        "min_samples": s2t.min_samples,
        "probe_seconds_once": probe,
        "prepare_path_seconds": per_item(s2t.audio_input.prepare, paths),
        "prepare_array_seconds": per_item(s2t.audio_input.prepare, arrays),
        "screen_seconds_per_utt": per_item(lambda _: screen_sound_scp(args.wav_scp, s2t.audio_input), [None])
        / max(1, len(Path(args.wav_scp).read_text().splitlines())),
        "decode_seconds": per_item(s2t, arrays),
    }
    result["prepare_array_share_of_decode"] = result["prepare_array_seconds"] / result["decode_seconds"]
    result["screen_share_of_decode"] = result["screen_seconds_per_utt"] / result["decode_seconds"]
    for key, value in result.items():
        print(f"{key:32s} {value:.6g}" if isinstance(value, float) else f"{key:32s} {value}")
    write_json(args.json, result)


if __name__ == "__main__":
    main()
