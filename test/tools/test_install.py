"""tools/install.sh and its check (tools/check_install.py), run against the
venv the tests run in.  Nothing here installs packages: the install.sh runs
use ``--check`` / ``--dry-run`` or hit the up-to-date path, on a light clone
of the current venv (its own pyvenv.cfg and stamp, the site-packages shared
through a symlink), so the real venv's stamp is never touched."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools"
STAMP = ".espnet_dld_installed"


def _env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHON", "VENV", "PYTHONPATH")}
    env.update(extra)
    return env


def _run(cmd, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, env=_env(**extra), capture_output=True, text=True, timeout=600)


def _tools_checkout(tmp_path: Path) -> Path:
    """A checkout holding only setup.py and tools/'s own files: never a venv
    (CI builds tools/venv-py3.12 beside tools/venv, 11 GB that pytest would
    otherwise copy and keep in its basetemp)."""
    root = tmp_path / "checkout"
    (root / "tools").mkdir(parents=True)
    for src in TOOLS.iterdir():
        if src.name.startswith("venv") or src.name == "__pycache__":
            continue
        if src.is_dir():
            shutil.copytree(src, root / "tools" / src.name)
        else:
            shutil.copy(src, root / "tools" / src.name)
    shutil.copy(ROOT / "setup.py", root / "setup.py")
    return root


@pytest.fixture
def broken_torchaudio(tmp_path: Path) -> Path:
    """A ``torchaudio`` first on the path that fails on import the way the
    torchaudio 2.11.1 / torch 2.11.0 pair did."""
    pkg = tmp_path / "broken" / "torchaudio"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(
        'raise OSError("libtorchaudio.so: undefined symbol: torch_exception_get_what_without_backtrace")\n')
    return pkg.parent


@pytest.fixture
def light_venv(tmp_path: Path) -> Path:
    """A venv sharing the current one's packages but with its own prefix."""
    real = Path(sys.prefix)
    if not (real / "pyvenv.cfg").exists():
        pytest.skip("the tests do not run in a virtual environment")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    shutil.copy(real / "pyvenv.cfg", venv / "pyvenv.cfg")
    (venv / "bin" / "python").symlink_to(Path(sys.executable))
    for lib in ("lib", "lib64"):
        if (real / lib).exists():
            (venv / lib).symlink_to((real / lib).resolve())
    return venv


def test_check_passes_on_the_current_environment():
    res = _run([sys.executable, str(TOOLS / "check_install.py")])
    assert res.returncode == 0, res.stderr
    for package in ("torch ", "torchaudio ", "espnet ", "espnet_model_zoo ", "espnet_dld "):
        assert package in res.stdout
    assert "tiny dld_conformer: loss" in res.stdout
    assert "parameter tensors got gradients" in res.stdout


def test_check_names_the_broken_package_and_the_fix(broken_torchaudio: Path):
    res = _run([sys.executable, str(TOOLS / "check_install.py")], PYTHONPATH=str(broken_torchaudio))
    assert res.returncode == 1
    assert "cannot import 'torchaudio' (package 'torchaudio')" in res.stderr
    assert "undefined symbol: torch_exception_get_what_without_backtrace" in res.stderr
    assert "bash tools/install.sh" in res.stderr
    assert "install check passed" not in res.stdout


def test_failed_check_writes_no_stamp_and_removes_an_old_one(light_venv: Path, broken_torchaudio: Path):
    stamp = light_venv / STAMP
    stamp.write_text("an old stamp\n")
    res = _run(["bash", str(TOOLS / "install.sh"), "--check"], VENV=str(light_venv),
               PYTHONPATH=str(broken_torchaudio))
    assert res.returncode != 0
    assert "cannot import 'torchaudio'" in res.stderr
    assert "no stamp written" in res.stderr
    assert not stamp.exists()


def test_stamp_covers_the_lock(light_venv: Path, tmp_path: Path):
    # A passing check writes the stamp; the next plain run takes the
    # up-to-date path (no pip) and repeats the check.
    res = _run(["bash", str(TOOLS / "install.sh"), "--check"], VENV=str(light_venv))
    assert res.returncode == 0, res.stderr
    assert (light_venv / STAMP).exists()
    res = _run(["bash", str(TOOLS / "install.sh")], VENV=str(light_venv))
    assert res.returncode == 0, res.stderr
    assert "already installed" in res.stdout and "check passed" in res.stdout
    res = _run(["bash", str(TOOLS / "install.sh"), "--dry-run"], VENV=str(light_venv))
    assert "up to date" in res.stdout

    # The same venv against a checkout whose lock changed: reinstall.
    root = _tools_checkout(tmp_path)
    line = f"{sys.version_info.major}.{sys.version_info.minor}"
    lock = root / "tools" / "lock" / f"py{line}.txt"
    res = _run(["bash", str(root / "tools" / "install.sh"), "--dry-run"], VENV=str(light_venv))
    assert "up to date" in res.stdout, res.stdout + res.stderr
    lock.write_text(lock.read_text().replace("\nnumpy==", "\nnumpy===0.0.0\n# numpy=="))
    res = _run(["bash", str(root / "tools" / "install.sh"), "--dry-run"], VENV=str(light_venv))
    assert "would reinstall" in res.stdout and "another setup.py, lock or check" in res.stdout


def test_unsupported_python_line_is_refused(light_venv: Path, tmp_path: Path):
    root = _tools_checkout(tmp_path)
    line = f"{sys.version_info.major}.{sys.version_info.minor}"
    (root / "tools" / "lock" / f"py{line}.txt").unlink()
    res = _run(["bash", str(root / "tools" / "install.sh"), "--dry-run"], VENV=str(light_venv))
    assert res.returncode != 0
    assert f"Python {line} has no tested lock" in res.stderr


def test_locks_pin_the_tested_pairs():
    """Every supported line has a lock with exact versions of the packages
    that broke before, and torch/torchaudio from the same release."""
    locks = sorted((TOOLS / "lock").glob("py*.txt"))
    assert [p.name for p in locks] == ["py3.11.txt", "py3.12.txt"]
    for lock in locks:
        pins = dict(line.split("==", 1) for line in lock.read_text().splitlines()
                    if line and not line.startswith("#"))
        for name in ("torch", "torchaudio", "espnet", "numpy", "sentencepiece", "espnet_model_zoo", "pip"):
            assert name in pins or name.replace("_", "-") in pins, (lock.name, name)
        assert pins["torchaudio"] != "2.11.1"
        assert pins["torch"].split(".")[:2] == pins["torchaudio"].split(".")[:2]
    assert dict(line.split("==", 1) for line in locks[0].read_text().splitlines()
                if line and not line.startswith("#"))["espnet"] == "202511"


@pytest.mark.parametrize("code", [
    "import espnet_dld.bin.asr_inference",
    "from espnet_dld import Speech2Text",
    "import espnet_dld, espnet2.bin.asr_inference",  # ESPnet's own inference module after ours
])
def test_inference_imports_print_no_download_errors_offline(code: str):
    """g2p_en asks NLTK to download data at import; offline that printed
    eight lines of errors.  This machine (and CI) has no route to the NLTK
    host, so the subprocess sees what an offline user sees."""
    res = _run([sys.executable, "-c", code])
    assert res.returncode == 0, res.stderr
    out = res.stdout + res.stderr
    assert "nltk_data" not in out and "Error loading" not in out
    assert "Traceback" not in out
    if code.startswith(("import espnet_dld.bin", "from espnet_dld")):
        assert out == ""  # our own inference path prints nothing at all (no flash-attn notice either)
