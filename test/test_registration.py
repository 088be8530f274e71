"""`import espnet_dld` makes our classes visible to ESPnet's ASR task,
whichever is imported first, quietly, and without loading ESPnet itself."""
import subprocess
import sys

import pytest

CHECK = "import espnet2.tasks.asr as a; print(sorted(k for k in a.encoder_choices.classes if k.startswith('dld')), " \
        "'dld' in a.model_choices.classes, a.encoder_choices.classes.get('wavlm').__name__)"


@pytest.mark.parametrize("order", ["espnet_dld first", "espnet first"])
def test_registered_in_espnet_asr_task(order):
    code = f"import espnet_dld; {CHECK}" if order == "espnet_dld first" else f"{CHECK.split(';')[0]}; import espnet_dld; {CHECK}"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "['dld_conformer', 'dld_transformer', 'dld_wavlm'] True WavLMEncoder"
    if order == "espnet_dld first":
        assert "nltk_data" not in r.stderr and "Failed to import Flash" not in r.stdout


def test_importing_the_package_does_not_load_espnet():
    r = subprocess.run([sys.executable, "-c", "import sys, espnet_dld, espnet_dld.data.kaldi_dir, "
                        "espnet_dld.utils.scoring; print('espnet2.tasks.asr' in sys.modules, 'torch' in sys.modules)"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["False", "False"]
