#if canImport(Glibc)
import Glibc
#endif

/// Which thread is a running loop: set by the loop thread while `uv_run`
/// runs, so code that scans /proc or cgroupfs, or makes and removes
/// cgroups, can check in debug builds that it is not on it
/// (`assertNotOnLoopThread`). A regression that moves such a call back onto
/// the loop then fails every test that reaches it.
enum LoopThread {
    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        pthread_key_create(&key, nil)
        return key
    }()

    static func enter() { pthread_setspecific(key, UnsafeRawPointer(bitPattern: 1)) }
    static func leave() { pthread_setspecific(key, nil) }
    static var isCurrent: Bool { pthread_getspecific(key) != nil }
}

/// Checks, in debug builds, that host-scale /proc or cgroupfs work (or a
/// cgroup `mkdir`/`rmdir`) is not running on a loop thread: it belongs on
/// the inspector (`EventLoop.inspector`).
@inline(__always)
func assertNotOnLoopThread(_ function: StaticString = #function) {
    assert(!LoopThread.isCurrent, "\(function) runs on the loop thread: it belongs on the inspector")
}
