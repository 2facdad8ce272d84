/// What a result keeps of one output stream.
public struct CapturedOutput: Hashable, Sendable {
    /// The bytes kept. When `droppedBytes > 0` these are the first half and
    /// the last half of the stream, with the dropped middle between them.
    public var bytes: [UInt8]
    /// How many bytes of the stream were not kept.
    public var droppedBytes: Int
    /// How many bytes the job wrote in all.
    public var totalBytes: Int { bytes.count + droppedBytes }
    /// Where the dropped bytes were, as an index into `bytes`: the kept
    /// head is `bytes[..<headCount]`, the kept tail the rest.
    public var headCount: Int

    public init(bytes: [UInt8] = [], droppedBytes: Int = 0, headCount: Int? = nil) {
        self.bytes = bytes
        self.droppedBytes = droppedBytes
        self.headCount = headCount ?? bytes.count
    }

    /// The kept bytes as UTF-8 text, with invalid sequences repaired.
    public var text: String { String(decoding: bytes, as: UTF8.self) }

    public static let empty = CapturedOutput()
}

/// One piece of output, as it arrived from the job.
public struct OutputChunk: Sendable {
    /// Which pipe a chunk came through. An enum, unlike the choices in a
    /// spec: a job has a standard output and a standard error, separate or
    /// through one pipe, and no other stream to add, so a consumer may
    /// switch over it exhaustively.
    public enum Stream: Hashable, Sendable {
        case stdout
        case stderr
        /// Both streams through one pipe (`OutputMode.combined`).
        case combined
    }

    public let jobID: JobID
    public let stream: Stream
    public let bytes: [UInt8]
}
