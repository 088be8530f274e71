"""The recipes' Python programs are scripts, not package modules: the stage
helpers in egs2/TEMPLATE/dld1/pyscripts/ and the corpus generators in each
recipe's local/.  The tests import them by putting those folders on
``sys.path``, as running ``python pyscripts/<tool>.py`` or
``python local/<generator>.py`` does."""
import sys
from pathlib import Path

EGS2 = Path(__file__).resolve().parents[2] / "egs2"
PYSCRIPTS = EGS2 / "TEMPLATE" / "dld1" / "pyscripts"
LOCAL = {recipe: EGS2 / recipe / "asr1" / "local" for recipe in ("mini_dld", "fsdd_dld", "librispeech_dld")}

for folder in [Path(__file__).resolve().parent, PYSCRIPTS, *LOCAL.values()]:
    if str(folder) not in sys.path:
        sys.path.insert(0, str(folder))
