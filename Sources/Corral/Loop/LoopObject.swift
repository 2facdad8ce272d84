import CLibUV

/// Something on the loop that owns libuv handles: each handle's `data`
/// points at its owner (unretained; the owner outlives its handles), and
/// the owner hears when a handle has closed and its memory is gone.
class LoopObject {
    /// Called on the loop thread after a handle owned by this object closed.
    func handleDidClose(_ handle: UnsafeMutableRawPointer) {}

    final var unretained: UnsafeMutableRawPointer { Unmanaged.passUnretained(self).toOpaque() }

    static func owner(of data: UnsafeMutableRawPointer?) -> LoopObject {
        Unmanaged<LoopObject>.fromOpaque(data!).takeUnretainedValue()
    }
}

/// A loop object with one timer of its own, owned by it and initialised on
/// `loop`; `close` closes it (at shutdown).
class TimerOwner: LoopObject {
    let timer: UnsafeMutablePointer<uv_timer_t>

    init(loop: UnsafeMutablePointer<uv_loop_t>) {
        timer = UVHandle.allocate(UV_TIMER, as: uv_timer_t.self)
        super.init()
        UVHandle.setOwner(timer, self)
        uv_timer_init(loop, timer)
    }

    func close() { UVHandle.close(timer) }
}

/// Allocation and closing of libuv handles. A handle's memory is released
/// only in its close callback, as libuv requires.
enum UVHandle {
    /// Zeroed memory for a handle of `type`; give it an owner before use.
    static func allocate<Handle>(_ type: uv_handle_type, as _: Handle.Type) -> UnsafeMutablePointer<Handle> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: uv_handle_size(type), alignment: 16)
        raw.initializeMemory(as: UInt8.self, repeating: 0, count: uv_handle_size(type))
        return raw.bindMemory(to: Handle.self, capacity: 1)
    }

    static func allocate<Handle>(_ type: uv_handle_type, as kind: Handle.Type, owner: LoopObject) -> UnsafeMutablePointer<Handle> {
        let handle = allocate(type, as: kind)
        setOwner(handle, owner)
        return handle
    }

    /// Points the handle's `data` at its owner, who hears of its close.
    static func setOwner<Handle>(_ handle: UnsafeMutablePointer<Handle>, _ owner: LoopObject) {
        base(handle).pointee.data = owner.unretained
    }

    /// Frees a handle that was allocated but never initialised.
    static func deallocateUninitialised<Handle>(_ handle: UnsafeMutablePointer<Handle>) {
        UnsafeMutableRawPointer(handle).deallocate()
    }

    static func base<Handle>(_ handle: UnsafeMutablePointer<Handle>) -> UnsafeMutablePointer<uv_handle_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_handle_t.self)
    }

    static func stream<Handle>(_ handle: UnsafeMutablePointer<Handle>) -> UnsafeMutablePointer<uv_stream_t> {
        UnsafeMutableRawPointer(handle).assumingMemoryBound(to: uv_stream_t.self)
    }

    /// Closes the handle (once); its owner hears of it from the close callback.
    static func close<Handle>(_ handle: UnsafeMutablePointer<Handle>) {
        let base = base(handle)
        if uv_is_closing(base) != 0 { return }
        uv_close(base, uvHandleClosed)
    }
}

private func uvHandleClosed(_ handle: UnsafeMutablePointer<uv_handle_t>?) {
    guard let handle else { return }
    let owner = LoopObject.owner(of: handle.pointee.data)
    owner.handleDidClose(UnsafeMutableRawPointer(handle))
    UnsafeMutableRawPointer(handle).deallocate()
}
