// The "close to the limit" line for Corral's benchmarks: a minimal job runner
// in C with posix_spawn (POSIX_SPAWN_SETSID), a pidfd per child and one epoll
// loop. It does exactly what each workload needs and nothing else: no output
// capture beyond draining, no containment. Every figure in docs/benchmarks.md
// is a ratio to this program measured in the same run.
//
//   ref spawn N INFLIGHT            N x /bin/true, at most INFLIGHT at once
//   ref deadline N SECONDS          N x `sleep 30` at once, group-killed at the deadline
//   ref cpudeadline B N SECONDS     the same, while B CPU-bound jobs run (W7)
//   ref trickle N                   N x `sleep 1` at once
//   ref throughput BYTES            one `head -c BYTES /dev/zero`, stdout drained
//   ref bigheap MIB N               touch MIB MiB first, then spawn N one at a time
//
// With REF_CGROUP=<a cgroup v2 directory>, every job also gets a cgroup leaf
// of its own, the least a runner with per-job cgroups must do: mkdir, the
// child joins it before exec (vfork, write "0" to cgroup.procs), rmdir once
// the job has been reaped. That line is the floor for Corral's cgroup tier.
//
// Prints one JSON line: {"jobs":…, "delivered":…, "errors":…, "wall_s":…,
//   "overshoot_ms":{"p50":…,"p99":…,"max":…}, "mb_per_s":…}
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

extern char **environ;

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

typedef struct job {
    int leaf;         // this job's cgroup leaf number, -1: none
    pid_t pid;
    int pidfd;
    int out;          // read end of stdout, -1 when closed
    double deadline;  // 0: none
    double started;
    int killed;
    int done;
} job;

static const char *cgroup_base;  // REF_CGROUP: a leaf per job under it
static int leaves;

static void leaf_path(char *path, size_t size, int leaf, const char *file) {
    snprintf(path, size, "%s/j%d%s%s", cgroup_base, leaf, file ? "/" : "", file ? file : "");
}

// vfork, join the leaf, new session, stdin/stdout on /dev/null, exec.
static int spawn_in_leaf(job *j, char *const argv[]) {
    char path[512];
    j->leaf = leaves++;
    leaf_path(path, sizeof path, j->leaf, NULL);
    if (mkdir(path, 0755) < 0) return -errno;
    leaf_path(path, sizeof path, j->leaf, "cgroup.procs");
    int procs = open(path, O_WRONLY | O_CLOEXEC);
    if (procs < 0) return -errno;
    pid_t pid = vfork();
    if (pid == 0) {
        int null = open("/dev/null", O_RDWR);
        if (write(procs, "0", 1) != 1 || setsid() < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0) _exit(126);
        execve(argv[0], argv, environ);
        _exit(127);
    }
    close(procs);
    if (pid < 0) return -errno;
    j->pid = pid;
    j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
    j->out = -1;
    j->started = now_s();
    return 0;
}

static void remove_leaf(job *j) {
    if (j->leaf < 0) return;
    char path[512];
    leaf_path(path, sizeof path, j->leaf, NULL);
    rmdir(path);
}

static int spawn_job(job *j, char *const argv[], int capture) {
    j->leaf = -1;
    if (cgroup_base && !capture) return spawn_in_leaf(j, argv);
    int fds[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&actions);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID);
    if (capture) {
        if (pipe2(fds, O_CLOEXEC) < 0) return -errno;
        posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
    } else {
        posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
    }
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    int rc = posix_spawn(&j->pid, argv[0], &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (capture) close(fds[1]);
    if (rc != 0) {
        if (capture) close(fds[0]);
        return -rc;
    }
    j->pidfd = (int)syscall(SYS_pidfd_open, j->pid, 0);
    j->out = capture ? fds[0] : -1;
    j->started = now_s();
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(double *v, int n, double p) {
    if (n == 0) return 0;
    int i = (int)((n - 1) * p + 0.5);
    return v[i];
}

// Runs `n` jobs of argv with at most `inflight` at once; per job deadline
// (seconds, 0 = none). Returns delivered count; fills overshoot (ms).
static int run_jobs(int n, int inflight, char *const argv[], double deadline_s, double *overshoot, int *errors) {
    int ep = epoll_create1(EPOLL_CLOEXEC);
    job *jobs = calloc((size_t)n, sizeof(job));
    int started = 0, running = 0, delivered = 0, overshoots = 0;
    struct epoll_event events[256];
    while (delivered < n) {
        while (started < n && running < inflight) {
            job *j = &jobs[started];
            int rc = spawn_job(j, argv, 0);
            if (rc < 0) { (*errors)++; j->done = 1; delivered++; started++; continue; }
            j->deadline = deadline_s > 0 ? j->started + deadline_s : 0;
            struct epoll_event e = { .events = EPOLLIN, .data.u32 = (uint32_t)started };
            epoll_ctl(ep, EPOLL_CTL_ADD, j->pidfd, &e);
            started++;
            running++;
        }
        // The earliest deadline bounds the wait (a linear scan: fine for a reference;
        // Corral uses libuv's timer heap).
        int timeout = -1;
        if (deadline_s > 0) {
            double earliest = 0, t = now_s();
            for (int i = 0; i < started; i++)
                if (!jobs[i].done && !jobs[i].killed && (earliest == 0 || jobs[i].deadline < earliest)) earliest = jobs[i].deadline;
            if (earliest > 0) timeout = earliest <= t ? 0 : (int)((earliest - t) * 1000) + 1;
        }
        int count = epoll_wait(ep, events, 256, timeout);
        double t = now_s();
        for (int k = 0; k < count; k++) {
            job *j = &jobs[events[k].data.u32];
            siginfo_t info;
            memset(&info, 0, sizeof info);
            if (waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &info, WEXITED | WNOWAIT | WNOHANG) < 0 || info.si_pid == 0) continue;
            kill(-j->pid, SIGKILL);  // the group, while the zombie pins it
            waitid((idtype_t)P_PIDFD, (id_t)j->pidfd, &info, WEXITED);
            epoll_ctl(ep, EPOLL_CTL_DEL, j->pidfd, NULL);
            close(j->pidfd);
            remove_leaf(j);
            j->done = 1;
            delivered++;
            running--;
            if (j->killed) overshoot[overshoots++] = (t - j->deadline) * 1000;
        }
        if (deadline_s > 0) {
            for (int i = 0; i < started; i++) {
                job *j = &jobs[i];
                if (!j->done && !j->killed && j->deadline <= t) {
                    kill(-j->pid, SIGTERM);
                    j->killed = 1;
                }
            }
        }
    }
    close(ep);
    free(jobs);
    qsort(overshoot, (size_t)overshoots, sizeof(double), cmp_double);
    return overshoots;
}

