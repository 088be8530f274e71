"""Decoding at chosen depths: Speech2Text, the CLI, packed models, strict loading."""
import json
import shutil
import subprocess
import sys

import pytest
import soundfile as sf
import torch
import yaml

from espnet_dld import Speech2Text
from espnet_dld.utils.checkpoint import CheckpointError

DECODE = dict(beam_size=2, ctc_weight=1.0, device="cpu")


def wave(tiny_exp, i=0):
    path = (tiny_exp.data / "wav.scp").read_text().splitlines()[i].split()[1]
    return sf.read(path)[0]


def files(exp):
    return exp / "config.yaml", exp / "valid.loss.ave.pth"


def test_depth_changes_active_blocks_and_set_depth_equals_fresh_model(tiny_exp):
    cfg, pth = files(tiny_exp.exps["dld"])
    s2t = Speech2Text(cfg, pth, depth=2, **DECODE)
    assert s2t.active_layers == [1, 3] and s2t.num_layers == 4
    speech = wave(tiny_exp)
    at2 = s2t(speech)[0][0]
    s2t.set_depth(None)
    assert s2t.active_layers == [0, 1, 2, 3]
    full = s2t(speech)[0][0]
    s2t.set_depth(2)
    assert s2t(speech)[0][0] == at2
    assert Speech2Text(cfg, pth, **DECODE)(speech)[0][0] == full
    with torch.no_grad():  # a shallower encoder really computes something else
        x = torch.tensor(speech, dtype=torch.float32)[None]
        n = torch.tensor([x.shape[1]])
        e2 = s2t.asr_model.encode(x, n)[0]
        s2t.set_depth(4)
        e4 = s2t.asr_model.encode(x, n)[0]
    assert e2.shape == e4.shape and not torch.allclose(e2, e4)


def test_bad_depths_are_refused(tiny_exp):
    cfg, pth = files(tiny_exp.exps["dld"])
    with pytest.raises(ValueError, match="valid depths are 1..4"):
        Speech2Text(cfg, pth, depth=5, **DECODE)
    s2t = Speech2Text(cfg, pth, **DECODE)
    with pytest.raises(ValueError, match="valid depths are 1..4"):
        s2t.set_depth(0)
    tcfg, tpth = files(tiny_exp.exps["teacher"])
    static = Speech2Text(tcfg, tpth, **DECODE)
    assert static.set_depth(None) is None
    with pytest.raises(ValueError, match="static"):
        static.set_depth(2)


def test_student_decodes_without_its_teacher_files(tiny_exp, tmp_path):
    exp = tmp_path / "dld"
    shutil.copytree(tiny_exp.exps["dld"], exp)
    teacher_copy = tmp_path / "teacher"
    shutil.copytree(tiny_exp.exps["teacher"], teacher_copy)
    conf = (exp / "config.yaml").read_text().replace(str(tiny_exp.exps["teacher"]), str(teacher_copy))
    (exp / "config.yaml").write_text(conf)
    shutil.rmtree(teacher_copy)  # the config now names a teacher that does not exist
    cfg, pth = files(exp)
    assert Speech2Text(cfg, pth, depth=3, **DECODE)(wave(tiny_exp))[0][0] is not None


def test_strict_loading_rejects_tampered_checkpoints(tiny_exp, tmp_path):
    cfg, pth = files(tiny_exp.exps["dld"])
    state = torch.load(pth, map_location="cpu")
    missing = dict(state)
    missing.pop("encoder.encoders.3.norm_final.weight")
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(CheckpointError, match=r"missing keys: encoder.encoders.3.norm_final.weight"):
        Speech2Text(cfg, tmp_path / "missing.pth", **DECODE)
    extra = dict(state, **{"encoder.encoders.4.norm_final.weight": torch.ones(16)})
    torch.save(extra, tmp_path / "extra.pth")
    with pytest.raises(CheckpointError, match=r"unexpected keys: encoder.encoders.4.norm_final.weight"):
        Speech2Text(cfg, tmp_path / "extra.pth", **DECODE)
    data = pth.read_bytes()
    (tmp_path / "truncated.pth").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated.pth"):
        Speech2Text(cfg, tmp_path / "truncated.pth", **DECODE)


