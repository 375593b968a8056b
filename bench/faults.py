"""The fault figures: runs the adversarial tests (pytest -m adversarial) and prints their summary.

Every adversarial test injects one fault on the fixture chain and asserts the safe behaviour:
no funds lost beyond the slippage bounds, nothing executed twice, no unhandled exception.

    .venv/bin/python bench/faults.py
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-m", "adversarial", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    lines = result.stdout.strip().splitlines()
    summary = [line for line in lines if line.startswith("faults injected")]
    print(lines[-1] if lines else "(no output)")
    print(summary[-1] if summary else "no adversarial test ran")
    sys.exit(result.returncode)


if __name__ == "__main__":
    main()
