"""Holding the embedded model's greedy decoding to a grammar by checking only the token it wants.

llama-cpp-python's grammar sampler masks the whole vocabulary at every step: each of the
model's tokens (49k for SmolLM2, 151k for Qwen) is decoded and run through the grammar's stacks,
which costs nearly as much as the model's forward pass on a small model (8 of SmolLM2's 19 ms
per token, `bench/constrained_decoding.py`). At temperature 0 the reply
is the model's top token whenever the grammar allows it, so that token alone is checked first,
and the whole vocabulary is masked only when the grammar refuses it. This is llama.cpp's own
order (`common_sampler_sample`: the grammar checks the sampled token, and resamples from the
masked vocabulary only on a refusal); the reply is the same, token for token, as masking first.

A `GrammarCheck` is a llama-cpp-python logits processor for one call: it reads the tokens the
model wrote since its last step from the ids it is given, and moves the grammar past them.
"""

from __future__ import annotations

import ctypes
from typing import Any

import numpy as np
import numpy.typing as npt

from lmc.backends.base import LMCallFailed

# llama.cpp's `llama_token_data`: a token, its logit and its probability, aligned as in C.
_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


class GrammarRejected(LMCallFailed):
    """llama.cpp could not parse a reply's grammar (its reason goes to stderr): the call fails,
    said in one line."""


class GrammarCheck:
    """One greedy call's grammar: `__call__` is the logits processor, `close` frees it."""

    def __init__(self, llama: Any, grammar: str, root: str = "root"):
        import llama_cpp

        self._api = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            llama._model.vocab, grammar.encode("utf-8"), root.encode("utf-8")
        )
        if not self._sampler:
            raise GrammarRejected("llama.cpp could not parse the grammar")
        self._written = -1  # how many ids the grammar has been moved past; -1 before the first
        self._top = (llama_cpp.llama_token_data * 1)()
        self._top_array = llama_cpp.llama_token_data_array(self._top, 1, -1, False)
        self._vocabulary = np.zeros(llama.n_vocab(), dtype=_TOKEN_DATA)
        self._vocabulary["id"] = np.arange(len(self._vocabulary), dtype=np.intc)
        self._vocabulary_array = llama_cpp.llama_token_data_array(
            self._vocabulary.ctypes.data_as(ctypes.POINTER(llama_cpp.llama_token_data)),
            len(self._vocabulary),
            -1,
            False,
        )

    def __call__(
        self, ids: npt.NDArray[np.intc], logits: npt.NDArray[np.single]
    ) -> npt.NDArray[np.single]:
        self._follow(ids)
        top = int(np.argmax(logits))
        self._top[0].id = top  # type: ignore[assignment]  # ctypes converts the int
        self._top[0].logit = float(logits[top])
        self._top_array.size = 1
        self._top_array.selected = -1
        self._api.llama_sampler_apply(self._sampler, ctypes.byref(self._top_array))
        if self._top[0].logit != -np.inf:
            return logits
        # Refused: mask the whole vocabulary, as the grammar sampler would have done.
        self._vocabulary["logit"] = logits
        self._vocabulary_array.size = len(self._vocabulary)
        self._vocabulary_array.selected = -1
        self._vocabulary_array.sorted = False
        self._api.llama_sampler_apply(self._sampler, ctypes.byref(self._vocabulary_array))
        masked: npt.NDArray[np.single] = self._vocabulary["logit"].copy()
        return masked

    def _follow(self, ids: npt.NDArray[np.intc]) -> None:
        """Move the grammar past the tokens written since the last step. At the first step the
        ids are the prompt's, which the grammar does not cover."""
        if self._written >= 0:
            for token in ids[self._written :]:
                self._api.llama_sampler_accept(self._sampler, int(token))
        self._written = len(ids)

    def close(self) -> None:
        if self._sampler:
            self._api.llama_sampler_free(self._sampler)
            self._sampler = None
