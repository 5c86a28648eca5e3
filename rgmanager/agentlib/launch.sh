# Sourced by every launcher in resource-agents/ (never run by itself), with
# $agent (the agent's name, e.g. fs) and $self (the launcher's real path) set.
#
# Runs rgmanager.agentlib.$agent under the project's interpreter, the first of:
#   $RGMANAGER_PYTHON   set by rgmanager-py's executor for every agent run;
#   ROOT/.venv/bin/python   the checkout's own venv (setup.sh), for managers
#                       that know nothing of us (ocf-tester, Pacemaker), with
#                       or without the venv activated;
#   python3             from PATH.
# A bare python3 could be the system's, without pyroute2 or sh.  -P keeps the
# caller's working directory out of sys.path, so the agent imports only the
# checkout's code from any cwd; bootstrap.py puts ROOT first on sys.path.
root=${self%/*/*}
py=${RGMANAGER_PYTHON:-}
[ -n "$py" ] && [ -x "$py" ] || py=$root/.venv/bin/python
[ -x "$py" ] || py=python3
exec "$py" -P -c 'import sys; sys.path.insert(0, sys.argv.pop(1))
from rgmanager.agentlib.bootstrap import main; main()' "$root" "$agent" "$self" "$@"
