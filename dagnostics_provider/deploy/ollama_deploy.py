"""Deploying a model version to an Ollama server, promoting it, and rolling back, over Ollama's REST API only.

A deployment goes: bundle (:mod:`.bundle`) → upload the files as blobs (:mod:`.upload`) → ``/api/create`` under
the version's own tag (``dagnostics-slm:v1.0``), every streamed status line checked → verify (``/api/show`` has
the template that was sent, a smoke ``/api/chat`` with the analysis schema as ``format`` answers a valid analysis)
→ promote: ``/api/copy`` of the tag to the alias the analyzer uses (``[dagnostics] deploy_alias``), the registry's
production pointer, the store's deployment row.

Production changes only after verification, and every failure leaves it as it was: the deployment row ends
``failed`` with the reason, a version tag this attempt created is deleted again, and an alias already moved is
copied back. Versions stay on the server under their own tags, which is what makes :func:`rollback` a copy.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from dagnostics_provider import artifacts, config, prompt_format
from dagnostics_provider.analysis.llm import ollama_options, parse_answer
from dagnostics_provider.analysis.schema import AnalysisResult, InvalidAnalysis, json_schema
from dagnostics_provider.deploy import architectures
from dagnostics_provider.deploy import bundle as bundles
from dagnostics_provider.deploy.modelfile import ModelfileSpec
from dagnostics_provider.deploy.ollama_rules import check_model_name, check_quantize
from dagnostics_provider.deploy.upload import upload_files
from dagnostics_provider.hooks.llm_errors import LLMError, LLMNotFound
from dagnostics_provider.hooks.ollama import OllamaHook, canonical_model_name
from dagnostics_provider.store import deployments
from dagnostics_provider.store.models import Deployment, DeploymentStatus
from dagnostics_provider.training import registry
from dagnostics_provider.training.evaluation import read_training_info

log = logging.getLogger(__name__)


class DeployError(RuntimeError):
    """A deployment or rollback did not happen; production (the alias and the registry) is as it was.

    ``deployment_id`` is the store row that recorded the failed attempt, when one was started.
    """

    def __init__(self, message: str, deployment_id: int | None = None) -> None:
        super().__init__(message)
        self.deployment_id = deployment_id


class VerificationError(RuntimeError):
    """The created model is not the one that was sent, or does not answer a valid analysis."""


@dataclass(frozen=True)
class BundleResult:
    """``--auto-build false``: the bundle to build from by hand, and the command that does it."""

    version: str
    tag: str
    bundle_dir: str
    create_command: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DeployResult:
    """A model serving on ``target`` under ``tag`` (and ``alias`` when promoted); what the operator returns."""

    version: str
    tag: str
    alias: str | None
    deployment_id: int
    target: str
    promoted: bool
    bundle_dir: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def ollama_hook(conn_id: str | None = None) -> OllamaHook:
    """The Ollama server the analyzer uses (``[dagnostics] llm_conn_id``) unless ``conn_id`` names another.

    Deploying elsewhere than the analyzer asks is possible, but then :mod:`.serving` finds no deployment for the
    analyzer's server and it keeps its configured model.
    """
    return OllamaHook(conn_id or config.get("llm_conn_id").strip() or OllamaHook.default_conn_name)


def version_tag(version: str, model_name: str) -> str:
    """The version's own Ollama name: ``model_name`` as given when it has a tag, else tagged ``vMAJOR.MINOR``."""
    if ":" in model_name.rsplit("/", 1)[-1]:
        return check_model_name(model_name)
    try:
        major, minor = registry.parse_version(version)
    except registry.RegistryError:
        raise ValueError(
            f"{version!r} is not a registry version, so no tag can be derived from it: give --model-name NAME:TAG"
        ) from None
    return check_model_name(f"{model_name}:v{major}.{minor}")


def _default_model_name(alias: str) -> str:
    return alias.rsplit(":", 1)[0] if ":" in alias.rsplit("/", 1)[-1] else alias


def _version_dir(model_dir: str | Path) -> tuple[Path, str]:
    """A local copy of the version directory (object storage is downloaded) and the version's name."""
    local = registry.local_copy(str(model_dir))
    info = read_training_info(local)
    return local, str(info.get("version") or local.name)


