import Foundation
import GRDB
import Synchronization

/// Whether the journal can be trusted with new jobs: its last write
/// worked, and its file is still the one the agent opened. While it
/// cannot, `/healthz` is degraded and submits are refused (503).
final class JournalHealth: Sendable {
    private struct State {
        var writeFailure: String?
        var fileProblem: String?
    }
    private let state = Mutex(State())

    /// Why the journal cannot take jobs now, or nil when it can.
    var problem: String? { state.withLock { $0.fileProblem ?? $0.writeFailure } }

    /// Records a failed write. Returns true when this is a change (to log once).
    func writeFailed(_ reason: String) -> Bool {
        state.withLock { state in
            defer { state.writeFailure = reason }
            return state.writeFailure != reason
        }
    }

    /// Records a write that worked. Returns the failure it ends, if any.
    func writeSucceeded() -> String? {
        state.withLock { state in
            defer { state.writeFailure = nil }
            return state.writeFailure
        }
    }

    var isFailingWrites: Bool { state.withLock { $0.writeFailure != nil } }

    /// Records what the last file check found. Returns true on a change.
    func fileChecked(_ problem: String?) -> Bool {
        state.withLock { state in
            defer { state.fileProblem = problem }
            return state.fileProblem != problem
        }
    }

    var fileProblem: String? { state.withLock { $0.fileProblem } }

    /// A write error as an operator reads it (the SQLite detail goes to the log).
    static func reason(_ error: any Error) -> String {
        guard let error = error as? DatabaseError else { return "the journal cannot be written" }
        switch error.resultCode.primaryResultCode {
        case .SQLITE_FULL: return "the file system holding the journal is full"
        case .SQLITE_IOERR: return "an I/O error while writing the journal"
        case .SQLITE_READONLY: return "the journal is read-only"
        case .SQLITE_CANTOPEN: return "the journal file cannot be opened"
        case .SQLITE_CORRUPT, .SQLITE_NOTADB: return "the journal file is damaged"
        case .SQLITE_BUSY, .SQLITE_LOCKED: return "the journal is locked by another process"
        default: return "the journal cannot be written"
        }
    }
}

/// The journal file as it was opened (device and inode), to notice when
/// the path is deleted or replaced under the running agent: its writes
/// would then go to a file nobody will read.
struct JournalFileIdentity: Sendable, Equatable {
    let device: UInt64
    let inode: UInt64

    init?(path: String) {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        device = UInt64(info.st_dev)
        inode = UInt64(info.st_ino)
    }

    /// What is wrong with `path` now, or nil if it is still this file.
    func problem(at path: String) -> String? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            let error = errno
            return error == ENOENT
                ? "the journal file \(path) was deleted while the agent ran"
                : "the journal file \(path) cannot be checked: \(String(cString: strerror(error)))"
        }
        guard UInt64(info.st_dev) == device, UInt64(info.st_ino) == inode else {
            return "the journal file \(path) was replaced by another file while the agent ran"
        }
        return nil
    }
}