static void report(int jobs, int delivered, int errors, double wall, double *over, int overs, double mbps) {
    printf("{\"jobs\":%d,\"delivered\":%d,\"errors\":%d,\"wall_s\":%.4f", jobs, delivered, errors, wall);
    if (overs > 0) printf(",\"overshoot_ms\":{\"p50\":%.2f,\"p99\":%.2f,\"max\":%.2f}", pct(over, overs, 0.5), pct(over, overs, 0.99), over[overs - 1]);
    if (mbps > 0) printf(",\"mb_per_s\":%.1f", mbps);
    printf("}\n");
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: ref spawn|deadline|cpudeadline|trickle|throughput|bigheap ...\n"); return 2; }
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
    const char *mode = argv[1];
    cgroup_base = getenv("REF_CGROUP");
    if (cgroup_base && mkdir(cgroup_base, 0755) < 0 && errno != EEXIST) {
        fprintf(stderr, "cannot create %s: %s\n", cgroup_base, strerror(errno));
        return 1;
    }
    int errors = 0;
    double start = now_s();
    if (!strcmp(mode, "spawn") || !strcmp(mode, "bigheap")) {
        int big = !strcmp(mode, "bigheap");
        size_t mib = big ? (size_t)atol(argv[2]) : 0;
        if (big) {
            char *heap = malloc(mib << 20);
            for (size_t i = 0; i < (mib << 20); i += 4096) heap[i] = 1;
            start = now_s();
        }
        int n = atoi(argv[big ? 3 : 2]);
        int inflight = big ? 1 : atoi(argv[3]);
        char *const args[] = {"/bin/true", NULL};
        double *over = calloc((size_t)n, sizeof(double));
        run_jobs(n, inflight, args, 0, over, &errors);
        report(n, n - errors, errors, now_s() - start, NULL, 0, 0);
    } else if (!strcmp(mode, "deadline") || !strcmp(mode, "trickle")) {
        int n = atoi(argv[2]);
        int dl = !strcmp(mode, "deadline");
        double seconds = dl ? atof(argv[3]) : 0;
        char *const args[] = {"/bin/sleep", dl ? "30" : "1", NULL};
        double *over = calloc((size_t)n, sizeof(double));
        int overs = run_jobs(n, n, args, seconds, over, &errors);
        report(n, n - errors, errors, now_s() - start, over, overs, 0);
    } else if (!strcmp(mode, "cpudeadline")) {
        // W7: `busy` CPU-bound jobs saturate the CPU while N sleeps run to
        // their deadline; overshoot is the sleeps' only. No priority is
        // given to this process: it is the row without one.
        int busy = atoi(argv[2]), n = atoi(argv[3]);
        double seconds = atof(argv[4]);
        char *const spin[] = {"/bin/sh", "-c", "while :; do :; done", NULL};
        job *spinners = calloc((size_t)busy, sizeof(job));
        for (int i = 0; i < busy; i++)
            if (spawn_job(&spinners[i], spin, 0) < 0) errors++;
        char *const args[] = {"/bin/sleep", "30", NULL};
        double *over = calloc((size_t)n, sizeof(double));
        int overs = run_jobs(n, n, args, seconds, over, &errors);
        for (int i = 0; i < busy; i++) {
            if (spinners[i].pid <= 0) continue;
            kill(-spinners[i].pid, SIGKILL);
            siginfo_t info;
            waitid((idtype_t)P_PIDFD, (id_t)spinners[i].pidfd, &info, WEXITED);
            close(spinners[i].pidfd);
            remove_leaf(&spinners[i]);
        }
        report(n, n - errors, errors, now_s() - start, over, overs, 0);
    } else if (!strcmp(mode, "throughput")) {
        char count[32];
        snprintf(count, sizeof count, "%s", argv[2]);
        char *const args[] = {"/usr/bin/head", "-c", count, "/dev/zero", NULL};
        job j = {0};
        if (spawn_job(&j, args, 1) < 0) return 1;
        static char buffer[1 << 16];
        long long total = 0;
        ssize_t got;
        while ((got = read(j.out, buffer, sizeof buffer)) > 0 || (got < 0 && errno == EINTR)) if (got > 0) total += got;
        siginfo_t info;
        waitid((idtype_t)P_PIDFD, (id_t)j.pidfd, &info, WEXITED);
        double wall = now_s() - start;
        report(1, 1, 0, wall, NULL, 0, (double)total / 1e6 / wall);
    } else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    if (cgroup_base) rmdir(cgroup_base);
    return 0;
}
