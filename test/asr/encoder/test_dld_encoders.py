"""Every dynamic encoder against its static counterpart (ESPnet's, or the
static ``wavlm``): equivalence, skipping, gradients, options."""
import pytest
import torch
from espnet2.asr.encoder.conformer_encoder import ConformerEncoder
from espnet2.asr.encoder.transformer_encoder import TransformerEncoder
from espnet2.utils.get_default_kwargs import get_default_kwargs

from espnet_dld.asr.encoder.dld_conformer_encoder import DLDConformerEncoder
from espnet_dld.asr.encoder.dld_transformer_encoder import DLDTransformerEncoder
from espnet_dld.asr.encoder.dld_wavlm_encoder import DLDWavLMEncoder, WavLMEncoder
from espnet_dld.asr.encoder.layer_gating import DynamicDepthMixin

SMALL = dict(output_size=16, attention_heads=2, linear_units=32, num_blocks=4, input_layer="conv2d")
PAIRS = {
    "conformer": (DLDConformerEncoder, ConformerEncoder, dict(SMALL, cnn_module_kernel=3)),
    "transformer": (DLDTransformerEncoder, TransformerEncoder, dict(SMALL)),
    "wavlm": (DLDWavLMEncoder, WavLMEncoder, dict(
        hidden_size=16, attention_heads=2, linear_units=32, num_blocks=4, extractor_conv_layers=[[16, 10, 5], [16, 3, 2], [16, 2, 2]],
        pos_conv_kernel=8, pos_conv_groups=2, num_buckets=16, max_distance=20, freeze_feature_extractor=False)),
}
INPUT_SIZE = {"conformer": 20, "transformer": 20, "wavlm": 1}


def build(kind, n_blocks=4, **extra):
    dyn_cls, ref_cls, conf = PAIRS[kind]
    conf = dict(conf, num_blocks=n_blocks)
    dyn = dyn_cls(INPUT_SIZE[kind], **conf, **extra)
    ref = ref_cls(INPUT_SIZE[kind], **conf)
    return dyn, ref, conf


def inputs(kind="conformer", seed=0):
    """Fbank-like features (60 frames), or for WavLM 0.25 s of waveform (~50 frames)."""
    g = torch.Generator().manual_seed(seed)
    if kind == "wavlm":
        return torch.randn(2, 4000, generator=g), torch.tensor([4000, 3000])
    return torch.randn(2, 60, 20, generator=g), torch.tensor([60, 45])


@pytest.mark.parametrize("kind", PAIRS)
def test_full_depth_eval_equals_espnet_encoder(kind):
    dyn, ref, _ = build(kind)
    assert list(dyn.state_dict()) == list(ref.state_dict())  # ESPnet's parameter names
    ref.load_state_dict(dyn.state_dict())
    dyn.eval(), ref.eval()
    x, lens = inputs(kind)
    (a, alen, _), (b, blen, _) = dyn(x, lens), ref(x, lens)
    assert torch.equal(alen, blen)
    assert torch.allclose(a, b, atol=1e-6)


@pytest.mark.parametrize("kind", PAIRS)
def test_depth_k_equals_static_encoder_built_from_the_kept_blocks(kind):
    dyn, _, conf = build(kind, n_blocks=4)
    keep = [1, 3]
    small = PAIRS[kind][1](INPUT_SIZE[kind], **dict(conf, num_blocks=len(keep)))
    state = {}
    for k, v in dyn.state_dict().items():
        if k.startswith("encoders."):
            idx = int(k.split(".")[1])
            if idx not in keep:
                continue
            k = k.replace(f"encoders.{idx}.", f"encoders.{keep.index(idx)}.", 1)
        state[k] = v
    for k in set(small.state_dict()) - set(state):
        # WavLM: the relative position table lives in block 0 and serves every block
        assert kind == "wavlm" and k == "encoders.0.attention.rel_attn_embed.weight", k
        state[k] = dyn.state_dict()[k]
    small.load_state_dict(state)
    dyn.eval(), small.eval()
    dyn.set_depth(layers=keep)
    x, lens = inputs(kind, 1)
    assert torch.allclose(dyn(x, lens)[0], small(x, lens)[0], atol=1e-6)


def _count_calls(encoder):
    calls = [0] * len(encoder.encoders)
    for i, block in enumerate(encoder.encoders.blocks()):
        block.register_forward_hook(lambda m, a, o, i=i: calls.__setitem__(i, calls[i] + 1))
    return calls


@pytest.mark.parametrize("kind", PAIRS)
def test_dropped_blocks_are_not_executed(kind):
    dyn, _, _ = build(kind, n_blocks=6)
    calls = _count_calls(dyn)
    x, lens = inputs(kind)
    dyn.eval()
    dyn.set_depth(2)
    dyn(x, lens)
    assert calls == [0, 0, 1, 0, 0, 1]
    dyn.train()
    torch.manual_seed(0)
    for _ in range(10):
        before = list(calls)
        dyn(x, lens)
        ran = [i for i in range(6) if calls[i] > before[i]]
        assert ran == dyn.last_active_layers and len(ran) >= 1
    assert sum(calls) < 2 + 10 * 6  # some blocks were really skipped


