"""Depth budgets in Speech2Text and asr_inference on the tiny DLD student.

Time is a fake clock that advances with the encoder work actually done (blocks
run x frames), so every choice below is deterministic."""
import json
import threading

import pytest
import soundfile as sf
import torch
from torch.nn.modules.module import register_module_forward_hook

from espnet_dld import Speech2Text
from espnet_dld.asr.cpu_contention import CpuContention
from espnet_dld.asr.depth_budget import BudgetUnmeetableError
from espnet_dld.asr.depth_table import dump_depth_table
from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin, uniform_layers
from espnet_dld.bin.asr_inference import main as asr_inference
from espnet_dld.utils.cli import str2bool_or_none
from espnet_dld.utils.checkpoint import file_sha256

DECODE = dict(beam_size=1, ctc_weight=1.0, device="cpu")
FAST = dict(DECODE, calibration_passes=1)  # the fake clock needs no second pass
SECONDS_PER_BLOCK_FRAME = 1e-4


class WorkClock:
    """Seconds = load x (blocks run x frames) x 1e-4, advanced by every gated stack."""

    def __init__(self):
        self.now, self.load = 0.0, 1.0

    def __call__(self) -> float:
        return self.now


def after_encoder(hook):
    """Call ``hook(encoder, output)`` after every forward pass of a dynamic-depth encoder."""
    def module_hook(module, args, output):
        if isinstance(module, DynamicDepthMixin):
            hook(module, output)
    return register_module_forward_hook(module_hook)


def work_clock():
    """A WorkClock and the hook that drives it (remove it when done)."""
    clock = WorkClock()

    def advance(encoder, output):
        clock.now += clock.load * len(encoder.last_active_layers) * output[0].shape[1] * SECONDS_PER_BLOCK_FRAME

    return clock, after_encoder(advance)


@pytest.fixture
def clock():
    clock, handle = work_clock()
    yield clock
    handle.remove()


@pytest.fixture(scope="module")
def probe(tiny_exp):
    """One calibrated instance: the fake clock's cost model (the same for every instance)."""
    clock, handle = work_clock()
    try:
        yield Speech2Text(*files(tiny_exp.exps["dld"]), rtf_budget=1.0, clock=clock, **FAST)
    finally:
        handle.remove()


def files(exp):
    return exp / "config.yaml", exp / "valid.loss.ave.pth"


def waves(tiny_exp):
    return [sf.read(line.split()[1])[0] for line in (tiny_exp.data / "wav.scp").read_text().splitlines()]


def rtf_at(s2t, depth, duration=2.0):
    return s2t.depth_budget.cost.rtf(depth, duration)


def test_latency_budget_calibrates_and_picks_the_deepest_fitting_depth(tiny_exp, probe, clock):
    cfg, pth = files(tiny_exp.exps["dld"])
    cost = probe.depth_budget.cost
    assert cost.per_block > 0 and cost.overhead < 1e-6 * cost.per_block  # all time is block work here
    assert len(probe.calibration_points) == 2 * 4 and probe.timing.calls == 0  # calibration is not counted
    enter = probe.depth_budget.enter_rtf / probe.depth_budget.rtf_budget
    budget = rtf_at(probe, 2) / enter * 1.001  # just above depth 2's cost: 2 fits, 3 does not
    s2t = Speech2Text(cfg, pth, rtf_budget=budget, clock=clock, **FAST)
    assert s2t.depth_budget.depth == 2 and s2t.active_layers == uniform_layers(4, 2)
    speech = waves(tiny_exp)[0]
    s2t(speech)
    assert s2t.last_depth == 2 and s2t.asr_model.encoder.last_active_layers == [1, 3]
    s2t(speech, depth=4)  # a call's depth overrides the budget...
    assert s2t.last_depth == 4 and s2t.active_layers == [1, 3]  # ...for that call only
    assert [r.budget_depth for r in s2t.depth_budget.history] == [2, None]
    s2t.depth_budget.rtf_budget = budget * 0.99
    assert s2t.depth_budget.choose() == 1


