// Linux calls that glibc 2.36 does not wrap, and siginfo_t fields that Swift
// cannot read through the union.
#include "CCorral.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/vfs.h>
#include <dirent.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

const int cc_WEXITED = WEXITED;
const int cc_WNOHANG = WNOHANG;
const int cc_WNOWAIT = WNOWAIT;
const int cc_CLD_EXITED = CLD_EXITED;
const int cc_CLD_KILLED = CLD_KILLED;
const int cc_CLD_DUMPED = CLD_DUMPED;

static int cc_waitid(idtype_t type, id_t id, int options, cc_exit_info *info) {
    siginfo_t si;
    memset(&si, 0, sizeof si);
    if (waitid(type, id, &si, options) < 0) return -errno;
    info->pid = si.si_pid;
    info->code = si.si_code;
    info->status = si.si_status;
    return 0;
}

int cc_wait_pidfd(int pidfd, int options, cc_exit_info *info) {
    return cc_waitid((idtype_t)P_PIDFD, (id_t)pidfd, options | __WALL, info);
}

int cc_wait_pid(pid_t pid, int options, cc_exit_info *info) {
    return cc_waitid(P_PID, (id_t)pid, options, info);
}

int cc_is_unreaped_child(pid_t pid) {
    cc_exit_info ignored;
    int status = cc_waitid(P_PID, (id_t)pid, WEXITED | WNOHANG | WNOWAIT | __WALL, &ignored);
    if (status == 0) return 1;
    return status == -ECHILD ? 0 : status;
}

int cc_pidfd_open(pid_t pid) {
    long fd = syscall(SYS_pidfd_open, pid, 0);
    return fd < 0 ? -errno : (int)fd;
}

int cc_become_subreaper(void) {
    return prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0 ? -errno : 0;
}

void cc_block_sigpipe_on_this_thread(void) {
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
}

