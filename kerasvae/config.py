"""Typed configs: dataclasses built from YAML with unknown keys and bad values rejected by name.

Every step has a dataclass config. `from_dict` builds one from plain data
(YAML), checking each field's type and, through the field metadata
`choices=` and `range=`, its allowed values. Errors name the dotted field, what
was expected and what was received, and the file the value came from.
"""

import dataclasses
import math
import os
import re
import reprlib
import sys
import types
import typing
from pathlib import Path

import yaml


class ConfigError(ValueError):
  """A config value or key is invalid. The message names the field."""


# A config holds a few hundred values (the largest bundled one, a study, under 200). These
# bounds refuse a hostile one while it is read, before anything walks it: a "billion laughs"
# of nested aliases is a kilobyte of YAML that expands to 10^9 values, cheap to load (the
# aliases share one object) but endless to convert, fingerprint or print.
MAX_CONFIG_BYTES = 1 << 20
MAX_CONFIG_VALUES = 10_000  # counted with every alias expanded
MAX_CONFIG_DEPTH = 32

# Bounds of numeric settings with no natural limit, past which a value is a typo or an attack,
# not a wish: one width of a layer (1 << 16 units: a 784-65536 layer already holds 51M weights),
# a batch, and a count of epochs, steps or samples. The train step checks what the chosen
# numbers cost together against the machine's memory (`kerasvae.steps.train`).
MAX_UNITS = 1 << 16
MAX_BATCH_SIZE = 1 << 16
MAX_COUNT = 10 ** 7


class ConfigTooLarge(yaml.YAMLError):
  """A YAML document past the bounds above. The message says which bound and where."""


class DuplicateKeyError(yaml.YAMLError):
  """A mapping of a YAML document holds one key twice. The message names both lines."""


class _Loader(yaml.SafeLoader):  # pylint: disable=too-many-ancestors
  """PyYAML's safe loader with YAML 1.2 numbers and bounded documents.

  Numbers are read as YAML 1.2 does: `1e-4` is a float, not a string (PyYAML follows
  YAML 1.1, whose floats need a dot and a signed exponent, `1.0e-4`; users write `1e-4`).

  Every node's size with its aliases expanded is counted as it is composed (an alias
  counts the size of the node it names), so an alias bomb is refused after at most
  MAX_CONFIG_VALUES steps, and so is an alias inside its own anchor (a recursive value) and
  nesting deeper than MAX_CONFIG_DEPTH (PyYAML's composer recurses once per level).

  A key given twice in one mapping, at any depth, is an error naming both places (PyYAML
  keeps the last value without a word: a second `train:` block replaced the first). Keys that
  a merge (`<<: *defaults`) brings in may be overridden, as YAML intends.
  """

  def __init__(self, stream):
    super().__init__(stream)
    self._depth = 0
    self._sizes = {}  # id(node) -> its number of values with aliases expanded

  def compose_node(self, parent, index):
    if self.check_event(yaml.AliasEvent):
      event = self.peek_event()
      node = self.anchors.get(event.anchor)
      if node is not None and id(node) not in self._sizes:
        raise ConfigTooLarge(f"expected no alias inside its own anchor (a recursive value). "
                             f"Received: *{event.anchor} at {_where(event)}")
      return super().compose_node(parent, index)
    self._depth += 1
    if self._depth > MAX_CONFIG_DEPTH:
      raise ConfigTooLarge(f"expected values nested at most {MAX_CONFIG_DEPTH} deep. Received: "
                           f"more at {_where(self.peek_event())}")
    try:
      node = super().compose_node(parent, index)
    finally:
      self._depth -= 1
    if isinstance(node, yaml.MappingNode):
      _refuse_duplicate_keys(node)
    children = node.value if isinstance(node, yaml.SequenceNode) else (
        [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else [])
    size = 1 + sum(self._sizes[id(child)] for child in children)
    if size > MAX_CONFIG_VALUES:
      raise ConfigTooLarge(f"expected at most {MAX_CONFIG_VALUES} values, counting every alias "
                           f"expanded. Received: {size} or more in the value at "
                           f"{_where(node)} (a YAML alias bomb?)")
    self._sizes[id(node)] = size
    return node

  def construct_yaml_int(self, node):
    try:
      return super().construct_yaml_int(node)
    except ValueError:  # more digits than Python converts
      raise ConfigTooLarge(f"expected an integer of at most {sys.get_int_max_str_digits()} "
                           f"digits. Received: "
                           f"{len(node.value)} characters at {_where(node)}") from None


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9][0-9_]*)[eE][-+]?[0-9]+$"),
    list("-+0123456789."))


