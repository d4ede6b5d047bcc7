"""One typed config loader for every command: YAML files plus `key.sub=value` overrides.

    cfg = load_config(RunConfig, "configs/ddpm-64-class.yaml", ["train.learning_rate=3e-4"])
    print(to_yaml(cfg))        # what --dry-run prints

The schema is a dataclass (nested dataclasses for sections); OmegaConf structured configs check
every value against its annotation and convert where that is lossless ("3e-4" -> 0.0003 for a
float). A wrong type, an unknown key or an unreadable file is a `ConfigError` naming the file (or
"override"), the key and what was expected. YAML is read with YAML 1.2 booleans (only true/false),
so `mixed_precision: no` stays the string "no".

A config inherits with a `defaults:` list of base configs (names or paths, looked up beside the
file first, then among the shipped configs), merged in order underneath the file's own settings:
a variant holds only its differences.

Shipped configs live in the package (solargen/configs, also reachable as configs/ in a checkout):
`config_path("configs/ddpm-64-class.yaml")` finds a file given as a path, or else the shipped file
of that name, wherever the package is installed.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import re
import types
from importlib import resources
from pathlib import Path
from typing import Any, Sequence, TypeVar

import yaml

from solargen.errors import SolargenError

T = TypeVar("T")


class ConfigError(SolargenError):
    """A config file or override that cannot be used (names the file or override and the key)."""


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader whose only booleans are true/false (YAML 1.2), not yes/no/on/off."""


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()}
_Yaml12Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                                    list("tTfF"))


