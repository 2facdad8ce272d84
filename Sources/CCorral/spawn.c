// The child side of spawn. Between clone and exec the child shares the
// parent's memory (CLONE_VM) while the parent thread is suspended
// (CLONE_VFORK), so it may only do async-signal-safe work: raw syscalls, no
// malloc, no locks. Failures are written to the shared context and the
// parent reads them once the child has exited.
#include "CCorral.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/sched.h>

#define CC_CHILD_STACK_SIZE (64 * 1024)

/* ThreadSanitizer cannot follow a CLONE_VM child (its clone interceptor
   corrupts the parent's thread state), so its builds spawn with fork() and
   report a failure through a close-on-exec pipe instead of shared memory.
   Only scripts/test's TSan pass runs this; production spawns with vfork. */
#if defined(__has_feature)
#  if __has_feature(thread_sanitizer)
#    define CC_SPAWN_WITH_FORK 1
#  endif
#endif

typedef struct cc_child_context {
    const cc_spawn_request *request;
    volatile int error;
    volatile int stage;
    int report_fd;  /* -1, or (fork builds) where the child reports a failure */
} cc_child_context;

/* The watch's states. The spawn thread moves IDLE -> CLONING when it
   begins (or finds CANCELLED: the loop withdrew the spawn while it was
   queued, and nothing is cloned) and CLONING -> RETURNED once its clone is
   back; the loop moves CLONING -> ABORTING -> ABORTED around its kill (or
   back to CLONING while the child has not run yet). The spawn thread never
   touches the pidfd while the loop may be using it: it waits out ABORTING
   (two syscalls of the loop) before it goes on. */
enum { CC_WATCH_IDLE = 0, CC_WATCH_CLONING, CC_WATCH_ABORTING, CC_WATCH_ABORTED, CC_WATCH_RETURNED,
       CC_WATCH_CANCELLED };

struct cc_spawn_watch {
    int state;
    int pidfd;            /* written by the kernel (CLONE_PIDFD) during the clone */
    pid_t child;          /* written by the child as its first act: it runs, and its pidfd is installed */
    long long since_ns;   /* CLOCK_MONOTONIC when the clone began */
};

static long long cc_monotonic_ns(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (long long)now.tv_sec * 1000000000LL + now.tv_nsec;
}

cc_spawn_watch *cc_spawn_watch_create(void) {
    cc_spawn_watch *watch = calloc(1, sizeof *watch);
    if (watch) watch->pidfd = -1;
    return watch;
}

void cc_spawn_watch_destroy(cc_spawn_watch *watch) { free(watch); }

long long cc_spawn_watch_cloning_ns(cc_spawn_watch *watch) {
    int state = __atomic_load_n(&watch->state, __ATOMIC_ACQUIRE);
    if (state != CC_WATCH_CLONING && state != CC_WATCH_ABORTING && state != CC_WATCH_ABORTED) return -1;
    return cc_monotonic_ns() - __atomic_load_n(&watch->since_ns, __ATOMIC_RELAXED);
}

pid_t cc_spawn_watch_child(cc_spawn_watch *watch) {
    return __atomic_load_n(&watch->child, __ATOMIC_ACQUIRE);
}

int cc_spawn_abort(cc_spawn_watch *watch) {
    int expected = CC_WATCH_CLONING;
    if (!__atomic_compare_exchange_n(&watch->state, &expected, CC_WATCH_ABORTING, false,
                                     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
        return expected == CC_WATCH_ABORTED ? 1 : 0;
    }
    /* Only once the child has run is its pidfd installed (the kernel writes
       the number earlier, and after a failed clone that number is free). */
    int pidfd = __atomic_load_n(&watch->pidfd, __ATOMIC_ACQUIRE);
    if (__atomic_load_n(&watch->child, __ATOMIC_ACQUIRE) == 0 || pidfd < 0) {
        __atomic_store_n(&watch->state, CC_WATCH_CLONING, __ATOMIC_RELEASE);
        return -1;
    }
    if (syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0U) < 0 && errno != ESRCH) {
        __atomic_store_n(&watch->state, CC_WATCH_CLONING, __ATOMIC_RELEASE);
        return -1;
    }
    __atomic_store_n(&watch->state, CC_WATCH_ABORTED, __ATOMIC_RELEASE);  /* killed, or already dead */
    return 1;
}

int cc_spawn_withdraw(cc_spawn_watch *watch) {
    int expected = CC_WATCH_IDLE;
    return __atomic_compare_exchange_n(&watch->state, &expected, CC_WATCH_CANCELLED, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE) ? 1 : 0;
}

