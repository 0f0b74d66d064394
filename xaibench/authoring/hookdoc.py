"""The hook reference (``docs/hooks.md``), generated from the hookspecs' docstrings.

Why generated: a hand-written reference drifts from the code the day a hook gains
a parameter. Here the hookspec functions are the single source: their signatures,
their ``:param name:`` docstring fields and the fields of the spec dataclass each
hook's ``register`` callback accepts. :func:`problems` refuses a hook without a
docstring, without a description for a parameter, or documenting parameters its
signature does not have (the check datasette runs on its plugin hooks); the test
suite compares the committed file with :func:`render` so it never goes stale.

Regenerate with ``xaibench hooks > docs/hooks.md``; ``xaibench hooks --check
docs/hooks.md`` exits 1 when the file differs from what the code renders.
"""
from __future__ import annotations

import dataclasses
import inspect
import re
import textwrap
import typing
from types import FunctionType, ModuleType

from xaibench.contract import hookspecs as default_specs
from xaibench.base.errors import XaibenchError

_PARAM = re.compile(r"^:param (\w+):(.*)$")
_ROLE = re.compile(r":\w+:`(~?)([\w.]+)`")


def hook_functions(module: ModuleType = default_specs) -> list[FunctionType]:
    """Every function of ``module`` marked as a hookspec, in source order."""
    marker = f"{module.PROJECT}_spec"
    found = [f for f in vars(module).values() if inspect.isfunction(f) and hasattr(f, marker)]
    return sorted(found, key=lambda f: f.__code__.co_firstlineno)


def _split_doc(doc: str) -> tuple[str, dict[str, str]]:
    """A docstring -> (text before the fields, ``{param: description}``)."""
    lines = inspect.cleandoc(doc).splitlines()
    text: list[str] = []
    params: dict[str, str] = {}
    current: str | None = None
    for line in lines:
        match = _PARAM.match(line)
        if match:
            current = match.group(1)
            params[current] = match.group(2).strip()
        elif current is not None and (line.startswith(" ") or not line.strip()):
            params[current] = f"{params[current]} {line.strip()}".strip()
        else:
            current = None
            text.append(line)
    return "\n".join(text).strip(), params


def problems(module: ModuleType = default_specs) -> list[str]:
    """What is wrong with the hooks' documentation; empty when every hook is documented."""
    found = []
    hooks = hook_functions(module)
    if not hooks:
        found.append(f"{module.__name__} defines no hookspecs")
    for func in hooks:
        name = func.__name__
        if not (func.__doc__ or "").strip():
            found.append(f"hook {name} is undocumented: give it a docstring with a :param: field per parameter")
            continue
        summary, documented = _split_doc(func.__doc__ or "")
        actual = list(inspect.signature(func).parameters)
        if not summary:
            found.append(f"hook {name} has no description before its :param: fields")
        if list(documented) != actual:
            found.append(f"hook {name} documents parameters ({', '.join(documented) or 'none'}) but its signature "
                         f"has ({', '.join(actual) or 'none'})")
        found.extend(f"hook {name}: parameter {p!r} has an empty description" for p, d in documented.items() if not d)
    return found


def _markdown(text: str) -> str:
    """reST conventions of our docstrings -> markdown: roles (``~`` keeps the last name), literals, ``::`` blocks."""
    text = _ROLE.sub(lambda m: f"`{m.group(2).rsplit('.', 1)[-1] if m.group(1) else m.group(2)}`", text)
    text = text.replace("``", "`")
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.rstrip().endswith("::"):
            out.append(line.rstrip()[:-1])
            block: list[str] = []
            i += 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
                block.append(lines[i])
                i += 1
            code = textwrap.dedent("\n".join(block)).strip("\n")
            language = "toml" if code.startswith("[") else "python"
            out.extend(["", f"```{language}", code, "```", ""])
            continue
        out.append(line)
        i += 1
    return "\n".join(out).strip()


def _spec_class(func: FunctionType) -> type | None:
    """The dataclass the hook's ``register`` callback takes (``Callable[[Spec], None]``)."""
    hints = typing.get_type_hints(func, vars(inspect.getmodule(func)))
    args = typing.get_args(hints.get("register"))
    spec = args[0][0] if args and args[0] else None
    return spec if dataclasses.is_dataclass(spec) else None


def _annotation(annotation: object) -> str:
    """Annotations as written in the source (they are strings under ``from __future__ import annotations``)."""
    return annotation if isinstance(annotation, str) else inspect.formatannotation(annotation)