def test_adaptive_budget_follows_the_load(tiny_exp, probe, clock):
    cfg, pth = files(tiny_exp.exps["dld"])
    budget = rtf_at(probe, 4) * 1.02 / (0.95 * 0.9)  # full depth fits, with a little room
    s2t = Speech2Text(cfg, pth, rtf_budget=budget, adaptive=True, min_depth=2, clock=clock, cpu_contention=False,
                      **FAST)  # the load learned from decoded utterances alone
    speech = waves(tiny_exp)[1]
    assert s2t.depth_budget.depth == 4
    depths = []
    for load in [1.0] * 3 + [3.0] * 8 + [1.0] * 30:  # the load estimate falls slowly (x0.8 per utterance)
        clock.load = load
        s2t(speech)
        depths.append(s2t.last_depth)
    assert depths[:4] == [4] * 4
    assert depths[5:11] == [2] * 6  # down to min_depth 2 under three times the load, not below
    assert depths[-1] == 4 and sorted(depths[11:]) == depths[11:]  # back up, never down again


def test_sensed_contention_moves_the_depth_and_the_threads_before_the_slow_call(tiny_exp, probe, clock):
    cfg, pth = files(tiny_exp.exps["dld"])
    budget = rtf_at(probe, 4) * 1.02 / (0.95 * 0.9)
    busy = {"cores": 0.0}
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    encoder_threads = []  # torch's thread count while the encoder runs
    handle = after_encoder(lambda encoder, output: encoder_threads.append(torch.get_num_threads()))
    try:
        s2t = Speech2Text(cfg, pth, rtf_budget=budget, adaptive=True, clock=clock, adapt_threads=True,
                          cpu_contention=lambda: busy["cores"], **FAST)
        cores = s2t.depth_budget.cores
        speech = waves(tiny_exp)[1]
        encoder_threads.clear()  # the calibration's
        s2t(speech)
        assert s2t.last_depth == 4 and encoder_threads[-1] == 2
        busy["cores"], clock.load = float(cores), 2.5  # every core taken: a shared core is 2x, and fewer threads
        s2t(speech)
        assert s2t.last_depth < 4 and encoder_threads[-1] == 1  # chosen before the slow call ran
        assert s2t.depth_budget.history[-1].rtf <= budget
        assert torch.get_num_threads() == 2  # the caller's count is back after the call
        busy["cores"], clock.load = 0.0, 1.0
        s2t(speech)
        assert s2t.last_depth == 4 and encoder_threads[-1] == min(2, cores) and torch.get_num_threads() == 2
        assert [r.level for r in s2t.depth_budget.history] == [0, cores, 0]
    finally:
        handle.remove()
        torch.set_num_threads(threads)
    with pytest.raises(ValueError, match="steer the adaptive budget"):
        Speech2Text(cfg, pth, rtf_budget=1.0, cpu_contention=lambda: 0.0, clock=clock, **FAST)
    with pytest.raises(ValueError, match="steer the adaptive budget"):
        Speech2Text(cfg, pth, rtf_budget=1.0, cpu_contention=True, clock=clock, **FAST)
    with pytest.raises(ValueError, match="adapt_threads=True needs the CPU contention sensor .* which is off"):
        Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, adapt_threads=True, cpu_contention=False,
                    clock=clock, **FAST)
    with pytest.raises(ValueError, match="cpu_contention must be None .*, True, False or a callable, got 'yes'"):
        Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, cpu_contention="yes", clock=clock, **FAST)


def test_an_adaptive_budget_reads_the_host_and_sets_the_threads_by_default(tiny_exp, probe, clock, monkeypatch,
                                                                          caplog):
    cfg, pth = files(tiny_exp.exps["dld"])
    monkeypatch.setattr(CpuContention, "available", classmethod(lambda cls: True))
    sensed = Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, clock=clock, **FAST).depth_budget
    assert isinstance(sensed.contention, CpuContention) and sensed.adapt_threads
    kept = Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, adapt_threads=False, clock=clock,
                       **FAST).depth_budget
    assert isinstance(kept.contention, CpuContention) and not kept.adapt_threads
    blind = Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, cpu_contention=False, clock=clock,
                        **FAST).depth_budget
    assert blind.contention is None and not blind.adapt_threads
    fixed = Speech2Text(cfg, pth, rtf_budget=1.0, clock=clock, **FAST).depth_budget  # no sensor, no error
    assert fixed.contention is None and not fixed.adapt_threads
    monkeypatch.setattr(CpuContention, "available", classmethod(lambda cls: False))  # a host without /proc
    with caplog.at_level("INFO"):
        quiet = Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, clock=clock, **FAST).depth_budget
        assert quiet.contention is None and not quiet.adapt_threads
        assert not [r for r in caplog.records if r.levelname == "WARNING" and "no /proc" in r.getMessage()]
        Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, cpu_contention=True, clock=clock, **FAST)
        assert [r for r in caplog.records if r.levelname == "WARNING" and "no /proc" in r.getMessage()]
    with pytest.raises(ValueError, match="adapt_threads=True needs the CPU contention sensor .* this host lacks"):
        Speech2Text(cfg, pth, rtf_budget=1.0, adaptive=True, adapt_threads=True, clock=clock, **FAST)


