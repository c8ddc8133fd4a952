"""Every pluggable kind, by name: passes, backends, model kinds, index kinds, metrics and
executors.

One pattern for all six: a `Registry` maps a name to `package.module:attribute`, imported on
first use, so the checker, the CLI's choices and its help list and check names without loading
what they name (`lmc check` and `lmc --help` stay fast). Another package adds one in code with
`PASSES.register("my-pass", MyPass)`, or without code through an entry point in the registry's
group (`[project.entry-points."lmc.passes"] my-pass = "mypkg.passes:MyPass"`); a name already
taken is an error, so a plug-in never silently replaces a builtin. A plug-in that cannot be
imported is a `PluginUnavailable` naming it, bad input like any name the user gave that cannot be
imported (`Unimportable`); a builtin that cannot be is a bug in lmc, and keeps its traceback.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from lmc.diagnostics import did_you_mean, quoted_list
from lmc.errors import USER_CODE_ERRORS, InputError, what_it_raised

T = TypeVar("T")


class MissingAttribute(AttributeError):
    """`import_target` imported the module, but an attribute of the path is not there."""


def import_target(target: str) -> Any:
    """What `package.module:attribute.path` names: the module imported (ImportError if it
    cannot be, or whatever else the module raises while it runs), then the attributes looked
    up (`MissingAttribute` if one is missing). The one way lmc finds code by name: plug-ins, a
    program's functions and retrievers, Python metrics."""
    module_name, _, attribute = target.partition(":")
    value: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            # Its own class: an AttributeError the module raised while imported (`x = None.foo`
            # at module level) is the module's error, not a missing attribute, and callers
            # must not say "has no function" for it.
            raise MissingAttribute(f"{target}: no attribute '{part}'") from None
    return value


def import_raised(module_name: str, wanted_for: str, error: BaseException) -> str:
    """What to say when importing the user's module raised (a SyntaxError, `1/0` at module
    level, an ImportError of a module it imports): the module, what needed it, and the error,
    whose text names the file and line where Python knows them."""
    return f"importing {module_name} for {wanted_for} {what_it_raised(error)}"


class UnknownName(InputError, LookupError):
    """A name that no registry entry has: says what there is, and the closest one."""

    def __init__(self, kind: str, name: str, known: tuple[str, ...]) -> None:
        self.kind, self.name, self.known = kind, name, known
        super().__init__(
            f"unknown {kind} '{name}'; expected {quoted_list(known)}" + did_you_mean(name, known)
        )


class Unimportable(InputError):
    """Something the user named to be imported (a program's function or Python retriever, a
    Python metric, a plug-in) that cannot be: its module is missing or raised while imported, or
    lacks the attribute. Bad input, exit 2, like any name that names nothing: the user named it,
    and naming another, installing its package or setting PYTHONPATH fixes it. The message is
    one line naming what was named and why it cannot be imported."""


class PluginUnavailable(Unimportable):
    """A plug-in (another package's entry point, or a `package.module:attribute` it registered)
    that cannot be loaded: its module raised while imported, or lacks the attribute. The message
    names the plug-in, what kind it is, the package that installed it and the error."""


