"""Schema-constrained greedy decoding for transformers models, with the grammar engine that serving uses.

Ollama (``format``) and the in-process ``llamacpp`` analyzer answer through a llama.cpp grammar built from the
analysis JSON schema: a token that would break the schema is never chosen. A model evaluated without that
constraint is a different model from the one users get (a half-trained model that drifts out of JSON scores zero
in evaluation yet answers valid JSON in production), and two engines can only be compared under the same
constraint. So evaluation masks transformers' next-token scores with llama.cpp's own grammar sampler, built from
the same schema by the same code as the ``llamacpp`` analyzer's grammar
(:func:`dagnostics_provider.hooks.llamacpp.schema_grammar`), over the model's vocabulary as llama.cpp reads it from
a GGUF file with the same tokenizer.

Each sequence of a batch has its own grammar state; a state accepts the token its sequence chose before the next
step is masked. llama-cpp-python is in the ``[serving]`` extra and imported here only when used.
"""

from __future__ import annotations

import ctypes
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

_TOKEN_DATA = np.dtype([("id", "<i4"), ("logit", "<f4"), ("p", "<f4")])
_GRAMMAR_ROOT = b"root"
_vocab_lock = threading.Lock()


class SchemaGrammar:
    """The grammar of a JSON schema over one GGUF vocabulary; makes per-sequence grammar states."""

    def __init__(self, vocab_gguf: Path, schema: dict[str, Any]) -> None:
        import llama_cpp
        from llama_cpp import Llama
        from llama_cpp import llama_cpp as lc

        from dagnostics_provider.hooks.llamacpp import schema_grammar

        self._lc = lc
        with _vocab_lock:
            self._llama = Llama(model_path=str(vocab_gguf), vocab_only=True, verbose=False)
        self._vocab = lc.llama_model_get_vocab(self._llama.model)
        self.n_vocab = int(lc.llama_vocab_n_tokens(self._vocab))
        self.eos_ids = _end_of_generation_ids(lc, self._vocab, self.n_vocab)
        # The analyzer's own grammar (hooks.llamacpp), so evaluation is constrained exactly as serving is.
        self._text = schema_grammar(llama_cpp, json.dumps(schema))._grammar.encode("utf-8")
        # Build one state now, so a schema llama.cpp refuses fails here with its reason, not mid-generation.
        self.new_state().close()

    def close(self) -> None:
        """Free the vocabulary model now rather than in llama-cpp-python's finaliser at interpreter exit."""
        self._llama.close()

    def new_state(self) -> GrammarState:
        sampler = self._lc.llama_sampler_init_grammar(self._vocab, self._text, _GRAMMAR_ROOT)
        if not sampler:
            raise ValueError("llama.cpp could not build a grammar from the analysis schema")
        return GrammarState(self._lc, sampler, self.n_vocab)


class GrammarState:
    """One sequence's position in the grammar: masks the scores of tokens that would break it."""

    def __init__(self, lc: Any, sampler: Any, n_vocab: int) -> None:
        self._lc, self._sampler, self._n = lc, sampler, n_vocab
        self._buffer = (lc.llama_token_data * n_vocab)()
        self._view = np.frombuffer(self._buffer, dtype=_TOKEN_DATA)
        self._array = lc.llama_token_data_array(
            data=ctypes.cast(self._buffer, lc.llama_token_data_p), size=n_vocab, selected=-1, sorted=False
        )
        self._ids = np.arange(n_vocab, dtype=np.int32)

    def mask(self, scores: np.ndarray) -> np.ndarray:
        """``scores`` (one row, the model's vocabulary) with every token the grammar refuses set to -inf."""
        n = self._n
        self._view["id"] = self._ids
        self._view["logit"] = scores[:n]
        self._view["p"] = 0.0
        self._array.size, self._array.selected, self._array.sorted = n, -1, False
        self._lc.llama_sampler_apply(self._sampler, ctypes.byref(self._array))
        masked = np.full(scores.shape, -np.inf, dtype=np.float32)
        masked[self._view["id"][: self._array.size]] = self._view["logit"][: self._array.size]
        return masked

    def accept(self, token: int) -> None:
        self._lc.llama_sampler_accept(self._sampler, int(token))

    def close(self) -> None:
        if self._sampler:
            self._lc.llama_sampler_free(self._sampler)
            self._sampler = None


def _end_of_generation_ids(lc: Any, vocab: Any, n_vocab: int) -> frozenset[int]:
    return frozenset(token for token in range(n_vocab) if lc.llama_vocab_is_eog(vocab, token))


class SchemaLogitsProcessor:
    """A transformers ``LogitsProcessor`` that keeps each row of a batch inside the grammar.

    ``prompt_length`` is the padded prompt width: tokens after it were generated and are fed to the row's grammar
    state once, in order; a row that has ended (an end-of-generation token) is left alone.
    """

    def __init__(self, grammar: SchemaGrammar, batch_size: int, prompt_length: int) -> None:
        self._grammar = grammar
        self._states = [grammar.new_state() for _ in range(batch_size)]
        self._prompt_length = prompt_length
        self._done = [False] * batch_size

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        import torch

        generated = input_ids.shape[1] - self._prompt_length
        rows = scores.detach().float().cpu().numpy()
        for row, state in enumerate(self._states):
            if generated > 0 and not self._done[row]:
                token = int(input_ids[row, -1])
                if token in self._grammar.eos_ids:
                    self._done[row] = True
                else:
                    state.accept(token)
            if not self._done[row]:
                rows[row] = state.mask(rows[row])
        return torch.from_numpy(rows).to(device=scores.device, dtype=scores.dtype)

    def close(self) -> None:
        for state in self._states:
            state.close()
