"""Is a simulated SDK class a faithful stand-in for the installed vendor SDK class? Checked member by member.

A fake is only useful if a driver written against it runs unchanged on the vendor's class. This module compares,
for every member a driver actually touches (recorded while the driver runs against the fake):

* **signatures**: parameter names, order, kinds and **default values** (``repr``-equal for Python SDKs; for
  pybind11 classes such as franky, the defaults pybind11 writes in its signature lines, e.g.
  ``realtime_config: franky._franky.RealtimeConfig = _franky.RealtimeConfig.Enforce``, one line per overload);
* **calls**: every recorded call binds to the vendor's signature;
* **return conventions**: what the vendor documents a member returns - pybind11's ``-> franky._franky.BoolFuture``,
  xarm-python-sdk's ``:return: code`` (an int) or ``:return: tuple((code, ...))`` - against what the fake returned;
* **value types**: properties and the fields of returned state objects (``RobotState.time`` is a
  ``franky.Duration``, not a float), read from pybind11's property signatures; a fake may stand in for a vendor
  class that has no public constructor (``RobotState``) but must then give the vendor's types for every field the
  driver read.

:func:`record_use` wraps a fake in a :class:`Recorder` that logs attribute reads, calls and returned values (dotted
paths for nested fields: ``state.time.to_msec``); :func:`contract_problems` turns a recording into a list of
human-readable differences (empty = faithful).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

_PYBIND_SIG = re.compile(r"^(?:\d+\.\s*)?(\w+)\((.*)\)\s*->\s*(.+)$")
_PROPERTY_SIG = re.compile(r"^\((.*)\)\s*->\s*(.+)$")
NO_DEFAULT = "<no default>"
_PLAIN = (bool, int, float, str, bytes, type(None), list, tuple, dict, np.ndarray, np.generic)


def _split_params(text: str) -> list[str]:
    """Splits a pybind11 parameter list on top-level commas."""
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch in "([{<":
            depth += 1
        elif ch in ")]}>":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


@dataclass(frozen=True)
class Param:
    """One parameter: ``name``, ``kind`` (``inspect.Parameter`` kind name) and ``default`` (text, or NO_DEFAULT)."""

    name: str
    kind: str
    default: str


def _default_text(value: object) -> str:
    """How a Python default is compared: enum members by ``Type.Member``, numbers by value, else ``repr``."""
    if value is inspect.Parameter.empty:
        return NO_DEFAULT
    name = getattr(value, "name", None)
    if isinstance(name, str) and not callable(value) and type(value).__module__.split(".")[0] != "builtins":
        return f"{type(value).__name__}.{name}"  # pybind11 / Python enums
    if isinstance(value, bool) or value is None:
        return repr(value)
    if isinstance(value, (int, float)):
        return repr(float(value))
    return repr(value)


def _normalize_pybind_default(text: str) -> str:
    text = text.strip()
    try:
        return repr(float(text)) if text not in ("True", "False", "None") else text
    except ValueError:
        pass
    parts = text.split(".")
    return (
        ".".join(parts[-2:]) if len(parts) >= 2 else text
    )  # _franky.RealtimeConfig.Enforce -> RealtimeConfig.Enforce


def _pybind_overloads(doc: str, name: str) -> list[tuple[list[Param], str]]:
    out = []
    for line in (doc or "").splitlines():
        m = _PYBIND_SIG.match(line.strip())
        if not m or m.group(1) != name:
            continue
        params = []
        for p in _split_params(m.group(2)):
            if p in ("*", "/") or not p:
                continue
            pname = p.split(":")[0].split("=")[0].strip()
            if pname == "self":
                continue
            default = _normalize_pybind_default(p.split("=", 1)[1]) if "=" in p else NO_DEFAULT
            params.append(Param(pname, "POSITIONAL_OR_KEYWORD", default))
        out.append((params, m.group(3).strip()))
    return out


def parameter_specs(obj: object, name: str) -> list[list[Param]]:
    """Parameter lists of ``obj.name`` (one per overload), without ``self``."""
    fn = getattr(obj, name)
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        overloads = _pybind_overloads(fn.__doc__, name)
        if not overloads:
            raise ValueError(f"cannot read the signature of {obj!r}.{name}") from None
        return [params for params, _ in overloads]
    params = [p for p in sig.parameters.values() if p.name != "self"]
    if len(params) == 2 and {q.kind for q in params} == {
        inspect.Parameter.VAR_POSITIONAL,
        inspect.Parameter.VAR_KEYWORD,
    }:
        overloads = _pybind_overloads(fn.__doc__, name)  # pybind11 overloaded function: (*args, **kwargs)
        if overloads:
            return [p for p, _ in overloads]
    return [[Param(p.name, p.kind.name, _default_text(p.default)) for p in params]]


def _is_property(cls, name: str) -> bool:
    attr = inspect.getattr_static(cls, name, None)
    return isinstance(attr, property) or type(attr).__name__ in ("property", "pybind11_property")


def _property_annotation(cls, name: str) -> str | None:
    """``-> T`` of a pybind11 property's getter signature (``(arg0: franky.Robot) -> franky.RobotState``)."""
    fget = getattr(inspect.getattr_static(cls, name, None), "fget", None)
    doc = (getattr(fget, "__doc__", None) or "").strip()
    m = _PROPERTY_SIG.match(doc.splitlines()[0]) if doc else None
    return m.group(2).strip() if m else None