def _refuse_duplicate_keys(node):
  """Raises DuplicateKeyError if two keys of the mapping `node` are the same scalar."""
  seen = {}
  for key, _ in node.value:
    if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
      continue
    first = seen.setdefault((key.tag, key.value), key)
    if first is not key:
      raise DuplicateKeyError(
          f"expected each key once in a mapping (a second one would silently replace the "
          f"first). Received: {show(key.value)} at {_where(first)} and again at {_where(key)}")


def _where(event_or_node):
  mark = event_or_node.start_mark
  return f"line {mark.line + 1}, column {mark.column + 1}"


def parse_yaml(stream):
  """Parses YAML text or a file object safely, with YAML 1.2 numbers and bounded size.

  Raises:
    yaml.YAMLError: invalid YAML; `ConfigTooLarge` past the bounds of a config.
  """
  return yaml.load(stream, Loader=_Loader)  # nosec: a SafeLoader subclass


# Error messages show values through this repr, bounded in depth, items and length: a
# value that is not what was expected can be anything, and a message must stay a line.
class _BoundedRepr(reprlib.Repr):

  def repr_int(self, x, level):
    try:
      return super().repr_int(x, level)
    except ValueError:  # more digits than sys.get_int_max_str_digits() converts
      return f"<an integer of {x.bit_length()} bits>"


_REPR = _BoundedRepr()
_REPR.maxlevel = 3
_REPR.maxstring = _REPR.maxother = 120
_REPR.maxlist = _REPR.maxtuple = _REPR.maxdict = _REPR.maxset = 8
MAX_SHOWN = 300


def show(value):
  """A repr for error messages of at most MAX_SHOWN characters, whatever `value` holds."""
  text = _REPR.repr(value)
  return text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "..."


# Names that become folders: one path component (no '/', no '..', not hidden), at most 200
# characters. Run names may hold '=' and '+' (study trials are named `latent_dim=2`); model
# names are what TF Serving's models.config and its REST URLs accept unquoted.
RUN_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.=+-]{0,199}")
MODEL_NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,199}")


def check_name(value, what, pattern=RUN_NAME_PATTERN):
  """Raises ConfigError unless `value` is a safe single folder name matching `pattern`."""
  if not isinstance(value, str) or not pattern.fullmatch(value):
    symbols = "'_', '.', '=', '+' or '-'" if "=" in pattern.pattern else "'_', '.' or '-'"
    raise ConfigError(f"{what}: expected a folder name of at most 200 letters, digits, {symbols}, "
                      "starting with a letter or digit (one path component: no '/'). "
                      f"Received: {what}={show(value)}")


class ConfigSource:
  """Where a config's values came from, for error messages: a file and `--set` items.

  Args:
    file: the YAML file (or None).
    overrides: the `key.sub=value` items applied over it.
  """

  def __init__(self, file=None, overrides=()):
    self.file = file
    self.overrides = [(item.split("=", 1)[0].strip(), item) for item in overrides or ()
                      if "=" in item]

  def suffix(self, key=""):
    """` (from --set k=v)` when `key` (dotted, relative to the root) was set on the command
    line, else ` (in FILE)`, naming the `--set` items under a block that was partly set."""
    for name, item in reversed(self.overrides):
      if key == name or key.startswith(name + "."):
        return f" (from --set {item})"
    inner = [item for name, item in self.overrides if key and name.startswith(key + ".")]
    where = f"in {self.file}" if self.file else ""
    if inner:
      where = f"{where} with " if where else "from "
      where += ", ".join(f"--set {item}" for item in inner)
    return f" ({where})" if where else ""