def test_unmeetable_budget_uses_min_depth_or_raises_when_strict(tiny_exp, clock, caplog):
    cfg, pth = files(tiny_exp.exps["dld"])
    with pytest.raises(BudgetUnmeetableError, match="rtf_budget 1e-09 cannot be met"):
        Speech2Text(cfg, pth, rtf_budget=1e-9, strict=True, clock=clock, **FAST)
    s2t = Speech2Text(cfg, pth, rtf_budget=1e-9, min_depth=2, clock=clock, **FAST)
    assert s2t.active_layers == uniform_layers(4, 2)
    assert sum("cannot be met" in r.getMessage() for r in caplog.records) == 1


def test_budget_options_that_cannot_work_are_refused(tiny_exp):
    cfg, pth = files(tiny_exp.exps["dld"])
    with pytest.raises(ValueError, match="adaptive=True needs rtf_budget"):
        Speech2Text(cfg, pth, adaptive=True, max_wer_increase=0.1, **DECODE)
    with pytest.raises(ValueError, match="only apply with rtf_budget"):
        Speech2Text(cfg, pth, adaptive=True, **DECODE)
    with pytest.raises(ValueError, match="both choose the depth"):
        Speech2Text(cfg, pth, depth=2, rtf_budget=1.0, **DECODE)
    tcfg, tpth = files(tiny_exp.exps["teacher"])
    with pytest.raises(ValueError, match="static; depth budgets need a dld_\\* encoder"):
        Speech2Text(tcfg, tpth, rtf_budget=1.0, **DECODE)


def test_concurrent_calls_at_their_own_depths_with_a_budget(tiny_exp, clock):
    cfg, pth = files(tiny_exp.exps["dld"])
    s2t = Speech2Text(cfg, pth, rtf_budget=1e9, clock=clock, **FAST)  # the budget's depth: 4
    speeches = waves(tiny_exp)[:4]
    reference = {(i, d): s2t(s, depth=d)[0][2] for i, s in enumerate(speeches) for d in (1, 2, 3, 4)}
    ran = []  # (thread, blocks) of every encoder pass
    errors, seen = [], {}

    def worker(k):
        try:
            mine = []
            for rep in range(3):
                for i, speech in enumerate(speeches):
                    depth = None if (k + rep) % 4 == 0 else 1 + (k + i + rep) % 4
                    tokens = s2t(speech, depth=depth)[0][2]
                    expected_depth = depth or 4
                    assert s2t.last_depth == expected_depth
                    assert tokens == reference[(i, expected_depth)]
                    mine.append(expected_depth)
            seen[threading.get_ident()] = mine
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    handle = after_encoder(lambda encoder, output: ran.append((threading.get_ident(), encoder.last_active_layers)))
    try:
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        handle.remove()
    assert not errors, errors
    for ident, depths in seen.items():  # every pass of a thread ran the blocks of its own call
        assert [len(layers) for t, layers in ran if t == ident] == depths
        assert all(layers == uniform_layers(4, len(layers)) for t, layers in ran if t == ident)
    assert s2t.active_layers == [0, 1, 2, 3] and len(s2t.depth_budget.history) == 16 + 4 * 12


def write_table(exp_dir, pth, wers, layers=uniform_layers):
    dump_depth_table(exp_dir / "depth_table.yaml", {
        "num_blocks": 4, "dev_set": "dev", "model_file": pth.name, "model_sha256": file_sha256(pth),
        "depths": {d: {"wer": w, "rtf": 0.01 * d, "active_layers": layers(4, d)} for d, w in wers.items()}})