def resolve_annotation(text: str | None) -> type | tuple[type, ...] | None:
    """``franky._franky.Duration`` -> the class; ``bool``/``float``/``int``/``str``/``None``; NDArray -> ndarray."""
    if text is None:
        return None
    text = text.strip()
    builtin = {"bool": bool, "float": float, "int": int, "str": str, "None": type(None)}
    if text in builtin:
        return builtin[text]
    if "NDArray" in text or text.startswith("numpy.ndarray"):
        return np.ndarray
    if re.fullmatch(r"[\w.]+", text) and "." in text:
        module, _, cls_name = text.rpartition(".")
        try:
            return getattr(importlib.import_module(module), cls_name)
        except (ImportError, AttributeError):
            return None
    return None


def documented_return(cls, name: str) -> str | None:
    """What the vendor documents ``cls.name`` returns: a pybind11 ``-> T`` or an xArm ``:return:`` line."""
    if _is_property(cls, name):
        return _property_annotation(cls, name)
    fn = getattr(cls, name)
    overloads = _pybind_overloads(fn.__doc__, name)
    if overloads:
        returns = {r for _, r in overloads}
        return returns.pop() if len(returns) == 1 else None
    for line in (inspect.getdoc(fn) or "").splitlines():
        line = line.strip()
        if line.startswith(":return:"):
            return line.removeprefix(":return:").strip()
    return None


def _constructible(cls: type) -> bool:
    try:
        cls()
    except TypeError as e:
        return "No constructor defined" not in str(e)
    except Exception:
        return True
    return True


def return_problem(path: str, documented: str | None, value: object) -> str | None:
    """``None`` if ``value`` follows the documented convention (or nothing is documented)."""
    if documented is None:
        return None
    if documented == "code":  # xArm setters
        return (
            None
            if type(value) is int
            else f"{path}: the SDK returns an int code, the fake returned {value!r}"
        )
    if documented.startswith("tuple((code"):  # xArm getters
        ok = isinstance(value, tuple) and len(value) == 2 and type(value[0]) is int
        return None if ok else f"{path}: the SDK returns (code, value), the fake returned {value!r}"
    expected = resolve_annotation(documented)
    if expected is None:
        return None
    if isinstance(value, expected):
        return None
    if isinstance(expected, type) and not _constructible(expected) and not isinstance(value, _PLAIN):
        return None  # a stand-in for a vendor class without a public constructor; its fields are checked one by one
    return f"{path}: the SDK returns {documented}, the fake returned {type(value).__module__}.{type(value).__name__}"


# --- recording what a driver touches -----------------------------------------------------------------------------
@dataclass
class SdkUse:
    """Members a driver touched on an SDK object: dotted path -> recorded calls and returned / read values."""

    calls: dict[str, list[tuple[tuple, dict]]] = field(default_factory=dict)
    values: dict[str, list[object]] = field(default_factory=dict)
    sets: set[str] = field(default_factory=set)

    def note_value(self, path: str, value: object) -> None:
        samples = self.values.setdefault(path, [])
        if len(samples) < 5:
            samples.append(value)

    @property
    def top_level(self) -> set[str]:
        return {p.split(".")[0] for p in [*self.values, *self.calls, *self.sets]}


class Recorder:
    """Transparent proxy logging every attribute read, call and returned value into an :class:`SdkUse`."""

    def __init__(self, target, use: SdkUse, path: str = ""):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_use", use)
        object.__setattr__(self, "_path", path)

    def _wrap(self, path: str, value):
        use = object.__getattribute__(self, "_use")
        if callable(value) and not isinstance(value, type):

            def call(*args, **kwargs):
                use.calls.setdefault(path, [])
                if len(use.calls[path]) < 5:
                    use.calls[path].append((args, kwargs))
                result = value(*args, **kwargs)
                use.note_value(path, result)
                return result if isinstance(result, _PLAIN) else Recorder(result, use, path)

            return call
        use.note_value(path, value)
        return value if isinstance(value, _PLAIN) else Recorder(value, use, path)

    def __getattr__(self, name):
        base = object.__getattribute__(self, "_path")
        target = object.__getattribute__(self, "_target")
        return self._wrap(f"{base}.{name}" if base else name, getattr(target, name))

    def __setattr__(self, name, value):
        base = object.__getattribute__(self, "_path")
        object.__getattribute__(self, "_use").sets.add(f"{base}.{name}" if base else name)
        setattr(object.__getattribute__(self, "_target"), name, value)


