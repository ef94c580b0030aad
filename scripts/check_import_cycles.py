"""Fail on any import cycle between the modules of a package (default: authapi).

import-linter (scripts/lint) has no contract for "no cycles anywhere": its
`acyclic_siblings` compares packages, not modules. This builds the same graph it does
(grimp), finds its strongly connected components and prints one cycle through each,
with the lines that import. Imports under `if TYPE_CHECKING:` never run and are left
out; imports inside functions count, since they run. Exit status 1 if there is a cycle.

Usage: python scripts/check_import_cycles.py [PACKAGE]
"""

from __future__ import annotations

import sys

import grimp


def strongly_connected(graph: grimp.ImportGraph) -> list[set[str]]:
    """Tarjan's algorithm, iterative (a deep package must not hit the recursion limit):
    the components of more than one module, and any module that imports itself."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for root in sorted(graph.modules):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.find_modules_directly_imported_by(root))))]
        index[root] = lowlink[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = lowlink[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append(
                        (other, iter(sorted(graph.find_modules_directly_imported_by(other))))
                    )
                    break
                if other in on_stack:
                    lowlink[module] = min(lowlink[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    lowlink[parent] = min(lowlink[parent], lowlink[module])
                if lowlink[module] == index[module]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == module:
                            break
                    if len(component) > 1 or module in graph.find_modules_directly_imported_by(
                        module
                    ):
                        components.append(component)
    return components


def one_cycle(graph: grimp.ImportGraph, component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module: start, ..., start."""
    start = min(component)
    best: list[str] | None = None
    for other in sorted(graph.find_modules_directly_imported_by(start) & component):
        chain = [start] if other == start else graph.find_shortest_chain(other, start)
        if chain is not None and (best is None or len(chain) < len(best)):
            best = list(chain)
    if best is None:  # cannot happen: a strongly connected component has a way back
        raise RuntimeError(f"no cycle through {start}")
    return [start, *best]


def describe(graph: grimp.ImportGraph, cycle: list[str]) -> str:
    lines = []
    for importer, imported in zip(cycle, cycle[1:], strict=False):
        details = graph.get_import_details(importer=importer, imported=imported)
        where = ", ".join(f"line {detail['line_number']}" for detail in details)
        lines.append(f"  {importer} -> {imported} ({where})")
    return "\n".join(lines)


def main() -> int:
    package = sys.argv[1] if len(sys.argv) > 1 else "authapi"
    # No cache: a lint run leaves no files behind.
    graph = grimp.build_graph(package, exclude_type_checking_imports=True, cache_dir=None)
    components = strongly_connected(graph)
    for component in sorted(components, key=min):
        print(f"import cycle among {', '.join(sorted(component))}; one of them:")  # noqa: T201
        print(describe(graph, one_cycle(graph, component)))  # noqa: T201
    if components:
        print(  # noqa: T201
            f"{len(components)} import cycle(s) in {package}: break each one "
            "(move what both sides need into a module of its own)"
        )
        return 1
    print(f"no import cycles in {package} ({len(graph.modules)} modules)")  # noqa: T201
    return 0


if __name__ == "__main__":
    sys.exit(main())
