"""espnet_dld.bin.export_depth: a depth-k static ESPnet model that ESPnet
alone decodes exactly as the dynamic model decodes at depth k."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from espnet_dld.bin.export_depth import block_state_dict, export_depth, main, remap_interctc
from espnet_dld.utils.espnet_only import BLOCK_ESPNET_DLD

DECODE = dict(beam_size=2, ctc_weight=1.0, nbest=1, device="cpu")

# Runs with ESPnet only: espnet_dld cannot be imported (a meta-path blocker,
# no PYTHONPATH, cwd outside the source tree).
ESPNET_ONLY = BLOCK_ESPNET_DLD + r"""
import sys
import json
import numpy as np, torch
from espnet_model_zoo.downloader import ModelDownloader
from espnet2.bin.asr_inference import Speech2Text
args = json.loads(sys.argv[1])
data = np.load(args["batch"])
speech, lengths = torch.from_numpy(data["speech"]), torch.from_numpy(data["lengths"])
try:  # the dynamic model itself needs espnet_dld
    Speech2Text(**ModelDownloader(args["zoo"]).download_and_unpack(args["full"]), **args["decode"])
    dynamic_loads = True
except Exception:
    dynamic_loads = False
out = {"dynamic_loads": dynamic_loads, "models": {}}
for name, zip_path in args["exports"].items():
    files = ModelDownloader(args["zoo"]).download_and_unpack(zip_path)
    s2t = Speech2Text(**files, **args["decode"])
    with torch.no_grad():
        enc, enc_lens = s2t.asr_model.encode(speech, lengths)
    np.savez(f"{args['out']}/{name}.npz", enc=enc.numpy(), enc_lens=enc_lens.numpy())
    hyps = [s2t(speech[i, : lengths[i]])[0] for i in range(len(lengths))]
    encoder = type(s2t.asr_model.encoder)
    out["models"][name] = {"encoder": encoder.__module__ + "." + encoder.__name__,
                           "num_blocks": len(s2t.asr_model.encoder.encoders),
                           "hyps": [[h[0], h[2]] for h in hyps]}
out["espnet_dld_loaded"] = sorted(m for m in sys.modules if m.split(".")[0] == "espnet_dld")
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def exported(tiny_exp, tmp_path_factory):
    """The full DLD student packed by ESPnet, and two exports of it."""
    from espnet2.main_funcs.pack_funcs import pack

    tmp = tmp_path_factory.mktemp("export")
    exp = tiny_exp.exps["dld"]
    cwd = os.getcwd()
    os.chdir(tiny_exp.root)  # ESPnet's pack names files relative to the working directory
    try:
        pack(files={"asr_model_file": "exp/dld/1epoch.pth"}, yaml_files={"asr_train_config": "exp/dld/config.yaml"},
             option=["stats/train/feats_stats.npz"], outpath=tmp / "full.zip")
    finally:
        os.chdir(cwd)
    results = {
        "d2": export_depth(tmp / "model_d2.zip", depth=2, model=tmp / "full.zip"),
        "l03": export_depth(tmp / "model_l03.zip", layers=[0, 3], asr_train_config=exp / "config.yaml",
                            asr_model_file=exp / "1epoch.pth"),
    }
    return tmp, results


def test_block_selection_and_renumbering():
    state = {"encoder.encoders.0.w": torch.zeros(1), "encoder.encoders.1.w": torch.ones(1),
             "encoder.encoders.3.w": torch.full((1,), 3.0), "encoder.after_norm.w": torch.full((1,), 9.0),
             "ctc.ctc_lo.weight": torch.full((1,), 7.0)}
    state = OrderedDict(state)
    state._metadata = OrderedDict((k, {"version": i}) for i, k in enumerate(
        ["", "encoder", "encoder.encoders", "encoder.encoders.0", "encoder.encoders.1", "encoder.encoders.1.norm",
         "encoder.encoders.3", "ctc"]))
    out = block_state_dict(state, [1, 3])
    assert out._metadata == {"": {"version": 0}, "encoder": {"version": 1}, "encoder.encoders": {"version": 2},
                             "encoder.encoders.0": {"version": 4}, "encoder.encoders.0.norm": {"version": 5},
                             "encoder.encoders.1": {"version": 6}, "ctc": {"version": 7}}
    assert {k: v.item() for k, v in out.items()} == {
        "encoder.encoders.0.w": 1.0, "encoder.encoders.1.w": 3.0, "encoder.after_norm.w": 9.0, "ctc.ctc_lo.weight": 7.0}
    assert remap_interctc([2, 4], [1, 3, 5]) == [1, 2]
    with pytest.raises(ValueError, match=r"contains 3 \(after block 2\), but the exported blocks are \[1, 3, 5\]"):
        remap_interctc([3], [1, 3, 5])
    with pytest.raises(ValueError, match=r"contains 4 \(after block 3\), which is the last of the exported blocks"):
        remap_interctc([4], [1, 3])