class Registry(Generic[T]):
    """Names of one kind of plug-in, each bound to an object or to where it is imported from."""

    def __init__(self, kind: str, group: str, targets: Mapping[str, str]) -> None:
        self.kind = kind
        self.group = group  # the entry-point group other packages register under
        self._targets: dict[str, str | T] = dict(targets)
        self._builtins = frozenset(targets)
        # A plug-in's name -> where it came from, for the error when it cannot be loaded.
        self._origins: dict[str, str] = {}
        # A name two installed packages register, each as "package (module:attribute)": which
        # one a user meant is not lmc's to guess, so loading it is an error naming both.
        self._contested: dict[str, list[str]] = {}
        self._lock = threading.Lock()
        self._scanned = False

    def register(self, name: str, target: str | T) -> None:
        """`target` is the object itself or `package.module:attribute`."""
        with self._lock:
            if name in self._targets:
                raise ValueError(f"a {self.kind} named '{name}' is already registered")
            self._targets[name] = target

    def names(self) -> tuple[str, ...]:
        self._scan_entry_points()
        return tuple(sorted(self._targets))

    def described(self) -> str:
        """The names known without scanning installed packages, for help texts (which must
        cost nothing to build; an entry point's name is still accepted, and listed in errors)."""
        return ", ".join(sorted(self._targets))

    def __contains__(self, name: object) -> bool:
        if name not in self._targets:
            self._scan_entry_points()
        return name in self._targets

    def unknown(self, name: str) -> str:
        """What to tell a user who named `name`, which is not registered."""
        return str(UnknownName(self.kind, name, self.names()))

    def load(self, name: str) -> T:
        """The object registered as `name`, imported now if need be; `UnknownName` if none is."""
        if name not in self:
            raise UnknownName(self.kind, name, self.names())
        if name in self._contested:
            raise PluginUnavailable(
                f"two installed packages register the {self.kind} '{name}': "
                f"{' and '.join(self._contested[name])}; uninstall the one you do not use"
            )
        target = self._targets[name]
        if not isinstance(target, str):
            return target
        if name in self._builtins:
            # lmc's own: one that does not import is a bug in lmc, shown with its traceback.
            builtin: T = import_target(target)
            return builtin
        return self._import_plugin(name, target)

    def _import_plugin(self, name: str, target: str) -> T:
        module_name, _, attribute = target.partition(":")
        origin = self._origins.get(name)
        wanted_for = f"the {self.kind} '{name}'" + (f" ({origin})" if origin else "")
        try:
            loaded: T = import_target(target)
        except MissingAttribute:
            raise PluginUnavailable(
                f"{module_name} has no '{attribute}' for {wanted_for}"
            ) from None
        except USER_CODE_ERRORS as error:  # another package's module may raise anything
            raise PluginUnavailable(import_raised(module_name, wanted_for, error)) from None
        return loaded

    def _scan_entry_points(self) -> None:
        # Only when a name is not a builtin, or all names are listed: scanning installed
        # packages' metadata costs milliseconds that `lmc check` should not pay.
        if self._scanned:
            return
        from importlib.metadata import entry_points

        with self._lock:
            # name -> the package that registers it (None: unknown) -> module:attribute; a
            # package found twice (on two sys.path entries) is one.
            found: dict[str, dict[str | None, str]] = {}
            for point in entry_points(group=self.group):
                package = point.dist.name if point.dist is not None else None
                found.setdefault(point.name, {}).setdefault(package, point.value)
            for name, by_package in found.items():
                # lmc's own names and those registered in this process stay theirs.
                if name in self._targets:
                    continue
                (package, target), *others = by_package.items()
                self._targets[name] = target
                self._origins[name] = (
                    f"an entry point of the package {package}"
                    if package
                    else f"an entry point in {self.group}"
                )
                if others:
                    self._contested[name] = sorted(
                        f"{p or 'a package'} ({t})" for p, t in by_package.items()
                    )
            self._scanned = True


# The index kind whose "path" names Python code (`pkg.module:Class`), not a corpus file.
PYTHON_RETRIEVER = "python"

# The builtins. Model kinds are the prefixes of model strings (`local`, `local:PATH.gguf`);
# `openai/NAME` with an api_base goes to `served` (called directly), any other `provider/name`
# string to litellm.
PASSES: Registry[type[Any]] = Registry(
    "pass",
    "lmc.passes",
    {
        "dead-steps": "lmc.passes.dead_steps:DeadStepsPass",
        "dedupe-steps": "lmc.passes.dedupe_steps:DedupeStepsPass",
        "bootstrap-demos": "lmc.passes.bootstrap_demos:BootstrapDemosPass",
        "instruction-search": "lmc.passes.instruction_search:InstructionSearchPass",
        "fuse-steps": "lmc.passes.fuse_steps:FuseStepsPass",
        "prune-demos": "lmc.passes.prune_demos:PruneDemosPass",
        "ensemble": "lmc.passes.ensemble:EnsemblePass",
        "joint-search": "lmc.passes.joint_search:JointSearchPass",
        "dynamic-demos": "lmc.passes.dynamic_demos:DynamicDemosPass",
    },
)
BACKENDS: Registry[Any] = Registry(
    "backend",
    "lmc.backends",
    {
        "chat": "lmc.backends.chat:ChatBackend",
        "json": "lmc.backends.json_object:JsonBackend",
        "completion": "lmc.backends.completion:CompletionBackend",
    },
)
MODEL_KINDS: Registry[Any] = Registry(
    "model kind",
    "lmc.models",
    {
        "local": "lmc.backends.clients.local:open_local",
        "served": "lmc.backends.clients.served:open_served",
        "litellm": "lmc.backends.clients.hosted:open_hosted",
    },
)
INDEX_KINDS: Registry[Any] = Registry(
    "index kind",
    "lmc.index_kinds",
    {
        "bm25": "lmc.retrieval.index:BM25Index",
        "embeddings": "lmc.retrieval.embeddings:EmbeddingsIndex",
        PYTHON_RETRIEVER: "lmc.retrieval.python:PythonRetriever",
    },
)
METRICS: Registry[Any] = Registry(
    "metric",
    "lmc.metrics",
    {
        "exact_match": "lmc.runtime.metrics:exact_match",
        "contains": "lmc.runtime.metrics:contains",
        "f1": "lmc.runtime.metrics:f1",
        "numeric": "lmc.runtime.metrics:numeric",
    },
)
# Where a dataset's records run: this process, or a Ray cluster (`pip install 'lmc[ray]'`). Each
# is called as `factory(address=None, workers=None)`.
EXECUTORS: Registry[Any] = Registry(
    "executor",
    "lmc.executors",
    {
        "local": "lmc.runtime.executor:LocalExecutor",
        "ray": "lmc.runtime.ray_executor:RayExecutor",
    },
)
