"""Walking an ONNX graph together with the subgraphs its nodes hold (Scan / Loop / If bodies)."""

from __future__ import annotations

from typing import Iterator


def subgraphs_of(node) -> list:
    """The graphs held by ``node``'s attributes (a Scan's body, an If's two branches)."""
    out = []
    for a in node.attribute:
        if a.type == a.GRAPH:
            out.append(a.g)
        out.extend(a.graphs)
    return out


def all_graphs(graph) -> Iterator:
    """``graph`` and every graph nested in it, depth first."""
    yield graph
    for node in graph.node:
        for sub in subgraphs_of(node):
            yield from all_graphs(sub)


def rewrite_nodes(model, op_type: str, replace) -> None:
    """Replace every ``op_type`` node of ``model``, subgraphs included, by the nodes ``replace(node)`` returns."""
    for g in all_graphs(model.graph):
        new = []
        for n in g.node:
            new += replace(n) if n.op_type == op_type else [n]
        del g.node[:]
        g.node.extend(new)
