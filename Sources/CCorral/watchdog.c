// The runner's watchdog: a forked child that outlives a runner killed by
// SIGKILL (or the OOM killer) and kills what the runner's jobs left.
//
// Why a plain fork running C, and not an exec: a library host has no helper
// executable we could count on finding (and re-executing /proc/self/exe runs
// the host's own main), while a child that shares the runner's memory
// (CLONE_VM) dies with it when the OOM killer reaps the memory. A fork of a
// multi-threaded process may only do async-signal-safe work, so everything
// below is raw syscalls on the stack and on pages it maps itself: no malloc,
// no stdio, no locks, nothing of the Swift runtime. The price of a fork is
// that the child keeps the pages the runner had at that moment (copy on
// write), which is why a runner starts it once, at init.
#include "CCorral.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>
#include <linux/sched.h>

#define CC_WD_PATH_MAX 4096
#define CC_WD_ENVIRON_MAX (256 * 1024)
#define CC_WD_KILLED_MAX 65536
#define CC_WD_SWEEP_PASSES 16

/* Scratch memory the child maps for itself once the runner is gone. */
typedef struct cc_wd_scratch {
    char environ[CC_WD_ENVIRON_MAX];
    char dirents[32 * 1024];
    char path[CC_WD_PATH_MAX];
    pid_t killed[CC_WD_KILLED_MAX];
    size_t killed_count;
    uint64_t *live;              /* the sequences of the jobs still in the table */
    size_t live_count;
} cc_wd_scratch;

