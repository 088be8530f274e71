"""What only WavLM has: torchaudio equivalence, padding, the relative position
bias when layer 0 is dropped, freezing, the output projection, its input."""
import pytest
import torch
from wavlm_fixtures import TINY, save_torchaudio, torchaudio_wavlm

from espnet_dld.asr.encoder.dld_wavlm_encoder import DLDWavLMEncoder, WavLMEncoder

LARGE_LIKE = dict(TINY, extractor_mode="layer_norm", layer_norm_first=True, extractor_conv_bias=True)
NO_DROPOUT = dict(dropout_rate=0.0, attention_dropout_rate=0.0, projection_dropout_rate=0.0)


def pair(tmp_path, conf=TINY, **extra):
    """torchaudio's WavLM and ours on the same weights (through a torchaudio state dict file)."""
    ta = torchaudio_wavlm(conf)
    ours = DLDWavLMEncoder(1, **conf, **extra, pretrained_path=str(save_torchaudio(tmp_path / "ta.pth", ta)))
    return ta, ours.eval()


def waves(n=2, samples=4000, seed=0):
    return torch.randn(n, samples, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("conf", [TINY, LARGE_LIKE], ids=["base_like", "large_like"])
def test_full_depth_equals_torchaudio_wavlm(conf, tmp_path):
    ta, ours = pair(tmp_path, conf)
    x = waves()
    with torch.no_grad():
        expected, _ = ta(x)  # torchaudio's WavLM cannot take lengths: a batch of equal lengths
        out, lens, _ = ours(x, torch.tensor([4000, 4000]))
    assert out.shape == expected.shape and lens.tolist() == [expected.shape[1]] * 2
    assert torch.allclose(out, expected, atol=1e-5)


def test_depth_with_layer_0_dropped_uses_layer_0_position_table(tmp_path):
    """torchaudio computes the relative position bias inside layer 0; with layer
    0 dropped the later layers must still get it."""
    ta, ours = pair(tmp_path)
    ours.set_depth(layers=[1, 3])
    x = waves()
    with torch.no_grad():
        out, _, _ = ours(x, torch.tensor([4000, 4000]))
        feats, _ = ta.feature_extractor(x, None)
        h = ta.encoder.transformer._preprocess(ta.encoder.feature_projection(feats))
        layers = ta.encoder.transformer.layers
        bias = layers[0].attention.compute_bias(h.size(1), h.size(1)).unsqueeze(0).repeat(2, 1, 1, 1)
        for i in (1, 3):
            h, bias = layers[i](h, None, position_bias=bias)
        unbiased = ta.encoder.transformer._preprocess(ta.encoder.feature_projection(feats))
        for i in (1, 3):
            unbiased, _ = layers[i](unbiased, None, position_bias=None)
    assert torch.allclose(out, h, atol=1e-5)
    assert not torch.allclose(out, unbiased, atol=1e-3)  # the bias matters


@pytest.mark.parametrize("layers", [None, [1, 2, 3], [0, 3]])
def test_padding_does_not_change_an_utterance(layers, tmp_path):
    """Per-frame extractor norms (Large-like): an utterance padded in a batch
    gives the same frames as alone, at every depth (padding is masked by WavLM's
    key_padding_mask, which only acts together with the position bias)."""
    _, ours = pair(tmp_path, LARGE_LIKE)
    ours.set_depth(layers=layers)
    long, short = waves(1, 4000, 1), waves(1, 2500, 2)
    batch = torch.zeros(2, 4000)
    batch[0], batch[1, :2500] = long[0], short[0]
    with torch.no_grad():
        out, lens, _ = ours(batch, torch.tensor([4000, 2500]))
        alone, alone_lens, _ = ours(short, torch.tensor([2500]))
    assert lens[1] == alone_lens[0] == alone.shape[1]
    assert torch.allclose(out[1, : lens[1]], alone[0], atol=1e-5)


def test_freeze_feature_extractor(tmp_path):
    for freeze in (True, False):
        enc = DLDWavLMEncoder(1, **TINY, freeze_feature_extractor=freeze, layer_drop_prob=0.0).train()
        enc(waves(), torch.tensor([4000, 3000]))[0].sum().backward()
        conv = enc.feature_extractor.conv_layers[0].conv.weight
        assert (conv.grad is None) == freeze and conv.requires_grad == (not freeze)
        assert enc.feature_projection.projection.weight.grad is not None


def test_freeze_encoder_steps_trains_only_the_output_projection_first(tmp_path):
    enc = DLDWavLMEncoder(1, **TINY, output_size=8, freeze_encoder_steps=2, layer_drop_prob=0.0).train()
    x, lens = waves(), torch.tensor([4000, 3000])
    for step in range(3):
        enc.zero_grad()
        enc(x, lens)[0].sum().backward()
        frozen = enc.encoders[0].feed_forward.output_dense.weight.grad is None
        assert frozen == (step < 2), step
        assert enc.output_layer.weight.grad is not None
    assert int(enc.state_dict()["num_updates"]) == 3  # survives a resume
    enc.eval()
    enc(x, lens)
    assert int(enc.num_updates) == 3  # validation does not count


def test_output_projection_and_lengths():
    enc = WavLMEncoder(1, **TINY, output_size=8).eval()
    out, lens, _ = enc(waves(2, 4000).unsqueeze(-1), torch.tensor([4000, 1000]))  # (B, T, 1) as well
    assert enc.output_size() == 8 and out.shape[-1] == 8
    # 25 ms window, 20 ms hop with this tiny stack: floor((n - 10)/5)+1 -> floor((m - 3)/2)+1 -> floor((k - 2)/2)+1
    assert lens.tolist() == [199, 49]
    assert WavLMEncoder(1, **TINY).output_size() == 16


def test_normalize_waveform_makes_the_encoder_scale_invariant():
    enc = WavLMEncoder(1, **TINY, normalize_waveform=True, **NO_DROPOUT).eval()
    x, lens = waves(), torch.tensor([4000, 3000])
    x[1, 3000:] = 0.0
    with torch.no_grad():
        a, _, _ = enc(x, lens)
        scaled = x * 7.0 + 0.5
        scaled[1, 3000:] = 123.0  # padding is ignored by the normalisation
        b, _, _ = enc(scaled, lens)
    assert torch.allclose(a[0], b[0], atol=1e-4)
    assert torch.allclose(a[1, :149], b[1, :149], atol=1e-4)


def _transformer_input(enc, x, lens):
    seen = []
    handle = enc.pos_conv_embed.register_forward_hook(lambda m, args, out: seen.append(args[0].detach().clone()))
    out = enc(x, lens)[0]
    handle.remove()
    return seen[0], out


def test_time_masks_replace_valid_frames_by_the_mask_embedding_in_training_only():
    enc = DLDWavLMEncoder(1, **TINY, **NO_DROPOUT, mask_time_prob=0.5, mask_time_length=5, layer_drop_prob=0.0)
    emb = enc.mask_generator.mask_embedding
    assert emb.requires_grad
    x, lens = waves(2, 8000), torch.tensor([8000, 5000])  # 399 and 249 frames
    torch.manual_seed(0)
    seen, out = _transformer_input(enc.train(), x, lens)
    masked = (seen == emb.detach()).all(-1)
    assert not masked[1, 249:].any()  # padding is never masked
    for b, n in ((0, 399), (1, 249)):
        assert 0.1 < masked[b, :n].float().mean() < 0.9
    out.sum().backward()
    assert emb.grad is not None and emb.grad.abs().sum() > 0
    seen, _ = _transformer_input(enc.eval(), x, lens)
    assert not (seen == emb.detach()).all(-1).any()
    assert not WavLMEncoder(1, **TINY).mask_generator.mask_embedding.requires_grad  # unused: no DDP complaint


def test_channel_masks_zero_whole_channels_in_training():
    enc = WavLMEncoder(1, **TINY, **NO_DROPOUT, mask_channel_prob=0.5, mask_channel_length=4).train()
    x, lens = waves(2, 4000), torch.tensor([4000, 4000])
    torch.manual_seed(0)
    seen, _ = _transformer_input(enc, x, lens)
    zero_channels = (seen == 0).all(1)  # (B, C): channels zero in every frame
    assert zero_channels.any(1).all() and not zero_channels.all(1).any()


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(input_size=80), "input_size=80: WavLMEncoder takes the raw waveform"),
        (dict(extractor_mode="batch_norm"), "extractor_mode must be 'group_norm'"),
        (dict(freeze_encoder_steps=-1), "freeze_encoder_steps must be an integer >= 0, got -1"),
        (dict(dropout_rate=1.0), r"dropout_rate must be a probability in \[0, 1\), got 1.0"),
        (dict(hidden_size=15), "hidden_size=15 must be a multiple of attention_heads=2"),
        (dict(mask_time_prob=1.0), r"mask_time_prob must be a probability in \[0, 1\), got 1.0"),
        (dict(mask_channel_length=0), "mask_channel_length must be a positive integer, got 0"),
        (dict(mask_channel_prob=0.5, mask_channel_length=8), "mask_channel_length=8 is too long for hidden_size=16"),
        (dict(extractor_conv_layers=[[16, 10, 5], [16, 3]]),
         r"extractor_conv_layers must be a list of \[dim, kernel, stride\] positive integers, got \[\[16, 10, 5\], \[16, 3\]\]"),
    ],
)
def test_bad_options_are_refused(kwargs, fragment):
    conf = dict(TINY, **kwargs)
    input_size = conf.pop("input_size", 1)
    with pytest.raises(ValueError, match=fragment):
        WavLMEncoder(input_size, **conf)


def test_feature_input_is_refused_at_forward():
    enc = WavLMEncoder(1, **TINY)
    with pytest.raises(ValueError, match=r"takes raw waveforms \(B, T\), got a tensor of shape \(2, 50, 80\)"):
        enc(torch.randn(2, 50, 80), torch.tensor([50, 40]))
