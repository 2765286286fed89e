#!/usr/bin/env python3
"""Checks the library's import rules (docs/ARCHITECTURE.md, src/lib.rs):
- every `crate::` path of a file under src/ (the library: not main.rs, not cli/, which
  belong to the binary) names a module of a lower layer than the file's own top-level module,
  or the file's own top-level module;
- no two files import each other in a circle (`crate::`, `super::` and `self::` paths
  resolved to files; a `mod` declaration is not an import);
- only the binary (main.rs, cli/) names the CLI.
Prints each violation and exits 1; prints a one-line summary and exits 0 otherwise.
Usage: ci/layers.py [REPO_ROOT]"""
import re
import sys
from pathlib import Path

# Top to bottom: a module may import from its own top-level module or from any lower layer.
LAYERS = [
    {"vm", "commands"},
    {"api"},
    {"vstate"},
    {"passthrough", "virtio"},
    {"hypervisor"},
    {"memory", "resources", "sandbox"},
    {"config", "stats", "host"},
    {"arch"},
]
LAYER = {m: i for i, layer in enumerate(LAYERS) for m in layer}

PATH = re.compile(r"\b(crate|super|self)(?=::)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{([^}]*)\})?")
INLINE_MOD = re.compile(r"\bmod\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{")


def module_of(src: Path, f: Path) -> list:
    parts = list(f.relative_to(src).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def file_of(src: Path, mod: list):
    """The file that defines module `mod` (a list of names), or None."""
    for cand in (src.joinpath(*mod).with_suffix(".rs"), src.joinpath(*mod, "mod.rs")):
        if mod and cand.is_file():
            return cand
    return None


def strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return "\n".join(line.split("//", 1)[0] for line in text.splitlines())


def inline_mods(text: str):
    """(start, end, name) of each inline `mod name { ... }` block."""
    spans = []
    for m in INLINE_MOD.finditer(text):
        depth, i = 0, m.end() - 1
        while i < len(text):
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            if depth == 0:
                break
            i += 1
        spans.append((m.start(), i, m.group(1)))
    return spans


def targets(src: Path, f: Path, text: str):
    """(line, module path, file) for each path the file names."""
    spans = inline_mods(text)
    for m in PATH.finditer(text):
        # Inside an inline `mod tests { .. }`, `self` and `super` are relative to it.
        here = module_of(src, f) + [n for a, b, n in spans if a < m.start() < b]
        root, rest, _, group = m.groups()
        segs = [s for s in rest.split("::") if s]
        base = {"crate": [], "self": here, "super": here[:-1]}[root]
        while segs and segs[0] == "super":
            base, segs = base[:-1], segs[1:]
        paths = [base + segs]
        if group:
            for item in group.split(","):
                first = item.strip().split("::")[0].split(" ")[0]
                if first and first not in ("self", "*"):
                    paths.append(base + segs + [first])
        line = text.count("\n", 0, m.start()) + 1
        for p in paths:
            # The longest prefix that is a module file is what the path imports.
            for n in range(len(p), 0, -1):
                t = file_of(src, p[:n])
                if t:
                    yield line, p, t
                    break


def find_cycle(graph: dict):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                c = visit(m)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def main() -> int:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent)
    src = root / "src"
    binary = {src / "main.rs"} | set((src / "cli").rglob("*.rs"))
    lib = sorted(f for f in src.rglob("*.rs") if f not in binary)
    errors, graph = [], {}
    for f in lib:
        text = strip_comments(f.read_text())
        top = module_of(src, f)[0] if module_of(src, f) else None
        rel = f.relative_to(root)
        if re.search(r"\bcrate::cli\b|\bclap::Parser\b", text):
            errors.append(f"{rel}: names the CLI (only main.rs and cli/ may)")
        for line, path, target in targets(src, f, text):
            if target != f:
                graph.setdefault(f, set()).add(target)
            to = path[0] if path else None
            if top is None or to is None or to == top:
                continue
            if top not in LAYER or to not in LAYER:
                errors.append(f"{rel}:{line}: module '{top}' or '{to}' has no layer in ci/layers.py")
            elif LAYER[to] <= LAYER[top]:
                errors.append(
                    f"{rel}:{line}: '{top}' imports crate::{'::'.join(path)} from the same or a higher layer"
                )
    cycle = find_cycle(graph)
    if cycle:
        errors.append("import circle: " + " -> ".join(str(c.relative_to(root)) for c in cycle))
    for e in errors:
        print(e)
    edges = sum(len(v) for v in graph.values())
    print(f"layers: {len(lib)} files, {edges} file imports, {len(errors)} violations")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
