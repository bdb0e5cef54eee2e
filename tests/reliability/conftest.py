import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from harness import ROOT, Daemon  # noqa: E402

RESULTS = Path(os.environ.get("RELIABILITY_RESULTS", ROOT / "artifacts/reliability.json"))


@pytest.fixture
def daemons():
    """Factory: `daemons(config=...)` starts a private daemon; all are stopped afterwards."""
    made = []

    def make(**kw):
        d = Daemon(**kw)
        made.append(d)
        return d.start()

    yield make
    for d in made:
        d.cleanup()


@pytest.fixture(scope="session")
def figures():
    """Figures the tests report (connections held, requests, faults, ...), saved as JSON."""
    data: dict = {}
    yield data
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    old = {}
    if RESULTS.exists():
        try:
            old = json.loads(RESULTS.read_text())
        except ValueError:
            pass
    old.update(data)
    RESULTS.write_text(json.dumps(old, indent=2, sort_keys=True) + "\n")
