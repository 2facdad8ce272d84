#ifndef CCORRAL_H
#define CCORRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/// Where in the child a spawn failed; reported back with errno.
typedef enum cc_spawn_stage {
    CC_STAGE_NONE = 0,
    CC_STAGE_CLONE = 1,       /* in the parent: clone() itself */
    CC_STAGE_SETSID = 2,
    CC_STAGE_STDIO = 3,
    CC_STAGE_CHDIR = 4,
    CC_STAGE_SETGROUPS = 5,
    CC_STAGE_SETGID = 6,
    CC_STAGE_SETUID = 7,
    CC_STAGE_RLIMIT = 8,
    CC_STAGE_CLOSE_FDS = 9,
    CC_STAGE_EXEC = 10,
    CC_STAGE_CGROUP = 11,
    CC_STAGE_PARENT_DEATH = 12,  /* PR_SET_PDEATHSIG failed, or the runner is already gone */
    CC_STAGE_PRIORITY = 13,      /* putting the host's nice value back failed */
} cc_spawn_stage;

/// Everything the child needs, prepared by the parent. No field is read
/// after cc_spawn returns.
/// What a spawn thread inside cc_spawn shares with the loop, so the loop can
/// SIGKILL a child stuck between clone and exec (a frozen cgroup, a hung
/// filesystem under its working directory or binary): the spawning thread
/// waits in the clone until the child execs or exits, and nothing else can
/// reach the child. Opaque; one per spawn, used by one spawn at a time.
typedef struct cc_spawn_watch cc_spawn_watch;

cc_spawn_watch *cc_spawn_watch_create(void);
void cc_spawn_watch_destroy(cc_spawn_watch *watch);
/// How long the spawn has been waiting for its child to exec, in
/// nanoseconds; -1 when it is not (not begun, or returned).
long long cc_spawn_watch_cloning_ns(cc_spawn_watch *watch);
/// SIGKILL to the child of a spawn waiting for its exec. 1: sent (or sent
/// before); 0: the spawn is not waiting (not begun, or returned); -1: the
/// child is not reachable yet (it has not run, so its pidfd may not be
/// installed): try again.
/// Never waits for the spawn thread.
int cc_spawn_abort(cc_spawn_watch *watch);
/// Withdraws a spawn that has not begun (still queued for its spawn
/// thread): 1 if it will not clone (cc_spawn then fails at CC_STAGE_CLONE
/// with ECANCELED), 0 if it has begun already.
int cc_spawn_withdraw(cc_spawn_watch *watch);
/// The child's pid once it has run (0 before): its first act is to say so.
pid_t cc_spawn_watch_child(cc_spawn_watch *watch);

typedef struct cc_spawn_request {
    cc_spawn_watch *watch;       /* NULL, or shared with the loop (cc_spawn_abort) */
    const char *path;            /* absolute or relative path for execve */
    char *const *argv;           /* NULL-terminated */
    char *const *envp;           /* NULL-terminated */
    const char *cwd;             /* NULL: inherit */
    int stdio[3];                /* parent fds to become 0, 1, 2 in the child */
    bool set_gid;
    gid_t gid;
    bool set_groups;
    const gid_t *groups;
    size_t group_count;
    bool set_uid;
    uid_t uid;
    bool restore_nofile;         /* put RLIMIT_NOFILE's soft limit back for the child */
    unsigned long long nofile_soft;
    int cgroup_procs_fd;         /* >= 0: the child writes "0" here (joins that cgroup) first */
    pid_t parent_pid;            /* > 0: the child gets SIGKILL when the spawning thread dies (PR_SET_PDEATHSIG),
                                    and gives up if this process is already gone */
    bool set_nice;               /* the child takes this nice value (the host's) as its first */
    int nice;                    /* step, in case the spawning thread runs at a raised priority */
} cc_spawn_request;

typedef struct cc_spawn_result {
    pid_t pid;                   /* > 0 on success */
    int pidfd;                   /* >= 0 on success, O_CLOEXEC */
    int error;                   /* errno on failure */
    cc_spawn_stage stage;        /* stage that failed */
    bool aborted;                /* the loop SIGKILLed the child before its exec (cc_spawn_abort) */
} cc_spawn_result;

