"""Decoding API (issue 19): real audio in (paths, arrays, tensors, lists,
other rates, integer PCM), clear errors out (bad audio, bad model files,
bad wav.scp entries), and no warning a user cannot act on."""
import json
import logging
import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from espnet_dld import Speech2Text
from espnet_dld.asr.audio_input import AudioInputError
from espnet_dld.data.audio import resample
from espnet_dld.utils.model_files import ModelFileError

GREEDY = dict(ctc_greedy=True, device="cpu")


def first_wav(tiny_exp, i=0):
    return (tiny_exp.data / "wav.scp").read_text().splitlines()[i].split()[1]


def hyp(out):
    text, token, token_int, h = out[0]
    return tuple(token_int), round(float(h.score), 4)


@pytest.fixture(scope="module")
def s2t(tiny_exp):
    exp = tiny_exp.exps["dld"]
    return Speech2Text(exp / "config.yaml", exp / "valid.loss.ave.pth", depth=3, **GREEDY)


@pytest.fixture(scope="module")
def packed(tiny_exp, tmp_path_factory):
    from espnet2.bin.pack import main as pack

    zip_path = tmp_path_factory.mktemp("packed") / "model.zip"
    cwd = os.getcwd()
    os.chdir(tiny_exp.root)  # relative paths, as a recipe packs: the zip's own files are decoded
    try:
        pack(["asr", "--asr_train_config", "exp/dld/config.yaml", "--asr_model_file", "exp/dld/valid.loss.ave.pth",
              "--option", "stats/train/feats_stats.npz", "--outpath", str(zip_path)])
    finally:
        os.chdir(cwd)
    return zip_path


def test_path_array_tensor_and_list_decode_alike_at_every_depth(s2t, tiny_exp):
    path = first_wav(tiny_exp)
    x, fs = sf.read(path, dtype="float32")
    assert fs == s2t.sample_rate == 16000
    layers = s2t.active_layers
    for depth in (1, 4):
        expected = hyp(s2t(x, depth=depth))
        for speech in (path, tiny_exp.data.parent / "wav" / path.rsplit("/", 1)[1], torch.from_numpy(x), x.tolist(),
                       x.astype(np.float64), x[:, None]):
            assert hyp(s2t(speech, depth=depth)) == expected
    assert s2t.active_layers == layers and len(layers) == 3  # per-call depths left the instance's depth alone


def test_int16_pcm_decodes_as_the_float_file(s2t, tiny_exp):
    path = first_wav(tiny_exp)
    as_int16, _ = sf.read(path, dtype="int16")
    assert as_int16.dtype == np.int16
    assert hyp(s2t(as_int16)) == hyp(s2t(path)) == hyp(s2t(torch.from_numpy(as_int16)))
    with pytest.raises(ValueError, match="integer samples of type int64, whose full scale is unknown"):
        s2t(as_int16.astype(np.int64))
    with pytest.warns(UserWarning, match=r"peaks at \d+, but float audio is expected in \[-1, 1\]"):
        s2t(as_int16.astype(np.float32))


def test_other_rates_are_resampled_and_logged_once(s2t, tiny_exp, tmp_path, caplog):
    x, _ = sf.read(first_wav(tiny_exp), dtype="float32")
    x8 = resample(x, 16000, 8000).astype(np.float32)
    sf.write(tmp_path / "a8k.wav", x8, 8000, subtype="FLOAT")
    expected = hyp(s2t(resample(x8, 8000, 16000).astype(np.float32)))
    with caplog.at_level(logging.INFO, logger="espnet_dld.asr.audio_input"):
        assert hyp(s2t(x8, fs=8000)) == expected
        assert hyp(s2t(tmp_path / "a8k.wav")) == expected  # a file's own rate
        assert hyp(s2t(x8.tolist(), fs=8000.0)) == expected
    logged = [r.getMessage() for r in caplog.records if "resampling" in r.getMessage()]
    assert logged == ["resampling input audio from 8000 Hz to the model's 16000 Hz (logged once per rate)"]
    with pytest.raises(ValueError, match=r"fs=16000 was given, but audio file .*a8k.wav is recorded at 8000 Hz"):
        s2t(tmp_path / "a8k.wav", fs=16000)
    with pytest.raises(ValueError, match=r"fs must be a sampling rate in Hz \(a positive integer\), got '8k'"):
        s2t(x8, fs="8k")


