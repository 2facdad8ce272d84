# Sourced by scripts/test: finds the processes one run of the test suite
# left behind.
#
# scripts/test gives every test command CORRAL_TEST_RUN=<marker of this
# run> (it does not export it into its own shell). Every process the tests
# start inherits it: Corral jobs inherit their runner's environment, and so
# do the agent's and the CLI's jobs, which the tests start as jobs. So a
# process that carries this run's marker was started by this run; a Corral
# job started by anyone else (an agent from the README, another checkout's
# suite) carries CORRAL_JOB_ID but not this marker, and is not counted.
#
# A test job started with an empty environment (`env -i`, a custom
# environment) loses the marker, as it loses CORRAL_JOB_ID: such tests
# check their own cleanup.

# The environment variables that say whose a process is.
leftover_owner_variables='^(CORRAL_TEST_RUN|CORRAL_JOB_ID|CORRAL_JOB_IDS|CORRAL_AGENT_JOB|CORRAL_E2E_MARKER)='

# One line about a process: pid, parent (with its command), state, command
# line, and the variables that say whose it is.
describe_process() {
    local pid=$1 stat rest state ppid command parent variables
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 0
    rest=${stat##*) }
    state=${rest%% *}; rest=${rest#* }
    ppid=${rest%% *}
    command=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
    [ -n "$command" ] || command="[$(cat "/proc/$pid/comm" 2>/dev/null)]"
    parent=$(tr '\0' ' ' <"/proc/$ppid/cmdline" 2>/dev/null | cut -c1-80)
    variables=$({ tr '\0' '\n' <"/proc/$pid/environ"; } 2>/dev/null | grep -E "$leftover_owner_variables" | tr '\n' ' ')
    echo "pid $pid (state $state, parent $ppid: ${parent:-?}): ${command% } | ${variables% }"
}

# The pids whose environment holds an entry matching grep pattern $2 (with
# grep option $1: -F for a fixed entry, -E for a pattern), one per line; a
# single grep over every /proc/PID/environ (NUL-separated entries).
pids_with_entry() {
    grep -lsxz "$1" -- "$2" /proc/[0-9]*/environ 2>/dev/null | sed -e 's|^/proc/||' -e 's|/environ$||' | LC_ALL=C sort
    return 0
}

# The processes started by the run marked $1, one description per line.
suite_processes() {
    local pid
    for pid in $(pids_with_entry -F "CORRAL_TEST_RUN=$1"); do describe_process "$pid"; done
    return 0
}

# Corral job processes that the run marked $1 did not start: ignored by
# the check, but named, so that a reader knows they were seen.
foreign_job_processes() {
    local pid
    for pid in $(LC_ALL=C comm -23 <(pids_with_entry -E 'CORRAL_JOB_ID=.*') <(pids_with_entry -F "CORRAL_TEST_RUN=$1")); do
        describe_process "$pid"
    done
    return 0
}
