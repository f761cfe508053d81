"""Typed, frozen, nested configs: one field per setting, its help and its checks in one place.

A config is a frozen dataclass deriving from ``Section``; its fields are settings declared with
``setting(default, help, ...)`` or nested sections (``section(Cls)``). A leaf's name is unique
in the whole config and is also its command-line flag (``tf_defocus.cli.define_config_flags``)
and its key in ``config.json``. ``Section.__post_init__`` converts list / comma-separated
values of tuple fields, then ``validate`` checks every leaf against its metadata (``choices``,
``low`` / ``above`` / ``high`` bounds, finite float32) and runs the section's ``check()`` for
rules between fields; errors are ``ValueError`` naming the setting as ``--<name>``.

Standard library only; no absl.
"""

import dataclasses
import json
import math
import os
import types
import typing

_FLOAT32_MAX = 3.4028234663852886e38


def setting(default, help, *, choices=None, low=None, above=None, high=None, path=None,
            multi=False):
    """A config field: ``default``, one-line ``help`` (units!), allowed ``choices`` (of each
    item, for a tuple), inclusive ``low`` / ``high`` or exclusive ``above`` bounds,
    ``path="file"|"dir"`` for inputs that must exist (checked by ``validate(..., paths=True)``),
    ``multi``: a tuple given by a repeatable flag (``--x=a --x=b``) instead of one comma list."""
    meta = {"help": help, "choices": tuple(choices) if choices is not None else None,
            "low": low, "above": above, "high": high, "path": path, "multi": multi}
    if isinstance(default, (list, tuple)):
        value = tuple(default)
        return dataclasses.field(default_factory=lambda: value, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def section(cls, **overrides):
    """A nested section field (``cls`` with its defaults, or ``overrides`` of some leaves)."""
    return dataclasses.field(default_factory=lambda: cls(**overrides))


def like(cls, name):
    """A field equal to setting ``name`` of config class ``cls`` (one setting that two task
    configs share: one declaration)."""
    f = cls.__dataclass_fields__[name]
    return dataclasses.field(default=f.default, default_factory=f.default_factory,
                             metadata=f.metadata)


def _base_type(tp):
    """(type, optional) of an annotation: ``int | None`` -> (int, True)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return args[0], True
    return tp, False


def field_types(cls):
    return typing.get_type_hints(cls)


def is_section(tp):
    return isinstance(tp, type) and issubclass(tp, Section)


def leaves(cls):
    """[(name, field, type, optional, section class)] of every setting of ``cls``, depth first."""
    out = []
    hints = field_types(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if is_section(tp):
            out.extend(leaves(tp))
        else:
            base, optional = _base_type(tp)
            out.append((f.name, f, base, optional, cls))
    return out


def default_of(f):
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _coerce(name, base, optional, value):
    """Tuple fields accept lists and comma-separated strings; float fields accept ints."""
    if value is None:
        return None
    if typing.get_origin(base) is tuple:
        item = (typing.get_args(base) or (str,))[0]
        if isinstance(value, (str, os.PathLike)):
            value = [v for v in str(value).split(",") if v.strip()] if item is not str \
                else ([str(value)] if str(value) else [])
        try:
            return tuple(item(str(v).strip()) if item is int else item(v) for v in value)
        except (TypeError, ValueError):
            raise ValueError(f"--{name} must be a comma-separated list of "
                             f"{'integers' if item is int else 'values'}, got {value!r}") from None
    if base is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


class Section:
    """Base of every config dataclass (frozen): coerces and validates itself on creation."""

    def __post_init__(self):
        hints = field_types(type(self))
        for f in dataclasses.fields(self):
            if is_section(hints[f.name]):
                continue
            base, optional = _base_type(hints[f.name])
            object.__setattr__(self, f.name, _coerce(f.name, base, optional,
                                                     getattr(self, f.name)))
        validate(self)

    def check(self):
        """Rules between fields of this section (override); raise ValueError."""


def _finite32(v):
    return isinstance(v, (int, float)) and math.isfinite(v) and abs(v) <= _FLOAT32_MAX


def _check_leaf(name, f, base, value):
    m = f.metadata
    if m.get("choices") is not None and value not in m["choices"]:
        raise ValueError(f"--{name} must be one of {', '.join(map(str, m['choices']))}, "
                         f"got {value!r}")
    if base not in (int, float) or isinstance(value, bool):
        return
    low, above, high = m.get("low"), m.get("above"), m.get("high")
    lo = above if above is not None else low
    ok = _finite32(value)
    if lo is not None and high is not None:
        ok = ok and (value > lo if above is not None else value >= lo) and value <= high
        rule = f"in {'(' if above is not None else '['}{lo}, {high}]"
    else:
        if above is not None:
            ok, rule = ok and value > above, f"> {above}"
        elif low is not None:
            ok, rule = ok and value >= low, f">= {low}"
        elif high is not None:
            ok, rule = ok and value <= high, f"<= {high}"
        else:
            rule = ""
        rule = (f"a finite number {rule}" if base is float else rule).strip()
    if not ok:
        raise ValueError(f"--{name} must be {rule}, got {value}")


def validate(config, paths=False):
    """Check every leaf of ``config`` (one section level) and its ``check()``; with ``paths``
    also that ``path`` settings of all nested sections name existing files / folders."""
    hints = field_types(type(config))
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if is_section(hints[f.name]):
            if paths:
                validate(value, paths=True)
            continue
        base, optional = _base_type(hints[f.name])
        if value is None:
            if not optional:
                raise ValueError(f"--{f.name} must be set")
            continue
        if typing.get_origin(base) is tuple:
            choices = f.metadata.get("choices")
            bad = [v for v in value if choices is not None and v not in choices]
            if bad:
                raise ValueError(f"--{f.name} must be among {', '.join(map(str, choices))}, "
                                 f"got {bad[0]!r}")
            continue
        _check_leaf(f.name, f, base, value)
        kind = f.metadata.get("path")
        if paths and kind and value:
            for p in (value if isinstance(value, tuple) else (value,)):
                if not (os.path.isdir(p) if kind == "dir" else os.path.isfile(p)):
                    what = "directory" if kind == "dir" else "file"
                    raise ValueError(f"--{f.name}: {p} is not a {what}")
    config.check()


def flatten(config):
    """{leaf name: value} of a config (names are unique across sections)."""
    out = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out.update(flatten(value) if isinstance(value, Section) else {f.name: value})
    return out


def from_flat(cls, values):
    """``cls`` built from {leaf name: value}; leaves not given keep their defaults; a name that
    is not a leaf of ``cls`` is a ValueError."""
    values = dict(values)
    known = {name for name, *_ in leaves(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ValueError(f"not settings of {cls.__name__}: {', '.join(unknown)}")

    def build(c):
        hints = field_types(c)
        kw = {}
        for f in dataclasses.fields(c):
            if is_section(hints[f.name]):
                sub = default_of(f)
                mine = {n: values[n] for n, *_ in leaves(hints[f.name]) if n in values}
                kw[f.name] = replace(sub, **mine) if mine else sub
            elif f.name in values:
                kw[f.name] = values[f.name]
        return c(**kw)
    return build(cls)


def replace(config, **values):
    """A copy of ``config`` with leaves (by name, in any section) replaced."""
    known = flatten(config)
    unknown = sorted(set(values) - set(known))
    if unknown:
        raise ValueError(f"not settings of {type(config).__name__}: {', '.join(unknown)}")
    changes = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, Section):
            mine = {n: v for n, v in values.items() if n in flatten(value)}
            if mine:
                changes[f.name] = replace(value, **mine)
        elif f.name in values:
            changes[f.name] = values[f.name]
    return dataclasses.replace(config, **changes)


def to_dict(config):
    """Nested {section: {leaf: value}} with tuples as lists (JSON-ready)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def flat_json(data):
    """{leaf: value} of a config dict, nested (``to_dict``) or flat (older ``config.json``)."""
    out = {}
    for k, v in data.items():
        out.update(flat_json(v) if isinstance(v, dict) else {k: v})
    return out