def test_export_is_a_plain_espnet_model_with_the_chosen_blocks(exported, tiny_exp):
    tmp, results = exported
    assert results["d2"]["layers"] == [1, 3]  # uniform depth policy, as Speech2Text(depth=2)
    assert results["l03"]["layers"] == [0, 3]
    for r in results.values():
        assert r["num_layers"] == 4 and r["max_abs_diff"] < 1e-5
        assert r["output_bytes"] == Path(r["outpath"]).stat().st_size
    full_zip = (tmp / "full.zip").stat().st_size
    assert results["d2"]["input_bytes"] == full_zip and results["d2"]["output_bytes"] < 0.7 * full_zip
    assert results["l03"]["output_model_bytes"] < 0.7 * results["l03"]["input_model_bytes"]
    with zipfile.ZipFile(tmp / "model_d2.zip") as z:
        names = sorted(z.namelist())
        conf = yaml.safe_load(z.read("exp/dld_depth2/config.yaml"))
    # the package's feature stats keep their name; the config's absolute path is packed too
    assert names == ["exp/dld_depth2/1epoch.pth", "exp/dld_depth2/config.yaml", "exp/dld_depth2/feats_stats.npz",
                     "meta.yaml", "stats/train/feats_stats.npz"]
    assert conf["encoder"] == "conformer" and conf["model"] == "espnet"
    assert conf["normalize_conf"]["stats_file"] == "exp/dld_depth2/feats_stats.npz"
    original = yaml.safe_load((tiny_exp.exps["dld"] / "config.yaml").read_text())
    expected_enc = {k: v for k, v in original["encoder_conf"].items() if k != "layer_drop_prob"}
    assert conf["encoder_conf"] == dict(expected_enc, num_blocks=2)
    assert conf["model_conf"] == {"ctc_weight": 1.0}
    changed = ("encoder", "encoder_conf", "model", "model_conf", "normalize_conf")
    assert {k: v for k, v in conf.items() if k not in changed} == {
        k: v for k, v in original.items() if k not in changed}


