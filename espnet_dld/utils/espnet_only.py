"""Code for a child process that must run on ESPnet alone.

An exported model is only useful if ESPnet can decode it without this
package; a benchmark or test proves that in a subprocess that starts with
:data:`BLOCK_ESPNET_DLD`, which makes every import of ``espnet_dld`` fail.
"""

#: Python source to put first in ``python -c`` code: any later ``import espnet_dld`` raises ImportError
BLOCK_ESPNET_DLD = r"""
import importlib.abc, sys
class BlockEspnetDld(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "espnet_dld":
            raise ImportError("espnet_dld is blocked in this process")
sys.meta_path.insert(0, BlockEspnetDld())
"""
