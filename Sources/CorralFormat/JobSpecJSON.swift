import Corral

/// Decodes one job spec from JSON, the schema `corral batch` reads and the
/// agent's API takes. Every problem is reported naming the field.
public enum JobSpecJSON {
    /// Defaults applied where a spec says nothing.
    public struct Defaults: Sendable {
        public var timeout: Duration?
        public var outputLimit: OutputLimit = .default
        public init() {}
    }

    public struct Decoded: Sendable {
        public var id: String
        public var spec: JobSpec
    }

    public static let fields: Set<String> = [
        "id", "argv", "shell", "env", "unset_env", "clear_env", "cwd", "stdin", "timeout", "signal",
        "kill_after", "drain", "max_output", "combine_output", "leave_running", "user", "group",
    ]

    /// The longest `id` accepted, in bytes.
    public static let maximumIDLength = 1024

    /// Decodes `text`; `defaultID` is used when the spec has no `id`.
    public static func decode(_ text: some StringProtocol, defaultID: String, defaults: Defaults = Defaults())
        -> Result<Decoded, SpecError>
    {
        decode(bytes: text.utf8, defaultID: defaultID, defaults: defaults)
    }

    /// Decodes one spec from the bytes of a JSON object, strictly: invalid
    /// UTF-8, duplicate keys, unknown fields, fractions where a whole number
    /// is meant and values out of their documented range are errors naming
    /// the field, never repaired or clamped.
    public static func decode(bytes: some Collection<UInt8>, defaultID: String, defaults: Defaults = Defaults())
        -> Result<Decoded, SpecError>
    {
        let value: JSONValue
        switch JSONParser.parse(bytes) {
        case .success(let parsed): value = parsed
        case .failure(let failure):
            return .failure(SpecError(id: defaultID, field: nil, message: "not valid JSON: \(failure)"))
        }
        guard case .object(let object) = value else {
            return .failure(SpecError(id: defaultID, field: nil, message: "expected a JSON object, got \(value.kind)"))
        }
        var id = defaultID
        switch object["id"] {
        case .string(let given)?:
            guard given.utf8.count <= maximumIDLength else {
                return .failure(SpecError(id: defaultID, field: "id", message: "is longer than \(maximumIDLength) bytes"))
            }
            id = given
        case .number(let number)?:
            guard let whole = number.integer else {
                return .failure(SpecError(id: defaultID, field: "id",
                                          message: "expected a string or a whole number that fits 64 bits, got \(number)"))
            }
            id = String(whole)
        case nil, .null?: break
        case let other?: return .failure(SpecError(id: defaultID, field: "id", message: "expected a string, got \(other.kind)"))
        }
        do {
            return .success(Decoded(id: id, spec: try spec(from: object, defaults: defaults)))
        } catch {
            return .failure(SpecError(id: id, field: error.field, message: error.message))
        }
    }

    private struct FieldError: Error {
        let field: String
        let message: String

        init(field: String, message: String) {
            self.field = field
            self.message = message
        }

        /// `JobSpec.validate()`'s message ("arguments[0]: contains a NUL
        /// byte") in this schema's own field names ("argv[1]").
        init(libraryMessage: String, command: Command) {
            let colon = libraryMessage.firstIndex(of: ":") ?? libraryMessage.endIndex
            let name = libraryMessage[..<colon]
            let rest = libraryMessage[colon...].drop(while: { $0 == ":" || $0 == " " })
            let isShell = command.shellText != nil
            switch name {
            case "command": field = isShell ? "shell" : "argv"
            case "workingDirectory": field = "cwd"
            case "environment": field = "env"
            case "outputLimit": field = "max_output"
            case "killGrace": field = "kill_after"
            case "drainTimeout": field = "drain"
            case "stopSignal": field = "signal"
            case _ where name.hasPrefix("arguments["):
                let index = Int(name.dropFirst("arguments[".count).dropLast()) ?? 0
                field = "argv[\(index + 1)]"
            default: field = String(name)
            }
            message = String(rest)
        }
    }

