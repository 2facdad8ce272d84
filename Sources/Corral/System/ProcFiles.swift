import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// Small reads of /proc and cgroupfs, without Foundation.
enum ProcFiles {
    /// The whole of a small file, or nil if it cannot be read.
    static func read(_ path: String) -> String? {
        readBytes(path).map { String(decoding: $0, as: UTF8.self) }
    }

    /// The bytes of an open file, or nil on an error.
    static func readBytes(fd: Int32) -> [UInt8]? {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 8192)
        while true {
            let position = bytes.count
            guard case .success(let count) = chunk.withUnsafeMutableBytes({ Syscalls.pread(fd, $0, at: position) })
            else { return nil }
            if count == 0 { break }
            bytes += chunk[..<count]
        }
        return bytes
    }

    /// Writes a short string to a file (cgroupfs control files).
    static func write(_ text: String, to path: String) -> Errno? {
        let fd: Int32
        switch Syscalls.open(path, O_WRONLY) {
        case .success(let opened): fd = opened
        case .failure(let error): return error
        }
        defer { Syscalls.close(fd) }
        var text = text
        return text.withUTF8 { Syscalls.write(fd, UnsafeRawBufferPointer($0)) }
    }

    /// The entries of a directory, without "." and "..", with whether each is a directory.
    static func directory(_ path: String) -> [(name: String, isDirectory: Bool)] {
        guard let stream = opendir(path) else { return [] }
        defer { closedir(stream) }
        var entries: [(name: String, isDirectory: Bool)] = []
        var isDirectory = false
        while let name = cc_next_directory_entry(UnsafeMutableRawPointer(stream), &isDirectory) {
            entries.append((String(cString: name), isDirectory))
        }
        return entries
    }

    /// The names in a directory, without "." and "..".
    static func entries(_ path: String) -> [String] { directory(path).map(\.name) }

    /// The subdirectories of a directory (child cgroups, in cgroupfs).
    static func subdirectories(_ path: String) -> [String] { directory(path).filter(\.isDirectory).map(\.name) }

    /// The numeric entries of /proc: every process.
    static func processIDs() -> [pid_t] {
        var pids: [pid_t] = []
        forEachProcessID { pids.append($0) }
        return pids
    }

    /// Calls `body` with every process id in /proc, parsed in place (no
    /// string per entry: the escapee sweep scans thousands).
    static func forEachProcessID(_ body: (pid_t) -> Void) {
        guard let stream = opendir("/proc") else { return }
        defer { closedir(stream) }
        var isDirectory = false
        while let name = cc_next_directory_entry(UnsafeMutableRawPointer(stream), &isDirectory) {
            var pid: pid_t = 0
            var cursor = name
            while cursor.pointee >= 0x30, cursor.pointee <= 0x39, pid < 100_000_000 {
                pid = pid * 10 + pid_t(cursor.pointee - 0x30)
                cursor += 1
            }
            if cursor.pointee == 0, cursor != name { body(pid) }
        }
    }

    /// The last process id the kernel handed out in this pid namespace
    /// (`/proc/sys/kernel/ns_last_pid`): it changes whenever any process or
    /// thread is created. Nil if it cannot be read.
    static func lastAllocatedPID() -> pid_t? {
        guard case .success(let fd) = Syscalls.open("/proc/sys/kernel/ns_last_pid", O_RDONLY) else { return nil }
        defer { Syscalls.close(fd) }
        return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16) { buffer in
            guard case .success(let count) = Syscalls.read(fd, UnsafeMutableRawBufferPointer(buffer)), count > 0
            else { return nil }
            var pid: pid_t = 0
            for byte in buffer[..<count] where byte >= 0x30 && byte <= 0x39 { pid = pid * 10 + pid_t(byte - 0x30) }
            return pid
        }
    }

    /// `/proc/<pid>/comm`.
    static func command(of pid: pid_t) -> String {
        var text = read("/proc/\(pid)/comm") ?? "?"
        if text.hasSuffix("\n") { text.removeLast() }
        return text
    }

    /// What /proc/<pid>/stat says, or nil if the process is gone (or the
    /// file could not be read).
    static func processInfo(of pid: pid_t) -> cc_proc_info? {
        var info = cc_proc_info()
        return cc_proc_stat(pid, &info) == 0 ? info : nil
    }

    static func readBytes(_ path: String) -> [UInt8]? {
        guard case .success(let fd) = Syscalls.open(path, O_RDONLY) else { return nil }
        defer { Syscalls.close(fd) }
        return readBytes(fd: fd)
    }
}

extension ProcFiles {
    /// The processes (other than this one) with a descriptor on each of
    /// these pipes, by pipe inode: one walk of every descriptor on the host
    /// for any number of pipes (inspector only), with no string per
    /// descriptor.
    static func pipeHolders(inodes: Set<UInt64>) -> [UInt64: [pid_t]] {
        assertNotOnLoopThread()
        var holders: [UInt64: [pid_t]] = [:]
        guard !inodes.isEmpty else { return holders }
        let me = getpid()
        let prefix = Array("pipe:[".utf8)
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 64) { target in
            forEachProcessID { pid in
                guard pid != me, let stream = opendir("/proc/\(pid)/fd") else { return }
                defer { closedir(stream) }
                let directory = dirfd(stream)
                var isDirectory = false
                var held: [UInt64] = []
                while let name = cc_next_directory_entry(UnsafeMutableRawPointer(stream), &isDirectory) {
                    guard case .success(let count) = Syscalls.readlinkat(directory, name, target),
                          count > prefix.count + 1 else { continue }
                    let bytes = UnsafeRawBufferPointer(start: target.baseAddress, count: count)
                    guard bytes.starts(with: prefix), bytes[count - 1] == UInt8(ascii: "]") else { continue }
                    var inode: UInt64 = 0
                    for byte in bytes[prefix.count..<(count - 1)] {
                        guard byte >= 0x30, byte <= 0x39 else { inode = 0; break }
                        inode = inode &* 10 &+ UInt64(byte - 0x30)
                    }
                    if inodes.contains(inode), !held.contains(inode) { held.append(inode) }
                }
                for inode in held { holders[inode, default: []].append(pid) }
            }
        }
        return holders
    }

    /// The inode of an open descriptor.
    static func inode(of fd: Int32) -> UInt64? {
        var info = stat()
        return fstat(fd, &info) == 0 ? UInt64(info.st_ino) : nil
    }
}
