#!/usr/bin/env bash
# The SLURM test tier (`make test` runs it after the unit tests): install and start the
# single-node cluster, run the tests marked `slurm`, and always stop the cluster again.
#
#   bash slurm/test-tier.sh [extra pytest arguments]
#
# As root it manages the cluster itself (slurm/cluster.sh). Not as root, it only runs the tests
# against a cluster that is already up, and fails with a message when there is none.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/.." && pwd)"
CLUSTER="$HERE/cluster.sh"
PY="$REPO/.venv/bin/python"

say() { printf '[slurm-tier] %s\n' "$*"; }

cd "$REPO"
if [[ $(id -u) -ne 0 ]] && ! { command -v scontrol >/dev/null 2>&1 &&
    timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP'; }; then
    say "ERROR: not root and no running SLURM cluster. Run this tier as root (it installs and" >&2
    say "starts a single-node cluster), or start one first: sudo bash slurm/cluster.sh start" >&2
    exit 1
fi
[[ -x $PY ]] || { say "ERROR: $PY not found: build the virtual environment first (make install)" >&2; exit 1; }

# shellcheck disable=SC2317  # only invoked through the EXIT trap
stop_cluster() {  # the cluster never outlives the tier
    local rc=$?
    say "stopping the cluster"
    bash "$CLUSTER" stop || rc=1
    exit "$rc"
}

if [[ $(id -u) -eq 0 ]]; then
    trap stop_cluster EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    t0=$SECONDS
    bash "$CLUSTER" install
    t1=$SECONDS
    bash "$CLUSTER" start
    say "install $((t1 - t0))s, start $((SECONDS - t1))s"
else
    say "not root: using the SLURM cluster that is already running (it is left running)"
fi

rc=0
SLURM_TEST_TIER=1 "$PY" -m pytest -m slurm tests/ -v "$@" || rc=$?
if [[ $rc -eq 5 ]]; then
    # pytest: no test collected. Fine only as long as no test is marked slurm at all.
    if grep -rqsE --include='*.py' 'mark\.slurm' tests/; then
        say "ERROR: slurm-marked tests exist under tests/ but none was collected" >&2
    else
        say "no slurm-marked tests yet: nothing to run (pytest exit 5 treated as success)"
        rc=0
    fi
fi
exit "$rc"