def test_empty_and_too_short_audio_name_the_minimum(s2t, tiny_exp):
    # n_fft 512, hop 160, centred frames; conv2d needs 7 frames: 6 hops = 960 samples
    assert s2t.min_samples == 960
    x, _ = sf.read(first_wav(tiny_exp), dtype="float32")
    s2t(x[:960])  # the minimum decodes
    for n, fragment in ((0, "speech is empty (0 samples)"), (100, "speech is too short: 100 samples at 16000 Hz (6.2 ms)"),
                        (959, "speech is too short: 959 samples")):
        with pytest.raises(ValueError) as e:
            s2t(x[:n])
        assert fragment in str(e.value)
        assert "this model needs at least 960 samples at 16000 Hz (60.0 ms)" in str(e.value)
    with pytest.raises(ValueError, match=r"needs at least 480 samples at 8000 Hz \(60.0 ms\)"):
        s2t(x[:300], fs=8000)


def test_nan_inf_channels_and_unreadable_files_are_refused(s2t, tiny_exp, tmp_path):
    x, _ = sf.read(first_wav(tiny_exp), dtype="float32")
    nan = x.copy()
    nan[1000] = np.nan
    inf = x.copy()
    inf[5] = -np.inf
    with pytest.raises(ValueError, match=r"1 NaN and 0 infinite sample\(s\) \(first at sample 1000 of"):
        s2t(nan)
    with pytest.raises(ValueError, match=r"0 NaN and 1 infinite sample\(s\) \(first at sample 5 of"):
        s2t(torch.from_numpy(inf))
    with pytest.raises(ValueError, match=r"speech has 2 channels .*speech.mean\(axis=1\)"):
        s2t(np.stack([x, x], axis=1))
    sf.write(tmp_path / "stereo.wav", np.stack([x, x], axis=1), 16000)
    with pytest.raises(ValueError, match=rf"audio file {tmp_path}/stereo.wav has 2 channels"):
        s2t(tmp_path / "stereo.wav")
    (tmp_path / "broken.wav").write_bytes(b"RIFF\x00\x00garbage" * 10)
    with pytest.raises(ValueError, match=rf"cannot read audio file {tmp_path}/broken.wav"):
        s2t(str(tmp_path / "broken.wav"))
    with pytest.raises(ValueError, match=rf"audio file {tmp_path}/none.wav does not exist"):
        s2t(str(tmp_path / "none.wav"))
    assert issubclass(AudioInputError, ValueError)


# -- model files ---------------------------------------------------------------

def _rewrite_zip(src, dst, drop=(), change=None):
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            if any(item.filename.endswith(d) for d in drop):
                continue
            data = zin.read(item.filename)
            if change and item.filename.endswith(change[0]):
                data = change[1](data)
            zout.writestr(item, data)
    return dst


def test_truncated_or_corrupt_zips_name_the_file_and_what_to_do(packed, tmp_path, monkeypatch):
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    data = packed.read_bytes()
    (tmp_path / "truncated.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError) as e:
        Speech2Text.from_pretrained(str(tmp_path / "truncated.zip"), **GREEDY)
    message = str(e.value)
    assert f"packed model {tmp_path}/truncated.zip is not a readable zip archive" in message
    assert "re-download it, or re-pack it" in message and "python -m espnet2.bin.pack asr" in message

    corrupt = bytearray(data)  # flip bytes inside the model's compressed data: the CRC no longer matches
    with zipfile.ZipFile(packed) as z:
        info = next(i for i in z.infolist() if i.filename.endswith(".pth"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 100
    corrupt[start : start + 64] = bytes(64)
    (tmp_path / "corrupt.zip").write_bytes(bytes(corrupt))
    for _ in range(2):  # the failed unpack leaves no cache that a second try would trust
        with pytest.raises(ModelFileError) as e:
            Speech2Text.from_pretrained(str(tmp_path / "corrupt.zip"), **GREEDY)
        assert f"packed model {tmp_path}/corrupt.zip is corrupt" in str(e.value)
        assert "re-download it" in str(e.value)


def test_packed_tgz_is_checked_as_well(tiny_exp, s2t, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tiny_exp.root)
    pack(["asr", "--asr_train_config", "exp/dld/config.yaml", "--asr_model_file", "exp/dld/valid.loss.ave.pth",
          "--option", "stats/train/feats_stats.npz", "--outpath", str(tmp_path / "model.tgz")])
    wav = first_wav(tiny_exp)
    assert hyp(Speech2Text.from_pretrained(str(tmp_path / "model.tgz"), depth=3, **GREEDY)(wav)) == hyp(s2t(wav))
    data = (tmp_path / "model.tgz").read_bytes()
    (tmp_path / "truncated.tgz").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelFileError, match=rf"packed model {tmp_path}/truncated.tgz cannot be read \(truncated or corrupt\)"):
        Speech2Text.from_pretrained(str(tmp_path / "truncated.tgz"), **GREEDY)


@pytest.mark.parametrize(
    "drop, fragment",
    [
        (".pth", ".pth, which its meta.yaml lists as asr_model_file"),
        ("config.yaml", "config.yaml, which its meta.yaml lists as asr_train_config"),
        ("meta.yaml", "holds no meta.yaml"),
    ],
)
def test_zip_without_model_config_or_meta_is_named(packed, tmp_path, monkeypatch, drop, fragment):
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    broken = _rewrite_zip(packed, tmp_path / "broken.zip", drop=[drop])
    with pytest.raises(ModelFileError) as e:
        Speech2Text.from_pretrained(str(broken), **GREEDY)
    assert f"packed model {broken}" in str(e.value) and fragment in str(e.value)
    assert "re-pack it" in str(e.value)


def test_meta_without_a_model_entry_is_named(packed, tmp_path, monkeypatch):
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))

    def no_model(data):
        meta = yaml.safe_load(data)
        meta["files"].pop("asr_model_file")
        return yaml.safe_dump(meta).encode()

    broken = _rewrite_zip(packed, tmp_path / "nomodel.zip", change=("meta.yaml", no_model))
    with pytest.raises(ModelFileError, match=r"nomodel.zip has no model file \(its meta.yaml lists no asr_model_file\)"):
        Speech2Text.from_pretrained(str(broken), **GREEDY)


