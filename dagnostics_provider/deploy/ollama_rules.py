"""What an Ollama server accepts as a model name and as a quantization, checked before any work is done.

Ollama refuses both late: a bad name only when ``/api/create`` is finally called (after the merge and the upload),
a bad quantization only after the model was converted. Checking them first turns a failure minutes or hours into a
deployment into an immediate :class:`ValueError` that says what is allowed.

Names follow Ollama's ``types/model/name.go`` (``ParseName`` + ``IsValid``, the same from v0.3 to v0.33):
``[host/][namespace/]model[:tag]``, missing parts defaulting to ``registry.ollama.ai``, ``library`` and
``latest``. Every part starts with an ASCII letter, digit or ``_`` and goes on with those, ``-`` and ``.``; the
namespace may not hold a ``.``, only the host may hold a ``:`` (its port). The host may be 350 characters long,
the namespace, model and tag 80 each.

Quantizations follow ``ParseFileType`` in Ollama's ``fs/ggml/type.go`` since v0.7: the server upper-cases the
value and knows six types (and reads ``Q4_K`` as ``Q4_K_M``). Servers before 0.7 took more (``q4_0``, ``q5_K_M``...);
since 0.7 those fail, so only the six are let through, which every version takes.
"""

from __future__ import annotations

QUANTIZE_TYPES: tuple[str, ...] = ("F32", "F16", "BF16", "Q8_0", "Q4_K_S", "Q4_K_M")
# ParseName's placeholder for a part promised by a separator but empty ("x:", "/x"); it never validates.
_MISSING = "!MISSING!"
_DEFAULTS = {"host": "registry.ollama.ai", "namespace": "library", "tag": "latest"}
_MAX_CHARS = {"host": 350, "namespace": 80, "model": 80, "tag": 80}
_PART_ORDER = ("host", "namespace", "model", "tag")
_RULES = (
    "[host/][namespace/]model[:tag], each part starting with a letter, digit or '_' and made of letters, digits, "
    "'_', '-' and '.' (no '.' in the namespace), the namespace, model and tag at most 80 characters each"
)


def model_name_parts(name: str) -> dict[str, str]:
    """The parts Ollama reads from ``name`` (ParseNameBare), before defaults: a part it lacks is not in the dict."""
    parts: dict[str, str] = {}
    rest = name
    if rest.rfind(":") > rest.rfind("/"):  # "/" is not allowed in a tag, so a later ":" starts one
        rest, parts["tag"] = _cut_last(rest, ":")
    if "/" not in rest:
        parts["model"] = rest
        return parts
    rest, parts["model"] = _cut_last(rest, "/")
    if "/" not in rest:
        parts["namespace"] = rest
        return parts
    rest, parts["namespace"] = _cut_last(rest, "/")
    scheme, separator, host = rest.partition("://")
    parts["host"] = host if separator else scheme
    return parts


def model_name_problem(name: str) -> str | None:
    """Why Ollama refuses ``name`` as a model name, or None when it accepts it."""
    parts = {**_DEFAULTS, **model_name_parts(name)}
    for kind in _PART_ORDER:
        problem = _part_problem(kind, parts[kind])
        if problem:
            return problem
    return None


def check_model_name(name: str) -> str:
    """``name`` if Ollama accepts it as a model name; a :class:`ValueError` that says why otherwise."""
    problem = model_name_problem(name)
    if problem:
        raise ValueError(f"{name!r} is not a valid Ollama model name: {problem}; Ollama takes {_RULES}")
    return name


def check_quantize(quantize: str | None) -> str | None:
    """``quantize`` as given when Ollama can apply it on create (any case), None for none; else a ValueError.

    Ollama only refuses an unknown type after it has converted the whole model, so this runs first.
    """
    if quantize is None or not quantize.strip():
        return None
    if quantize.strip().upper() not in QUANTIZE_TYPES:
        allowed = ", ".join(_display_types())
        raise ValueError(
            f"{quantize!r} is not a quantization Ollama applies on create: use one of {allowed} (any case). "
            "Ollama (since 0.7) refuses the others (q4_0, q5_K_M, q6_K...), and only after converting the model"
        )
    return quantize.strip()


def _display_types() -> tuple[str, ...]:
    """The types as usually written (``q4_K_M``): lower case but the k-quants' suffix."""
    return tuple(t[0].lower() + t[1:] if "_K_" in t else t.lower() for t in QUANTIZE_TYPES)


def _cut_last(text: str, separator: str) -> tuple[str, str]:
    """Split at the last ``separator``; an empty side becomes the missing-part placeholder, as in name.go."""
    before, _, after = text.rpartition(separator)
    return before or _MISSING, after or _MISSING


def _part_problem(kind: str, part: str) -> str | None:
    if part == _MISSING or not part:
        return f"the {kind} is empty"
    if len(part) > _MAX_CHARS[kind]:
        return f"the {kind} {part!r} is longer than {_MAX_CHARS[kind]} characters"
    if not _word_char(part[0]):
        return f"the {kind} {part!r} must start with a letter, a digit or '_'"
    for char in part[1:]:
        if _word_char(char) or char in "-_":
            continue
        if char == "." and kind != "namespace":
            continue
        if char == ":" and kind == "host":
            continue
        return f"the {kind} {part!r} may not contain {char!r}"
    return None


def _word_char(char: str) -> bool:
    """ASCII letters, digits and ``_`` only: name.go checks bytes, so no other alphabet is a letter to Ollama."""
    return char == "_" or (char.isascii() and char.isalnum())
