"""Contract 5: logs never carry request content; the audit keeps the user agent only as a
salted hash. The structured handler reads the Flask request of the call for every line it
writes (for the trace), and used to copy its ``User-Agent`` and whole URL (path and query
string, both the client's choice) into each line's ``httpRequest``: an e-mail address or a
token sent there reached every log line of the call, through the real callable entry too."""

from __future__ import annotations

import io
import json
import logging

from flask import Flask

from common import logs

CANARY = "mara.quill@pii-canary.example"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


def _lines_logged_during(path: str, headers: dict[str, str]) -> list[dict[str, object]]:
    stream = io.StringIO()
    handler = logs.configure("INFO", stream=stream, project_id="demo-p")
    app = Flask(__name__)
    try:
        with app.test_request_context(path, method="POST", json={"data": {}}, headers=headers):
            logs.log("WARNING", "trackExternalDataUsage refused", reason="invalid data")
            logging.getLogger("enrichment.engine").warning("an engine line")
    finally:
        logging.getLogger().removeHandler(handler)
        logs._handler = None  # the next configure installs a fresh handler
    rows = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [row for row in rows if "message" in row]  # not the library's one diagnostic line


def test_a_user_agent_and_url_the_client_wrote_reach_no_log_line() -> None:
    headers = {
        "User-Agent": f"Mozilla/5.0 ({CANARY})",
        "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
    }
    lines = _lines_logged_during(f"/{CANARY}?email={CANARY}&token=tok123", headers)
    assert [line["message"] for line in lines] == [
        "trackExternalDataUsage refused",
        "an engine line",
    ]
    for line in lines:
        assert "pii-canary" not in json.dumps(line), line
        assert "tok123" not in json.dumps(line), line
        # ... and the line keeps what ties it to its request: the trace, and the method
        assert line["logging.googleapis.com/trace"] == f"projects/demo-p/traces/{TRACE_ID}"
        assert line["httpRequest"] == {"requestMethod": "POST", "protocol": "HTTP/1.1"}
