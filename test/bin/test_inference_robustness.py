"""Decoding robustness (issue 5): per-call depths from several threads, and
checkpoints of another depth or width refused with the keys named."""
import shutil
from concurrent.futures import ThreadPoolExecutor

import pytest
import soundfile as sf
import yaml

from espnet_dld import Speech2Text
from espnet_dld.utils.checkpoint import CheckpointError

DECODE = dict(beam_size=2, ctc_weight=1.0, device="cpu")


def waves(tiny_exp, n=4):
    return [sf.read(l.split()[1])[0] for l in (tiny_exp.data / "wav.scp").read_text().splitlines()[:n]]


def _result(out):
    text, token, token_int, hyp = out[0]
    return text, tuple(token_int), round(float(hyp.score), 4)


def test_threads_at_changing_depths_equal_sequential_calls(tiny_exp):
    exp = tiny_exp.exps["dld"]
    s2t = Speech2Text(exp / "config.yaml", exp / "valid.loss.ave.pth", **DECODE)
    speech = waves(tiny_exp)
    jobs = [(i, d) for _ in range(3) for d in (1, 2, 3, 4, None) for i in range(len(speech))]
    expected = {}
    for i, d in jobs[: len(jobs) // 3]:  # sequential, one depth at a time
        s2t.set_depth(d)
        expected[i, d] = _result(s2t(speech[i]))
    s2t.set_depth(None)
    assert len({expected[0, d] for d in (1, 2, 3, 4)}) > 1  # depths really decode differently

    with ThreadPoolExecutor(max_workers=6) as pool:
        got = list(pool.map(lambda job: _result(s2t(speech[job[0]], depth=job[1])), jobs))
    assert got == [expected[job] for job in jobs]
    assert s2t.active_layers == [0, 1, 2, 3]  # per-call depths leave the instance's depth alone

    s2t.set_depth(2)
    assert _result(s2t(speech[0], depth=4)) == expected[0, 4]
    assert s2t.active_layers == [1, 3] and _result(s2t(speech[0])) == expected[0, 2]
    with pytest.raises(ValueError, match="valid depths are 1..4"):
        s2t(speech[0], depth=7)
    assert s2t.active_layers == [1, 3]


def test_explicit_layers_per_call(tiny_exp):
    exp = tiny_exp.exps["dld"]
    s2t = Speech2Text(exp / "config.yaml", exp / "valid.loss.ave.pth", **DECODE)
    speech = waves(tiny_exp, 1)[0]
    s2t.set_depth(layers=[0, 3])
    expected = _result(s2t(speech))
    s2t.set_depth(None)
    assert _result(s2t(speech, layers=[0, 3])) == expected
    assert s2t.active_layers == [0, 1, 2, 3]


@pytest.mark.parametrize(
    "change, fragments",
    [
        ({"num_blocks": 3}, ["unexpected keys: encoder.encoders.3."]),
        ({"num_blocks": 5}, ["missing keys: encoder.encoders.4."]),
        ({"output_size": 24}, ["shape mismatch: ", "(file (16,), model (24,))"]),
        ({"linear_units": 48}, ["shape mismatch: ", "feed_forward.w_1.weight (file (32, 16), model (48, 16))"]),
    ],
)
def test_student_checkpoint_into_model_of_another_depth_or_width(tiny_exp, tmp_path, change, fragments):
    src = tiny_exp.exps["dld"]
    conf = yaml.safe_load((src / "config.yaml").read_text())
    conf["encoder_conf"].update(change)
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    shutil.copy(src / "valid.loss.ave.pth", tmp_path / "model.pth")
    with pytest.raises(CheckpointError) as e:
        Speech2Text(tmp_path / "config.yaml", tmp_path / "model.pth", **DECODE)
    message = str(e.value)
    assert f"model file {tmp_path / 'model.pth'} does not match" in message
    for fragment in fragments:
        assert fragment in message


def test_teacher_checkpoint_of_another_width_is_refused_at_start_up(tiny_exp, tmp_path):
    from espnet_dld.asr.teacher import load_teacher

    src = tiny_exp.exps["teacher"]
    conf = yaml.safe_load((src / "config.yaml").read_text())
    conf["encoder_conf"]["output_size"] = 24
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(CheckpointError, match=r"1epoch.pth does not match .*shape mismatch"):
        load_teacher(str(tmp_path / "config.yaml"), str(src / "1epoch.pth"))
    truncated = tmp_path / "t.pth"
    data = (src / "1epoch.pth").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=f"cannot read model file {truncated}"):
        load_teacher(str(src / "config.yaml"), str(truncated))