/* The spawn begins: false if the loop withdrew it first. */
static bool cc_watch_begin(cc_spawn_watch *watch) {
    if (!watch) return true;
    __atomic_store_n(&watch->pidfd, -1, __ATOMIC_RELAXED);
    __atomic_store_n(&watch->child, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&watch->since_ns, cc_monotonic_ns(), __ATOMIC_RELAXED);
    int expected = CC_WATCH_IDLE;
    return __atomic_compare_exchange_n(&watch->state, &expected, CC_WATCH_CLONING, false,
                                       __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* The clone is back: whether the loop killed the child meanwhile. */
static bool cc_watch_end(cc_spawn_watch *watch) {
    if (!watch) return false;
    for (;;) {
        int expected = CC_WATCH_CLONING;
        if (__atomic_compare_exchange_n(&watch->state, &expected, CC_WATCH_RETURNED, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) return false;
        if (expected == CC_WATCH_ABORTED) {
            __atomic_store_n(&watch->state, CC_WATCH_RETURNED, __ATOMIC_RELEASE);
            return true;
        }
        sched_yield();  /* ABORTING: the loop is between its check and its kill */
    }
}

static void cc_child_fail(cc_child_context *context, cc_spawn_stage stage) {
    int failure[2] = { errno, (int)stage };
    context->error = failure[0];
    context->stage = stage;
    if (context->report_fd >= 0) (void)!write(context->report_fd, failure, sizeof failure);
    _exit(127);
}

/* The kernel's struct sigaction (x86_64 and the other 64-bit ABIs). */
struct cc_kernel_sigaction {
    void (*handler)(int);
    unsigned long flags;
    void (*restorer)(void);
    unsigned long long mask;
};

/* Every disposition back to the default, through the raw syscall: glibc's
   sigaction refuses its reserved signals (32 and 33) with EINVAL, and an
   ignored one would stay ignored across exec. */
static void cc_child_reset_signals(void) {
    struct cc_kernel_sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.handler = SIG_DFL;
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        (void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, sizeof dfl.mask);
    }
}

/* Tests set this to take the fallbacks close_range's absence (kernels
   before 5.9, seccomp filters) would: 1 walks /proc/self/fd, 2 closes every
   number below the soft limit. Read by the child, written only while no
   spawn runs. */
static int cc_close_fallback = 0;

void cc_spawn_set_close_fallback(int level) { cc_close_fallback = level; }

struct cc_linux_dirent64 {
    unsigned long long d_ino;
    long long d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* Marks every descriptor from 3 up close-on-exec by listing /proc/self/fd
   with raw getdents64 (opendir would malloc). Marking rather than closing
   leaves the directory being read unchanged. */
static int cc_child_mark_listed_fds(void) {
    int dir = open("/proc/self/fd", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) return -1;
    char buffer[4096] __attribute__((aligned(8)));
    for (;;) {
        long got = syscall(SYS_getdents64, dir, buffer, sizeof buffer);
        if (got < 0) { int saved = errno; close(dir); errno = saved; return -1; }
        if (got == 0) break;
        for (long at = 0; at < got;) {
            struct cc_linux_dirent64 *entry = (struct cc_linux_dirent64 *)(buffer + at);
            at += entry->d_reclen;
            int fd = 0;
            const char *c = entry->d_name;
            if (*c < '0' || *c > '9') continue;   /* "." and ".." */
            for (; *c >= '0' && *c <= '9'; c++) fd = fd * 10 + (*c - '0');
            if (fd < 3 || fd == dir) continue;
            if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 && errno != EBADF) {
                int saved = errno; close(dir); errno = saved; return -1;
            }
        }
    }
    close(dir);
    return 0;
}

/* Every descriptor from 3 up must not reach the job. Runs before the
   open-files limit is put back: the last resort closes every number below
   the soft limit, and the runner's own descriptors may lie above the
   limit the job gets (the runner raised its own). */
static int cc_child_close_fds(const cc_child_context *context) {
    /* Mark rather than close: exec drops them, and CLOSE_RANGE_CLOEXEC is cheap. */
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif
    if (cc_close_fallback == 0) {
        if (syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) == 0) return 0;
        if (syscall(SYS_close_range, 3U, ~0U, 0U) == 0) return 0;
    }
    if (cc_close_fallback <= 1 && cc_child_mark_listed_fds() == 0) return 0;
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return -1;
    for (rlim_t fd = 3; fd < limit.rlim_cur; fd++) {
        if ((int)fd != context->report_fd) (void)close((int)fd);
    }
    return 0;
}

static int cc_child_main(void *arg) {
    cc_child_context *context = arg;
    const cc_spawn_request *request = context->request;

    /* First: it runs (so its pidfd is installed), and this is its pid. The
       orphan reaper leaves it alone from here, and the loop may kill it
       (cc_spawn_abort). The fork build's parent says so itself. */
#ifndef CC_SPAWN_WITH_FORK
    if (request->watch) __atomic_store_n(&request->watch->child, (pid_t)syscall(SYS_getpid), __ATOMIC_RELEASE);
#endif

    cc_child_reset_signals();
    /* Join the job's cgroup before anything else, so every process the job
       ever makes is born inside it. */
    if (request->cgroup_procs_fd >= 0 && write(request->cgroup_procs_fd, "0", 1) != 1)
        cc_child_fail(context, CC_STAGE_CGROUP);
    if (setsid() < 0) cc_child_fail(context, CC_STAGE_SETSID);

    /* Lift any source below 3 out of the way first, so one dup2 cannot
       clobber another source. */
    int source[3];
    for (int i = 0; i < 3; i++) {
        source[i] = request->stdio[i];
        if (source[i] < 3) {
            source[i] = fcntl(source[i], F_DUPFD_CLOEXEC, 3);
            if (source[i] < 0) cc_child_fail(context, CC_STAGE_STDIO);
        }
    }
    for (int i = 0; i < 3; i++) {
        if (dup2(source[i], i) < 0) cc_child_fail(context, CC_STAGE_STDIO);
    }
    /* A job expects blocking stdio: a descriptor the host inherited
       non-blocking (left so by ssh or node) would hand it EAGAIN. The flag
       belongs to the open file description, so the host's copy turns
       blocking too; Corral's own readers are libuv's, unaffected. */
    for (int i = 0; i < 3; i++) {
        int flags = fcntl(i, F_GETFL);
        if (flags < 0) cc_child_fail(context, CC_STAGE_STDIO);
        if ((flags & O_NONBLOCK) && fcntl(i, F_SETFL, flags & ~O_NONBLOCK) < 0)
            cc_child_fail(context, CC_STAGE_STDIO);
    }

    /* Before the credential changes: a process that changed its uid may not
       read its own /proc/self/fd (it is no longer dumpable). */
    if (cc_child_close_fds(context) < 0) cc_child_fail(context, CC_STAGE_CLOSE_FDS);

    /* Raw syscalls: glibc's set*id wrappers signal every thread of the
       process, and this child shares the parent's thread list in memory. */
    if (request->set_groups &&
        syscall(SYS_setgroups, request->group_count, request->groups) < 0)
        cc_child_fail(context, CC_STAGE_SETGROUPS);
    if (request->set_gid && syscall(SYS_setresgid, request->gid, request->gid, request->gid) < 0)
        cc_child_fail(context, CC_STAGE_SETGID);
    if (request->set_uid && syscall(SYS_setresuid, request->uid, request->uid, request->uid) < 0)
        cc_child_fail(context, CC_STAGE_SETUID);

    /* As the job's user, after the credential changes: a job run as another
       user must not reach a directory that user cannot search (chdir as
       root would pass every permission check, as `runuser` does not). */
    if (request->cwd != NULL && chdir(request->cwd) < 0) cc_child_fail(context, CC_STAGE_CHDIR);

    if (request->restore_nofile) {
        struct rlimit limit;
        if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
            limit.rlim_cur = request->nofile_soft;
            if (setrlimit(RLIMIT_NOFILE, &limit) < 0) cc_child_fail(context, CC_STAGE_RLIMIT);
        }
    }

    /* Die with the runner (the watchdog kills the rest of the job). After
       the credential changes above, which clear the setting. It fires when
       the *thread* that cloned us exits: one of the runner's spawn threads,
       which live as long as its loop. If the runner died before this, nobody will ever
       send it: check that the parent is still the one that cloned us. */
    if (request->parent_pid > 0) {
        if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0) cc_child_fail(context, CC_STAGE_PARENT_DEATH);
        if (getppid() != request->parent_pid) {
            errno = ESRCH;
            cc_child_fail(context, CC_STAGE_PARENT_DEATH);
        }
    }

    /* The spawn thread runs at a raised priority and this child inherited
       it, so the setup above (closing every inherited descriptor is most
       of it) is not queued behind CPU-bound jobs while the spawn thread
       waits for it. The job itself gets the host's nice value back here,
       just before its exec: nothing of the job ever runs above the host's
       priority (docs/design.md). Raising one's own nice value needs no
       privilege, after the credential changes too. */
    if (request->set_nice &&
        syscall(SYS_setpriority, PRIO_PROCESS, 0, request->nice) < 0)
        cc_child_fail(context, CC_STAGE_PRIORITY);

    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    execve(request->path, request->argv, request->envp);
    cc_child_fail(context, CC_STAGE_EXEC);
    return 127;
}

