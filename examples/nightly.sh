#!/usr/bin/env bash
# The nightly image pipeline: bake every layer whose inputs changed and verify the stacks
# whose top image changed, publish the ones that passed, keep the JSON summaries, then (on
# AWS) prune old AMIs (never a published or rollback one) and sweep expired builders.
#
#   PARBAKE=parbake TARGET=aws JOBS=2 KEEP=3 REPORTS=/var/log/parbake examples/nightly.sh
#
# Run it from the project directory (images/, roles/, and on AWS parbake.yml: prune needs
# its project id, docs/aws.md "Project scope"). Exit code: parbake's, from the bake:
# 0 every layer baked or cached and every verification passed, 1 a layer or a verification
# or a publish failed (unrelated layers were still baked; a failed layer's stack layers are
# skipped), 2 internal error, 130 interrupted. An unchanged
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
# image id, and why it was rebaked; then one verdict per stack whose top image baked, after
# launching it with its user-data and waiting for its roles and checks); progress goes to
# stderr, i.e. the journal or cron mail. `bake --all --dry-run --json` says the same per layer
# without baking anything, for a pipeline that shows the plan before it spends
"$PARBAKE" bake --all --verify --target "$TARGET" -j "$JOBS" --json >"$REPORTS/bake-$stamp.json"
rc=$?
echo "parbake bake --all --verify: exit $rc, summary in $REPORTS/bake-$stamp.json" >&2

# publish each stack that passed verify tonight: on aws a new default version of its launch
# template (`publish:` in the stack file), on qemu the store's pointer; a stack that failed
# stays on what it had, and `parbake rollback STACK` undoes a publish
passed=$(python3 -c 'import json, sys
for v in json.load(open(sys.argv[1])).get("verified", []):
    if v["outcome"] == "passed":
        print(v["stack"])' "$REPORTS/bake-$stamp.json" 2>/dev/null)
for stack in $passed; do
  if "$PARBAKE" publish "$stack" --target "$TARGET" --json >"$REPORTS/publish-$stack-$stamp.json"; then
    echo "published $stack (details in $REPORTS/publish-$stack-$stamp.json)" >&2
  else
    rc=1
  fi
done

# prune always keeps the newest images of each image and stack, their parents, what is
# published or a rollback target, and what instances, VMs or launch templates use, so running
# it after a failed bake is safe
if ! "$PARBAKE" prune --target "$TARGET" --keep "$KEEP" --json >"$REPORTS/prune-$stamp.json" && [ "$rc" -eq 0 ]; then
  rc=1
fi
if [ "$TARGET" = aws ]; then
  "$PARBAKE" gc --json >"$REPORTS/gc-$stamp.json" || true
fi
exit "$rc"