def test_config_with_an_unregistered_encoder_names_the_config(tiny_exp, packed, tmp_path, monkeypatch):
    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    exp = tiny_exp.exps["dld"]
    conf = yaml.safe_load((exp / "config.yaml").read_text())
    conf["encoder"] = "dld_future_encoder"
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(ModelFileError) as e:
        Speech2Text(tmp_path / "config.yaml", exp / "valid.loss.ave.pth", **GREEDY)
    message = str(e.value)
    assert f"config {tmp_path}/config.yaml: encoder 'dld_future_encoder' is not registered" in message
    assert "dld_conformer" in message and "install the espnet-dld/ESPnet version it was trained with" in message

    def future(data):
        c = yaml.safe_load(data)
        c["encoder"] = "dld_future_encoder"
        return yaml.safe_dump(c).encode()

    broken = _rewrite_zip(packed, tmp_path / "future.zip", change=("config.yaml", future))
    with pytest.raises(ModelFileError, match=r"config .*config.yaml: encoder 'dld_future_encoder' is not registered"):
        Speech2Text.from_pretrained(str(broken), **GREEDY)
    (tmp_path / "bad.yaml").write_text("encoder: [unclosed\n")
    with pytest.raises(ModelFileError, match=rf"config {tmp_path}/bad.yaml is not valid YAML"):
        Speech2Text(tmp_path / "bad.yaml", exp / "valid.loss.ave.pth", **GREEDY)


# -- asr_inference ---------------------------------------------------------------

def _bad_scp(tiny_exp, tmp_path):
    """wav.scp of 3 good utterances and 5 bad ones (key -> what the reason says)."""
    good = (tiny_exp.data / "wav.scp").read_text().splitlines()[:3]
    x, _ = sf.read(first_wav(tiny_exp), dtype="float32")
    sf.write(tmp_path / "short.wav", x[:500], 16000)
    sf.write(tmp_path / "rate8k.wav", resample(x, 16000, 8000), 8000)
    sf.write(tmp_path / "stereo.wav", np.stack([x, x], 1), 16000)
    nan = x.copy()
    nan[10] = np.nan
    sf.write(tmp_path / "nan.wav", nan, 16000, subtype="FLOAT")
    bad = {
        "b-missing": (tmp_path / "missing.wav", "does not exist"),
        "b-short": (tmp_path / "short.wav", "audio is too short: 500 samples"),
        "b-rate": (tmp_path / "rate8k.wav", "recorded at 8000 Hz, but the model was trained at 16000 Hz"),
        "b-stereo": (tmp_path / "stereo.wav", "has 2 channels"),
        "b-nan": (tmp_path / "nan.wav", "1 NaN and 0 infinite"),
    }
    scp = tmp_path / "wav.scp"
    scp.write_text("\n".join(sorted(good + [f"{k} {p}" for k, (p, _) in bad.items()])) + "\n")
    return scp, [line.split()[0] for line in good], bad