    private static func spec(from given: [String: JSONValue], defaults: Defaults) throws(FieldError) -> JobSpec {
        if let unknown = given.keys.sorted().first(where: { !fields.contains($0) }) {
            throw FieldError(field: unknown, message: "unknown field")
        }
        // null is the field left out (its default), for every field but
        // the command's: argv or shell is given, exactly one of them.
        let object = given.filter { field, value in
            if case .null = value { ["argv", "shell"].contains(field) } else { true }
        }
        let reader = FieldReader(object: object)
        let command: Command
        switch (object["argv"], object["shell"]) {
        case (nil, nil), (.null?, nil), (nil, .null?):
            throw FieldError(field: "argv", message: "a job needs \"argv\" (an array of strings) or \"shell\" (a string)")
        case (let argv?, nil):
            let words = try reader.strings("argv", argv)
            guard let first = words.first, !first.isEmpty else { throw FieldError(field: "argv", message: "is empty") }
            command = .executable(first, arguments: Array(words.dropFirst()))
        case (nil, let shell?):
            command = .shell(try reader.string("shell", shell))
        default:
            throw FieldError(field: "shell", message: "give either \"argv\" or \"shell\", not both")
        }
        var spec = JobSpec(command)
        var changes: [String: String?] = [:]
        if let env = object["env"] {
            guard case .object(let variables) = env else { throw FieldError(field: "env", message: "expected an object of strings, got \(env.kind)") }
            for (key, value) in variables { changes[key] = try reader.string("env.\(key)", value) }
        }
        if let unset = object["unset_env"] {
            for key in try reader.strings("unset_env", unset) {
                // Two spellings of one name to Swift would unset one variable
                // named as set (`Environment.otherSpelling`); the JSON parser
                // already refuses them as duplicate keys within `env`.
                if let held = Environment.otherSpelling(of: key, in: changes) {
                    let owner = changes[held] == .some(nil) ? "" : "env's "
                    throw FieldError(field: "unset_env", message: "\(Environment.spelled(key)) and \(owner)\(Environment.spelled(held)) are one name in Unicode but different bytes; give one spelling")
                }
                changes[key] = .some(nil)
            }
        }
        if try reader.bool("clear_env") {
            spec.environment = .custom(changes.compactMapValues { $0 })
        } else if !changes.isEmpty {
            spec.environment = .inherit(updating: changes)
        }
        if let cwd = object["cwd"] { spec.workingDirectory = try reader.string("cwd", cwd) }
        if let stdin = object["stdin"] { spec.input = .text(try reader.string("stdin", stdin)) }
        spec.timeout = try reader.duration("timeout") ?? defaults.timeout
        if let grace = try reader.duration("kill_after") { spec.killGrace = grace }
        if let drain = try reader.duration("drain") { spec.drainTimeout = drain }
        if let signal = object["signal"] { spec.stopSignal = try reader.signal("signal", signal) }
        spec.outputLimit = try reader.size("max_output") ?? defaults.outputLimit
        if try reader.bool("combine_output") { spec.output = .combined }
        if try reader.bool("leave_running") { spec.lingering = .leaveRunning }
        if let user = object["user"] {
            switch user {
            case .number(let number): spec.user = .id(try reader.identity("user", number))
            default: spec.user = .name(try reader.name("user", user))
            }
        }
        if let group = object["group"] {
            switch group {
            case .number(let number): spec.group = .id(try reader.identity("group", number))
            default: spec.group = .name(try reader.name("group", group))
            }
        }
        if spec.timeout == .zero {
            throw FieldError(field: "timeout", message: "must be more than 0 (leave it out, or null, for the default: none, unless the batch or the agent sets one)")
        }
        do {
            try spec.validate()
        } catch {
            throw FieldError(libraryMessage: error.message, command: spec.command)
        }
        return spec
    }

    private struct FieldReader {
        let object: [String: JSONValue]

        func string(_ field: String, _ value: JSONValue) throws(FieldError) -> String {
            guard case .string(let text) = value else { throw FieldError(field: field, message: "expected a string, got \(value.kind)") }
            return text
        }