def _suffix(source, key):
  return source.suffix(key) if isinstance(source, ConfigSource) else source


def field(default=dataclasses.MISSING, *, default_factory=dataclasses.MISSING,
          choices=None, range=None, help="", omit_none=False):  # pylint: disable=redefined-builtin
  """A dataclass field with validation metadata.

  Args:
    default: the default value.
    default_factory: a callable making the default (for lists and nested configs).
    choices: the allowed values, if the field is an enumeration.
    range: `(low, high)` inclusive bounds for a number; either may be None.
    help: one line describing the field, shown in errors and `--help`.
    omit_none: leave the field out of `to_dict` while it is None (an optional block, such as
      the settings of a model kind not chosen: adding a kind changes no existing fingerprint).
  """
  metadata = {"choices": choices, "range": range, "help": help, "omit_none": omit_none}
  if default_factory is not dataclasses.MISSING:
    return dataclasses.field(default_factory=default_factory, metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def _type_name(tp):
  return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value, tp, where, source, key=""):
  """Converts plain YAML data to `tp`, or raises ConfigError naming `where`.

  `source` is a suffix naming the file, or a `ConfigSource` asked about `key`
  (the dotted path below the root block).
  """
  origin = typing.get_origin(tp)
  suffix = _suffix(source, key)
  args = typing.get_args(tp)
  if origin in (typing.Union, types.UnionType):
    if value is None and type(None) in args:
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _convert(value, arg, where, source, key)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(errors[0] if len(errors) == 1 else
                      f"{where}: expected {_type_name(tp)}. Received: {show(value)}{suffix}")
  if dataclasses.is_dataclass(tp):
    return from_dict(tp, value, where=where, source=source, key=key)
  if tp in (list, tuple, dict):  # unparameterised: items of any type
    origin = tp
  if origin in (list, tuple):
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{where}: expected a list. Received: {show(value)}{suffix}")
    item_type = args[0] if args else typing.Any
    items = [_convert(v, item_type, f"{where}[{i}]", source, key) for i, v in enumerate(value)]
    return tuple(items) if origin is tuple else items
  if origin is dict:
    if not isinstance(value, dict):
      raise ConfigError(f"{where}: expected a mapping. Received: {show(value)}{suffix}")
    key_type, value_type = args or (typing.Any, typing.Any)
    out = {}
    for k, v in value.items():
      name = k if isinstance(k, str) and len(k) <= 120 else show(k)
      sub_key = f"{key}.{name}" if key else name
      _convert(k, key_type, f"{where} key {show(k)}", source, sub_key)
      out[k] = _convert(v, value_type, f"{where}.{name}", source, sub_key)
    return out
  if tp is typing.Any:
    return value
  if tp is bool:
    if isinstance(value, bool):
      return value
    raise ConfigError(f"{where}: expected true or false. Received: {show(value)}{suffix}")
  if tp is int:
    if isinstance(value, int) and not isinstance(value, bool):
      return value
    raise ConfigError(f"{where}: expected an integer. Received: {show(value)}{suffix}")
  if tp is float:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
      try:
        number = float(value)
      except OverflowError:
        number = math.inf
      if math.isfinite(number):
        return number
      raise ConfigError(f"{where}: expected a finite number. Received: {show(value)}{suffix}")
    raise ConfigError(f"{where}: expected a number. Received: {show(value)}{suffix}")
  if tp is str:
    if isinstance(value, str):
      return value
    raise ConfigError(f"{where}: expected a string. Received: {show(value)}{suffix}")
  raise TypeError(f"A config field of type {_type_name(tp)} has no conversion ({where}).")


