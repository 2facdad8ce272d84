#if canImport(Glibc)
import Glibc
#endif

/// What corral does to its own process before anything else.
enum ProcessSetup {
    /// The standard descriptors that were closed when corral started
    /// (written once, before any other thread exists).
    nonisolated(unsafe) private(set) static var closedAtStart: Set<Int32> = []

    /// - Descriptors 0, 1 and 2 that were closed (`corral run ... >&-`) are
    ///   opened on /dev/null, so the first descriptor corral opens (an epoll
    ///   instance, a pipe) never takes their place and reaches a job as its
    ///   stdin or stdout.
    /// - SIGPIPE is ignored: a reader that goes away is an EPIPE error each
    ///   writer handles, never a signal that kills corral with its jobs
    ///   running. Jobs get the default disposition back at spawn.
    static func prepare() {
        for fd in STDIN_FILENO...STDERR_FILENO where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            closedAtStart.insert(fd)
            let opened = open("/dev/null", fd == STDIN_FILENO ? O_RDONLY : O_WRONLY)
            if opened >= 0, opened != fd {
                dup2(opened, fd)
                close(opened)
            }
        }
        signal(SIGPIPE, SIG_IGN)
    }
}
