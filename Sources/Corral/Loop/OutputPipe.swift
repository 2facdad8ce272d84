import CLibUV

/// The read end of one output pipe of a job, read with `uv_read_start`.
final class OutputPipe: LoopObject {
    private unowned let job: LoopJob
    let stream: OutputChunk.Stream
    private let handle: UnsafeMutablePointer<uv_pipe_t>
    private var buffer: OutputBuffer
    private let onOutput: (@Sendable (OutputChunk) -> Void)?
    /// Still reading: neither end-of-file nor closed.
    private(set) var isOpen = false
    /// Reading stopped until the host consumes what it was handed.
    private(set) var isPaused = false

    /// Takes ownership of `fd`. Returns nil (and closes `fd`) if libuv refuses it.
    init?(job: LoopJob, stream: OutputChunk.Stream, fd: Int32, limit: OutputLimit,
          onOutput: (@Sendable (OutputChunk) -> Void)?) {
        self.job = job
        self.stream = stream
        self.buffer = OutputBuffer(limit: limit)
        self.onOutput = onOutput
        handle = UVHandle.allocate(UV_NAMED_PIPE, as: uv_pipe_t.self)
        super.init()
        UVHandle.setOwner(handle, self)
        uv_pipe_init(job.scheduler.loop, handle, 0)
        let opened = uv_pipe_open(handle, fd) == 0
        guard opened, uv_read_start(UVHandle.stream(handle), outputAllocate, outputRead) == 0 else {
            if !opened { Syscalls.close(fd) }  // once opened, libuv closes it
            // This object will not outlive init: let the close callback go
            // straight to the job, which counted the handle.
            UVHandle.setOwner(handle, job)
            UVHandle.close(handle)
            return nil
        }
        isOpen = true
    }

    /// Moves the kept output out (O(1)); see `KeptOutput`.
    func takeKept() -> KeptOutput { buffer.take() }

    fileprivate func received(_ bytes: UnsafeRawBufferPointer) {
        buffer.append(bytes)
        guard let onOutput else { return }
        // Queued for the host's callback on the delivery thread; the job
        // counts it until consumed, and stops reading past the high mark.
        onOutput(OutputChunk(jobID: job.id, stream: stream, bytes: Array(bytes)))
        job.outputHandedOver(bytes.count)
    }

    /// Stops reading (backpressure): the job's own writes block once the
    /// pipe is full; its deadline and stop sequence run as always.
    func pause() {
        guard isOpen, !isPaused else { return }
        isPaused = true
        uv_read_stop(UVHandle.stream(handle))
    }

    /// Reads again once the host has caught up.
    func resume() {
        guard isOpen, isPaused else { return }
        isPaused = false
        if uv_read_start(UVHandle.stream(handle), outputAllocate, outputRead) != 0 { reachedEnd() }
    }

    /// End-of-file or a read error: the stream is complete.
    fileprivate func reachedEnd() {
        close()
        job.outputDidEnd()
    }

    /// Stops reading and closes the read end (libuv closes the fd).
    /// The pipe's inode while it is open, to find who else holds it. Read
    /// only when pipes are force-closed, not for every job.
    var inode: UInt64? {
        var fd: uv_os_fd_t = -1
        guard isOpen, uv_fileno(UVHandle.base(handle), &fd) == 0 else { return nil }
        return ProcFiles.inode(of: fd)
    }

    func close() {
        guard isOpen else { return }
        isOpen = false
        UVHandle.close(handle)
    }

    override func handleDidClose(_ handle: UnsafeMutableRawPointer) {
        job.handleDidClose(handle)
    }

    fileprivate var scheduler: JobScheduler { job.scheduler }
}

private func outputAllocate(_ handle: UnsafeMutablePointer<uv_handle_t>?, _ suggested: Int,
                            _ buffer: UnsafeMutablePointer<uv_buf_t>?) {
    let pipe = unsafeDowncast(LoopObject.owner(of: handle!.pointee.data), to: OutputPipe.self)
    let shared = pipe.scheduler.readBuffer
    buffer!.pointee = uv_buf_init(shared.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(shared.count))
}

private func outputRead(_ stream: UnsafeMutablePointer<uv_stream_t>?, _ count: Int,
                        _ buffer: UnsafePointer<uv_buf_t>?) {
    let pipe = unsafeDowncast(LoopObject.owner(of: stream!.pointee.data), to: OutputPipe.self)
    if count > 0 {
        pipe.received(UnsafeRawBufferPointer(start: buffer!.pointee.base, count: count))
    } else if count < 0 {
        pipe.reachedEnd()  // UV_EOF, or an error that ends the stream all the same
    }
}
