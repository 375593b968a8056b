"""A fresh clone with nothing beside it builds the fixture chain: the project reads only itself."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from bot.paths import ROOT


def test_a_checkout_with_nothing_beside_it_builds_the_fixture_chain(tmp_path: Path) -> None:
    files = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    clone = tmp_path / "alone" / "checkout"  # its parent holds nothing else: no ../shared
    for name in files:
        if (ROOT / name).is_file():
            (clone / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, clone / name)
    (clone / "node_modules").symlink_to(ROOT / "node_modules")  # what `make setup` installs
    assert sorted(p.name for p in clone.parent.iterdir()) == ["checkout"]
    env = {k: v for k, v in os.environ.items() if k != "REBALANCER_PRICES_CSV"}
    env["PYTHONPATH"] = str(clone)
    code = "import sys; from bot.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "chain", "build", "--scenario", "default"],
        cwd=clone,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (clone / "anvil_fixtures" / "build" / "default" / "state.json").is_file()
    assert "shared" not in done.stdout + done.stderr
