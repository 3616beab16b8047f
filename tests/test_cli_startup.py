"""`refdesk check-config --connect` starts without loading the service: it only connects
to what the config names, and each start-up of the whole web and XMPP service (the web
app, the admin pages, the service core) cost every run of the command about 0.3 s of CPU,
40 % of its start-up, on a 2-core machine."""

from __future__ import annotations

import subprocess
import sys

# What the service brings in and the checks do not need.
SERVICE_MODULES = ("component.runner", "web.app", "component.service")


def test_the_connection_checks_do_not_load_the_service() -> None:
    # A fresh interpreter: this test process has imported everything already.
    probe = (
        f"import sys, component.doctor; print([m for m in {SERVICE_MODULES!r} if m in sys.modules])"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]", done.stdout
