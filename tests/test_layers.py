"""The package's import layers: no module imports one of a higher layer, and no imports loop.

Read from the source's syntax trees, so imports inside functions (the lazy ones) count too. A
module may import modules of its own layer or any lower one; `kerasvae/__init__.py`, the
package's facade, may import anything (it registers the models with Keras).
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "kerasvae"

# The layers, lowest first: a top-level module or folder of kerasvae imports only from its own
# layer and the layers before it.
LAYERS = (
    ("_backend", "_serving_protos"),
    ("config", "progress", "artifacts", "fingerprints"),
    ("kinds",),
    ("data",),
    ("models",),
    ("metrics",),
    ("viz",),
    ("summaries",),
    ("training", "serving"),
    ("steps",),
    ("pipeline",),
    ("studies",),
    ("kfp_pipeline",),
    ("cli",),
)
LAYER = {name: i for i, names in enumerate(LAYERS) for name in names}
# Loops of modules not yet untied, each with its reason; the test fails on any other loop and
# on one of these that grows. `studies.core.settings_class_of` reads the study registry in
# `kerasvae/studies/__init__.py`, which dispatches (lazily) to the studies built on `core`.
# (The mnist package's modules are the one study module mnist.py was, split by study.)
KNOWN_LOOPS = (
    ["kerasvae.studies", "kerasvae.studies.budget", "kerasvae.studies.core",
     "kerasvae.studies.disentanglement", "kerasvae.studies.methods", "kerasvae.studies.mnist",
     "kerasvae.studies.mnist.ae_vs_vae", "kerasvae.studies.mnist.beta",
     "kerasvae.studies.mnist.common", "kerasvae.studies.mnist.latent_dim",
     "kerasvae.studies.mnist.priors", "kerasvae.studies.ood", "kerasvae.studies.precision"],
)


def module_name(path):
  parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
  return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph():
  """{module: {(imported module, line)}} of every kerasvae module, imports in functions too."""
  sources = {module_name(p): p for p in PACKAGE.rglob("*.py")}

  def resolve(name):  # `from kerasvae import artifacts` names a module; `from x import f`, x
    while name not in sources and "." in name:
      name = name.rsplit(".", 1)[0]
    return name

  graph = {}
  for module, path in sources.items():
    edges = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
      if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
      elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = [f"{node.module}.{a.name}" for a in node.names]
      else:
        continue
      edges.update((resolve(n), node.lineno) for n in names
                   if n == "kerasvae" or n.startswith("kerasvae."))
    graph[module] = edges
  return graph


def component(module):
  """The top-level module or folder of kerasvae a module belongs to (None: the package)."""
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else None


def cycles(graph):
  """The strongly connected components of more than one node (Tarjan's algorithm)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(node):
    index[node] = low[node] = len(index)
    stack.append(node)
    on_stack.add(node)
    for target in graph.get(node, ()):
      if target not in index:
        visit(target)
        low[node] = min(low[node], low[target])
      elif target in on_stack:
        low[node] = min(low[node], index[target])
    if low[node] == index[node]:
      members = []
      while True:
        member = stack.pop()
        on_stack.discard(member)
        members.append(member)
        if member == node:
          break
      if len(members) > 1:
        found.append(sorted(members))

  for node in sorted(graph):
    if node not in index:
      visit(node)
  return found


def test_every_part_of_the_package_has_a_layer():
  parts = {component(m) for m in import_graph()} - {None}
  assert sorted(parts - set(LAYER)) == []


def test_no_import_runs_up_the_layers():
  upward = []
  for module, edges in import_graph().items():
    source = component(module)
    if source is None:
      continue
    for target, line in sorted(edges):
      if target != "kerasvae" and LAYER[component(target)] > LAYER[source]:
        upward.append(f"{module}:{line} imports {target}")
  assert upward == []


def test_no_modules_import_each_other_in_a_loop():
  graph = {m: {t for t, _ in edges} for m, edges in import_graph().items()}
  # A package's __init__ importing its own modules is how a package is built, not a loop;
  # a module importing its package (the __init__) back is.
  assert [loop for loop in cycles(graph) if loop not in KNOWN_LOOPS] == []


def test_no_folders_import_each_other_in_a_loop():
  folders = {}
  for module, edges in import_graph().items():
    if component(module) is not None:
      folders.setdefault(component(module), set()).update(
          component(t) for t, _ in edges if component(t) not in (None, component(module)))
  assert cycles(folders) == []