def build_only(
    model_dir: str | Path,
    *,
    model_name: str | None = None,
    quantize: str | None = None,
    convert_script: str | None = None,
    import_format: str | None = None,
) -> BundleResult:
    """Write the bundle and say how to build it with ``ollama create``; nothing is sent to a server."""
    quantize = check_quantize(quantize)
    local, version = _version_dir(model_dir)
    tag = version_tag(version, model_name or _default_model_name(config.get("deploy_alias")))
    bundle = bundles.build_bundle(local, quantize=quantize, convert_script=convert_script, import_format=import_format)
    _publish_gguf(model_dir, bundle)
    return BundleResult(version, tag, str(bundle.directory), bundle.create_command(tag))


def deploy(
    model_dir: str | Path,
    hook: OllamaHook,
    *,
    model_name: str | None = None,
    alias: str | None = None,
    quantize: str | None = None,
    convert_script: str | None = None,
    import_format: str | None = None,
    promote: bool = True,
) -> DeployResult:
    """Deploy the registered version in ``model_dir`` to ``hook``'s server and, with ``promote``, make it serve.

    Raises :class:`DeployError` (with the cause chained) when anything fails; production is then unchanged.
    A name or quantization Ollama would refuse raises :class:`ValueError` before anything is done.
    """
    quantize = check_quantize(quantize)
    local, version = _version_dir(model_dir)
    alias = check_model_name(alias or config.get("deploy_alias"))
    tag = version_tag(version, model_name or _default_model_name(alias))
    if canonical_model_name(tag) == canonical_model_name(alias):
        raise ValueError(
            f"the version tag {tag!r} must differ from the alias {alias!r}, or rollback has nothing to return to"
        )
    if not registry.get_version(version).trained:
        raise DeployError(f"{version} has not finished training; only trained versions can be deployed")
    target = hook.base_url
    deployment_id = deployments.start_deployment(deployments.model_version_id(version), target, tag)
    log.info("Deployment %d: %s to %s as %s", deployment_id, version, target, tag)
    existed, created, bundle_dir = None, False, None
    try:
        existed = hook.has_model(tag)
        bundle = bundles.build_bundle(
            local,
            quantize=quantize,
            convert_script=convert_script,
            import_format=import_format,
            ollama_version=_server_version(hook),
        )
        _publish_gguf(model_dir, bundle)
        bundle_dir = str(bundle.directory)
        files = upload_files(hook, bundle.directory, bundle.files)
        spec = bundle.spec
        hook.create(
            tag,
            files=files,
            template=spec.template,
            system=spec.system,
            parameters=spec.parameters,
            quantize=bundle.quantize,
        )
        created = True
        verify(hook, tag, spec)
        if promote:
            _promote(hook, version, tag, alias, target)
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        if created or existed is False:
            _delete_quietly(hook, tag)
        deployments.finish_deployment(deployment_id, DeploymentStatus.failed, detail=reason)
        raise DeployError(
            f"deployment {deployment_id} of {version} to {target} failed, production is unchanged: {reason}",
            deployment_id,
        ) from exc
    detail = f"serving as {alias}" if promote else "created and verified; not promoted"
    deployments.finish_deployment(
        deployment_id, DeploymentStatus.succeeded, detail=detail, alias=alias if promote else None
    )
    log.info("Deployment %d succeeded: %s at %s (%s)", deployment_id, tag, target, detail)
    return DeployResult(version, tag, alias if promote else None, deployment_id, target, promote, bundle_dir)


def verify(hook: OllamaHook, tag: str, spec: ModelfileSpec) -> AnalysisResult:
    """The server kept the template and stop sequences that were sent, and the model answers a valid analysis."""
    shown = hook.show(tag)
    if shown.get("template") != spec.template:
        raise VerificationError(f"{tag} has the template {shown.get('template')!r}, not the one sent")
    parameters = str(shown.get("parameters") or "")
    missing = [stop for stop in spec.parameters.get("stop", []) if stop not in parameters]
    if missing:
        raise VerificationError(f"{tag} lacks the stop sequence(s) {missing} that were sent")
    return smoke_test(hook, tag)


