"""Speech normalisation and checks without a trained model (issue 19):
integer PCM scales, channels, NaN/Inf, rates, files, and the minimum input
length measured on ESPnet's own front end and subsampling layers."""
import numpy as np
import pytest
import soundfile as sf
import torch

from espnet_dld.asr.audio_input import (
    AudioInputError,
    ModelAudioInput,
    as_float_array,
    as_mono,
    check_finite,
    check_sample_rate,
    encoder_frames_of,
    model_sample_rate,
    probe_min_samples,
    read_audio_file,
)


def test_integer_pcm_is_scaled_as_soundfile_reads_it(tmp_path):
    rng = np.random.default_rng(0)
    x = (0.5 * rng.standard_normal(1000)).clip(-1, 1).astype(np.float32)
    for subtype, dtype in (("PCM_16", "int16"), ("PCM_32", "int32")):
        sf.write(tmp_path / "a.wav", x, 16000, subtype=subtype)
        as_float, _ = sf.read(tmp_path / "a.wav", dtype="float32")
        raw, _ = sf.read(tmp_path / "a.wav", dtype=dtype)
        np.testing.assert_array_equal(as_float_array(raw), as_float)
        np.testing.assert_array_equal(as_float_array(torch.from_numpy(raw)), as_float)
    assert as_float_array(np.array([0, 128, 255], dtype=np.uint8)).tolist() == [-1.0, 0.0, 127 / 128]  # 8-bit WAV
    assert as_float_array(np.array([-32768, 16384], dtype=np.int16)).tolist() == [-1.0, 0.5]
    assert as_float_array(np.array([0.25], dtype=np.float64)).dtype == np.float32
    assert as_float_array([0.5, -0.25]).tolist() == [0.5, -0.25]


@pytest.mark.parametrize(
    "speech, fragment",
    [
        ([1, 2, 3], "integer samples of type int64, whose full scale is unknown"),
        (np.array([True, False]), "samples of type bool"),
        (np.array([1 + 2j]), "samples of type complex128"),
        (["a.wav", "b.wav"], "a list must hold numbers"),
        ({"speech": [0.1]}, "expected a path to an audio file, or samples as a numpy array, torch tensor or list, got dict"),
        ([[0.1, 0.2], [0.3]], "a list of samples must be flat"),
    ],
)
def test_samples_of_other_types_are_refused(speech, fragment):
    with pytest.raises(AudioInputError) as e:
        as_float_array(speech)
    assert fragment in str(e.value)


def test_one_channel_is_taken_and_several_are_refused_with_how_to_downmix():
    x = np.arange(10, dtype=np.float32)
    assert as_mono(x[:, None]).tolist() == as_mono(x[None, :]).tolist() == x.tolist()
    with pytest.raises(AudioInputError) as e:
        as_mono(np.zeros((1000, 2), np.float32))
    assert "2 channels (shape (1000, 2))" in str(e.value) and "speech[:, 0]" in str(e.value)
    assert "speech.mean(axis=1)" in str(e.value)
    with pytest.raises(AudioInputError) as e:
        as_mono(np.zeros((3, 1000), np.float32))  # torchaudio's (channels, frames)
    assert "3 channels" in str(e.value) and "speech[0]" in str(e.value) and "speech.mean(axis=0)" in str(e.value)
    with pytest.raises(AudioInputError, match=r"shape \(1, 2, 100\); give one channel"):
        as_mono(np.zeros((1, 2, 100), np.float32))


def test_nan_and_inf_are_counted_and_located():
    x = np.zeros(100, np.float32)
    x[[7, 9]] = np.nan
    x[50] = np.inf
    with pytest.raises(AudioInputError) as e:
        check_finite(x)
    assert "2 NaN and 1 infinite sample(s) (first at sample 7 of 100)" in str(e.value)
    check_finite(np.zeros(3, np.float32))


@pytest.mark.parametrize("fs", [0, -8000, 8000.5, "16k", True, float("nan"), None])
def test_bad_sampling_rates_are_refused(fs):
    with pytest.raises(AudioInputError, match="fs must be a sampling rate in Hz"):
        check_sample_rate(fs)


