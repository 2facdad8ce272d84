#if canImport(Glibc)
import Glibc
#endif

/// A POSIX signal, by number, with its conventional name.
public struct Signal: Hashable, Sendable, CustomStringConvertible {
    /// The signal number, as `kill(2)` takes it.
    public let rawValue: Int32

    public init(rawValue: Int32) { self.rawValue = rawValue }

    public static let hangup = Signal(rawValue: SIGHUP)
    public static let interrupt = Signal(rawValue: SIGINT)
    public static let quit = Signal(rawValue: SIGQUIT)
    public static let kill = Signal(rawValue: SIGKILL)
    public static let user1 = Signal(rawValue: SIGUSR1)
    public static let user2 = Signal(rawValue: SIGUSR2)
    public static let pipe = Signal(rawValue: SIGPIPE)
    public static let alarm = Signal(rawValue: SIGALRM)
    public static let terminate = Signal(rawValue: SIGTERM)
    public static let stop = Signal(rawValue: SIGSTOP)
    public static let `continue` = Signal(rawValue: SIGCONT)

    /// The name without the `SIG` prefix (`"TERM"`), or the number for
    /// signals without a conventional name (real-time signals: `"RTMIN+3"`).
    public var name: String {
        if let known = Signal.names.first(where: { $0.value == rawValue }) { return known.name }
        let rtmin = Int32(__libc_current_sigrtmin())
        if rawValue >= rtmin { return "RTMIN+\(rawValue - rtmin)" }
        return String(rawValue)
    }

    public var description: String { "SIG" + name }

    /// Parses `TERM`, `SIGTERM`, `term` or `15`. Returns nil for anything else.
    public init?(parsing text: String) {
        let upper = text.uppercased()
        if let number = Int32(upper) {
            guard number > 0, number < 65 else { return nil }
            self.init(rawValue: number)
            return
        }
        let bare = upper.hasPrefix("SIG") ? String(upper.dropFirst(3)) : upper
        if let realTime = Signal.realTime(bare) {
            self.init(rawValue: realTime)
            return
        }
        guard let known = Signal.names.first(where: { $0.name == bare }) else { return nil }
        self.init(rawValue: known.value)
    }

    /// `RTMIN`, `RTMIN+N`, `RTMAX`, `RTMAX-N` (as kill(1) writes them, and
    /// as `name` gives them back), within the real-time range.
    private static func realTime(_ text: String) -> Int32? {
        let low = Int32(__libc_current_sigrtmin()), high = Int32(__libc_current_sigrtmax())
        let value: Int32?
        if text == "RTMIN" {
            value = low
        } else if text == "RTMAX" {
            value = high
        } else if text.hasPrefix("RTMIN+"), let offset = Int32(text.dropFirst(6)), offset >= 0, offset <= high - low {
            value = low + offset
        } else if text.hasPrefix("RTMAX-"), let offset = Int32(text.dropFirst(6)), offset >= 0, offset <= high - low {
            value = high - offset
        } else {
            value = nil
        }
        return value
    }

    static let names: [(name: String, value: Int32)] = [
        ("HUP", SIGHUP), ("INT", SIGINT), ("QUIT", SIGQUIT), ("ILL", SIGILL),
        ("TRAP", SIGTRAP), ("ABRT", SIGABRT), ("BUS", SIGBUS), ("FPE", SIGFPE),
        ("KILL", SIGKILL), ("USR1", SIGUSR1), ("SEGV", SIGSEGV), ("USR2", SIGUSR2),
        ("PIPE", SIGPIPE), ("ALRM", SIGALRM), ("TERM", SIGTERM), ("STKFLT", SIGSTKFLT),
        ("CHLD", SIGCHLD), ("CONT", SIGCONT), ("STOP", SIGSTOP), ("TSTP", SIGTSTP),
        ("TTIN", SIGTTIN), ("TTOU", SIGTTOU), ("URG", SIGURG), ("XCPU", SIGXCPU),
        ("XFSZ", SIGXFSZ), ("VTALRM", SIGVTALRM), ("PROF", SIGPROF), ("WINCH", SIGWINCH),
        ("IO", SIGIO), ("PWR", SIGPWR), ("SYS", SIGSYS),
    ]
}
