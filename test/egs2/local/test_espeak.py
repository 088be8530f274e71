"""eSpeak NG backends: reproducible output, voice checks, install hints."""
import builtins
import shutil

import numpy as np
import pytest

import espeak as espeak_mod
from espeak import EspeakError, get_espeak

TEXT = "the red cat sees two small boats"


def _library():
    try:
        return get_espeak("library")
    except EspeakError as e:
        pytest.skip(f"espeakng-loader not usable: {e}")


@pytest.fixture(scope="module")
def lib():
    es = _library()
    yield es
    es.close()


def test_library_is_reproducible(lib):
    assert lib.sample_rate == 22050 and lib.identity().startswith("library:")
    a = lib.synthesize(TEXT, "en-us+m3", 160, 50)
    lib.synthesize("something else first", "en+f2", 200, 20)
    b = lib.synthesize(TEXT, "en-us+m3", 160, 50)
    assert a.dtype == np.int16 and 1.0 < len(a) / lib.sample_rate < 4.0
    assert np.array_equal(a, b)  # no state carried over from earlier utterances
    other = _library()
    try:
        assert np.array_equal(a, other.synthesize(TEXT, "en-us+m3", 160, 50))
    finally:
        other.close()


def test_library_seed_controls_breath_noise(lib):
    a0 = lib.synthesize(TEXT, "en-us+f2", 160, 50, seed=0)
    assert np.array_equal(a0, lib.synthesize(TEXT, "en-us+f2", 160, 50, seed=0))
    assert not np.array_equal(a0, lib.synthesize(TEXT, "en-us+f2", 160, 50, seed=7))


def test_rate_and_pitch_matter(lib):
    slow = lib.synthesize(TEXT, "en-us+m1", 120, 50)
    fast = lib.synthesize(TEXT, "en-us+m1", 220, 50)
    assert len(slow) > 1.4 * len(fast)
    assert not np.array_equal(lib.synthesize(TEXT, "en-us+m1", 120, 20), slow)


def test_bad_arguments(lib):
    lib.check_voice("en-gb-scotland+klatt")
    with pytest.raises(EspeakError, match="variant 'nosuch'"):
        lib.check_voice("en+nosuch")
    with pytest.raises(EspeakError, match="language 'xx-yy'"):
        lib.check_voice("xx-yy")
    with pytest.raises(EspeakError, match="rate"):
        lib.synthesize(TEXT, "en", 10, 50)
    with pytest.raises(EspeakError, match="empty"):
        lib.synthesize("  ", "en", 150, 50)
    with pytest.raises(ValueError, match="unknown eSpeak backend"):
        get_espeak("festival")


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng program not installed")
def test_command_backend():
    es = get_espeak("command")
    assert es.identity().startswith("command:") and es.sample_rate == 22050
    a = es.synthesize("-n " + TEXT, "en-us+f2", 160, 50)  # leading dash is text, not option
    assert a.dtype == np.int16 and len(a) > es.sample_rate
    assert np.array_equal(a, es.synthesize("-n " + TEXT, "en-us+f2", 160, 50))


FAKE_ESPEAK = """#!{python}
import json, sys
import numpy as np, soundfile
if sys.argv[1:] == ["--version"]:
    print("eSpeak NG text-to-speech: 9.99  Data at: /nonexistent")
    sys.exit(0)
args = sys.argv[1:]
text = sys.stdin.read()
with open({log!r}, "a") as f:
    f.write(json.dumps({{"args": args, "text": text}}) + "\\n")
if text.strip() == "fail":
    print("cannot speak", file=sys.stderr)
    sys.exit(3)
samples = (np.arange(len(text) * 100) % 200 - 100).astype(np.int16)
soundfile.write(args[args.index("-w") + 1], samples, 22050, subtype="PCM_16")
"""


def test_command_backend_passes_text_on_stdin_and_options_by_name(tmp_path, monkeypatch):
    """Without the real program: a stand-in espeak-ng on PATH records what
    the backend runs, so option building and error reporting are tested everywhere."""
    import json
    import sys

    log = tmp_path / "calls.jsonl"
    fake = tmp_path / "bin" / "espeak-ng"
    fake.parent.mkdir()
    fake.write_text(FAKE_ESPEAK.format(python=sys.executable, log=str(log)))
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    es = get_espeak("command")
    assert es.identity().startswith("command:") and es.version == "9.99" and es.sample_rate == 22050
    a = es.synthesize("-n " + TEXT, "en-us+f2", 160, 50)
    assert a.dtype == np.int16 and len(a) == len("-n " + TEXT) * 100
    call = json.loads(log.read_text().splitlines()[-1])
    assert call["text"] == "-n " + TEXT  # a leading dash reaches the program as text, on stdin
    args = call["args"]
    assert args[args.index("-v") + 1] == "en-us+f2" and args[args.index("-s") + 1] == "160"
    assert args[args.index("-p") + 1] == "50" and "--stdin" in args and "-n" not in args
    with pytest.raises(EspeakError, match="failed on 'fail': cannot speak"):
        es.synthesize("fail", "en", 160, 50)


def test_nothing_installed_says_what_to_install(monkeypatch):
    real_import = builtins.__import__

    def no_loader(name, *args, **kwargs):
        if name == "espeakng_loader":
            raise ImportError("no espeakng_loader")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_loader)
    monkeypatch.setattr(espeak_mod.shutil, "which", lambda _: None)
    with pytest.raises(EspeakError) as e:
        get_espeak()
    assert "pip install espeakng-loader" in str(e.value)
    assert "apt-get install espeak-ng" in str(e.value)