def _check_field(f, value, where, source):
  choices = f.metadata.get("choices")
  if choices is not None and value is not None and value not in choices:
    raise ConfigError(f"{where}: expected one of {list(choices)}. Received: {show(value)}{source}")
  bounds = f.metadata.get("range")
  if bounds is not None and value is not None:
    low, high = bounds
    values = value if isinstance(value, (list, tuple)) else [value]
    for v in values:
      if (isinstance(v, float) and not math.isfinite(v)) or (
          low is not None and v < low) or (high is not None and v > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(
            f"{where}: expected a value in [{lo}, {hi}]. Received: {show(value)}{source}")


def from_dict(cls, data, where="config", source="", key=""):
  """Builds dataclass `cls` from a mapping, rejecting unknown keys by name.

  Args:
    cls: the dataclass type.
    data: a mapping (or None for all defaults).
    where: the dotted path of this block, for error messages.
    source: a suffix naming the file (" (in config.yaml)"), or a `ConfigSource`
      that also knows which values came from `--set`, for error messages.
    key: the dotted path of this block below the root (for `source`).

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
    raise ConfigError(f"{where}: expected a mapping of keys to values. "
                      f"Received: {show(data)}{_suffix(source, key)}")
  hints = typing.get_type_hints(cls)
  fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
  unknown = sorted(set(data) - set(fields), key=str)
  if unknown:
    sub_key = f"{key}.{unknown[0]}" if key else str(unknown[0])
    moved = getattr(cls, "MOVED_KEYS", {}).get(unknown[0])
    if moved:  # a key of an older layout: say where it lives now
      blocks = moved.split(" or ")
      places = " or ".join(f"{where}.{block}.{unknown[0]}" for block in blocks)
      raise ConfigError(
          f"{where}: unknown key {show(unknown[0])}{_suffix(source, sub_key)}: it moved into the "
          f"block of its kind, {places} (e.g. {where}: {{kind: {blocks[0]}, {blocks[0]}: "
          f"{{{unknown[0]}: ...}}}}).")
    raise ConfigError(
        f"{where}: unknown key {show(unknown[0])}{_suffix(source, sub_key)}. "
        f"Valid keys: {', '.join(sorted(fields))}.")
  kwargs = {}
  for name, value in data.items():
    sub = f"{where}.{name}"
    sub_key = f"{key}.{name}" if key else name
    converted = _convert(value, hints[name], sub, source, sub_key)
    _check_field(fields[name], converted, sub, _suffix(source, sub_key))
    kwargs[name] = converted
  obj = cls(**kwargs)
  validate = getattr(obj, "validate", None)
  if validate is not None:
    try:
      validate()
    except ConfigError as e:
      # "name: expected ..." about one field is blamed on that field's file or --set item.
      name, sep, rest = str(e).partition(": ")
      if sep and name.split(".")[0] in fields and " " not in name:
        sub_key = f"{key}.{name}" if key else name
        raise ConfigError(f"{where}.{name}: {rest}{_suffix(source, sub_key)}") from None
      raise ConfigError(f"{where}: {e}{_suffix(source, key)}") from None
  return obj


def to_dict(obj):
  """The plain-data form of a config (for YAML, JSON and fingerprints)."""
  if dataclasses.is_dataclass(obj):
    return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)
            if not (f.metadata.get("omit_none") and getattr(obj, f.name) is None)}
  if isinstance(obj, (list, tuple)):
    return [to_dict(v) for v in obj]
  if isinstance(obj, dict):
    return {k: to_dict(v) for k, v in obj.items()}
  if isinstance(obj, Path):
    return str(obj)
  return obj


def file_kind(path):
  """What is at `path` when it is not a regular file, in words: "a directory", "a character
  device", "a FIFO (named pipe)", "nothing"..."""
  import stat  # pylint: disable=import-outside-toplevel
  try:
    mode = os.stat(path).st_mode
  except FileNotFoundError:
    return "a broken symbolic link" if os.path.islink(path) else "nothing"
  except OSError as e:
    return f"something that cannot be examined ({e.strerror})"
  if stat.S_ISDIR(mode):
    return "a directory"
  kinds = {stat.S_ISCHR: "a character device", stat.S_ISBLK: "a block device",
           stat.S_ISFIFO: "a FIFO (named pipe)", stat.S_ISSOCK: "a socket"}
  return next((name for test, name in kinds.items() if test(mode)), "a special file")


def load_yaml(path):
  """Reads a YAML mapping from `path` with errors that name the file."""
  path = Path(path)
  if not path.is_file():
    raise ConfigError(f"Expected a YAML config file at {path}. Received: "
                      f"{file_kind(path)} there.")
  try:
    with open(path, encoding="utf-8") as f:
      text = f.read(MAX_CONFIG_BYTES + 1)
    if len(text) > MAX_CONFIG_BYTES:
      raise ConfigError(f"{path}: expected a config file of at most {MAX_CONFIG_BYTES} "
                        f"characters. Received: a larger file")
    data = parse_yaml(text)
  except (ConfigTooLarge, DuplicateKeyError) as e:
    raise ConfigError(f"{path}: {e}") from None
  except yaml.YAMLError as e:
    raise ConfigError(f"{path}: expected valid YAML. Received: {yaml_error(e)}") from None
  except (OSError, UnicodeDecodeError) as e:
    raise ConfigError(f"Expected a readable UTF-8 YAML config file at {path}. "
                      f"Received: {e}") from None
  if data is None:
    return {}
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a mapping at the top level. Received: {type(data).__name__}")
  return data


def match_name(name, names):
  """`name` among `names`, with dashes and underscores taken as the same character.

  Bundled configs are named with underscores (`mnist_vae`) and study configs with dashes
  (`fashion-mnist-beta`); either spelling finds either.

  Returns:
    `(match, suggestion)`: the matching name, else None and a "did you mean" text ("" when no
    name is close).
  """
  import difflib  # pylint: disable=import-outside-toplevel
  names = list(names)
  if name in names:
    return name, ""
  key = lambda n: n.replace("-", "_").lower()  # noqa: E731
  by_key = {key(n): n for n in names}
  if key(name) in by_key:
    return by_key[key(name)], ""
  close = difflib.get_close_matches(key(name), list(by_key), n=1, cutoff=0.6)
  return None, f" Did you mean {by_key[close[0]]}?" if close else ""


def find_bundled_yaml(name, directory):
  """`<directory>/<name>.yaml` for a bundled config named either way (`match_name`).

  Returns:
    `(path, names, suggestion)`: the file (None when no bundled name matches), the bundled
    names, and match_name's "did you mean" text for the error the caller raises.
  """
  names = sorted(p.stem for p in Path(directory).glob("*.yaml"))
  match, suggestion = match_name(str(name), names)
  return (Path(directory) / f"{match}.yaml" if match is not None else None), names, suggestion


def yaml_error(e):
  """A YAML parse error in one line: where (line and column, from 1) and the parser's problem,
  instead of PyYAML's several lines that quote the text with a caret under it."""
  mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
  problem = " ".join(str(getattr(e, "problem", None) or e).split())
  context = " ".join(str(getattr(e, "context", None) or "").split())
  where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
  return where + problem + (f" ({context})" if context and context != problem else "")


def apply_overrides(data, overrides):
  """Applies dotted `key.sub=value` overrides (values parsed as YAML) to a nested dict copy."""
  import copy
  data = copy.deepcopy(data)
  for item in overrides or ():
    if "=" not in item:
      raise ConfigError(f"Expected an override of the form key.sub=value. Received: {item!r}")
    key, text = item.split("=", 1)
    try:
      value = parse_yaml(text) if text.strip() else ""
    except (ConfigTooLarge, DuplicateKeyError) as e:
      raise ConfigError(f"--set {key}=...: {e}") from None
    except yaml.YAMLError as e:
      problem = " ".join(str(getattr(e, "problem", "") or e).split())
      raise ConfigError(f"--set {item}: expected a YAML value after '=' (quote a string that "
                        f"starts with a YAML symbol). Received: {text!r} ({problem})") from None
    node = data
    parts = key.strip().split(".")
    if not all(parts):
      raise ConfigError(f"--set {item}: expected a dotted key such as model.latent_dim. "
                        f"Received: key={key!r}")
    for part in parts[:-1]:
      child = node.setdefault(part, {})
      if not isinstance(child, dict):
        raise ConfigError(f"--set {item}: expected {part!r} to be a block of keys. "
                          f"Received: {part}={show(child)}")
      node = child
    node[parts[-1]] = value
  return data