def test_espnet_alone_decodes_the_export_as_the_dynamic_model(exported, tiny_exp, tmp_path):
    from espnet_dld import Speech2Text

    tmp, _ = exported
    speech, lengths, _, _ = tiny_exp.batch(3)
    np.savez(tmp_path / "batch.npz", speech=speech.numpy(), lengths=lengths.numpy())
    args = {"batch": str(tmp_path / "batch.npz"), "zoo": str(tmp_path / "zoo"), "out": str(tmp_path),
            "full": str(tmp / "full.zip"), "decode": DECODE,
            "exports": {"d2": str(tmp / "model_d2.zip"), "l03": str(tmp / "model_l03.zip")}}
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "OMP_NUM_THREADS": "1", "HOME": str(tmp_path)}
    r = subprocess.run([sys.executable, "-c", ESPNET_ONLY, json.dumps(args)], capture_output=True, text=True,
                       timeout=300, cwd=tmp_path, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["espnet_dld_loaded"] == [] and out["dynamic_loads"] is False

    exp = tiny_exp.exps["dld"]
    s2t = Speech2Text(exp / "config.yaml", exp / "1epoch.pth", **DECODE)
    for name, setting in (("d2", {"depth": 2}), ("l03", {"layers": [0, 3]})):
        static = out["models"][name]
        assert static["encoder"] == "espnet2.asr.encoder.conformer_encoder.ConformerEncoder"
        assert static["num_blocks"] == 2
        s2t.set_depth(**setting)
        with torch.no_grad():
            enc, enc_lens = s2t.asr_model.encode(speech, lengths)
        saved = np.load(tmp_path / f"{name}.npz")
        assert np.array_equal(saved["enc_lens"], enc_lens.numpy())
        assert np.allclose(saved["enc"], enc.numpy(), atol=1e-5, rtol=1e-4)
        dynamic = [[h[0], h[2]] for h in (s2t(speech[i, : lengths[i]])[0] for i in range(len(lengths)))]
        assert static["hyps"] == dynamic


def _variant(tiny_exp, folder: Path, encoder_conf: dict, random_weights: bool = False, **changes) -> Path:
    """The DLD student's config with ``encoder_conf`` updated (a None value
    removes the option) and other top-level ``changes``, next to a link to its weights or, for another
    architecture, to random weights."""
    exp = tiny_exp.exps["dld"]
    conf = yaml.safe_load((exp / "config.yaml").read_text())
    conf["encoder_conf"] = {k: v for k, v in {**conf["encoder_conf"], **encoder_conf}.items() if v is not None}
    conf.update(changes)
    folder.mkdir()
    (folder / "config.yaml").write_text(yaml.safe_dump(conf))
    if random_weights:
        from espnet_dld.asr.trained_model import rebuilding_trained_model
        from espnet_dld.tasks.asr import ASRTask

        torch.manual_seed(0)
        with rebuilding_trained_model():
            model, _ = ASRTask.build_model_from_file(folder / "config.yaml", None, "cpu")
        torch.save(model.state_dict(), folder / "1epoch.pth")
    else:
        (folder / "1epoch.pth").symlink_to(exp / "1epoch.pth")
    return folder / "1epoch.pth"


def test_transformer_with_first_blocks_policy(tiny_exp, tmp_path):
    """dld_transformer becomes ESPnet's transformer; depth_policy first keeps blocks 0..k-1."""
    transformer = {"output_size": 16, "attention_heads": 2, "linear_units": 32, "num_blocks": 3,
                   "input_layer": "conv2d", "layer_drop_prob": 0.5, "depth_policy": "first"}
    pth = _variant(tiny_exp, tmp_path / "tr", {"cnn_module_kernel": None, **transformer}, random_weights=True,
                   encoder="dld_transformer")
    r = export_depth(tmp_path / "tr_d2.zip", depth=2, asr_model_file=pth)
    assert r["layers"] == [0, 1] and r["max_abs_diff"] < 1e-5
    with zipfile.ZipFile(tmp_path / "tr_d2.zip") as z:
        conf = yaml.safe_load(z.read("exp/tr_depth2/config.yaml"))
        state = torch.load(z.open("exp/tr_depth2/1epoch.pth"), map_location="cpu")
    assert conf["encoder"] == "transformer"
    dynamic_only = ("layer_drop_prob", "depth_policy")
    assert conf["encoder_conf"] == {**{k: v for k, v in transformer.items() if k not in dynamic_only}, "num_blocks": 2}
    original = torch.load(pth, map_location="cpu")
    assert sorted({k.split(".")[2] for k in state if k.startswith("encoder.encoders.")}) == ["0", "1"]
    assert all(torch.equal(state[k], original[k]) for k in state)  # blocks 0, 1 keep their numbers


def test_refusals_name_the_reason(tiny_exp, tmp_path, capsys):
    exp = tiny_exp.exps["dld"]
    out = tmp_path / "out.zip"
    assert main(["--asr_model_file", str(exp / "1epoch.pth"), "--depth", "5", "--outpath", str(out)]) == 1
    assert "depth=5 is out of range: the encoder has 4 blocks, valid depths are 1..4" in capsys.readouterr().err

    norm = _variant(tiny_exp, tmp_path / "norm", {"keep_final_norm_when_dropped": True})
    assert main(["--asr_model_file", str(norm), "--depth", "2", "--outpath", str(out)]) == 1
    err = capsys.readouterr().err
    assert "encoder_conf.keep_final_norm_when_dropped is true" in err and "only depth 4, all blocks" in err
    # all blocks: nothing is dropped, so the static model is exact
    full = export_depth(out, depth=4, asr_model_file=norm)
    assert full["layers"] == [0, 1, 2, 3] and full["max_abs_diff"] < 1e-5
    with zipfile.ZipFile(out) as z:
        conf = yaml.safe_load(z.read("exp/norm_depth4/config.yaml"))
    assert "keep_final_norm_when_dropped" not in conf["encoder_conf"] and conf["encoder_conf"]["num_blocks"] == 4

    inter = _variant(tiny_exp, tmp_path / "inter", {"interctc_layer_idx": [1]})
    assert main(["--asr_model_file", str(inter), "--depth", "2", "--outpath", str(out)]) == 1
    err = capsys.readouterr().err
    assert "interctc_layer_idx contains 1 (after block 0), but the exported blocks are [1, 3]" in err

    wavlm = _variant(tiny_exp, tmp_path / "wavlm", {}, encoder="dld_wavlm")
    assert main(["--asr_model_file", str(wavlm), "--depth", "2", "--outpath", str(out)]) == 1
    err = capsys.readouterr().err
    assert "encoder 'dld_wavlm': its static form 'wavlm' (WavLMEncoder) is espnet_dld's own class" in err
    assert str(tmp_path / "wavlm" / "config.yaml") in err
    gone = _variant(tiny_exp, tmp_path / "gone", {}, normalize_conf={"stats_file": str(tmp_path / "gone.npz")})
    assert main(["--asr_model_file", str(gone), "--depth", "2", "--outpath", str(tmp_path / "gone.zip")]) == 1
    assert f"normalize_conf.stats_file names {tmp_path / 'gone.npz'}, which does not exist" in capsys.readouterr().err
    assert not (tmp_path / ".out.tmp.zip").exists() and not (tmp_path / "gone.zip").exists()