/// Spawn a child with a vfork-style clone: it runs in a new session and
/// process group (pgid == pid), starts with exit signal 0 (only until exec:
/// exec resets that to SIGCHLD), and is waited for through its pidfd.
/// Returns 0 on success, -1 with result->error and result->stage set.
int cc_spawn(const cc_spawn_request *request, cc_spawn_result *result);

/// For tests only: 0 (default) closes the job's inherited descriptors with
/// close_range; 1 skips it as if the kernel lacked it (walks /proc/self/fd);
/// 2 skips that too (closes every number below the soft limit). Set it only
/// while no spawn runs.
void cc_spawn_set_close_fallback(int level);

/// How a process ended, read from waitid's siginfo.
typedef struct cc_exit_info {
    pid_t pid;                   /* 0 when nothing was ready (WNOHANG) */
    int code;                    /* CLD_EXITED, CLD_KILLED, CLD_DUMPED */
    int status;                  /* exit code or signal number */
} cc_exit_info;

/// waitid(P_PIDFD, pidfd, …, options | __WALL). Returns 0 or -errno.
int cc_wait_pidfd(int pidfd, int options, cc_exit_info *info);

/// waitid(P_PID, pid, …, options). Returns 0 or -errno.
int cc_wait_pid(pid_t pid, int options, cc_exit_info *info);

/// Whether `pid` is a child of this process (of any of its threads) that
/// has not been reaped: one waitid(WNOHANG | WNOWAIT | __WALL), which
/// changes nothing and opens no file. 1, 0, or -errno.
int cc_is_unreaped_child(pid_t pid);

/// pidfd_open(2). Returns the fd or -errno.
int cc_pidfd_open(pid_t pid);

/// pidfd_send_signal(2). Returns 0 or -errno.
int cc_pidfd_send_signal(int pidfd, int signal);

/// 1 if `path` is on a cgroup v2 filesystem, 0 if not, -errno on error.
int cc_is_cgroup2(const char *path);

/// What /proc/<pid>/stat says of a process (the fields Corral uses).
typedef struct {
    char state;
    pid_t parent;
    pid_t group;
    /// PF_KTHREAD.
    bool kernel_thread;
    /// utime + stime, in clock ticks.
    unsigned long long cpu_ticks;
    /// Since boot, in clock ticks (with the pid, names one process for good).
    unsigned long long start_time;
} cc_proc_info;

/// Reads /proc/<pid>/stat into `info`, parsed in one `sscanf` (callers
/// read thousands per scan). Returns 0 or -errno (-EIO if malformed).
int cc_proc_stat(pid_t pid, cc_proc_info *info);

/// The job markers a process carries: `CORRAL_JOB_ID` (its innermost job)
/// and `CORRAL_JOB_IDS` (every enclosing job's id, comma-separated, outermost
/// first: it survives a Corral running inside a Corral job). Values point
/// into the caller's buffer; NULL when absent.
typedef struct cc_job_marks {
    const char *id;
    long id_length;
    const char *ids;
    long ids_length;
} cc_job_marks;

/// Reads /proc/<pid>/environ into `buffer` (size `capacity`) and finds
/// its job markers. Returns 1 if it carries either, 0 if neither, 2 if the
/// environment read empty (a process in the middle of an exec reads so for
/// a moment, as does one started with none), or -errno.
long cc_proc_job_ids(pid_t pid, char *buffer, size_t capacity, cc_job_marks *marks);

/// The next entry of a directory stream: its name (inside the stream's own
/// buffer, valid until the next call) and whether it is a directory, or
/// NULL at the end. Reading `d_name` from Swift would copy the whole
/// 256-byte field, past the end of a short record.
const char *cc_next_directory_entry(void *directory, bool *is_directory);

/// Make this process a child subreaper (PR_SET_CHILD_SUBREAPER). 0 or -errno.
int cc_become_subreaper(void);

/// Block SIGPIPE on the calling thread, so a write to a closed pipe returns
/// EPIPE instead of killing the process.
void cc_block_sigpipe_on_this_thread(void);

/// pipe2(O_CLOEXEC). Returns 0 or -errno.
int cc_pipe_cloexec(int *read_end, int *write_end);