int cc_spawn(const cc_spawn_request *request, cc_spawn_result *result) {
    /* The child runs on this buffer while this thread is suspended. */
    char stack[CC_CHILD_STACK_SIZE] __attribute__((aligned(16)));
    cc_child_context context = { .request = request, .error = 0, .stage = CC_STAGE_NONE, .report_fd = -1 };

    /* No signal handler may run in the child before it resets them. */
    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);

    int pidfd = -1;
#ifdef CC_SPAWN_WITH_FORK
    (void)stack;
    int report[2];
    pid_t pid = -1;
    int clone_errno = 0;
    bool begun = cc_watch_begin(request->watch);
    if (!begun) {
        clone_errno = ECANCELED;  /* withdrawn by the loop while queued */
    } else if (pipe2(report, O_CLOEXEC) < 0) {
        clone_errno = errno;
    } else {
        context.report_fd = report[1];
        pid = fork();
        clone_errno = errno;
        if (pid == 0) {
            close(report[0]);
            _exit(cc_child_main(&context));
        }
        close(report[1]);
        if (pid > 0) {
            pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
            if (request->watch) {
                __atomic_store_n(&request->watch->pidfd, pidfd, __ATOMIC_RELEASE);
                __atomic_store_n(&request->watch->child, pid, __ATOMIC_RELEASE);
            }
            /* Until the child reports, execs (end-of-file) or dies: a
               sibling forked meanwhile by another spawn thread holds this
               pipe's write end too until its own exec, so the child's death
               is watched on its pidfd rather than by end-of-file alone (a
               child killed before its exec, cc_spawn_abort, would otherwise
               wait for a stuck sibling). The child writes its failure
               before it exits, so what it wrote is there to read. */
            struct pollfd ready[2] = { { .fd = report[0], .events = POLLIN }, { .fd = pidfd, .events = POLLIN } };
            while (poll(ready, pidfd >= 0 ? 2 : 1, -1) < 0 && errno == EINTR) {}
            (void)fcntl(report[0], F_SETFL, O_NONBLOCK);
            int failure[2];
            ssize_t got;
            while ((got = read(report[0], failure, sizeof failure)) < 0 && errno == EINTR) {}
            if (got == (ssize_t)sizeof failure) {
                context.error = failure[0];
                context.stage = failure[1];
            }
        }
        close(report[0]);
    }
    bool aborted = begun && cc_watch_end(request->watch);
