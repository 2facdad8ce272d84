import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

/// Optional: makes this process a child subreaper, so the orphaned
/// descendants of jobs are re-parented here instead of to pid 1, and reaps
/// them on SIGCHLD. It reaps only children that are not job leaders
/// (`LeaderRegistry`), each by pid.
///
/// Off by default: it would also reap any ordinary child of the host
/// process. Corral's own CLI and agent turn it on.
final class OrphanReaper: LoopObject {
    private unowned let eventLoop: EventLoop
    private let signal: UnsafeMutablePointer<uv_signal_t>
    private(set) var reaped = 0

    init(eventLoop: EventLoop) {
        self.eventLoop = eventLoop
        signal = UVHandle.allocate(UV_SIGNAL, as: uv_signal_t.self)
        super.init()
        UVHandle.setOwner(signal, self)
        _ = cc_become_subreaper()
        uv_signal_init(eventLoop.loop, signal)
    }

    func start() {
        uv_signal_start(signal, { handle, _ in
            (LoopObject.owner(of: handle!.pointee.data) as! OrphanReaper).reapAll()
        }, SIGCHLD)
        reapAll()  // whatever exited while nothing was listening
    }

    func stop() {
        reapAll()
        UVHandle.close(signal)
    }

    func reapAll() {
        LeaderRegistry.withLeaders { leaders in
            for child in ChildList.current() where !leaders.contains(child) {
                var info = cc_exit_info()
                if cc_wait_pid(child, cc_WEXITED | cc_WNOHANG, &info) == 0, info.pid != 0 { reaped += 1 }
            }
        }
    }
}

/// This process's children, from /proc/self/task/*/children, or by a scan
/// of /proc where the kernel lacks CONFIG_PROC_CHILDREN.
enum ChildList {
    static func current() -> [pid_t] {
        var children: [pid_t] = []
        var sawChildrenFile = false
        for thread in directoryEntries("/proc/self/task") {
            guard let text = readSmallFile("/proc/self/task/\(thread)/children") else { continue }
            sawChildrenFile = true
            children += text.split(separator: " ").compactMap { pid_t($0.trimmingWhitespace) }
        }
        if sawChildrenFile { return children }
        let me = getpid()
        return directoryEntries("/proc").compactMap { name -> pid_t? in
            guard let pid = pid_t(name), let stat = readSmallFile("/proc/\(name)/stat"),
                  let close = stat.lastIndex(of: ")") else { return nil }
            let fields = stat[close...].split(separator: " ")
            return fields.count > 2 && pid_t(fields[2]) == me ? pid : nil
        }
    }

    private static func directoryEntries(_ path: String) -> [String] {
        guard let directory = opendir(path) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) {
                String(decoding: $0.prefix(while: { $0 != 0 }), as: UTF8.self)
            }
            if name != ".", name != ".." { names.append(name) }
        }
        return names
    }

    private static func readSmallFile(_ path: String) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &chunk, chunk.count)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { break }
            bytes += chunk[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}

private extension Substring {
    var trimmingWhitespace: Substring {
        drop(while: { $0 == " " || $0 == "\n" }).prefix(while: { $0 != " " && $0 != "\n" })
    }
}
