#!/usr/bin/env bash
# The nightly image pipeline: bake every layer whose inputs changed, keep the JSON summary,
# then (on AWS) prune old AMIs and sweep expired builder instances.
#
#   PARBAKE=parbake TARGET=aws JOBS=2 KEEP=3 REPORTS=/var/log/parbake examples/nightly.sh
#
# Run it from the project directory (images/, roles/). Exit code: parbake's, from the bake:
# 0 every layer baked or cached, 1 a layer failed (unrelated layers were still baked; a
# failed layer's stack layers are skipped), 2 internal error, 130 interrupted. An unchanged
# tree starts no Packer and takes well under a second.
set -uo pipefail

PARBAKE=${PARBAKE:-parbake}
TARGET=${TARGET:-aws}
JOBS=${JOBS:-2}
KEEP=${KEEP:-3}
REPORTS=${REPORTS:-./parbake-reports}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
mkdir -p "$REPORTS"

# stdout is the JSON summary (one entry per layer: baked/cached/failed/skipped, duration,
# image id, and why it was rebaked); progress goes to stderr, i.e. the journal or cron mail
"$PARBAKE" bake --all --target "$TARGET" -j "$JOBS" --json >"$REPORTS/bake-$stamp.json"
rc=$?
echo "parbake bake --all: exit $rc, summary in $REPORTS/bake-$stamp.json" >&2

if [ "$TARGET" = aws ]; then
  # prune always keeps the newest AMI of each image and stack, their parents, and AMIs that
  # instances or launch templates use, so running it after a failed bake is safe
  if ! "$PARBAKE" prune --keep "$KEEP" --json >"$REPORTS/prune-$stamp.json" && [ "$rc" -eq 0 ]; then
    rc=1
  fi
  "$PARBAKE" gc --json >"$REPORTS/gc-$stamp.json" || true
fi
exit "$rc"
