import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// Thin wrappers over the syscalls Corral makes: each retries on EINTR and
/// returns the errno instead of leaving it in a global.
enum Syscalls {
    /// A pipe with both ends close-on-exec: (read end, write end).
    static func pipe() -> Result<(read: Int32, write: Int32), Errno> {
        var read: Int32 = -1
        var write: Int32 = -1
        let status = cc_pipe_cloexec(&read, &write)
        if status != 0 { return .failure(Errno(code: -status)) }
        return .success((read, write))
    }

    static func open(_ path: String, _ flags: Int32) -> Result<Int32, Errno> {
        while true {
            let fd = Glibc.open(path, flags | O_CLOEXEC)
            if fd >= 0 { return .success(fd) }
            if errno != EINTR { return .failure(Errno.current) }
        }
    }

    /// pread(2) into `buffer`: the count read (0 at end of file).
    static func pread(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, at offset: Int) -> Result<Int, Errno> {
        while true {
            let count = Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            if count >= 0 { return .success(count) }
            if errno != EINTR { return .failure(Errno.current) }
        }
    }

    /// read(2) into `buffer`: the count read (0 at end of file).
    static func read(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer) -> Result<Int, Errno> {
        while true {
            let count = Glibc.read(fd, buffer.baseAddress, buffer.count)
            if count >= 0 { return .success(count) }
            if errno != EINTR { return .failure(Errno.current) }
        }
    }

    /// write(2) of all of `bytes` (a short control-file write: cgroupfs takes it whole).
    static func write(_ fd: Int32, _ bytes: UnsafeRawBufferPointer) -> Errno? {
        var offset = 0
        while offset < bytes.count {
            let count = Glibc.write(fd, bytes.baseAddress! + offset, bytes.count - offset)
            if count < 0 {
                if errno == EINTR { continue }
                return Errno.current
            }
            offset += count
        }
        return nil
    }

    /// readlinkat(2) into `buffer`: the length of the target.
    static func readlinkat(_ directory: Int32, _ name: UnsafePointer<CChar>,
                           _ buffer: UnsafeMutableBufferPointer<CChar>) -> Result<Int, Errno> {
        while true {
            let count = Glibc.readlinkat(directory, name, buffer.baseAddress!, buffer.count)
            if count >= 0 { return .success(count) }
            if errno != EINTR { return .failure(Errno.current) }
        }
    }

    /// mkdir(2): nil, or the error (EEXIST included).
    static func mkdir(_ path: String, _ mode: mode_t) -> Errno? {
        while true {
            if Glibc.mkdir(path, mode) == 0 { return nil }
            if errno != EINTR { return Errno.current }
        }
    }

    /// rmdir(2): nil, or the error.
    static func rmdir(_ path: String) -> Errno? {
        while true {
            if Glibc.rmdir(path) == 0 { return nil }
            if errno != EINTR { return Errno.current }
        }
    }

    static func close(_ fd: Int32) {
        if fd >= 0 { _ = Glibc.close(fd) }  // never retried: the fd is gone either way on Linux
    }

    /// kill(2). ESRCH means no such process; EPERM means one exists that
    /// this process may not signal (something is left, not nothing).
    @discardableResult
    static func kill(_ pid: Int32, _ signal: Int32) -> Result<Void, Errno> {
        Glibc.kill(pid, signal) == 0 ? .success(()) : .failure(Errno.current)
    }

    /// The soft and hard limits on open files.
    static func openFileLimits() -> (soft: UInt64, hard: UInt64) {
        var limit = rlimit()
        getrlimit(RLIMIT_NOFILE_VALUE, &limit)
        return (UInt64(limit.rlim_cur), UInt64(limit.rlim_max))
    }

    /// Raises the soft open-files limit to the hard one; returns the new soft limit.
    static func raiseOpenFileLimit() -> UInt64 {
        var limit = rlimit()
        guard getrlimit(RLIMIT_NOFILE_VALUE, &limit) == 0 else { return 1024 }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(RLIMIT_NOFILE_VALUE, &raised) == 0 { return UInt64(raised.rlim_cur) }
        }
        return UInt64(limit.rlim_cur)
    }

    /// How many descriptors this process has open now.
    static func openDescriptorCount() -> Int {
        max(0, ProcFiles.entries("/proc/self/fd").count - 1)  // less the listing's own descriptor
    }

    static var RLIMIT_NOFILE_VALUE: __rlimit_resource_t {
        __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    }
}

/// An errno value with its message.
struct Errno: Error, Hashable, Sendable, CustomStringConvertible {
    let code: Int32
    static var current: Errno { Errno(code: errno) }
    var description: String { String(cString: strerror(code)) }
}
