#if canImport(Glibc)
import Glibc
#endif

/// This process's environment, read from `environ` at the moment of the call.
enum ProcessEnvironment {
    static func current() -> [String: String] {
        var result: [String: String] = [:]
        var entry = environ
        while let pointer = entry.pointee {
            let line = String(cString: pointer)
            if let equals = line.firstIndex(of: "=") {
                let key = String(line[..<equals])
                if result[key] == nil { result[key] = String(line[line.index(after: equals)...]) }
            }
            entry += 1
        }
        return result
    }
}
