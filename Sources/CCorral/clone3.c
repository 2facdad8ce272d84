// The vfork-style clone of a spawn through clone3, so that a job's child is
// born inside its cgroup leaf (CLONE_INTO_CGROUP, Linux 5.7) instead of
// joining it by a write to `cgroup.procs`: that write migrates the process,
// which takes the kernel's cgroup threadgroup lock for writing. Measured on
// the benchmark machine (6.x kernel, 2 cores), 2,000 x /bin/true with a leaf
// each: vfork + write 800–840 us per job, clone3 into the leaf 660–720 us,
// no cgroup at all 580–680 us.
//
// Hand-written because nothing else offers it: glibc 2.36 has no public
// clone3 wrapper (its __clone3 is internal), and the raw syscall returns in
// a CLONE_VM child on the new, empty stack, where returning from C would
// crash. So a few instructions call the child's function on that stack and
// exit with its value, as glibc's clone does. x86_64 only; elsewhere (and
// where clone3 is refused: seccomp profiles answer ENOSYS or EPERM, kernels
// before 5.7 E2BIG) the caller falls back to clone and the write.
#include "CCorral.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <linux/sched.h>

#if defined(__x86_64__)
/* long cc_clone3_call(struct clone_args *args, size_t size, int (*fn)(void *), void *arg):
   the syscall's answer in the parent (a pid, or -errno); the child calls
   fn(arg) on the stack the arguments name and exits with its value. The
   syscall preserves every register but rax, rcx and r11, so fn and arg ride
   in r8 and r9 into the child. */
long cc_clone3_call(struct clone_args *args, size_t size, int (*fn)(void *), void *arg);
__asm__(
    "    .pushsection .text\n"
    "    .globl cc_clone3_call\n"
    "    .hidden cc_clone3_call\n"
    "    .type cc_clone3_call, @function\n"
    "cc_clone3_call:\n"
    "    mov %rdx, %r8\n"
    "    mov %rcx, %r9\n"
    "    mov $435, %eax\n"          /* SYS_clone3 */
    "    syscall\n"
    "    test %rax, %rax\n"
    "    jnz 1f\n"
    "    xor %ebp, %ebp\n"          /* the child: no frame above this one */
    "    and $-16, %rsp\n"
    "    mov %r9, %rdi\n"
    "    call *%r8\n"
    "    mov %eax, %edi\n"
    "    mov $231, %eax\n"          /* SYS_exit_group */
    "    syscall\n"
    "    hlt\n"
    "1:  ret\n"
    "    .size cc_clone3_call, . - cc_clone3_call\n"
    "    .popsection\n"
);
#endif

/* Set once clone3 is refused as such: every later spawn clones at once. */
static int cc_clone3_refused = 0;
/* Children cloned into their leaf so far (for tests). */
static unsigned long cc_clone3_children = 0;

unsigned long cc_spawn_cloned_into_cgroup(void) {
    return __atomic_load_n(&cc_clone3_children, __ATOMIC_RELAXED);
}

void cc_spawn_set_clone_into_cgroup(bool allowed) {
    __atomic_store_n(&cc_clone3_refused, allowed ? 0 : 1, __ATOMIC_RELAXED);
}

bool cc_clone3_usable(void) {
#if defined(__x86_64__)
    return !__atomic_load_n(&cc_clone3_refused, __ATOMIC_RELAXED);
#else
    return false;
#endif
}

long cc_clone3_vfork_into_cgroup(int (*fn)(void *), void *arg, char *stack, size_t stack_size,
                                 int cgroup_fd, int *pidfd, pid_t *child) {
#if defined(__x86_64__)
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.flags = CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP;
    args.pidfd = (uint64_t)(uintptr_t)pidfd;
    if (child) {
        /* The kernel writes the child's pid here past the clone's last
           failure path, its pidfd installed, before the child first runs:
           one born in a frozen cgroup never runs to say so itself, and the
           loop must still be able to kill it (cc_spawn_abort). */
        args.flags |= CLONE_PARENT_SETTID;
        args.parent_tid = (uint64_t)(uintptr_t)child;
    }
    args.stack = (uint64_t)(uintptr_t)stack;
    args.stack_size = stack_size;
    args.cgroup = (uint64_t)cgroup_fd;
    args.exit_signal = 0;  /* like the clone it replaces: no SIGCHLD to the runner */
    long answer = cc_clone3_call(&args, sizeof args, fn, arg);
    if (answer > 0) __atomic_add_fetch(&cc_clone3_children, 1, __ATOMIC_RELAXED);
    /* ENOSYS: no clone3, or a seccomp profile's answer (Docker's); EPERM:
       older profiles' answer (a leaf the child may not join answers EACCES);
       E2BIG: a kernel before 5.7, which knows no cgroup field. */
    if (answer == -ENOSYS || answer == -EPERM || answer == -E2BIG)
        __atomic_store_n(&cc_clone3_refused, 1, __ATOMIC_RELAXED);
    return answer;
#else
    (void)fn; (void)arg; (void)stack; (void)stack_size; (void)cgroup_fd; (void)pidfd; (void)child;
    return -ENOSYS;
#endif
}