def smoke_test(hook: OllamaHook, model: str) -> AnalysisResult:
    """Ask ``model`` exactly as the analyzer does (prompt, schema, options); its answer must be an analysis."""
    response = hook.chat(
        prompt_format.chat_messages(bundles.EXAMPLE_CONTEXT),
        model=model,
        format=json_schema(),
        options=ollama_options(config.get_float("llm_temperature"), config.get_int("llm_max_tokens")),
    )
    if response.done_reason == "length":
        raise VerificationError(
            f"{model} did not stop before its length limit: the template or stop sequences do not match training"
        )
    try:
        result = parse_answer(response.content)
    except InvalidAnalysis as exc:
        raise VerificationError(
            f"{model} answered the smoke test with an invalid analysis ({exc}): {response.content[:300]!r}"
        ) from None
    log.info("Smoke test: %s answered a valid analysis (%s, %s)", model, result.category, result.severity)
    return result


def rollback(hook: OllamaHook, *, to_version: str | None = None, alias: str | None = None) -> DeployResult:
    """Serve an earlier version again: its tag (still on the server) is checked, copied to the alias, promoted.

    ``to_version`` defaults to the version that was in production before the current one.
    """
    current = registry.production_version()
    version = to_version or registry.previous_production()
    if version is None:
        raise DeployError("there is no earlier production version to roll back to")
    if version == current:
        raise DeployError(f"{version} is already the production version")
    target = hook.base_url
    version_id = deployments.model_version_id(version)
    earlier = deployments.succeeded_deployment(version_id, target)
    if earlier is None:
        raise DeployError(
            f"{version} was never deployed to {target}; deploy it with `dagnostics training deploy-ollama`"
        )
    serving = deployments.serving_deployment(target)
    alias = check_model_name(alias or (serving.alias if serving else None) or config.get("deploy_alias"))
    try:
        smoke_test(hook, earlier.ollama_model)
        _promote(hook, version, earlier.ollama_model, alias, target, serving)
    except (LLMError, VerificationError, registry.RegistryError) as exc:
        raise DeployError(f"rolling back to {version} failed, production is unchanged: {exc}") from exc
    detail = f"rollback from {current or 'no production version'}"
    deployment_id = deployments.record_rollback(
        serving.id if serving else None, version_id, target, earlier.ollama_model, alias, detail
    )
    log.info("Rolled back to %s: %s now serves %s on %s", version, alias, earlier.ollama_model, target)
    return DeployResult(version, earlier.ollama_model, alias, deployment_id, target, promoted=True)


def _promote(
    hook: OllamaHook, version: str, tag: str, alias: str, target: str, serving: Deployment | None = None
) -> None:
    """Point the alias at ``tag`` and make ``version`` production; the alias goes back if the registry fails."""
    serving = serving or deployments.serving_deployment(target)
    hook.copy(tag, alias)
    try:
        registry.promote(version)
    except Exception:
        _restore_alias(hook, alias, serving)
        raise


def _restore_alias(hook: OllamaHook, alias: str, serving: Deployment | None) -> None:
    try:
        if serving is not None:
            hook.copy(serving.ollama_model, alias)
        else:
            _delete_quietly(hook, alias)
    except LLMError:
        log.exception("Could not point %s back at %s; fix it with `ollama cp`", alias, serving and serving.ollama_model)


def _delete_quietly(hook: OllamaHook, model: str) -> None:
    """Remove what a failed attempt left; a cleanup failure is logged, never raised over the real error."""
    try:
        hook.delete(model)
        log.info("Deleted %s from the server after the failed attempt", model)
    except LLMNotFound:
        pass
    except LLMError as exc:
        log.warning("Could not delete %s after the failed attempt: %s", model, exc)


def _server_version(hook: OllamaHook) -> str | None:
    """The server's version, which decides the architectures its safetensors import takes; None if it won't say."""
    try:
        return hook.version() or None
    except LLMError as exc:
        log.warning("Ollama at %s did not say its version (%s); assuming a current one", hook.base_url, exc)
        return None


def _publish_gguf(model_dir: str | Path, bundle: bundles.Bundle) -> None:
    """Put the exported GGUF (and its Modelfile) into the version folder when that lives in object storage.

    The bundle is built in a local copy of the version; the ``llamacpp`` analyzer on other workers looks for the
    production version's ``ollama/model.gguf`` at the version's own URI.
    """
    location = artifacts.to_path(str(model_dir))
    if artifacts.is_local(location) or bundle.route != architectures.GGUF:
        return
    target = location / bundles.BUNDLE_DIR
    for name in (bundles.GGUF_FILE, bundles.MODELFILE):
        artifacts.copy_file(bundle.directory / name, target / name)
    log.info("Published %s to %s", bundles.GGUF_FILE, artifacts.to_uri(target))