        func strings(_ field: String, _ value: JSONValue) throws(FieldError) -> [String] {
            guard case .array(let items) = value else { throw FieldError(field: field, message: "expected an array of strings, got \(value.kind)") }
            var strings: [String] = []
            for (index, item) in items.enumerated() { strings.append(try string("\(field)[\(index)]", item)) }
            return strings
        }

        /// A user or group name: a non-empty string that is not a number
        /// in disguise (numbers are given as JSON numbers).
        func name(_ field: String, _ value: JSONValue) throws(FieldError) -> String {
            let text = try string(field, value)
            if text.isEmpty { throw FieldError(field: field, message: "is empty") }
            if text.first == "-" || text.allSatisfy({ ("0"..."9").contains($0) }) {
                throw FieldError(field: field, message: "expected a name, or an id as a JSON number (0 to 4294967294, without quotes), got the string \"\(text)\"")
            }
            return text
        }

        /// A uid or gid: whole, 0 to 2^32 - 2 (2^32 - 1 means "unchanged").
        func identity(_ field: String, _ number: JSONNumber) throws(FieldError) -> UInt32 {
            guard let whole = number.integer, whole >= 0, whole < Int64(UInt32.max) else {
                throw FieldError(field: field, message: "expected a name or a number from 0 to 4294967294, got \(number)")
            }
            return UInt32(whole)
        }

        func bool(_ field: String) throws(FieldError) -> Bool {
            switch object[field] {
            case nil, .null?: return false
            case .bool(let flag)?: return flag
            case let other?: throw FieldError(field: field, message: "expected true or false, got \(other.kind)")
            }
        }

        func duration(_ field: String) throws(FieldError) -> Duration? {
            switch object[field] {
            case nil, .null?: return nil
            case .number(let seconds)?:
                guard let duration = DurationText.parse(seconds: seconds.double) else {
                    throw FieldError(field: field, message: "expected \(DurationText.accepted), got \(seconds)")
                }
                return duration
            case .string(let text)?:
                guard let duration = DurationText.parse(text) else {
                    throw FieldError(field: field, message: "expected \(DurationText.accepted), got \"\(text)\"")
                }
                return duration
            case let other?: throw FieldError(field: field, message: "expected \(DurationText.accepted), got \(other.kind)")
            }
        }

        func size(_ field: String) throws(FieldError) -> OutputLimit? {
            let bytes: Int?
            switch object[field] {
            case nil, .null?: return nil
            case .number(let number)?:
                bytes = number.integer.flatMap { $0 >= 0 && $0 <= Int64(SizeText.maximum) ? Int($0) : nil }
                guard bytes != nil else { throw FieldError(field: field, message: "expected \(SizeText.accepted), got \(number)") }
            case .string(let text)?:
                bytes = SizeText.parse(text)
                guard bytes != nil else { throw FieldError(field: field, message: "expected \(SizeText.accepted), got \"\(text)\"") }
            case let other?: throw FieldError(field: field, message: "expected \(SizeText.accepted), got \(other.kind)")
            }
            guard let bytes else { throw FieldError(field: field, message: "expected \(SizeText.accepted)") }
            return bytes == 0 ? .unlimited : .bytes(bytes)
        }

        func signal(_ field: String, _ value: JSONValue) throws(FieldError) -> Signal {
            let text: String
            switch value {
            case .string(let given): text = given
            case .number(let number):
                guard let whole = number.integer, (1...64).contains(whole) else {
                    throw FieldError(field: field, message: "expected a signal name or a number from 1 to 64, got \(number)")
                }
                text = String(whole)
            default: throw FieldError(field: field, message: "expected a signal name or number, got \(value.kind)")
            }
            guard let signal = Signal(parsing: text) else {
                throw FieldError(field: field, message: "unknown signal \"\(text)\" (expected TERM, SIGTERM, term or 15)")
            }
            return signal
        }
    }
}

/// A spec that cannot be run: which job, which field, what is wrong.
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public let id: String
    public let field: String?
    public let message: String

    public var description: String {
        guard let field else { return message }
        return "\(field): \(message)"
    }
}