def test_inference_cli_stops_on_a_bad_entry_with_key_and_path(tiny_exp, tmp_path, capsys):
    from espnet_dld.bin.asr_inference import main

    exp = tiny_exp.exps["dld"]
    scp, good, bad = _bad_scp(tiny_exp, tmp_path)
    common = ["--asr_train_config", str(exp / "config.yaml"), "--asr_model_file", str(exp / "valid.loss.ave.pth"),
              "--data_path_and_name_and_type", f"{scp},speech,sound", "--ctc_greedy", "true", "--ngpu", "0",
              "--depth", "1", "4"]
    out = tmp_path / "stop"
    assert main(common + ["--output_dir", str(out)]) == 1
    err = capsys.readouterr().err
    assert "ERROR: asr_inference: 5 utterance(s) of" in err and "--skip_bad_utts true" in err
    for key, (path, reason) in bad.items():
        assert f"  {key}  {path}: " in err and reason in err
    assert not (out / "depth1").exists() and not (out / "depth4").exists()  # nothing decoded
    listed = {line.split("\t")[0]: line.split("\t") for line in (out / "bad_utts.txt").read_text().splitlines()}
    assert set(listed) == set(bad)

    out = tmp_path / "skip"
    assert main(common + ["--output_dir", str(out), "--skip_bad_utts", "true"]) == 0
    listed = [line.split("\t") for line in (out / "bad_utts.txt").read_text().splitlines()]
    assert {(k, p) for k, p, _ in listed} == {(k, str(p)) for k, (p, _) in bad.items()}
    assert all(bad[k][1] in reason for k, _, reason in listed)
    for depth in (1, 4):
        decoded = [line.split()[0] for line in (out / f"depth{depth}" / "1best_recog" / "token").read_text().splitlines()]
        assert sorted(decoded) == sorted(good)
        assert json.loads((out / f"depth{depth}" / "decode_stats.json").read_text())["utterances"] == len(good)

    assert main(common[:5] + [f"{tiny_exp.data}/wav.scp,speech,sound"] + common[6:] + ["--output_dir", str(out)]) == 0
    assert not (out / "bad_utts.txt").exists()  # a clean rerun removes the old list


# -- warnings ---------------------------------------------------------------

def test_readme_quick_start_prints_no_warning(tiny_exp, packed, tmp_path):
    wav = first_wav(tiny_exp)
    script = textwrap.dedent(f"""
        import soundfile as sf
        from espnet_dld import Speech2Text
        from espnet_dld.data.audio import resample

        s2t = Speech2Text({str(tiny_exp.exps['dld'] / 'config.yaml')!r}, {str(tiny_exp.exps['dld'] / 'valid.loss.ave.pth')!r}, depth=3, beam_size=2)
        text, *_ = s2t({wav!r})[0]
        samples, fs = sf.read({wav!r})
        text, *_ = s2t(resample(samples, fs, 8000), fs=8000)[0]
        s2t.set_depth(1)
        text, *_ = s2t(samples, depth=2)[0]
        s2t = Speech2Text.from_pretrained({str(packed)!r}, depth=4, ctc_greedy=True)
        text, *_ = s2t({wav!r})[0]
        print("decoded")
    """)
    env = {"ESPNET_DLD_CACHE": str(tmp_path / "cache"), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "OMP_NUM_THREADS": "1", "PYTHONPATH": ":".join(p for p in sys.path if p)}
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.strip().endswith("decoded")
    assert r.stderr == "", r.stderr[-3000:]


def test_warning_filters_are_targeted_by_message_and_module():
    import warnings

    from espnet_dld.utils.espnet_warnings import EspnetNoticeFilter, filter_unactionable_espnet_warnings

    message = "`torch.cuda.amp.autocast(args...)` is deprecated. Please use `torch.amp.autocast('cuda', args...)` instead."
    with warnings.catch_warnings(record=True) as caught:
        warnings.resetwarnings()
        warnings.simplefilter("always")
        filter_unactionable_espnet_warnings()
        filter_unactionable_espnet_warnings()  # idempotent
        warnings.warn_explicit(message, FutureWarning, "espnet_model.py", 402, module="espnet2.asr.espnet_model")
        warnings.warn_explicit(message, FutureWarning, "mine.py", 1, module="my_project.train")
        warnings.warn_explicit("something else is deprecated", FutureWarning, "x.py", 1, module="espnet2.asr.x")
    assert [str(w.message) for w in caught] == [message, "something else is deprecated"]

    def record(path, msg, level=logging.WARNING):
        return logging.LogRecord("root", level, path, 1, msg, None, None)

    f = EspnetNoticeFilter()
    legacy = "Using legacy_rel_pos and it will be deprecated in the future."
    assert not f.filter(record("/site-packages/espnet2/asr/encoder/conformer_encoder.py", legacy))
    assert f.filter(record("/home/me/my_encoder.py", legacy))
    demoted = record("/site-packages/espnet2/asr/espnet_model.py", "Set decoder to none as ctc_weight==1.0")
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.WARNING)
        assert not f.filter(demoted) and demoted.levelname == "INFO"
        root.setLevel(logging.INFO)
        assert f.filter(record("/site-packages/espnet2/asr/espnet_model.py", "Set decoder to none as ctc_weight==1.0"))
    finally:
        root.setLevel(level)
