"""``OllamaDeployOperator``: put a trained model version into Ollama and make it the analyzer's model."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from airflow.sdk import BaseOperator


class OllamaDeployOperator(BaseOperator):
    """Merge, upload, create, verify and promote a model version; the work lives in
    :mod:`dagnostics_provider.deploy.ollama_deploy` (see docs/deployment.md).

    Returns (XCom) ``version``, ``tag`` (the version's own Ollama name), ``alias`` (the name the analyzer now uses,
    None when not promoted), ``deployment_id``, ``target`` (the Ollama base URL), ``promoted`` and ``bundle_dir``.
    With ``auto_build=False`` nothing is sent: it returns ``version``, ``tag``, ``bundle_dir`` and the
    ``create_command`` to run on the Ollama machine. A failed deployment fails the task and leaves production
    unchanged.

    :param model_dir: the version directory (local path or object storage URL), e.g. the ``uri`` a training
        task returned.
    :param model_name: Ollama name of the version, ``NAME`` or ``NAME:TAG``; default the alias's name tagged
        ``vMAJOR.MINOR``.
    :param auto_build: deploy to the server (True) or only write the bundle (False).
    :param quantize: quantization Ollama applies on create: ``f32``, ``f16``, ``bf16``, ``q8_0``, ``q4_K_S`` or
        ``q4_K_M`` (any case). Another value fails when the DAG is parsed (or, templated, when the task starts),
        never after the merge.
    :param ollama_conn_id: the Ollama connection; default ``[dagnostics] llm_conn_id``, else ``ollama_default``.
    :param alias: the name to promote to; default ``[dagnostics] deploy_alias``.
    :param convert_script: llama.cpp's ``convert_hf_to_gguf.py`` to export GGUF with; default
        ``[dagnostics] llama_cpp_convert_script``, else the pinned converter (fetched once).
    :param import_format: ``gguf`` (one GGUF file, any Ollama version) or ``safetensors`` (Ollama's own import, for
        the architectures the server's version takes); default ``[dagnostics] deploy_import_format``.
    :param promote: make the verified version the analyzer's model (False: create and verify only, for A/B tests).
    """

    template_fields: Sequence[str] = ("model_dir", "model_name", "quantize", "alias")
    ui_color = "#e3f2fd"

    def __init__(
        self,
        *,
        model_dir: str,
        model_name: str | None = None,
        auto_build: bool = True,
        quantize: str | None = None,
        ollama_conn_id: str | None = None,
        alias: str | None = None,
        convert_script: str | None = None,
        import_format: str | None = None,
        promote: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_dir = model_dir
        self.model_name = model_name
        self.auto_build = auto_build
        self.quantize = _checked_quantize(quantize)
        self.ollama_conn_id = ollama_conn_id
        self.alias = alias
        self.convert_script = convert_script
        self.import_format = import_format
        self.promote = promote

    def execute(self, context: Any) -> dict[str, Any]:
        from dagnostics_provider.deploy import ollama_deploy

        if not self.auto_build:
            built = ollama_deploy.build_only(
                self.model_dir,
                model_name=self.model_name,
                quantize=self.quantize,
                convert_script=self.convert_script,
                import_format=self.import_format,
            )
            self.log.info("Bundle written to %s; build it with: %s", built.bundle_dir, built.create_command)
            return built.to_dict()
        result = ollama_deploy.deploy(
            self.model_dir,
            ollama_deploy.ollama_hook(self.ollama_conn_id),
            model_name=self.model_name,
            alias=self.alias,
            quantize=self.quantize,
            convert_script=self.convert_script,
            import_format=self.import_format,
            promote=self.promote,
        )
        return result.to_dict()


def _checked_quantize(quantize: str | None) -> str | None:
    """Refuse a literal quantization Ollama does not know while the DAG is parsed; a template is checked at run."""
    from dagnostics_provider.deploy.ollama_rules import check_quantize

    if quantize is None or "{{" in quantize or "{%" in quantize:
        return quantize
    check_quantize(quantize)
    return quantize
