"""ASR components of espnet-dld: dynamic-depth encoders, the DLD model, the teacher."""
from espnet_dld.utils.quiet_imports import quiet_espnet_imports

with quiet_espnet_imports():  # ESPnet's attention module prints a notice when flash-attn is absent
    pass