int cc_raise_this_thread_priority(int boost, int *previous) {
    /* PRIO_PROCESS with a thread id acts on that thread alone on Linux. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int current = getpriority(PRIO_PROCESS, tid);
    if (current == -1 && errno != 0) return -errno;
    *previous = current;
    int target = current - boost < -20 ? -20 : current - boost;
    if (target >= current) return -EPERM;
    return setpriority(PRIO_PROCESS, tid, target) < 0 ? -errno : 0;
}

/* The glibc wrappers of sched_setscheduler act on a process id and do
   not take SCHED_RESET_ON_FORK on every version: the system call acts on a
   thread id and does. */
static int cc_set_scheduler(pid_t tid, int policy, int priority) {
    struct sched_param param = { .sched_priority = priority };
    return syscall(SYS_sched_setscheduler, tid, policy, &param) < 0 ? -errno : 0;
}

int cc_make_this_thread_realtime(int priority) {
    pid_t self = (pid_t)syscall(SYS_gettid);
    int status = cc_set_scheduler(self, SCHED_RR | SCHED_RESET_ON_FORK, priority);
    if (status == -EPERM && priority > 1) status = cc_set_scheduler(self, SCHED_RR | SCHED_RESET_ON_FORK, 1);
    return status;
}

/* PF_EXITING (include/linux/sched.h): the task is in do_exit. */
#define CC_PF_EXITING 0x00000004u

static const char *cc_read_proc_stat(pid_t pid, char *text, size_t capacity, int *status);

int cc_hurry_dying_process(pid_t pid) {
    /* Fields of /proc/<pid>/stat: state (3), flags (9), and the main
       thread's own pending signals (31, the first 31 of them), where the
       kernel puts SIGKILL when it dooms the process. */
    char text[1024];
    int status = 0;
    const char *fields = cc_read_proc_stat(pid, text, sizeof text, &status);
    if (fields == NULL) return status == -ENOENT ? -ESRCH : status;
    char state = 0;
    unsigned int flags = 0;
    unsigned long long pending = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
       utime stime cutime cstime priority nice threads itrealvalue starttime
       vsize rss rsslim startcode endcode startstack kstkesp kstkeip signal */
    if (sscanf(fields, " %c %*d %*d %*d %*d %*d %u %*u %*u %*u %*u %*u %*u %*d %*d %*d %*d %*d %*d %*llu"
                       " %*llu %*d %*llu %*llu %*llu %*llu %*llu %*llu %llu",
               &state, &flags, &pending) != 3) return -EIO;
    if (state == 'Z' || state == 'X' || state == 'x') return -ESRCH;
    bool doomed = (flags & CC_PF_EXITING) || (pending & (1ULL << (SIGKILL - 1)));
    if (!doomed) return -EBUSY;
    return cc_set_scheduler(pid, SCHED_RR | SCHED_RESET_ON_FORK, 1);
}

int cc_wakeup_open(void) {
    int fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int cc_wakeup_signal(int fd) {
    uint64_t one = 1;
    ssize_t written;
    do { written = write(fd, &one, sizeof one); } while (written < 0 && errno == EINTR);
    /* EAGAIN: the count is at its maximum, so the loop is woken anyway. */
    return written < 0 && errno != EAGAIN ? -errno : 0;
}

void cc_wakeup_clear(int fd) {
    uint64_t count;
    ssize_t status;
    do { status = read(fd, &count, sizeof count); } while (status < 0 && errno == EINTR);
}

void cc_name_this_thread(const char *name) {
    (void)pthread_setname_np(pthread_self(), name);
}

int cc_pipe_cloexec(int *read_end, int *write_end) {
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
    *read_end = fds[0];
    *write_end = fds[1];
    return 0;
}

int cc_pidfd_send_signal(int pidfd, int signal) {
    return syscall(SYS_pidfd_send_signal, pidfd, signal, NULL, 0) < 0 ? -errno : 0;
}

int cc_is_cgroup2(const char *path) {
    struct statfs info;
    if (statfs(path, &info) < 0) return -errno;
    return info.f_type == 0x63677270 ? 1 : 0;
}

/* Reads /proc/<pid>/stat into `text` and returns what follows the
   command's closing parenthesis (the command may hold spaces and
   parentheses), or NULL with -errno in `*status` (-EIO if malformed). */
static const char *cc_read_proc_stat(pid_t pid, char *text, size_t capacity, int *status) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { *status = -errno; return NULL; }
    ssize_t count;
    do { count = read(fd, text, capacity - 1); } while (count < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (count <= 0) { *status = count < 0 ? -saved : -EIO; return NULL; }
    text[count] = 0;
    const char *close_paren = strrchr(text, ')');
    if (close_paren == NULL) { *status = -EIO; return NULL; }
    *status = 0;
    return close_paren + 1;
}

int cc_proc_stat(pid_t pid, cc_proc_info *info) {
    char text[512];
    int status = 0;
    const char *fields = cc_read_proc_stat(pid, text, sizeof text, &status);
    if (fields == NULL) return status;
    int parent = 0, pgrp = 0;
    unsigned int flags = 0;
    unsigned long utime = 0, stime = 0;
    unsigned long long start = 0;
    char letter = 0;
    /* state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
       utime stime cutime cstime priority nice threads itrealvalue starttime */
    if (sscanf(fields, " %c %d %d %*d %*d %*d %u %*u %*u %*u %*u %lu %lu %*d %*d %*d %*d %*d %*d %llu",
               &letter, &parent, &pgrp, &flags, &utime, &stime, &start) != 7) return -EIO;
    info->state = letter;
    info->parent = (pid_t)parent;
    info->group = (pid_t)pgrp;
    info->kernel_thread = (flags & 0x00200000u) != 0;  /* PF_KTHREAD */
    info->cpu_ticks = (unsigned long long)utime + stime;
    info->start_time = start;
    return 0;
}

long cc_proc_job_ids(pid_t pid, char *buffer, size_t capacity, cc_job_marks *marks) {
    static const char key[] = "CORRAL_JOB_ID=";
    static const char list_key[] = "CORRAL_JOB_IDS=";
    marks->id = NULL;
    marks->id_length = 0;
    marks->ids = NULL;
    marks->ids_length = 0;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -errno;
    size_t used = 0;
    while (used < capacity - 1) {
        ssize_t count = read(fd, buffer + used, capacity - 1 - used);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) break;
        used += (size_t)count;
    }
    close(fd);
    buffer[used] = 0;
    if (used == 0) return 2;
    /* The first entry of each name counts, as in getenv. */
    for (size_t start = 0; start < used;) {
        size_t length = strnlen(buffer + start, used - start);
        if (marks->id == NULL && length > sizeof key - 1 && memcmp(buffer + start, key, sizeof key - 1) == 0) {
            marks->id = buffer + start + sizeof key - 1;
            marks->id_length = (long)(length - (sizeof key - 1));
        } else if (marks->ids == NULL && length > sizeof list_key - 1
                   && memcmp(buffer + start, list_key, sizeof list_key - 1) == 0) {
            marks->ids = buffer + start + sizeof list_key - 1;
            marks->ids_length = (long)(length - (sizeof list_key - 1));
        }
        start += length + 1;
    }
    return marks->id != NULL || marks->ids != NULL ? 1 : 0;
}

const char *cc_next_directory_entry(void *directory, bool *is_directory) {
    for (;;) {
        struct dirent *entry = readdir((DIR *)directory);
        if (entry == NULL) return NULL;
        const char *name = entry->d_name;
        if (name[0] == '.' && (name[1] == 0 || (name[1] == '.' && name[2] == 0))) continue;
        *is_directory = entry->d_type == DT_DIR;
        return name;
    }
}