@pytest.mark.parametrize("kind", PAIRS)
def test_dropped_blocks_get_no_gradient(kind):
    dyn, _, _ = build(kind, n_blocks=4)
    dyn.train()
    dyn.encoders.gate.sample = lambda: [0, 2]
    x, lens = inputs(kind)
    dyn(x, lens)[0].sum().backward()
    for i, block in enumerate(dyn.encoders.blocks()):
        grads = [p.grad for p in block.parameters()]
        if i in (0, 2):
            assert all(g is not None and g.abs().sum() > 0 for g in grads if g is not None)
            assert any(g is not None for g in grads)
        else:
            assert all(g is None for g in grads)


@pytest.mark.parametrize("kind", ["conformer", "wavlm"])  # blocks that end with a LayerNorm
def test_keep_final_norm_applies_dropped_block_norm(kind):
    dyn, _, _ = build(kind, keep_final_norm_when_dropped=True)
    plain, _, _ = build(kind)
    plain.load_state_dict(dyn.state_dict())
    for enc in (dyn, plain):
        enc.eval()
        enc.set_depth(layers=[3])
    with torch.no_grad():
        for block in dyn.encoders.blocks()[:3]:  # make the dropped blocks' norms visible
            dyn.final_norm_of(block).weight.fill_(2.0)
        plain.load_state_dict(dyn.state_dict())
    x, lens = inputs(kind)
    assert not torch.allclose(dyn(x, lens)[0], plain(x, lens)[0])
    calls = _count_calls(dyn)
    dyn(x, lens)
    assert calls == [0, 0, 0, 1]  # only the norm of a dropped block runs, not the block


def test_keep_final_norm_refused_without_a_final_norm():
    with pytest.raises(ValueError, match="keep_final_norm_when_dropped"):
        build("transformer", keep_final_norm_when_dropped=True)  # pre-norm blocks: no final norm
    dyn, _, _ = build("transformer", keep_final_norm_when_dropped=True, normalize_before=False)
    assert dyn.num_layers == 4
    with pytest.raises(ValueError, match="keep_final_norm_when_dropped"):
        build("wavlm", keep_final_norm_when_dropped=True, layer_norm_first=True)  # WavLM Large: pre-norm


@pytest.mark.parametrize("kind", PAIRS)
def test_espnet_layer_drop_rate_is_refused(kind):
    with pytest.raises(ValueError, match="layer_drop_prob instead"):
        build(kind, layer_drop_rate=0.2)


@pytest.mark.parametrize("kind", ["conformer", "transformer"])  # ESPnet's interctc_layer_idx
def test_intermediate_ctc_keeps_working_with_dropped_blocks(kind):
    dyn, _, _ = build(kind, n_blocks=4, interctc_layer_idx=[2])
    dyn.train()
    x, lens = inputs()
    torch.manual_seed(0)
    for _ in range(5):
        (out, inter), olens, _ = dyn(x, lens)
        assert [idx for idx, _ in inter] == [2]
        assert inter[0][1].shape == out.shape
    dyn.eval()
    dyn.set_depth(layers=[2, 3])  # blocks 0 and 1 skipped: the layer-2 output is the normalised embedding
    (out, inter), _, _ = dyn(x, lens)
    masks = torch.arange(60)[None, None, :] < lens[:, None, None]
    emb = dyn.embed(x, masks)[0]
    emb = emb[0] if isinstance(emb, tuple) else emb
    assert torch.allclose(inter[0][1], dyn.after_norm(emb), atol=1e-6)


@pytest.mark.parametrize("kind", PAIRS)
def test_options_visible_to_espnet_print_config(kind):
    defaults = get_default_kwargs(PAIRS[kind][0])
    for name in ("layer_drop_prob", "min_active_layers", "depth_policy", "keep_final_norm_when_dropped"):
        assert name in defaults
    assert defaults["layer_drop_prob"] == 0.5
    assert "num_blocks" in defaults and "output_size" in defaults


@pytest.mark.parametrize("kind", PAIRS)
def test_bad_options_raise_at_construction(kind):
    with pytest.raises(ValueError, match=r"layer_drop_prob must be a probability in \[0, 1\), got 1.5"):
        build(kind, layer_drop_prob=1.5)
    dyn, _, _ = build(kind)
    with pytest.raises(ValueError, match="valid depths are 1..4"):
        dyn.set_depth(5)


@pytest.mark.parametrize("kind", PAIRS)
def test_depth_profile_and_policy_come_from_the_shared_mixin(kind):
    dyn_cls = PAIRS[kind][0]
    for name in ("set_depth_profile", "set_depth_policy", "depth_policy", "depth_profile"):
        assert getattr(dyn_cls, name) is getattr(DynamicDepthMixin, name)  # no per-encoder copy
    dyn, _, _ = build(kind)
    dyn.eval()
    calls = _count_calls(dyn)
    dyn.set_depth_profile({4: [0, 1, 2, 3], 3: [0, 1, 3], 2: [0, 1], 1: [2]})
    assert dyn.set_depth_policy("profile") == [0, 1, 2, 3]
    assert dyn.set_depth(1) == [2] and dyn.depth_policy == "profile"
    dyn(*inputs(kind))
    assert calls == [0, 0, 1, 0]  # only the profile's block ran
    assert dyn.set_depth_policy("uniform") == [3]