def record_use(fake: object) -> tuple[Recorder, SdkUse]:
    use = SdkUse()
    return Recorder(fake, use), use


def unwrap(obj: object) -> object:
    """The object behind a :class:`Recorder` (for test code that must not be recorded)."""
    return object.__getattribute__(obj, "_target") if isinstance(obj, Recorder) else obj


# --- comparison --------------------------------------------------------------------------------------------------
def signature_mismatches(fake_cls: type, real_cls: type, methods: Iterable[str]) -> list[str]:
    """Differences in members' kinds and parameters (names, order, kinds, default values); empty = compatible."""
    problems = []
    for name in methods:
        if not hasattr(real_cls, name):
            problems.append(f"{real_cls.__name__} has no {name!r} (the fake has one)")
            continue
        if not hasattr(fake_cls, name):
            problems.append(f"{fake_cls.__name__} lacks {name!r}")
            continue
        real_prop, fake_prop = _is_property(real_cls, name), _is_property(fake_cls, name)
        if real_prop != fake_prop:
            problems.append(f"{name}: property on one side, method on the other")
            continue
        if fake_prop:
            continue
        fake = parameter_specs(fake_cls, name)[0]
        real = parameter_specs(real_cls, name)
        if fake not in real:
            problems.append(f"{name}: fake {fake} vs vendor {real}")
    return problems


def _binds(real_cls, name: str, args: tuple, kwargs: dict) -> bool:
    fn = getattr(real_cls, name)
    try:
        inspect.signature(fn).bind(None, *args, **kwargs)
        return True
    except ValueError:  # pybind11: no Python signature; check the keyword names against the overloads
        specs = parameter_specs(real_cls, name)
        return any(len(args) <= len(spec) and set(kwargs) <= {p.name for p in spec} for spec in specs)
    except TypeError:
        return False


def contract_problems(fake_cls: type, real_cls: type, use: SdkUse) -> list[str]:
    """Every difference between ``fake_cls`` and ``real_cls`` over the members recorded in ``use``."""
    top = sorted(use.top_level)
    problems = signature_mismatches(fake_cls, real_cls, top)
    for path, calls in use.calls.items():
        head = path.split(".")[0]
        if "." not in path and hasattr(real_cls, head):
            for args, kwargs in calls:
                if not _binds(real_cls, head, args, kwargs):
                    problems.append(
                        f"{path}: the driver's call {args} {kwargs} does not fit the SDK's signature"
                    )
    for path, samples in use.values.items():
        documented = _documented_for_path(real_cls, path)
        for value in samples:
            problem = return_problem(path, documented, value)
            if problem:
                problems.append(problem)
                break
    return problems


def _documented_for_path(real_cls, path: str) -> str | None:
    """The documented type of a dotted path (``state.time``: RobotState's ``time`` property annotation)."""
    cls = real_cls
    parts = path.split(".")
    for i, part in enumerate(parts):
        if not isinstance(cls, type) or not hasattr(cls, part):
            return None
        documented = documented_return(cls, part)
        if i == len(parts) - 1:
            return documented
        nxt = resolve_annotation(documented)
        cls = nxt if isinstance(nxt, type) else None
    return None


def instance_mismatches(fake: object, real: object, use: SdkUse) -> list[str]:
    """Compares a disconnected fake with a disconnected real instance (e.g. ``XArmAPI(ip, do_not_open=True)``): every
    recorded top-level method called with the recorded arguments must return the same value (the SDK's "not
    connected" convention), and every recorded property must have the same value type (where the SDK's is not None).
    """
    problems = []
    for path in sorted(use.top_level):
        cls = type(real)
        if not hasattr(cls, path) or path in ("connect", "disconnect"):
            continue
        if _is_property(cls, path):
            got_real, got_fake = getattr(real, path), getattr(fake, path)
            if got_real is not None and type(got_real) is not type(got_fake):
                problems.append(
                    f"{path}: the SDK's value is a {type(got_real).__name__}, the fake's a {type(got_fake).__name__}"
                )
            continue
        calls = use.calls.get(path)
        if not calls:
            continue
        args, kwargs = calls[0]
        results = []
        for obj in (real, fake):
            try:
                results.append(getattr(obj, path)(*args, **kwargs))
            except Exception as e:
                results.append(f"raises {type(e).__name__}")
        if results[0] != results[1]:
            problems.append(f"{path} while disconnected: SDK {results[0]!r}, fake {results[1]!r}")
    return problems
