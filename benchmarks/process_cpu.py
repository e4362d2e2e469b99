"""CPU time of a process tree, for the benchmarks that time a vLLM server (it runs its engine in subprocesses).

The benchmarks are run as scripts (``python benchmarks/NAME.py``), so this folder is on ``sys.path`` and they
import it as ``from process_cpu import tree_cpu_seconds``.
"""

from __future__ import annotations

import psutil


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU-seconds of a process and all its live descendants."""
    root = psutil.Process(pid)
    total = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.NoSuchProcess:
            continue
    return total
