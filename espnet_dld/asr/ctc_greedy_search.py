"""Greedy CTC decoding that plugs into ESPnet's ``Speech2Text``.

For a CTC-only model ESPnet's decoding always runs its label-synchronous
beam search with the CTC prefix scorer, even with ``beam_size: 1``; on a
CPU that search, not the encoder, dominates decoding time, which would hide
what a shallower encoder saves.  Best-path decoding (frame-wise argmax,
merge repeats, drop blanks) is the usual CTC greedy decoder; this class
stands in for ``Speech2Text.beam_search`` so that ESPnet's own
post-processing (token conversion, n-best writing) is unchanged.

``results`` turns the best path into the ``(text, token, token_int, hyp)``
entries ESPnet's ``Speech2Text`` returns, for the decoder's short path that
skips ESPnet's ``__call__`` (docs/depth_budget.md, "A shorter call").
"""
from __future__ import annotations

from typing import Any, List, Optional, Tuple

import torch

from espnet_dld.compat import Hypothesis


class CTCGreedySearch(torch.nn.Module):
    """Callable like ESPnet's ``BeamSearch``: ``search(x=enc) -> [Hypothesis]``."""

    def __init__(self, ctc: torch.nn.Module, sos: int, eos: int, blank: int = 0,
                 token_list: Optional[List[str]] = None):
        super().__init__()
        self.nn_dict = torch.nn.ModuleDict({"ctc": ctc})
        self.sos, self.eos, self.blank = sos, eos, blank
        self.token_list = token_list  # as BeamSearch's: ESPnet reads it to spell intermediate CTC outputs

    @torch.no_grad()
    def forward(self, x: torch.Tensor, maxlenratio: float = 0.0, minlenratio: float = 0.0) -> List[Hypothesis]:
        logp = self.nn_dict["ctc"].log_softmax(x.unsqueeze(0))[0]  # (T, V)
        best, ids = logp.max(dim=-1)
        collapsed = torch.unique_consecutive(ids)
        tokens = collapsed[collapsed != self.blank]
        yseq = torch.cat([tokens.new_tensor([self.sos]), tokens, tokens.new_tensor([self.eos])])
        score = best.sum()
        return [Hypothesis(yseq=yseq, score=score, scores={"ctc": score}, states={})]

    def results(self, enc: torch.Tensor, converter: Any, tokenizer: Optional[Any]
                ) -> List[Tuple[Optional[str], List[str], List[int], Hypothesis]]:
        """The one-best entry ``[(text, token, token_int, hyp)]`` for encoder
        output ``enc`` (T, D), with the same conversion as ESPnet's
        ``Speech2Text`` (sos/eos cut, id 0 dropped, ``converter`` to tokens,
        ``tokenizer`` to text, None without one)."""
        hyp = self(enc)[0]
        token_int = [t for t in hyp.yseq[1:-1].tolist() if t != 0]
        token = converter.ids2tokens(token_int)
        return [(tokenizer.tokens2text(token) if tokenizer is not None else None, token, token_int, hyp)]
