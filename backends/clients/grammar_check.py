"""Holding the embedded model's greedy decoding to a grammar by checking only the token it wants.

llama-cpp-python's grammar sampler masks the whole vocabulary at every step: each of the
model's tokens (49k for SmolLM2, 151k for Qwen) is decoded and run through the grammar's stacks,
which costs nearly as much as the model's forward pass on a small model (8 of SmolLM2's 19 ms
per token, `bench/constrained_decoding.py`). At temperature 0 the reply
is the model's top token whenever the grammar allows it, so that token alone is checked first,
and the whole vocabulary is masked only when the grammar refuses it. This is llama.cpp's own
order (`common_sampler_sample`: the grammar checks the sampled token, and resamples from the
masked vocabulary only on a refusal); the reply is the same, token for token, as masking first,
but for the loops closed below.

A `GrammarCheck` is a llama-cpp-python logits processor for one call: it reads the tokens the
model wrote since its last step from the ids it is given, and moves the grammar past them.

A JSON reply that says one short span over and over has stopped saying anything: SmolLM2 writes
"0" hundreds of times in a chain of thought, or the same clause (or a whole sentence, word for
word) again and again, until the field's bound or the reply's tokens run out (4 of 30 GSM8K
replies; closing them cut the tokens the model wrote on those 30 by a third).
Once the reply ends in such a loop (`repeating`), the string being written is closed, and the
reply goes on to its next field: a loop costs 64 tokens or so, not a thousand, and the reply
closes. A reply that opens with plain-text reasoning and loops there goes on to its JSON object
the same way: by a new line that opens with the object's `{`. (Sampled replies and served
models are not watched: they loop to the bound as before.)
"""

from __future__ import annotations

import ctypes
import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from lmc.backends.base import LMCallFailed

# llama.cpp's `llama_token_data`: a token, its logit and its probability, aligned as in C.
_TOKEN_DATA = np.dtype([("id", np.intc), ("logit", np.single), ("p", np.single)], align=True)


# A loop: the last LOOP_TOKENS tokens, and at least LOOP_REPEATS periods, are one span of at most
# LOOP_PERIOD tokens said again and again. Small models write a number a digit a token, so a sum
# of seven equal terms ("100 + 100 + ...") is 32 periodic tokens; 64 is thirteen terms.
LOOP_TOKENS = 64
LOOP_REPEATS = 8
LOOP_PERIOD = 16
# A sentence or a block said again word for word is a loop sooner: SmolLM2 wrote "The Importance
# of Being Icelandic and The Five Obstructions belong to the genre of documentary film." to a
# HotPotQA chain's 2,000-character bound. A span of more than LOOP_PERIOD and at most
# LONG_LOOP_PERIOD tokens, said LONG_LOOP_REPEATS times running, is one.
LONG_LOOP_PERIOD = 128
LONG_LOOP_REPEATS = 3


def repeating(reply: Sequence[int]) -> bool:
    """Whether `reply` ends in a loop: one span of at most `LOOP_PERIOD` tokens said over and
    over, for the last `LOOP_TOKENS` tokens and at least `LOOP_REPEATS` times; or a longer span
    (up to `LONG_LOOP_PERIOD`) said `LONG_LOOP_REPEATS` times running."""
    for period in range(1, LOOP_PERIOD + 1):
        length = max(LOOP_TOKENS, LOOP_REPEATS * period)
        if len(reply) < length:
            break  # a longer period needs at least as long a tail
        tail = reply[-length:]
        if tail[period:] == tail[:-period]:
            return True
    for period in range(LOOP_PERIOD + 1, LONG_LOOP_PERIOD + 1):
        length = LONG_LOOP_REPEATS * period
        if len(reply) < length:
            return False
        tail = reply[-length:]
        if tail[period:] == tail[:-period] and not _short_period(tail):
            return True
    return False


def _short_period(tail: Sequence[int]) -> bool:
    """Whether `tail` is one span of at most `LOOP_PERIOD` tokens over and over: then the short
    rule alone decides (twelve `100 + ` are arithmetic, though also three spans of four)."""
    return any(tail[p:] == tail[:-p] for p in range(1, LOOP_PERIOD + 1))


def _token_alone(llama: Any, text: bytes) -> int | None:
    """The vocabulary's token for `text` alone, such as `"` (a SentencePiece vocabulary may
    have only `▁"`)."""
    ids = llama.tokenize(text, add_bos=False, special=False)
    if len(ids) == 1 and llama.detokenize(ids) == text:
        return int(ids[0])
    return None


# Per vocabulary (one per model file loaded): which tokens are control tokens that do not end
# the reply, such as Qwen's `<|im_start|>`. llama.cpp's grammar reads such a token as its text,
# so a grammar that takes any text in a line takes it, yet the reply shows it as nothing: Qwen
# 0.5B padded its reasoning with thirty `<|im_start|>` and a new line each, lines the grammar
# had to allow. A held reply never writes one.
_CONTROL: dict[int, npt.NDArray[np.bool_]] = {}


def _control_tokens(llama: Any, api: Any) -> npt.NDArray[np.bool_]:
    vocab = llama._model.vocab
    key = ctypes.cast(vocab, ctypes.c_void_p).value or 0
    if key not in _CONTROL:
        _CONTROL[key] = np.array(
            [
                api.llama_vocab_is_control(vocab, token)
                and not api.llama_vocab_is_eog(vocab, token)
                for token in range(llama.n_vocab())
            ],
            dtype=np.bool_,
        )
    return _CONTROL[key]