def test_accuracy_budget_reads_the_table_packed_with_the_model(tiny_exp, tmp_path, monkeypatch):
    from espnet2.bin.pack import main as pack

    monkeypatch.setenv("ESPNET_DLD_CACHE", str(tmp_path / "cache"))
    cfg, pth = files(tiny_exp.exps["dld"])
    bare = tmp_path / "bare.zip"
    pack(["asr", "--asr_train_config", str(cfg), "--asr_model_file", str(pth),
          "--option", str(tiny_exp.stats / "train" / "feats_stats.npz"), "--outpath", str(bare)])
    with pytest.raises(ValueError, match=r"has none; it is made by the recipe: stage 13 .* stage 15"):
        Speech2Text.from_pretrained(str(bare), max_wer_increase=0.1, **DECODE)
    exp = tmp_path / "exp"
    exp.mkdir()
    for f in (cfg, pth):
        (exp / f.name).write_bytes(f.read_bytes())
    write_table(exp, exp / pth.name, {1: 60.0, 2: 33.0, 3: 31.0, 4: 30.0})
    packed = tmp_path / "with_table.zip"
    pack(["asr", "--asr_train_config", str(exp / cfg.name), "--asr_model_file", str(exp / pth.name),
          "--option", str(tiny_exp.stats / "train" / "feats_stats.npz"),
          "--option", str(exp / "depth_table.yaml"), "--outpath", str(packed)])
    s2t = Speech2Text.from_pretrained(str(packed), max_wer_increase=0.10, **DECODE)
    assert s2t.depth_table["dev_set"] == "dev" and s2t.active_layers == uniform_layers(4, 2)  # 33 <= 1.1 * 30
    assert Speech2Text.from_pretrained(str(packed), max_wer_increase=0.05, **DECODE).active_layers == [0, 2, 3]
    both = Speech2Text.from_pretrained(str(packed), max_wer_increase=0.05, rtf_budget=1e-9, **FAST)
    assert both.depth_budget.min_depth == 3 and both.active_layers == [0, 2, 3]  # the WER floor holds
    write_table(exp, exp / pth.name, {1: 60.0, 4: 30.0}, layers=lambda n, d: list(range(d)))
    with pytest.raises(ValueError, match=r"measured depth 1 with blocks \[0\], but this decoder runs blocks \[3\]"):
        Speech2Text(exp / cfg.name, exp / pth.name, max_wer_increase=0.1, **DECODE)


def test_cli_writes_the_depth_of_every_utterance(tiny_exp, tmp_path, capsys):
    cfg, pth = files(tiny_exp.exps["dld"])
    common = ["--asr_train_config", str(cfg), "--asr_model_file", str(pth), "--ngpu", "0", "--ctc_weight", "1.0",
              "--beam_size", "1", "--calibration_passes", "1", "--data_path_and_name_and_type", f"{tiny_exp.data}/wav.scp,speech,sound"]
    keys = sorted(line.split()[0] for line in (tiny_exp.data / "wav.scp").read_text().splitlines())
    out = tmp_path / "roomy"
    assert asr_inference(common + ["--output_dir", str(out), "--rtf_budget", "1000", "--adaptive", "true",
                                   "--cpu_contention", "false"]) == 0
    assert asr_inference(common + ["--output_dir", str(tmp_path / "sensed"), "--rtf_budget", "1000", "--adaptive",
                                   "true"]) == 0
    lines = (out / "depth").read_text().splitlines()
    assert [line.split()[0] for line in lines] == keys and {line.split()[1] for line in lines} == {"4"}
    stats = json.loads((out / "decode_stats.json").read_text())["depth_budget"]
    assert stats["adaptive"] and not stats["contention_sensor"] and not stats["adapt_threads"]
    sensed = json.loads((tmp_path / "sensed" / "decode_stats.json").read_text())["depth_budget"]
    assert sensed["contention_sensor"] == sensed["adapt_threads"] == CpuContention.available()  # the default
    assert [str2bool_or_none(v) for v in ("auto", "None", "true", "0")] == [None, None, True, False]
    assert sorted(l.split()[0] for l in (out / "1best_recog" / "text").read_text().splitlines()) == keys
    out = tmp_path / "tight"
    assert asr_inference(common + ["--output_dir", str(out), "--rtf_budget", "1e-9", "--min_depth", "2"]) == 0
    assert {line.split()[1] for line in (out / "depth").read_text().splitlines()} == {"2"}
    assert asr_inference(common + ["--output_dir", str(tmp_path / "strict"), "--rtf_budget", "1e-9",
                                   "--strict_budget", "true"]) != 0
    assert "ERROR: asr_inference: rtf_budget 1e-09 cannot be met" in capsys.readouterr().err
    assert not (tmp_path / "strict" / "depth").exists()
    assert asr_inference(common + ["--output_dir", str(tmp_path / "both"), "--rtf_budget", "1", "--depth", "2"]) != 0
