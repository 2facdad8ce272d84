// Internal to CCorral: the clone3 spawn path (clone3.c).
#ifndef CC_CLONE3_H
#define CC_CLONE3_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Whether clone3 may be tried (x86_64, and not refused by this kernel yet). */
bool cc_clone3_usable(void);

/* clone3(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | CLONE_INTO_CGROUP): the
   child runs fn(arg) on [stack, stack + stack_size), born in the cgroup
   whose directory cgroup_fd is; the kernel writes its pidfd to *pidfd and,
   if child is not NULL, its pid to *child (CLONE_PARENT_SETTID) before it
   first runs. Returns the child's pid once it has exec'd or exited, or -errno. */
long cc_clone3_vfork_into_cgroup(int (*fn)(void *), void *arg, char *stack, size_t stack_size,
                                 int cgroup_fd, int *pidfd, pid_t *child);

#endif