#else
    /* With a watch, the kernel writes the pidfd where the loop can read it
       while this thread waits in the clone. */
    pid_t pid = -1;
    int clone_errno = ECANCELED;  /* withdrawn by the loop while queued */
    bool aborted = false;
    if (cc_watch_begin(request->watch)) {
        pid = clone(cc_child_main, stack + sizeof stack, CLONE_VM | CLONE_VFORK | CLONE_PIDFD, &context,
                    request->watch ? &request->watch->pidfd : &pidfd);
        clone_errno = errno;
        aborted = cc_watch_end(request->watch);
        if (request->watch) pidfd = __atomic_load_n(&request->watch->pidfd, __ATOMIC_ACQUIRE);
    }
#endif

    pthread_sigmask(SIG_SETMASK, &previous, NULL);

    result->pid = 0;
    result->pidfd = -1;
    result->error = 0;
    result->stage = CC_STAGE_NONE;
    result->aborted = aborted;

    if (pid < 0) {
        result->error = clone_errno;
        result->stage = CC_STAGE_CLONE;
        return -1;
    }
    if (context.stage != CC_STAGE_NONE) {
        /* The child has exited (or is about to); reap it so it leaves no zombie. */
        cc_exit_info ignored;
        while (cc_wait_pidfd(pidfd, WEXITED, &ignored) == -EINTR) {}
        close(pidfd);
        result->error = context.error;
        result->stage = (cc_spawn_stage)context.stage;
        return -1;
    }
    result->pid = pid;
    result->pidfd = pidfd;
    return 0;
}
