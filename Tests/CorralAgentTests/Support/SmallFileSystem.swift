import Foundation
import XCTest

/// A tmpfs of a given size mounted for one test (the agent's data
/// directory on it can be filled on purpose); unmounted lazily at the end,
/// so an agent still holding its files does not keep it busy.
struct SmallFileSystem {
    let path: String

    /// Mounts it, or skips the test (loudly) when mounting is not allowed.
    static func mount(at path: String, megabytes: Int, for test: XCTestCase) throws -> SmallFileSystem {
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/mount")
        process.arguments = ["-t", "tmpfs", "-o", "size=\(megabytes)m", "tmpfs", path]
        process.standardError = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = "SKIPPED LOUDLY: cannot mount a tmpfs (needs root); \(test.name) was NOT run"
            FileHandle.standardError.write(Data("\n*** \(message) ***\n\n".utf8))
            throw XCTSkip(message)
        }
        test.addTeardownBlock {
            let unmount = Process()
            unmount.executableURL = URL(fileURLWithPath: "/bin/umount")
            unmount.arguments = ["-l", path]
            try? unmount.run()
            unmount.waitUntilExit()
        }
        return SmallFileSystem(path: path)
    }

    /// Fills the file system with `name` until a write fails; returns the bytes written.
    @discardableResult
    func fill(_ name: String = "filler") -> Int {
        let fd = open(path + "/" + name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        let block = [UInt8](repeating: 0x55, count: 64 * 1024)
        var total = 0
        while true {
            let written = block.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written <= 0 { break }
            total += written
        }
        return total
    }

    func remove(_ name: String = "filler") {
        unlink(path + "/" + name)
    }
}
