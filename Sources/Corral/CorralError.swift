/// An error thrown by Corral: only for a spec that cannot be run as written
/// or a runner that cannot take jobs. A job that fails is a result, not an
/// error (see `Outcome`).
public struct CorralError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The kind of error; new kinds may be added.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        let name: String
        /// The spec is not valid; the message names the field.
        public static let invalidSpec = Code(name: "invalidSpec")
        /// The runner was shut down and takes no more jobs.
        public static let shutDown = Code(name: "shutDown")
        /// The kernel lacks something Corral needs (Linux 5.4 or newer).
        public static let unsupportedSystem = Code(name: "unsupportedSystem")
        /// The runner could not set itself up (its event loop, a descriptor).
        public static let runnerFailure = Code(name: "runnerFailure")
        public var description: String { name }
    }

    public let code: Code
    /// A one-line message for a person.
    public let message: String
    /// The errno behind the error, when there is one.
    public let errno: Int32?

    public init(_ code: Code, _ message: String, errno: Int32? = nil) {
        self.code = code
        self.message = message
        self.errno = errno
    }

    public var description: String { message }
}
