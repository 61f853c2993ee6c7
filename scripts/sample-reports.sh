#!/usr/bin/env bash
# Sample reports (issue 10), run by `make report` under with-emulators.sh: the demo's data on the
# emulators, then scripts/report.py daily, weekly, security and phase into docs/reports/ (the
# demo's own output goes to .tools/). A file, not a multi-line `bash -c`: firebase emulators:exec
# re-parses the command it is given, and newlines quoted by printf %q did not survive it.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
echo "report: running the demo for its data (output: .tools/report-demo.log)"
"$PY" scripts/demo.py >.tools/report-demo.log 2>&1 \
  || echo "report: the demo failed (see .tools/report-demo.log); reporting on the data it wrote"
today=$(date -u +%F)
week=$(date -u -d "6 days ago" +%F)
"$PY" scripts/report.py daily --start "$today" --out docs/reports
"$PY" scripts/report.py weekly --start "$week" --end "$today" --out docs/reports
"$PY" scripts/report.py security --start "$today" --out docs/reports
"$PY" scripts/report.py phase --out docs/reports