def test_from_pretrained_packed_zip(tiny_exp, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    cfg, pth = files(tiny_exp.exps["dld"])
    zip_path = tmp_path / "model.zip"
    pack(["asr", "--asr_train_config", str(cfg), "--asr_model_file", str(pth),
          "--option", str(tiny_exp.stats / "train" / "feats_stats.npz"), "--outpath", str(zip_path)])
    speech = wave(tiny_exp, 1)
    packed = Speech2Text.from_pretrained(str(zip_path), depth=2, **DECODE)
    assert packed.active_layers == [1, 3]
    assert packed(speech)[0][0] == Speech2Text(cfg, pth, depth=2, **DECODE)(speech)[0][0]


def test_inference_cli_decodes_several_depths_in_one_process(tiny_exp, tmp_path):
    cfg, pth = files(tiny_exp.exps["dld"])
    out = tmp_path / "decode"
    r = subprocess.run(
        [sys.executable, "-m", "espnet_dld.bin.asr_inference", "--asr_train_config", str(cfg),
         "--asr_model_file", str(pth), "--data_path_and_name_and_type", f"{tiny_exp.data}/wav.scp,speech,sound",
         "--output_dir", str(out), "--depth", "1", "4", "--ctc_weight", "1.0", "--beam_size", "1", "--ngpu", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    utts = {l.split()[0] for l in (tiny_exp.data / "wav.scp").read_text().splitlines()}
    for depth, layers in ((1, [3]), (4, [0, 1, 2, 3])):
        hyp = (out / f"depth{depth}" / "1best_recog" / "text").read_text().splitlines()
        assert {l.split()[0] for l in hyp} == utts
        stats = json.loads((out / f"depth{depth}" / "decode_stats.json").read_text())
        assert stats["active_layers"] == layers and stats["utterances"] == len(utts)
        assert 0 < stats["encoder_seconds"] <= stats["decode_seconds"]
    assert "nltk_data" not in r.stderr


def test_inference_cli_refuses_a_bad_depth_before_decoding(tiny_exp, tmp_path):
    cfg, pth = files(tiny_exp.exps["dld"])
    r = subprocess.run(
        [sys.executable, "-m", "espnet_dld.bin.asr_inference", "--asr_train_config", str(cfg),
         "--asr_model_file", str(pth), "--data_path_and_name_and_type", f"{tiny_exp.data}/wav.scp,speech,sound",
         "--output_dir", str(tmp_path / "d"), "--depth", "2", "9", "--ngpu", "0"],
        capture_output=True, text=True, timeout=300,
    )
    assert r.returncode != 0
    assert "depth=9 is out of range" in r.stderr
    assert not (tmp_path / "d" / "depth2").exists()


def test_ctc_greedy_is_best_path_decoding(tiny_exp):
    cfg, pth = files(tiny_exp.exps["dld"])
    s2t = Speech2Text(cfg, pth, depth=3, ctc_greedy=True, device="cpu")
    speech = wave(tiny_exp, 2)
    text, token, token_int, hyp = s2t(speech)[0]
    with torch.no_grad():
        x = torch.tensor(speech, dtype=torch.float32)[None]
        enc, _ = s2t.asr_model.encode(x, torch.tensor([x.shape[1]]))
        best = s2t.asr_model.ctc.log_softmax(enc)[0].argmax(-1).tolist()
    expected = [t for i, t in enumerate(best) if t != 0 and (i == 0 or t != best[i - 1])]
    assert token_int == expected
    assert token == s2t.converter.ids2tokens(expected)
    assert float(hyp.score) < 0


def test_wavlm_student_decodes_at_several_depths_without_its_pretrained_file(tiny_wavlm_exp, tmp_path):
    cfg, pth = files(tiny_wavlm_exp.exps["dld"])
    moved = tmp_path / "WavLM-Tiny.pt"
    tiny_wavlm_exp.pretrained.rename(moved)  # decoding reads the model's own weights only
    try:
        s2t = Speech2Text(cfg, pth, depth=1, ctc_greedy=True, device="cpu")
        speech = wave(tiny_wavlm_exp, 1)
        x = torch.tensor(speech, dtype=torch.float32)[None]
        n = torch.tensor([x.shape[1]])
        encoded, hyps = {}, {}
        for depth, layers in ((1, [3]), (2, [1, 3]), (4, [0, 1, 2, 3])):
            assert s2t.set_depth(depth) == layers == s2t.active_layers
            hyps[depth] = s2t(speech)[0][2]
            assert s2t.asr_model.encoder.last_active_layers == layers
            with torch.no_grad():
                encoded[depth] = s2t.asr_model.encode(x, n)[0]
        assert encoded[1].shape == encoded[4].shape and encoded[4].shape[1] == (x.shape[1] - 80) // 320
        assert s2t.min_samples == 400  # the fewest samples that give one frame: (n - 80) // 320 >= 1
        with pytest.raises(ValueError, match=r"needs at least 400 samples at 16000 Hz \(25.0 ms\)"):
            s2t(speech[:399])
        assert not torch.allclose(encoded[1], encoded[4]) and not torch.allclose(encoded[2], encoded[4])
        fresh = Speech2Text(cfg, pth, depth=2, ctc_greedy=True, device="cpu")
        assert fresh(speech)[0][2] == hyps[2]
        with pytest.raises(ValueError, match="valid depths are 1..4"):
            s2t.set_depth(5)
    finally:
        moved.rename(tiny_wavlm_exp.pretrained)


def test_best_path_skips_espnets_call_and_returns_what_it_returns(tiny_exp, tmp_path):
    """ctc_greedy decodes without ESPnet's ``__call__`` wrapper (its cost is a
    per-call floor that a depth budget cannot lower); the entries are ESPnet's
    to the score, at every depth.  With intermediate CTC, whose outputs only
    ESPnet's call returns, that call runs."""
    from espnet2.bin import asr_inference as espnet_inference

    cfg, pth = files(tiny_exp.exps["dld"])
    s2t = Speech2Text(cfg, pth, ctc_greedy=True, device="cpu")
    calls = []
    original = espnet_inference.Speech2Text.__call__
    for i in range(3):
        speech = wave(tiny_exp, i).astype("float32")
        for depth in (1, 2, 4):
            with pytest.MonkeyPatch.context() as mp:
                mp.setattr(espnet_inference.Speech2Text, "__call__", lambda *a, **k: calls.append(1) or original(*a, **k))
                ours = s2t(speech, depth=depth)
            s2t.set_depth(depth)
            theirs = original(s2t, speech)
            s2t.set_depth(None)
            assert len(ours) == len(theirs) == 1
            (text, token, token_int, hyp), (text2, token2, token_int2, hyp2) = ours[0], theirs[0]
            assert (text, token, token_int) == (text2, token2, token_int2)
            assert torch.equal(hyp.yseq, hyp2.yseq) and float(hyp.score) == float(hyp2.score)
    assert calls == []

    conf = yaml.safe_load(cfg.read_text())
    conf["encoder_conf"]["interctc_layer_idx"] = [1]
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    inter = Speech2Text(tmp_path / "config.yaml", pth, ctc_greedy=True, device="cpu")
    results, intermediate = inter(wave(tiny_exp).astype("float32"), depth=4)
    assert results[0][2] == s2t(wave(tiny_exp).astype("float32"), depth=4)[0][2]
    assert sorted(intermediate) == [1] and all(isinstance(t, str) for t in intermediate[1])
