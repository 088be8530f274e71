"""One record for an utterance left out because of its audio, shared by the
recipes' stage 3 (``pyscripts/format_audio.py``) and decoding
(``espnet_dld.asr.wav_scp_check``), so both write ``bad_utts.txt`` alike."""
from __future__ import annotations

from dataclasses import dataclass

BAD_UTTS = "bad_utts.txt"


@dataclass(frozen=True)
class BadUtt:
    """An utterance whose audio cannot be used, and why."""

    utt_id: str
    file: str
    reason: str

    def line(self) -> str:
        """``<utt>\\t<file>\\t<reason>``: one line of ``bad_utts.txt``."""
        return f"{self.utt_id}\t{self.file}\t{self.reason}"
