"""Which relations (``ar=``) of a jobnet form a cycle, so each can be named by its line.

Tarjan's strongly connected components, iterative: a jobnet may hold many thousands of
units, and a recursive search would end in RecursionError on a long chain.
"""

from __future__ import annotations

from collections.abc import Sequence


def in_cycles(edges: Sequence[tuple[str, str]]) -> list[int]:
    """Indexes of the edges that lie on a cycle (both ends in one strong component)."""
    graph: dict[str, list[str]] = {}
    for src, dst in edges:
        graph.setdefault(src, []).append(dst)
        graph.setdefault(dst, [])
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    component: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, next_child = work.pop()
            if next_child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            children = graph[node]
            if next_child < len(children):
                work.append((node, next_child + 1))
                child = children[next_child]
                if child not in index:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            if low[node] == index[node]:
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component[member] = index[node]
                    if member == node:
                        break
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return [i for i, (src, dst) in enumerate(edges) if component[src] == component[dst]]
