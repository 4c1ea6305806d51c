"""The package's layering: module-level imports between edlm's modules form no circle (imports inside functions,
made lazily on purpose, and typing-only imports are not counted)."""
import ast
from pathlib import Path

import edlm

ROOT = Path(edlm.__file__).parent


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def top_level_imports(path: Path, name: str) -> set[str]:
    tree = ast.parse(path.read_text())
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in tree.body:  # module level only
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ([node] if not isinstance(node, (ast.If, ast.Try)) else ast.walk(node)):
            if isinstance(sub, ast.ImportFrom):
                base = package
                for _ in range(sub.level - 1):
                    base = base.rpartition(".")[0]
                mod = (base + "." + sub.module if sub.module else base) if sub.level else sub.module
                if mod and mod.startswith("edlm"):
                    out.add(mod)
                    out |= {f"{mod}.{a.name}" for a in sub.names}  # `from . import models` names a module
            elif isinstance(sub, ast.Import):
                out |= {a.name for a in sub.names if a.name.startswith("edlm")}
    return out


def graph() -> dict[str, set[str]]:
    mods = {module_name(p): p for p in ROOT.rglob("*.py")}
    return {m: {d for d in top_level_imports(p, m) if d in mods and d != m} for m, p in mods.items()}


def find_cycle(g: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for d in sorted(g[m]):
            if state.get(d) == "open":
                return stack[stack.index(d):] + [d]
            if d not in state and (c := visit(d)):
                return c
        state[m] = "done"
        stack.pop()
        return None

    for m in sorted(g):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_no_import_circles():
    g = graph()
    assert "edlm.sampling" in g and "edlm.processes" in g["edlm.sampling"]  # the scan sees real edges
    assert find_cycle(g) is None, " -> ".join(find_cycle(g))


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_light_modules_stay_above_the_torch_core():
    """limits and spans are read by the CLI's --help and the app's layout: they import no torch module."""
    g = graph()
    for light in ("edlm.limits", "edlm.spans"):
        assert not ({"edlm.sampling", "edlm.energy", "edlm.runner", "edlm.processes"} & g[light])


def test_the_settings_schema_and_the_request_name_the_same_settings_with_the_same_defaults():
    import dataclasses

    from edlm.limits import DEFAULTS, SETTINGS, Request

    fields = {f.name: f.default for f in dataclasses.fields(Request)}
    assert set(fields) == {s.name for s in SETTINGS}
    assert all(fields[s.name] == s.default == getattr(DEFAULTS, s.name) for s in SETTINGS)
    assert all(s.control in ("slider", "number", "choice", "checkbox") and s.label for s in SETTINGS)
    assert all(s.lo <= s.widget[0] < s.widget[1] <= s.hi for s in SETTINGS if s.widget)