/// Gives the calling thread (not the process) a nice value `boost` below
/// the one it has (clamped at -20), if the kernel allows it (root,
/// CAP_SYS_NICE or RLIMIT_NICE). Stores the value it had in `*previous`
/// either way. Returns 0 if raised, or -errno (EACCES/EPERM: not allowed).
int cc_raise_this_thread_priority(int boost, int *previous);

/// Puts the calling thread (not the process) in the real-time class
/// (SCHED_RR at `priority`, or at 1 if only that is allowed), with
/// SCHED_RESET_ON_FORK so nothing it clones inherits the class. Allowed to
/// root, CAP_SYS_NICE or a non-zero RLIMIT_RTPRIO. Returns 0, or -errno
/// (EPERM: not allowed).
int cc_make_this_thread_realtime(int priority);

/// Hurries the death of `pid`, a process this one has not reaped (so the
/// pid is its own), just sent a signal: if the kernel has already decided
/// that it dies, its main thread enters the real-time class (SCHED_RR 1,
/// reset on fork), so that on a host saturated by other work it runs its
/// exit at once instead of waiting its turn. Decided means SIGKILL pending
/// for its main thread — which the kernel adds at the send for SIGKILL and
/// for any signal whose default action ends the process without a core
/// dump, when it is neither handled, ignored, blocked nor traced — or the
/// thread already in its exit (PF_EXITING). No code of the job can run any
/// more then. Returns 0 if hurried, -EBUSY if no death is decided (a
/// handler or a stop will run instead), -ESRCH if it has already exited,
/// or -errno (EPERM: not allowed).
int cc_hurry_dying_process(pid_t pid);

/// A non-blocking, close-on-exec eventfd: the loop's wake-up. Returns the
/// descriptor, or -errno.
int cc_wakeup_open(void);

/// Adds one to the eventfd (any thread): one system call, no waiting on
/// the loop. Returns 0 or -errno.
int cc_wakeup_signal(int fd);

/// Resets the eventfd's count to zero (the loop, before it reads its inbox).
void cc_wakeup_clear(int fd);

/// Names the calling thread (pthread_setname_np, at most 15 bytes).
void cc_name_this_thread(const char *name);

/// One job the watchdog may have to kill, in memory shared with it
/// (MAP_SHARED, written by the runner's loop thread only).
typedef struct cc_watchdog_slot {
    pid_t group;                 /* > 0: the job's process group, while its leader pins the id */
    uint32_t reserved;
    uint64_t sequence;           /* > 0: the n of the job id <prefix>-<n>, until the job is over */
} cc_watchdog_slot;

typedef struct cc_watchdog_request {
    const char *cgroup_directory;    /* the runner's cgroup directory, NULL in the process-group tier */
    const char *job_id_prefix;       /* "<prefix>-": this runner's CORRAL_JOB_ID values start so */
    cc_watchdog_slot *slots;         /* shared with the watchdog */
    size_t slot_count;
} cc_watchdog_request;

typedef struct cc_watchdog {
    pid_t pid;
    int pidfd;                   /* O_CLOEXEC; the child's exit signal is 0: wait with __WALL */
    int control;                 /* write 'q' then close for an orderly stop; O_CLOEXEC */
} cc_watchdog;

/// Forks the runner's watchdog (watchdog.c): it waits for this process to
/// exit, or for end-of-file on `control` without a 'q' first, and then
/// kills every job the slots and the cgroup directory name. Returns 0 or -errno.
int cc_watchdog_start(const cc_watchdog_request *request, cc_watchdog *watchdog);

/// Stores a slot (atomically: the watchdog may read it at any moment).
void cc_watchdog_set_slot(cc_watchdog_slot *slots, size_t index, pid_t group, uint64_t sequence);

/// Sets a slot's group, keeping its sequence: once its leader is spawned,
/// and 0 (forgotten) just before the leader is reaped.
void cc_watchdog_set_group(cc_watchdog_slot *slots, size_t index, pid_t group);

/// The wait options, which Swift does not import as constants.
extern const int cc_WEXITED;
extern const int cc_WNOHANG;
extern const int cc_WNOWAIT;
extern const int cc_CLD_EXITED;
extern const int cc_CLD_KILLED;
extern const int cc_CLD_DUMPED;

#endif