def _signature(func: FunctionType) -> str:
    sig = inspect.signature(func)
    params = ", ".join(p.name if p.annotation is p.empty else f"{p.name}: {_annotation(p.annotation)}"
                       for p in sig.parameters.values())
    returns = "" if sig.return_annotation is sig.empty else f" -> {_annotation(sig.return_annotation)}"
    return f"def {func.__name__}({params}){returns}"


def _default(value: object) -> str:
    """A field default as source-like text, stable across runs (sets are hash-ordered, functions have addresses)."""
    if inspect.isroutine(value) or inspect.isclass(value):
        return value.__qualname__
    if isinstance(value, (set, frozenset)):
        return f"{type(value).__name__}({{{', '.join(repr(v) for v in sorted(value, key=repr))}}})"
    return repr(value)


def _dataclass_section(cls: type) -> list[str]:
    """A lead sentence from the class docstring (if it has its own) and a table of its fields."""
    doc = inspect.getdoc(cls) or ""
    lead = "" if doc.startswith(f"{cls.__name__}(") else doc.split("\n\n")[0].replace("\n", " ")
    notes = _field_comments(cls)
    rows = [f"`{cls.__name__}` fields" + (f": {_markdown(lead)}" if lead else ":"), "",
            "| field | type | default | notes |", "|---|---|---|---|"]
    for f in dataclasses.fields(cls):
        if f.default is not dataclasses.MISSING:
            default = f"`{_default(f.default)}`"
        elif f.default_factory is not dataclasses.MISSING:
            default = f"`{_default(f.default_factory())}`"
        else:
            default = "required"
        kind = _annotation(f.type).replace("|", "\\|")
        note = _markdown(notes.get(f.name, "")).replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{kind}` | {default} | {note} |")
    return rows


_FIELD = re.compile(r"^\s+(\w+):[^#]*?(?:\s+#\s*(.*))?$")


def _field_comments(cls: type) -> dict[str, str]:
    """Field notes from the class source: ``#:`` lines above a field, or a ``# ...`` comment after it."""
    notes: dict[str, str] = {}
    pending: list[str] = []
    for line in inspect.getsource(cls).splitlines()[1:]:
        stripped = line.strip()
        if stripped.startswith("#:"):
            pending.append(stripped[2:].strip())
            continue
        match = _FIELD.match(line)
        if match and not stripped.startswith(("def ", "@", "return")):
            note = " ".join(pending) or (match.group(2) or "")
            if note:
                notes[match.group(1)] = note.strip()
        pending = []
    return notes


def render(module: ModuleType = default_specs) -> str:
    """The markdown hook reference; raises :class:`XaibenchError` if a hook is badly documented."""
    issues = problems(module)
    if issues:
        raise XaibenchError("cannot render the hook reference: " + "; ".join(issues))
    out = [
        "# Hook reference",
        "",
        f"<!-- generated from {module.__name__} by `xaibench hooks > docs/hooks.md`; do not edit by hand -->",
        "",
        _markdown(inspect.getdoc(module) or ""),
    ]
    shown: set[type] = set()
    for func in hook_functions(module):
        summary, params = _split_doc(func.__doc__ or "")
        out += ["", f"## `{func.__name__}`", "", "```python", _signature(func), "```", "", _markdown(summary), "",
                "Parameters:", ""]
        out += [f"- `{p}`: {_markdown(d)}" for p, d in params.items()]
        spec = _spec_class(func)
        if spec is not None:
            shown.add(spec)
            out += [""] + _dataclass_section(spec)
    others = [c for c in _dataclasses_of(shown) if c not in shown]
    if others:
        out += ["", "## Types the specs' callables receive and return"]
        for cls in others:
            out += ["", f"### `{cls.__name__}`", ""] + _dataclass_section(cls)
    return "\n".join(out) + "\n"


def _dataclasses_of(specs: set[type]) -> list[type]:
    """Every xaibench dataclass the modules that define the hooks' spec classes define or re-export (the
    metric's inputs live in ``xaibench.contract.metric_inputs``, re-exported by ``xaibench.contract.specs``), in source order."""
    modules = {inspect.getmodule(s) for s in specs}
    found = list({c: None for m in modules if m for c in vars(m).values()
                  if inspect.isclass(c) and dataclasses.is_dataclass(c) and c.__module__.startswith("xaibench")})
    return sorted(found, key=lambda c: (c.__module__, inspect.getsourcelines(c)[1]))