def test_sampling_rate_of_a_model_config():
    class Args:
        frontend_conf = {"fs": "8k", "n_fft": 256}

    assert model_sample_rate(Args()) == 8000
    Args.frontend_conf = {"fs": 22050}
    assert model_sample_rate(Args()) == 22050
    Args.frontend_conf = {}
    assert model_sample_rate(Args()) == 16000  # ESPnet's default
    assert check_sample_rate(16000.0) == 16000 and check_sample_rate(np.int64(8000)) == 8000


def test_unreadable_files_are_named(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "text.wav").write_text("not audio at all\n")
    (tmp_path / "dir.wav").mkdir()
    cases = {
        tmp_path / "missing.wav": "does not exist",
        tmp_path / "empty.wav": "is empty (0 bytes)",
        tmp_path / "text.wav": "cannot read audio file",
        tmp_path / "dir.wav": "is not a file",
    }
    for path, fragment in cases.items():
        with pytest.raises(AudioInputError) as e:
            read_audio_file(path)
        assert f"audio file {path}" in str(e.value) and fragment in str(e.value)


def test_too_short_names_the_minimum_at_the_input_rate():
    audio = ModelAudioInput(16000, min_samples=960)
    with pytest.raises(AudioInputError) as e:
        audio.prepare(np.zeros(100, np.float32))
    assert "100 samples at 16000 Hz (6.2 ms)" in str(e.value)
    assert "at least 960 samples at 16000 Hz (60.0 ms)" in str(e.value)
    with pytest.raises(AudioInputError) as e:
        audio.prepare(np.zeros(479, np.float32), fs=8000)
    assert "at least 480 samples at 8000 Hz (60.0 ms)" in str(e.value)
    assert audio.prepare(np.zeros(480, np.float32), fs=8000).shape == (960,)  # resampled to the model's rate
    with pytest.raises(AudioInputError, match=r"speech is empty \(0 samples\); this model needs at least 960"):
        audio.prepare([])


def test_float_audio_far_outside_full_scale_is_warned_about():
    audio = ModelAudioInput(16000, min_samples=10)
    with pytest.warns(UserWarning, match=r"peaks at 12000, but float audio is expected in \[-1, 1\]"):
        audio.prepare(np.full(100, 12000.0, np.float32))


class FrontendAndSubsampling(torch.nn.Module):
    """ESPnet's fbank front end and one of its subsampling input layers,
    with the ``encode`` of an ESPnet model."""

    def __init__(self, layer, n_fft=512, hop_length=160):
        super().__init__()
        from espnet2.asr.frontend.default import DefaultFrontend

        self.frontend = DefaultFrontend(n_fft=n_fft, hop_length=hop_length, n_mels=20)
        self.layer = layer

    def encode(self, speech, lengths):
        feats, flens = self.frontend(speech, lengths)
        mask = torch.ones(1, 1, feats.shape[1], dtype=torch.bool)
        out, out_mask = self.layer(feats, mask)
        return out, out_mask.sum(-1).view(-1)


def _subsampling_layers():
    from espnet_dld.compat import subsampling as s

    return {
        "conv2d": (s.Conv2dSubsampling(20, 8, 0.0), 960),  # 7 frames: (7-1) hops of 160
        "conv2d6": (s.Conv2dSubsampling6(20, 8, 0.0), 1600),  # 11 frames
        "conv2d8": (s.Conv2dSubsampling8(20, 8, 0.0), 2240),  # 15 frames
        "conv1d2": (s.Conv1dSubsampling2(20, 8, 0.0), None),
        "conv1d3": (s.Conv1dSubsampling3(20, 8, 0.0), None),
    }


@pytest.mark.parametrize("name", ["conv2d", "conv2d6", "conv2d8", "conv1d2", "conv1d3"])
def test_minimum_length_is_measured_for_any_subsampling(name):
    layer, expected = _subsampling_layers()[name]
    model = FrontendAndSubsampling(layer).eval()
    frames = encoder_frames_of(model, "cpu", "float32")
    n = probe_min_samples(frames)
    assert frames(n) >= 1 and frames(n - 1) == 0  # the minimum, by definition
    if expected is not None:
        assert n == expected


def test_probe_gives_up_on_a_model_that_never_encodes():
    assert probe_min_samples(lambda n: 0, limit=4096) is None
    assert probe_min_samples(lambda n: int(n >= 401)) == 401
