"""Time ``relabel show`` against ``auditwheel show`` on the benchmark wheels.

    python benchmarks/bench_show.py [--sizes small,medium,...] [--repeat N] [--keep DIR]
                                    [--json FILE]

The same as ``python benchmarks/bench_repair.py --command show``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_repair

if __name__ == "__main__":
    raise SystemExit(bench_repair.main(command="show"))
