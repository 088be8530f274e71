"""The embedded synthetic corpus: grammar, speakers, splits, reproducibility."""
import json

import numpy as np
import pytest
import soundfile

import grammar
from espeak import EspeakError, get_espeak
from espnet_dld.data.kaldi_dir import read_data_dir, validate_data_dir
from synth_corpus import (
    DEFAULT_SPEAKERS,
    SynthSpeaker,
    check_speakers,
    main,
    prepare_synth_corpus,
)


def test_grammar():
    vocab = grammar.vocabulary()
    assert len(vocab) >= 100
    rng = np.random.default_rng(0)
    sentences = [grammar.sentence(rng) for _ in range(2000)]
    again = np.random.default_rng(0)
    assert sentences == [grammar.sentence(again) for _ in range(2000)]
    words = [w for s in sentences for w in s.split()]
    assert set(words) <= vocab
    assert len(set(words)) >= 150  # the grammar really uses its vocabulary
    lengths = [len(s.split()) for s in sentences]
    assert min(lengths) >= 3 and max(lengths) <= 14 and 5 <= np.mean(lengths) <= 8
    assert len(set(sentences)) > 0.95 * len(sentences)
    assert all(s == s.lower() and "  " not in s for s in sentences)


def test_default_speakers():
    check_speakers(DEFAULT_SPEAKERS)
    sizes = {split: len(group) for split, group in DEFAULT_SPEAKERS.items()}
    assert sizes == {"train": 16, "dev": 2, "test": 4}
    variants = {s: {spk.variant for spk in g} for s, g in DEFAULT_SPEAKERS.items()}
    assert not variants["test"] & variants["train"]
    assert not variants["dev"] & (variants["train"] | variants["test"])
    spk = DEFAULT_SPEAKERS["test"][0]
    assert spk.spk_id == f"enus_{spk.variant}_r{spk.rate}_p{spk.pitch}"
    shared = dict(DEFAULT_SPEAKERS, test=(SynthSpeaker("en", "m1", 150, 50),))
    with pytest.raises(ValueError, match="variant 'm1'"):
        check_speakers(shared)


@pytest.fixture(scope="module")
def espeak_ok():
    """The identity of the eSpeak NG backend the corpus will use."""
    try:
        es = get_espeak()
    except EspeakError as e:
        pytest.skip(str(e))
    identity = es.identity()
    es.close()
    return identity


SMALL = dict(train_utts=16, dev_utts=2, test_utts=4)


def _wavs(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.wav")}


def test_small_corpus(espeak_ok, tmp_path):
    dirs = prepare_synth_corpus(tmp_path / "wav", tmp_path / "data", **SMALL)
    utts = {s: read_data_dir(d) for s, d in dirs.items()}
    assert {s: len(u) for s, u in utts.items()} == {"train": 16, "dev": 2, "test": 4}
    spk = {s: {u.spk for u in us} for s, us in utts.items()}
    assert spk["train"] == {s.spk_id for s in DEFAULT_SPEAKERS["train"]}
    assert spk["test"] == {s.spk_id for s in DEFAULT_SPEAKERS["test"]}
    assert not (spk["train"] & spk["test"]) and not (spk["train"] & spk["dev"])
    train_text = {u.text for u in utts["train"]}
    assert not train_text & {u.text for u in utts["test"] + utts["dev"]}
    for u in utts["train"] + utts["test"]:
        x, sr = soundfile.read(u.wav, dtype="int16")
        assert sr == 16000 and x.ndim == 1
        assert 1.0 < len(x) / sr < 5.0
        assert 0.25 < np.abs(x).max() / 32768 < 1.0  # peak -6..-1 dBFS
        assert len(u.text.split()) >= 3
        assert u.utt_id.startswith(u.spk + "-")
    for d in dirs.values():
        validate_data_dir(d)


def test_reproducible_resumable_idempotent(espeak_ok, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    prepare_synth_corpus(a / "wav", a / "data", **SMALL)
    prepare_synth_corpus(b / "wav", b / "data", **SMALL)
    first = _wavs(a / "wav")
    assert first == _wavs(b / "wav") and len(first) == 22
    assert (a / "data/train/text").read_bytes() == (b / "data/train/text").read_bytes()

    stamp = {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}
    prepare_synth_corpus(a / "wav", a / "data", **SMALL)
    assert stamp == {p: p.stat().st_mtime_ns for p in a.rglob("*") if p.is_file()}

    # an interrupted run (some wavs missing) resumes to byte-identical files
    for p in sorted((a / "wav" / "train").glob("*.wav"))[::3]:
        p.unlink()
    prepare_synth_corpus(a / "wav", a / "data", **SMALL)
    assert _wavs(a / "wav") == first

    # a different seed remakes everything
    prepare_synth_corpus(a / "wav", a / "data", seed=1, **SMALL)
    again = _wavs(a / "wav")
    assert again.keys() == first.keys() and all(again[k] != first[k] for k in first)


def test_plan_records_the_voice(espeak_ok, tmp_path):
    prepare_synth_corpus(tmp_path / "wav", tmp_path / "data", train_utts=0, dev_utts=0, test_utts=4)
    assert not (tmp_path / "data" / "train").exists()
    specs = [
        json.loads(line.split("\t")[1])
        for line in (tmp_path / "wav/test/plan.tsv").read_text().splitlines()
    ]
    voices = {s["voice"] for s in specs}
    assert voices == {s.voice for s in DEFAULT_SPEAKERS["test"]}
    assert all(s["espeak"] == espeak_ok for s in specs)


def test_cli(espeak_ok, tmp_path, capsys):
    assert main(["--list_speakers"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 22
    args = ["--out_wav", str(tmp_path / "wav"), "--out_data", str(tmp_path / "data")]
    assert main(args + ["--train_utts", "2", "--dev_utts", "1", "--test_utts", "1"]) == 0
    assert validate_data_dir(tmp_path / "data" / "dev") == 1
    assert main(args + ["--train_utts", "-1"]) == 1
    assert "train_utts" in capsys.readouterr().err