def control_bias(llama: Any) -> dict[int, float]:
    """A `logit_bias` that keeps a sampled held reply from the control tokens the greedy check
    refuses (llama-cpp-python's own grammar sampler takes them, as text)."""
    import llama_cpp

    refused = np.flatnonzero(_control_tokens(llama, llama_cpp))
    return {int(token): -np.inf for token in refused}


# A line that opens with `{` (past its indent): the object of a reply that reasons first.
_OBJECT_LINE = re.compile(rb"\n[ \t]*\{")


class GrammarRejected(LMCallFailed):
    """llama.cpp could not parse a reply's grammar (its reason goes to stderr): the call fails,
    said in one line."""


class GrammarCheck:
    """One greedy call's grammar: `__call__` is the logits processor, `close` frees it. With
    `close_loops` (a JSON reply), a string the model loops in is closed; with `reasoning_first`
    (a number of characters), so is the plain-text reasoning the reply opens with, and at that
    length at the latest: its grammar does not count them, since a bounded repetition of a line
    makes llama.cpp's grammar slow to check (a second a token, masking SmolLM2's vocabulary)."""

    def __init__(
        self,
        llama: Any,
        grammar: str,
        root: str = "root",
        *,
        close_loops: bool = False,
        reasoning_first: int = 0,
    ):
        import llama_cpp

        self._api = llama_cpp
        self._sampler = llama_cpp.llama_sampler_init_grammar(
            llama._model.vocab, grammar.encode("utf-8"), root.encode("utf-8")
        )
        if not self._sampler:
            raise GrammarRejected("llama.cpp could not parse the grammar")
        self._written = -1  # how many ids the grammar has been moved past; -1 before the first
        self._reply: list[int] = []  # the tokens written so far
        self._detokenize = llama.detokenize
        self._quote = _token_alone(llama, b'"') if close_loops else None  # closes a string
        # What ends the reasoning the reply opens with: a new line, then its object's `{`.
        self._ends_reasoning: list[int] | None = None
        if close_loops and reasoning_first:
            ends = [_token_alone(llama, b"\n"), _token_alone(llama, b"{")]
            self._ends_reasoning = [token for token in ends if token is not None]
        self._reasoning_chars = reasoning_first
        self._text = bytearray()  # the reply so far
        self._forced: list[int] = []  # the rest of a closing under way
        self.loops_closed = 0  # strings closed because the model looped in them
        self._control = _control_tokens(llama, llama_cpp)
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
        closer = self._loop_closer() if self._quote is not None else None
        if closer is not None:
            closed = np.full_like(logits, -np.inf)
            closed[closer] = 0.0
            return closed
        top = int(np.argmax(logits))
        if self._allows(top, float(logits[top])):
            return logits
        # Refused: mask the whole vocabulary, as the grammar sampler would have done.
        self._vocabulary["logit"] = logits
        self._vocabulary_array.size = len(self._vocabulary)
        self._vocabulary_array.selected = -1
        self._vocabulary_array.sorted = False
        self._api.llama_sampler_apply(self._sampler, ctypes.byref(self._vocabulary_array))
        masked: npt.NDArray[np.single] = self._vocabulary["logit"].copy()
        masked[self._control] = -np.inf
        return masked

    def _loop_closer(self) -> int | None:
        """The token that ends the loop the reply is in, if it is in one: a new line and the
        object's `{` while the reply is still reasoning (or its reasoning is at its bound), else
        the `"` that closes the string."""
        if self._forced:
            token = self._forced.pop(0)
            return token if self._allows(token, 0.0) else None
        if self._ends_reasoning is not None and _OBJECT_LINE.search(self._text):
            self._ends_reasoning = None  # the object has begun: strings are closed now
        at_bound = self._ends_reasoning is not None and len(self._text) >= self._reasoning_chars
        if not (at_bound or repeating(self._reply)):
            return None
        closer = None
        if self._ends_reasoning is not None:
            # A new line then `{`; just `{` where a line has just ended.
            ends = self._ends_reasoning
            start = next((i for i, token in enumerate(ends) if self._allows(token, 0.0)), None)
            if start is not None:
                closer, self._forced = ends[start], ends[start + 1 :]
        elif self._quote is not None and self._closes_a_string(self._quote):
            closer = self._quote
        if closer is not None and not at_bound:
            self.loops_closed += 1
        return closer

    def _closes_a_string(self, quote: int) -> bool:
        """Whether `"` would close the string being written: the grammar takes it, and it would
        not be escaped (after an odd run of backslashes it is a quote inside the text)."""
        text = self._detokenize(self._reply[-LOOP_PERIOD:])
        backslashes = len(text) - len(text.rstrip(b"\\"))
        return backslashes % 2 == 0 and self._allows(quote, 0.0)

    def _allows(self, token: int, logit: float) -> bool:
        """Whether the grammar lets the reply go on with `token`: it alone is checked."""
        if self._control[token]:
            return False
        self._top[0].id = token  # type: ignore[assignment]  # ctypes converts the int
        self._top[0].logit = logit
        self._top_array.size = 1
        self._top_array.selected = -1
        self._api.llama_sampler_apply(self._sampler, ctypes.byref(self._top_array))
        return bool(self._top[0].logit != -np.inf)

    def _follow(self, ids: npt.NDArray[np.intc]) -> None:
        """Move the grammar past the tokens written since the last step. At the first step the
        ids are the prompt's, which the grammar does not cover."""
        if self._written >= 0:
            for token in ids[self._written :]:
                self._api.llama_sampler_accept(self._sampler, int(token))
                self._reply.append(int(token))
                if self._ends_reasoning is not None:
                    self._text += self._detokenize([int(token)])
        self._written = len(ids)

    def close(self) -> None:
        if self._sampler:
            self._api.llama_sampler_free(self._sampler)
            self._sampler = None