struct cc_linux_dirent64 {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

/* MARK: small async-signal-safe helpers */

static size_t cc_wd_append(char *buffer, size_t used, const char *text) {
    while (*text && used < CC_WD_PATH_MAX - 1) buffer[used++] = *text++;
    buffer[used] = 0;
    return used;
}

static size_t cc_wd_append_number(char *buffer, size_t used, long value) {
    char digits[24];
    int count = 0;
    do { digits[count++] = (char)('0' + value % 10); value /= 10; } while (value > 0 && count < 23);
    while (count > 0 && used < CC_WD_PATH_MAX - 1) buffer[used++] = digits[--count];
    buffer[used] = 0;
    return used;
}

static int cc_wd_open(const char *path, int flags) {
    int fd;
    do { fd = open(path, flags | O_CLOEXEC); } while (fd < 0 && errno == EINTR);
    return fd;
}

static void cc_wd_write_file(const char *path, const char *text) {
    int fd = cc_wd_open(path, O_WRONLY);
    if (fd < 0) return;
    (void)!write(fd, text, strlen(text));
    close(fd);
}

/* Reads up to the buffer's size; returns the byte count (0 on any error). */
static size_t cc_wd_read_file(const char *path, char *buffer, size_t capacity) {
    int fd = cc_wd_open(path, O_RDONLY);
    if (fd < 0) return 0;
    size_t used = 0;
    while (used < capacity) {
        ssize_t count = read(fd, buffer + used, capacity - used);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        used += (size_t)count;
    }
    close(fd);
    return used;
}

/* MARK: what the runner left */

/* Whether a job sequence number belongs to a job the runner had not finished. */
static bool cc_wd_live_sequence(const cc_wd_scratch *scratch, uint64_t sequence) {
    for (size_t i = 0; i < scratch->live_count; i++) {
        if (scratch->live[i] == sequence) return true;
    }
    return false;
}

/* Whether one id (`<prefix><n>`, not NUL-terminated) is a live job's. */
static bool cc_wd_live_id(const cc_watchdog_request *request, const cc_wd_scratch *scratch,
                          const char *id, size_t length) {
    size_t prefix_length = strlen(request->job_id_prefix);
    if (length <= prefix_length || memcmp(id, request->job_id_prefix, prefix_length) != 0) return false;
    uint64_t sequence = 0;
    for (size_t i = prefix_length; i < length; i++) {
        char c = id[i];
        if (c < '0' || c > '9') return false;
        sequence = sequence * 10 + (uint64_t)(c - '0');
    }
    return sequence != 0 && cc_wd_live_sequence(scratch, sequence);
}

/* Whether /proc/<pid>/environ carries a live job's id: CORRAL_JOB_ID=<prefix><n>,
   or <prefix><n> in CORRAL_JOB_IDS (the list a nested Corral keeps). */
static bool cc_wd_carries_live_job(const cc_watchdog_request *request, cc_wd_scratch *scratch, pid_t pid) {
    size_t used = cc_wd_append(scratch->path, 0, "/proc/");
    used = cc_wd_append_number(scratch->path, used, pid);
    cc_wd_append(scratch->path, used, "/environ");
    size_t length = cc_wd_read_file(scratch->path, scratch->environ, sizeof scratch->environ);
    static const char key[] = "CORRAL_JOB_ID=";
    static const char list_key[] = "CORRAL_JOB_IDS=";
    for (size_t start = 0; start < length;) {
        size_t end = start;
        while (end < length && scratch->environ[end] != 0) end++;
        const char *entry = scratch->environ + start;
        size_t entry_length = end - start;
        if (entry_length > sizeof key - 1 && memcmp(entry, key, sizeof key - 1) == 0) {
            if (cc_wd_live_id(request, scratch, entry + sizeof key - 1, entry_length - (sizeof key - 1))) return true;
        } else if (entry_length > sizeof list_key - 1 && memcmp(entry, list_key, sizeof list_key - 1) == 0) {
            for (size_t from = sizeof list_key - 1; from < entry_length;) {
                size_t to = from;
                while (to < entry_length && entry[to] != ',') to++;
                if (cc_wd_live_id(request, scratch, entry + from, to - from)) return true;
                from = to + 1;
            }
        }
        start = end + 1;
    }
    return false;
}

static bool cc_wd_already_killed(const cc_wd_scratch *scratch, pid_t pid) {
    for (size_t i = 0; i < scratch->killed_count; i++) {
        if (scratch->killed[i] == pid) return true;
    }
    return false;
}

/* One pass over /proc: SIGKILL (through a pidfd, checked again once pinned)
   to every process carrying a live job's id. Returns how many it had not
   killed before. */
static size_t cc_wd_sweep_pass(const cc_watchdog_request *request, cc_wd_scratch *scratch) {
    int proc = cc_wd_open("/proc", O_RDONLY | O_DIRECTORY);
    if (proc < 0) return 0;
    pid_t self = getpid();
    size_t found = 0;
    for (;;) {
        long count = syscall(SYS_getdents64, proc, scratch->dirents, sizeof scratch->dirents);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        for (long offset = 0; offset < count;) {
            struct cc_linux_dirent64 *entry = (struct cc_linux_dirent64 *)(scratch->dirents + offset);
            offset += entry->d_reclen;
            long pid = 0;
            const char *c = entry->d_name;
            if (*c == 0) continue;
            for (; *c >= '0' && *c <= '9'; c++) pid = pid * 10 + (*c - '0');
            if (*c != 0 || pid <= 0 || pid == self) continue;
            if (!cc_wd_carries_live_job(request, scratch, (pid_t)pid)) continue;
            int pidfd = (int)syscall(SYS_pidfd_open, (pid_t)pid, 0);
            if (pidfd < 0) continue;  /* gone already */
            if (cc_wd_carries_live_job(request, scratch, (pid_t)pid)) {  /* pinned: still the same process */
                (void)syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
                if (!cc_wd_already_killed(scratch, (pid_t)pid)) {
                    if (scratch->killed_count < CC_WD_KILLED_MAX) scratch->killed[scratch->killed_count++] = (pid_t)pid;
                    found++;
                }
            }
            close(pidfd);
        }
    }
    close(proc);
    return found;
}

/* Removes a cgroup and its (empty) child cgroups, depth first; `path`
   (inside scratch->path's storage) is extended and restored. */
static void cc_wd_remove_cgroup(char *path, size_t used, int depth) {
    if (rmdir(path) == 0 || errno == ENOENT || depth > 8) return;
    int directory = cc_wd_open(path, O_RDONLY | O_DIRECTORY);
    if (directory < 0) return;
    char entries[4096];
    for (;;) {
        long count = syscall(SYS_getdents64, directory, entries, sizeof entries);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        for (long offset = 0; offset < count;) {
            struct cc_linux_dirent64 *entry = (struct cc_linux_dirent64 *)(entries + offset);
            offset += entry->d_reclen;
            const char *name = entry->d_name;
            if (entry->d_type != DT_DIR || name[0] == '.') continue;
            size_t child = cc_wd_append(path, used, "/");
            child = cc_wd_append(path, child, name);
            cc_wd_remove_cgroup(path, child, depth + 1);
            path[used] = 0;
        }
    }
    close(directory);
    (void)rmdir(path);
}

/* Waits (bounded) for the cgroup subtree to empty: cgroup.events raises
   POLLPRI on every change of `populated`. */
static void cc_wd_wait_empty(char *path, size_t used, int milliseconds) {
    cc_wd_append(path, used, "/cgroup.events");
    int events = cc_wd_open(path, O_RDONLY);
    path[used] = 0;
    if (events < 0) return;
    char text[256];
    for (int round = 0; round < 50; round++) {
        ssize_t count = pread(events, text, sizeof text - 1, 0);
        if (count <= 0) break;
        text[count] = 0;
        if (strstr(text, "populated 0") != NULL) break;
        struct pollfd watch = { .fd = events, .events = POLLPRI };
        if (poll(&watch, 1, milliseconds / 50 + 1) < 0 && errno != EINTR) break;
    }
    close(events);
}

/* The runner is gone without saying goodbye: kill everything of its jobs. */
static void cc_wd_kill_jobs(const cc_watchdog_request *request) {
    cc_wd_scratch *scratch = mmap(NULL, sizeof(cc_wd_scratch), PROT_READ | PROT_WRITE,
                                  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (request->cgroup_directory != NULL && scratch != MAP_FAILED) {
        /* The runner's directory holds every job leaf: one write kills them all. */
        size_t used = cc_wd_append(scratch->path, 0, request->cgroup_directory);
        cc_wd_append(scratch->path, used, "/cgroup.kill");
        cc_wd_write_file(scratch->path, "1");
        scratch->path[used] = 0;
    }
    /* Job groups the runner had not reaped (their leaders pin the ids). */
    for (size_t i = 0; i < request->slot_count; i++) {
        pid_t group = __atomic_load_n(&request->slots[i].group, __ATOMIC_ACQUIRE);
        if (group > 0) (void)kill(-group, SIGKILL);
    }
    if (scratch == MAP_FAILED) return;
    scratch->live = mmap(NULL, request->slot_count * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (scratch->live == MAP_FAILED) scratch->live = NULL;
    for (size_t i = 0; scratch->live != NULL && i < request->slot_count; i++) {
        uint64_t sequence = __atomic_load_n(&request->slots[i].sequence, __ATOMIC_ACQUIRE);
        if (sequence != 0) scratch->live[scratch->live_count++] = sequence;
    }
    /* Escapees, by CORRAL_JOB_ID, until a pass finds none it had not killed:
       the process-group tier's fence, and in the cgroup tier the jobs that
       fell back to it (a leaf that could not be created). */
    for (int pass = 0; scratch->live_count > 0 && pass < CC_WD_SWEEP_PASSES; pass++) {
        if (cc_wd_sweep_pass(request, scratch) == 0) break;
    }
    if (request->cgroup_directory != NULL) {
        size_t used = cc_wd_append(scratch->path, 0, request->cgroup_directory);
        cc_wd_wait_empty(scratch->path, used, 2000);
        cc_wd_remove_cgroup(scratch->path, used, 0);
    }
}

/* MARK: the child */

/* Keeps `keep` (ascending, all >= 3) and closes every other descriptor >= 3. */
static void cc_wd_close_others(const int *keep, int count) {
    unsigned int from = 3;
    for (int i = 0; i <= count; i++) {
        unsigned int to = i < count ? (unsigned int)keep[i] : ~0U;
        if (to > from && syscall(SYS_close_range, from, to - 1, 0U) < 0) {
            for (unsigned int fd = from; fd < to && fd < 65536; fd++) (void)close((int)fd);
        }
        from = to + 1;
    }
}

static void __attribute__((noreturn)) cc_wd_main(const cc_watchdog_request *request, int control, int runner) {
    /* No handler of the runner's may run here; Ctrl-C and friends aimed at
       the runner's process group or terminal must not end the watchdog
       before the runner's own orderly stop (and setsid below leaves that
       group and terminal anyway). */
    struct sigaction action;
    memset(&action, 0, sizeof action);
    for (int sig = 1; sig < _NSIG; sig++) {
        if (sig == SIGKILL || sig == SIGSTOP) continue;
        action.sa_handler = (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT
                             || sig == SIGPIPE || sig == SIGTSTP || sig == SIGTTIN || sig == SIGTTOU)
            ? SIG_IGN : SIG_DFL;
        (void)sigaction(sig, &action, NULL);
    }
    (void)setsid();
    (void)!chdir("/");  /* pin no directory (or mount) of the runner's */

    /* Hold nothing of the runner's: no job pipe, no listening socket, not
       its stdio (a reader waiting for end-of-file would wait for us). */
    control = fcntl(control, F_DUPFD_CLOEXEC, 3);  /* lifted above stdio first */
    runner = fcntl(runner, F_DUPFD_CLOEXEC, 3);
    if (control < 0 || runner < 0) _exit(1);
    int null = cc_wd_open("/dev/null", O_RDWR);
    for (int fd = 0; fd < 3; fd++) {
        if (null >= 0) (void)dup2(null, fd); else (void)close(fd);
    }
    int kept[2] = { control < runner ? control : runner, control < runner ? runner : control };
    cc_wd_close_others(kept, 2);  /* the originals and /dev/null too */

    /* It shares the runner's pages (copy on write) and so looks as big to
       the OOM killer, but killing it frees nothing: never pick it. */
    cc_wd_write_file("/proc/self/oom_score_adj", "-1000");
    (void)prctl(PR_SET_NAME, "corral-watchdog", 0, 0, 0);

    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    for (;;) {
        struct pollfd watch[2] = { { .fd = control, .events = POLLIN }, { .fd = runner, .events = POLLIN } };
        int ready = poll(watch, 2, -1);
        if (ready < 0) {
            if (errno == EINTR) continue;
            break;  /* cannot watch: act as if the runner were gone */
        }
        if (watch[0].revents != 0) {
            char byte = 0;
            ssize_t count = read(control, &byte, 1);
            if (count < 0 && errno == EINTR) continue;
            if (count == 1 && byte == 'q') _exit(0);  /* orderly shutdown: the runner stopped its jobs */
            if (count != 1) break;  /* end-of-file without goodbye: the runner died (or exec'd) */
        }
        if (watch[1].revents != 0) break;  /* the runner process has exited */
    }
    cc_wd_kill_jobs(request);
    _exit(0);
}

int cc_watchdog_start(const cc_watchdog_request *request, cc_watchdog *watchdog) {
    watchdog->pid = 0;
    watchdog->pidfd = -1;
    watchdog->control = -1;
    int runner = cc_pidfd_open(getpid());
    if (runner < 0) return runner;
    int control[2];
    if (pipe2(control, O_CLOEXEC) < 0) {
        int error = errno;
        close(runner);
        return -error;
    }

    sigset_t all, previous;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &previous);
    /* clone3 as a fork: no atfork handlers (they are not ours to run in a
       child that must stay async-signal-safe), a pidfd from the start, and
       exit signal 0 so a host's waitpid(-1) never reaps it. */
    int pidfd = -1;
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_PIDFD;
    args.pidfd = (uint64_t)(uintptr_t)&pidfd;
    args.exit_signal = 0;
    long pid = syscall(SYS_clone3, &args, sizeof args);
    if (pid == 0) cc_wd_main(request, control[0], runner);
    int error = errno;
    pthread_sigmask(SIG_SETMASK, &previous, NULL);

    close(control[0]);
    close(runner);
    if (pid < 0) {
        close(control[1]);
        return -error;
    }
    watchdog->pid = (pid_t)pid;
    watchdog->pidfd = pidfd;
    watchdog->control = control[1];
    return 0;
}

void cc_watchdog_set_slot(cc_watchdog_slot *slots, size_t index, pid_t group, uint64_t sequence) {
    __atomic_store_n(&slots[index].sequence, sequence, __ATOMIC_RELEASE);
    __atomic_store_n(&slots[index].group, group, __ATOMIC_RELEASE);
}

void cc_watchdog_set_group(cc_watchdog_slot *slots, size_t index, pid_t group) {
    __atomic_store_n(&slots[index].group, group, __ATOMIC_RELEASE);
}

