/// Accumulates one output stream under a cap: the first half of the cap is
/// kept as it arrives, the last half in a ring, and every byte that falls
/// between them is counted.
struct OutputBuffer {
    private let headCapacity: Int
    private let tailCapacity: Int
    private let unlimited: Bool
    private var head: [UInt8] = []
    private var ring: [UInt8] = []
    /// Index of the oldest byte in `ring` once it is full.
    private var ringStart = 0
    private(set) var droppedBytes = 0

    init(limit: OutputLimit) {
        if let limit = limit.bytes {
            unlimited = false
            headCapacity = limit / 2
            tailCapacity = limit - limit / 2
        } else {
            unlimited = true
            headCapacity = .max
            tailCapacity = 0
        }
    }

    mutating func append(_ chunk: UnsafeRawBufferPointer) {
        if unlimited {
            head.append(contentsOf: chunk)
            return
        }
        var rest = chunk[...]
        if head.count < headCapacity {
            let take = min(headCapacity - head.count, rest.count)
            head.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
        }
        if rest.isEmpty { return }
        if tailCapacity == 0 {
            droppedBytes += rest.count
            return
        }
        if rest.count >= tailCapacity {
            // The chunk alone fills the ring: whatever was there is dropped.
            droppedBytes += ring.count + rest.count - tailCapacity
            ring.removeAll(keepingCapacity: true)
            ring.append(contentsOf: rest.suffix(tailCapacity))
            ringStart = 0
            return
        }
        let room = tailCapacity - ring.count
        if room > 0 {
            let take = min(room, rest.count)
            ring.append(contentsOf: rest.prefix(take))
            rest = rest.dropFirst(take)
        }
        // Overwrite the oldest bytes of the full ring, in at most two copies.
        droppedBytes += rest.count
        while !rest.isEmpty {
            let count = min(tailCapacity - ringStart, rest.count)
            let source = UnsafeRawBufferPointer(rebasing: rest.prefix(count))
            ring.withUnsafeMutableBytes { target in
                target.baseAddress!.advanced(by: ringStart).copyMemory(from: source.baseAddress!, byteCount: count)
            }
            ringStart = (ringStart + count) % tailCapacity
            rest = rest.dropFirst(count)
        }
    }

    /// Moves the kept bytes out (O(1): the arrays change hands, nothing is
    /// copied), for `KeptOutput.captured()` to put in stream order off the
    /// loop thread. The buffer is empty afterwards.
    mutating func take() -> KeptOutput {
        defer {
            head = []
            ring = []
            ringStart = 0
        }
        return KeptOutput(head: head, ring: ring, ringStart: ringStart, droppedBytes: droppedBytes)
    }
}

/// A stream's kept bytes as the loop hands them over: the head, and the
/// tail ring with its oldest byte at `ringStart`. Putting the ring in order
/// copies up to the whole limit (100 MiB for `--max-output 100MiB`), so it
/// is done by `captured()` on the delivery thread, never on the loop.
struct KeptOutput: Sendable {
    let head: [UInt8]
    let ring: [UInt8]
    let ringStart: Int
    let droppedBytes: Int

    static let empty = KeptOutput(head: [], ring: [], ringStart: 0, droppedBytes: 0)

    /// The kept bytes in stream order, with the dropped count.
    func captured() -> CapturedOutput {
        if ring.isEmpty { return CapturedOutput(bytes: head, droppedBytes: droppedBytes, headCount: head.count) }
        var bytes = head
        bytes.reserveCapacity(head.count + ring.count)
        bytes.append(contentsOf: ring[ringStart...])
        bytes.append(contentsOf: ring[..<ringStart])
        return CapturedOutput(bytes: bytes, droppedBytes: droppedBytes, headCount: head.count)
    }
}
