"""Dependencies point one way: handlers -> chats, expiry -> delivery / courier -> the services they
share -> config -> store -> models. A module may import a lower layer, or a module of its own package,
never a higher layer or a sibling of its layer; the few utilities anyone may use import nothing of
the project but each other; and no import goes round in a cycle. Read from the source (ast), so a
newcomer's upward import fails here, naming the line."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent

# top to bottom; a module belongs to the first group whose prefix it starts with
LAYERS = [
    ("handlers", "services.admin"),
    ("services.chats", "services.expiry"),
    ("services.delivery", "services.courier"),
    (
        "services.lookups",
        "services.limits",
        "services.mailer",
        "services.metrics",
        "services.readiness",
        "services.looplag",
        "services.events",
    ),
    ("services.config",),
    ("services.store",),
    ("models",),
]
UTILITIES = ("services.errors", "services.backoff", "services.shutdown", "services.periodic")


def module_name(path: pathlib.Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for top in ("handlers", "services", "models") for p in (ROOT / top).rglob("*.py")}


def imports(path: pathlib.Path) -> list[tuple[int, str]]:
    """(line, module) for every import of a project module, `from x import y` resolved to x.y when
    x.y is a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.append((node.lineno, name if name in MODULES else node.module))
    return [(line, name) for line, name in found if name in MODULES]


def place(module: str) -> tuple[int, str] | None:
    """(layer, group) of a module; None for a utility or a package's own __init__."""
    for layer, groups in enumerate(LAYERS):
        for group in groups:
            if module == group or module.startswith(group + "."):
                return layer, group
    return None


@pytest.mark.parametrize("module", sorted(MODULES))
def test_a_module_imports_only_below_it_or_within_its_own_package(module):
    here = place(module)
    for line, target in imports(MODULES[module]):
        there = place(target)
        where = f"{MODULES[module].relative_to(ROOT)}:{line} imports {target}"
        if module in UTILITIES:
            assert target in UTILITIES, where + ": a utility imports only utilities"
        elif here is None or there is None:
            continue  # a utility, or a package's namespace
        elif here[1] == there[1]:
            continue  # within its own package
        else:
            assert there[0] > here[0], where + ": an import must point down the layers"


def test_no_import_cycle():
    graph = {module: {target for _, target in imports(path)} for module, path in MODULES.items()}
    done, path = set(), []

    def visit(module):
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join(path[path.index(module) :] + [module]))
        if module in done:
            return
        path.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        path.pop()
        done.add(module)

    for module in sorted(graph):
        visit(module)


def test_every_module_has_a_place():
    unplaced = [m for m in MODULES if place(m) is None and m not in UTILITIES and m not in ("services",)]
    assert unplaced == []


def test_the_services_never_import_tornado_web_or_the_handlers():
    for module, path in MODULES.items():
        if module.startswith(("services", "models")):
            text = path.read_text()
            assert "tornado.web" not in text and "from handlers" not in text, module