def parse_yaml(text: str) -> Any:
    return yaml.load(text, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


# ----------------------------------------------------------------------------- shipped configs

def shipped_configs() -> Path:
    """The folder of configs shipped inside the package."""
    return Path(str(resources.files("solargen") / "configs"))


def config_path(path: str | Path) -> Path:
    """An existing file as given, else the shipped config of that name (a leading `configs/` and
    the `.yaml` suffix are optional); a clear error lists what is shipped."""
    given = Path(path)
    if given.is_file():
        return given
    parts = given.parts[1:] if given.parts[:1] == ("configs",) else given.parts
    shipped = shipped_configs().joinpath(*parts) if parts else shipped_configs()
    for candidate in (shipped, shipped.with_name(shipped.name + ".yaml")):
        if candidate.is_file():
            return candidate
    names = sorted(str(p.relative_to(shipped_configs())) for p in shipped_configs().rglob("*.yaml"))
    raise ConfigError(f"{path}: no such config file (nor a shipped config of that name; shipped: "
                      f"{', '.join(names)})")


# ----------------------------------------------------------------------------- loading

def load_config(schema: type[T], path: str | Path | None = None, overrides: Sequence[str] = (),
                base: T | None = None) -> T:
    """`base` (default: the schema's defaults) < the YAML file's bases (`defaults:`) < the file <
    the overrides -> a checked instance of `schema`."""
    from omegaconf import OmegaConf
    config = OmegaConf.structured(base if base is not None else schema)
    for file, raw in config_layers(path) if path is not None else ():
        config = _merge(config, raw, str(file))
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: must look like key.sub=value")
        nested: Any = parse_yaml(value) if value.strip() else ""
        for part in reversed(key.split(".")):
            nested = {part: nested}
        config = _merge(config, nested, f"override {item!r}")
    return OmegaConf.to_object(config)


def config_layers(path: str | Path, _chain: tuple[Path, ...] = ()) -> list[tuple[Path, dict]]:
    """(file, settings) of a config and, before it, of every base its `defaults:` list names,
    recursively, in merge order (bases first)."""
    file = config_path(path).resolve()
    if file in _chain:
        raise ConfigError(f"{file}: `defaults:` runs in a circle: "
                          + " -> ".join(p.name for p in (*_chain, file)))
    try:
        raw = parse_yaml(file.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{file}: cannot read config ({exc})") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{file}: expected a mapping of settings, got {type(raw).__name__}")
    bases = raw.pop("defaults", [])
    if not isinstance(bases, list) or not all(isinstance(b, str) and b for b in bases):
        raise ConfigError(f"{file}: key 'defaults': expected a list of config names, got {bases!r}")
    layers = []
    for name in bases:
        beside = file.parent / name
        found = next((c for c in (beside, beside.with_name(beside.name + ".yaml")) if c.is_file()), None)
        layers += config_layers(found or name, (*_chain, file))
    return [*layers, (file, raw)]


def _merge(config: Any, raw: dict, where: str) -> Any:
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException
    try:
        return OmegaConf.merge(config, raw)
    except OmegaConfBaseException as exc:
        key = getattr(exc, "full_key", "") or "?"
        message = str(exc).splitlines()[0]
        raise ConfigError(f"{where}: key {key!r}: {message}") from None


def flag_overrides(args: Any, keys: dict[str, str]) -> list[str]:
    """`key=value` overrides from the command-line flags that were given (flag attribute -> key);
    values are written as JSON, which YAML reads back unchanged."""
    out = []
    for flag, key in keys.items():
        value = getattr(args, flag, None)
        if value is not None:
            value = str(value) if isinstance(value, Path) else value
            out.append(f"{key}={json.dumps(value)}")
    return out


def add_schema_flags(parser: Any, schema: type, choices: dict[str, Sequence[str]] | None = None,
                     helps: dict[str, str] | None = None, aliases: dict[str, str] | None = None,
                     skip: Sequence[str] = ()) -> dict[str, str]:
    """A typed flag for every scalar field of dataclass `schema` (`--batch-size` for batch_size;
    a nested section's field as `--section-field`, or the flag `aliases` names for its key;
    booleans as --x / --no-x); lists and mappings are left to --set. Returns the flag destination
    -> config key map that `flag_overrides` reads."""
    import typing
    choices, helps, aliases = choices or {}, helps or {}, aliases or {}
    by_key = {key: flag for flag, key in aliases.items()}
    keys: dict[str, str] = {}

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            key, kind = prefix + f.name, hints[f.name]
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            if typing.get_origin(kind) in (typing.Union, types.UnionType) and len(args) == 1:
                kind = args[0]                  # an optional scalar: its flag gives the value
            if dataclasses.is_dataclass(kind):
                walk(kind, key + ".")
                continue
            if key in skip or kind not in (str, int, float, bool):
                continue
            dest = by_key.get(key, key.replace(".", "_"))
            flag = "--" + dest.replace("_", "-")
            extra: dict[str, Any] = ({"action": argparse.BooleanOptionalAction} if kind is bool
                                     else {"type": kind, "choices": choices.get(key)})
            parser.add_argument(flag, dest=dest, default=None, help=helps.get(key), **extra)
            keys[dest] = key
    walk(schema, "")
    return keys


def add_config_arguments(parser: Any, what: str) -> None:
    """--config, --set and --dry-run, the same for every command."""
    parser.add_argument("--config", help=f"{what} config YAML (a path, or the name of a shipped one)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY.SUB=VALUE",
                        help="override any config value, e.g. --set train.batch_size=32 (repeatable)")
    parser.add_argument("--dry-run", action="store_true", help="print the resolved config and exit")


def resolve_device(name: str = "auto") -> str:
    """A torch device name; "auto" is the GPU when one is present, else the CPU."""
    if name != "auto":
        return name
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def resolve_mixed_precision(value: str) -> str | None:
    """auto: what `accelerate launch --mixed_precision` said (None lets accelerate read it), else
    bf16 on a GPU that has it, else no. An explicit value wins over the launcher."""
    if value != "auto":
        return value
    if "ACCELERATE_MIXED_PRECISION" in os.environ:
        return None
    import torch
    return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "no"


def to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def to_yaml(config: Any) -> str:
    """The resolved config as YAML (what --dry-run prints and runs store)."""
    return yaml.safe_dump(to_dict(config), sort_keys=False)
