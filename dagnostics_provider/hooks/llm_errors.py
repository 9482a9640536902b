"""The errors the LLM hooks raise.

Ollama and OpenAI-compatible servers, and llama.cpp running in-process, fail in the same few ways: nothing
answers (no server, no model file), the answer takes too long, the request is refused, or what comes back is not
what the API promises.  One small hierarchy for all lets the analyzer decide what to retry and what to give up on
without knowing which engine it talked to, and lets deployment code catch one base class.  The messages are short
and free of ``requests``' pool internals because they end up, verbatim, in the ``fallback_reason`` stored next
to an analysis.
"""

from __future__ import annotations


class LLMError(Exception):
    """The LLM server could not give a usable answer."""


class LLMUnavailable(LLMError):
    """Nothing usable answers at the base URL: connection refused, unknown host, connect timeout, dropped link.

    Retrying right away rarely helps, so the analyzer falls back at once instead of making every failed task
    wait for a server that is down.
    """


class LLMTimeout(LLMError):
    """The server accepted the request but did not finish answering within the timeout."""


class LLMHTTPError(LLMError):
    """The server answered with an HTTP error; ``server_error`` is the server's own explanation."""

    def __init__(self, status_code: int, server_error: str, url: str) -> None:
        self.status_code = status_code
        self.server_error = server_error
        self.url = url
        super().__init__(f"{url} answered HTTP {status_code}: {server_error}")

    @property
    def retryable(self) -> bool:
        """Overload and server faults may pass; a refused request (bad model name, bad payload) will not."""
        return self.status_code in (408, 429) or self.status_code >= 500


class LLMNotFound(LLMHTTPError):
    """HTTP 404: the model (or the blob, or the endpoint) does not exist on the server."""


class LLMRequestInvalid(LLMError):
    """The request cannot succeed as configured: a prompt longer than the context window, a schema the engine cannot
    compile. Asking again gives the same refusal, so the analyzer falls back at once.
    """


class LLMInvalidResponse(LLMError):
    """The server answered 2xx with something the API does not promise: not JSON, wrong shape, far too large."""


class LLMStreamError(LLMError):
    """A streamed operation reported ``{"error": ...}`` on one of its lines after starting successfully.

    Ollama's ``/api/create`` answers HTTP 200 as soon as it starts streaming, so a failure half-way through is
    only visible in the stream itself.
    """
