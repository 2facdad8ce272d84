#if canImport(Glibc)
import Glibc
#endif

/// Descriptors 0, 1 and 2 as the agent needs them at start.
public enum StandardDescriptors {
    /// Opens `/dev/null` on each of 0, 1 and 2 that is closed (as after
    /// `corral agent >&-`). Otherwise the next file the agent opens — the
    /// lock file, the journal, a socket — would get that number, and the
    /// "listening on" line or a log line would be written into it.
    ///
    /// - Important: call it first, before anything opens a file.
    public static func reserve() {
        for fd in Int32(0)...2 where fcntl(fd, F_GETFD) == -1 && errno == EBADF {
            let opened = open("/dev/null", O_RDWR)
            if opened >= 0, opened != fd {
                _ = dup2(opened, fd)
                close(opened)
            }
        }
    }
}
