#!/usr/bin/env python3
"""Parses PowerShell files with the tree-sitter PowerShell grammar and fails on syntax errors.

Usage: parse_powershell.py FILE...

Prints FILE:LINE:COL for every ERROR or MISSING node and exits 1 if there is any, 2 on bad usage.
"""

import sys

import tree_sitter
import tree_sitter_powershell


def problems(tree):
    """Yields (node, kind) for every ERROR and MISSING node, outermost first."""
    stack = [tree.root_node]
    while stack:
        node = stack.pop()
        if node.is_error:
            yield node, "syntax error"
        elif node.is_missing:
            yield node, f"missing {node.type}"
        # Only descend where something is wrong, in source order.
        stack.extend(child for child in reversed(node.children) if child.has_error or child.is_missing)


def main(paths):
    if not paths:
        print(__doc__, file=sys.stderr)
        return 2
    parser = tree_sitter.Parser(tree_sitter.Language(tree_sitter_powershell.language()))
    failed = False
    for path in paths:
        with open(path, "rb") as f:
            source = f.read()
        tree = parser.parse(source)
        found = False
        for node, kind in problems(tree):
            found = True
            line, col = node.start_point
            text = source[node.start_byte : min(node.end_byte, node.start_byte + 60)].decode("utf-8", "replace")
            text = text.splitlines()[0] if text else ""
            print(f"{path}:{line + 1}:{col + 1}: {kind} near `{text}`")
        if found or tree.root_node.has_error:
            if not found:
                print(f"{path}:1:1: syntax error")
            failed = True
        else:
            print(f"{path}: ok")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
