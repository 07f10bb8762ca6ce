"""Typed configs: dataclasses built from YAML with unknown keys and bad values rejected by name.

Every step has a dataclass config. `from_dict` builds one from plain data
(YAML), checking each field's type and, through the field metadata
`choices=` and `range=`, its allowed values. Errors name the dotted field, what
was expected and what was received, and the file the value came from.
"""

import dataclasses
import types
import typing
from pathlib import Path

import yaml


class ConfigError(ValueError):
  """A config value or key is invalid. The message names the field."""


def field(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING,
          choices=None, range=None, help=""):  # pylint: disable=redefined-builtin
  """A dataclass field with validation metadata.

  Args:
    default: the default value.
    default_factory: a callable making the default (for lists and nested configs).
    choices: the allowed values, if the field is an enumeration.
    range: `(low, high)` inclusive bounds for a number; either may be None.
    help: one line describing the field, shown in errors and `--help`.
  """
  metadata = {"choices": choices, "range": range, "help": help}
  if default_factory is not dataclasses.MISSING:
    return dataclasses.field(default_factory=default_factory, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp):
  return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value, tp, where, source):
  """Converts plain YAML data to `tp`, or raises ConfigError naming `where`."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _convert(value, arg, where, source)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(errors[0] if len(errors) == 1 else
                      f"{where}: expected {_type_name(tp)}. Received: {value!r}{source}")
  if dataclasses.is_dataclass(tp):
    return from_dict(tp, value, where=where, source=source)
  if origin in (list, tuple):
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{where}: expected a list. Received: {value!r}{source}")
    item_type = args[0] if args else typing.Any
    items = [_convert(v, item_type, f"{where}[{i}]", source) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items
  if origin is dict:
    if not isinstance(value, dict):
      raise ConfigError(f"{where}: expected a mapping. Received: {value!r}{source}")
    return dict(value)
  if tp is typing.Any:
    return value
  if tp is bool:
    if isinstance(value, bool):
      return value
    raise ConfigError(f"{where}: expected true or false. Received: {value!r}{source}")
  if tp is int:
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise ConfigError(f"{where}: expected an integer. Received: {value!r}{source}")
  if tp is float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      return float(value)
    raise ConfigError(f"{where}: expected a number. Received: {value!r}{source}")
  if tp is str:
    if isinstance(value, str):
      return value
    raise ConfigError(f"{where}: expected a string. Received: {value!r}{source}")
  return value


def _check_field(f, value, where, source):
  choices = f.metadata.get("choices")
  if choices is not None and value is not None and value not in choices:
    raise ConfigError(f"{where}: expected one of {list(choices)}. Received: {value!r}{source}")
  bounds = f.metadata.get("range")
  if bounds is not None and value is not None:
    low, high = bounds
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
      if (low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(
            f"{where}: expected a value in [{lo}, {hi}]. Received: {value!r}{source}")


def from_dict(cls, data, where="config", source=""):
  """Builds dataclass `cls` from a mapping, rejecting unknown keys by name.

  Args:
    cls: the dataclass type.
    data: a mapping (or None for all defaults).
    where: the dotted path of this block, for error messages.
    source: a suffix naming the file (" (in config.yaml)"), for error messages.

  Returns:
    An instance of `cls`; its `validate()` method, if any, has been called.

  Raises:
    ConfigError: naming the key or value and what was expected.
  """
  if data is None:
    data = {}
  if dataclasses.is_dataclass(data):
    data = to_dict(data)
  if not isinstance(data, dict):
    raise ConfigError(f"{where}: expected a mapping of keys to values. Received: {data!r}{source}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(data) - set(fields))
  if unknown:
    raise ConfigError(
        f"{where}: unknown key {unknown[0]!r}{source}. Valid keys: {', '.join(sorted(fields))}.")
  kwargs = {}
  for name, value in data.items():
    sub = f"{where}.{name}"
    converted = _convert(value, hints[name], sub, source)
    _check_field(fields[name], converted, sub, source)
    kwargs[name] = converted
  obj = cls(**kwargs)
  validate = getattr(obj, "validate", None)
  if validate is not None:
    try:
      validate()
    except ConfigError as e:
      raise ConfigError(f"{where}: {e}{source}") from None
  return obj


def to_dict(obj):
  """The plain-data form of a config (for YAML, JSON and fingerprints)."""
  if dataclasses.is_dataclass(obj):
    return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
  if isinstance(obj, (list, tuple)):
    return [to_dict(v) for v in obj]
  if isinstance(obj, dict):
    return {k: to_dict(v) for k, v in obj.items()}
  if isinstance(obj, Path):
    return str(obj)
  return obj


def load_yaml(path):
  """Reads a YAML mapping from `path` with errors that name the file."""
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"Expected a YAML config file at {path}, but it does not exist.")
  try:
    with open(path) as f:
      data = yaml.safe_load(f)
  except yaml.YAMLError as e:
    raise ConfigError(f"{path}: not valid YAML: {e}") from None
  if data is None:
    return {}
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a mapping at the top level. Received: {type(data).__name__}")
  return data


def apply_overrides(data, overrides):
  """Applies dotted `key.sub=value` overrides (values parsed as YAML) to a nested dict copy."""
  import copy
  data = copy.deepcopy(data)
  for item in overrides or ():
    if "=" not in item:
      raise ConfigError(f"Expected an override of the form key.sub=value. Received: {item!r}")
    key, text = item.split("=", 1)
    value = yaml.safe_load(text) if text.strip() else ""
    node = data
    parts = key.strip().split(".")
    for part in parts[:-1]:
      child = node.setdefault(part, {})
      if not isinstance(child, dict):
        raise ConfigError(f"Cannot set {key!r}: {part!r} is not a block. Received: {child!r}")
      node = child
    node[parts[-1]] = value
  return data
