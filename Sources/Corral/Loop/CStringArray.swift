#if canImport(Glibc)
import Glibc
#endif

/// A NULL-terminated array of C strings in one allocation, as `execve`
/// takes `argv` and `envp`. Immutable once built, so it may be built on any
/// thread and read on the loop.
final class CStringArray: @unchecked Sendable {
    /// `count + 1` pointers (the last is NULL) followed by the copied string bytes.
    let pointers: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>
    let count: Int
    /// The snapshot whose strings the first pointers point into, if any.
    private let shared: EnvironmentSnapshot?

    /// These strings, copied.
    convenience init(_ strings: [String]) {
        self.init(sharing: [], of: nil, strings: strings)
    }

    /// Entries of a shared environment snapshot (not copied: the snapshot
    /// is kept alive with this array), then `strings`, copied after them.
    init(sharing entries: [UnsafePointer<CChar>], of snapshot: EnvironmentSnapshot?, strings: [String]) {
        shared = snapshot
        count = entries.count + strings.count
        let pointerBytes = (count + 1) * MemoryLayout<UnsafeMutablePointer<CChar>?>.stride
        let stringBytes = strings.reduce(0) { $0 + $1.utf8.count + 1 }
        let raw = UnsafeMutableRawPointer.allocate(byteCount: pointerBytes + stringBytes,
                                                   alignment: MemoryLayout<UnsafeMutablePointer<CChar>?>.alignment)
        pointers = raw.bindMemory(to: UnsafeMutablePointer<CChar>?.self, capacity: count + 1)
        for (index, entry) in entries.enumerated() { pointers[index] = UnsafeMutablePointer(mutating: entry) }
        var cursor = (raw + pointerBytes).bindMemory(to: CChar.self, capacity: stringBytes)
        for (index, string) in strings.enumerated() {
            pointers[entries.count + index] = cursor
            for byte in string.utf8 {
                cursor.pointee = CChar(bitPattern: byte)
                cursor += 1
            }
            cursor.pointee = 0
            cursor += 1
        }
        pointers[count] = nil
    }

    deinit { UnsafeMutableRawPointer(pointers).deallocate() }

    subscript(index: Int) -> UnsafeMutablePointer<CChar> { pointers[index]! }
}
