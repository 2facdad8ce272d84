import Corral
import Foundation

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

    /// Decodes `text`; `defaultID` is used when the spec has no `id`.
    public static func decode(_ text: some StringProtocol, defaultID: String, defaults: Defaults = Defaults())
        -> Result<Decoded, SpecError>
    {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: Data(text.utf8))
        } catch {
            return .failure(SpecError(id: defaultID, field: nil, message: "not valid JSON: \(describe(error))"))
        }
        guard case .object(let object) = value else {
            return .failure(SpecError(id: defaultID, field: nil, message: "expected a JSON object, got \(value.kind)"))
        }
        var id = defaultID
        switch object["id"] {
        case .string(let given)?: id = given
        case .number(let number)? where number == number.rounded(): id = String(Int(number))
        case nil, .null?: break
        case let other?: return .failure(SpecError(id: defaultID, field: "id", message: "expected a string, got \(other.kind)"))
        }
        do {
            return .success(Decoded(id: id, spec: try spec(from: object, defaults: defaults)))
        } catch let error as FieldError {
            return .failure(SpecError(id: id, field: error.field, message: error.message))
        } catch {
            return .failure(SpecError(id: id, field: nil, message: "\(error)"))
        }
    }

    private struct FieldError: Error {
        let field: String
        let message: String
    }

    private static func spec(from object: [String: JSONValue], defaults: Defaults) throws -> JobSpec {
        if let unknown = object.keys.sorted().first(where: { !fields.contains($0) }) {
            throw FieldError(field: unknown, message: "unknown field")
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
            for key in try reader.strings("unset_env", unset) { changes[key] = .some(nil) }
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
            case .number(let id) where id >= 0 && id == id.rounded(): spec.user = .id(UInt32(id))
            default: spec.user = .name(try reader.string("user", user))
            }
        }
        if let group = object["group"] {
            switch group {
            case .number(let id) where id >= 0 && id == id.rounded(): spec.group = .id(UInt32(id))
            default: spec.group = .name(try reader.string("group", group))
            }
        }
        do {
            try spec.validate()
        } catch {
            throw FieldError(field: error.message.split(separator: ":").first.map(String.init) ?? "spec", message: error.message)
        }
        return spec
    }

    private struct FieldReader {
        let object: [String: JSONValue]

        func string(_ field: String, _ value: JSONValue) throws -> String {
            guard case .string(let text) = value else { throw FieldError(field: field, message: "expected a string, got \(value.kind)") }
            return text
        }

        func strings(_ field: String, _ value: JSONValue) throws -> [String] {
            guard case .array(let items) = value else { throw FieldError(field: field, message: "expected an array of strings, got \(value.kind)") }
            return try items.enumerated().map { try string("\(field)[\($0.offset)]", $0.element) }
        }

        func bool(_ field: String) throws -> Bool {
            switch object[field] {
            case nil, .null?: return false
            case .bool(let flag)?: return flag
            case let other?: throw FieldError(field: field, message: "expected true or false, got \(other.kind)")
            }
        }

        func duration(_ field: String) throws -> Duration? {
            switch object[field] {
            case nil, .null?: return nil
            case .number(let seconds)?:
                guard let duration = DurationText.parse(seconds: seconds) else {
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

        func size(_ field: String) throws -> OutputLimit? {
            let bytes: Int?
            switch object[field] {
            case nil, .null?: return nil
            case .number(let number)?: bytes = number >= 0 && number == number.rounded() ? Int(number) : nil
            case .string(let text)?: bytes = SizeText.parse(text)
            case let other?: throw FieldError(field: field, message: "expected \(SizeText.accepted), got \(other.kind)")
            }
            guard let bytes else { throw FieldError(field: field, message: "expected \(SizeText.accepted)") }
            return bytes == 0 ? .unlimited : .bytes(bytes)
        }

        func signal(_ field: String, _ value: JSONValue) throws -> Signal {
            let text: String
            switch value {
            case .string(let given): text = given
            case .number(let number): text = String(Int(number))
            default: throw FieldError(field: field, message: "expected a signal name or number, got \(value.kind)")
            }
            guard let signal = Signal(parsing: text) else {
                throw FieldError(field: field, message: "unknown signal \"\(text)\" (expected TERM, SIGTERM, term or 15)")
            }
            return signal
        }
    }

    private static func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let context) = error {
            return (context.underlyingError.map { "\($0.localizedDescription)" } ?? context.debugDescription)
        }
        return "\(error)"
    }
}

/// A spec that cannot be run: which job, which field, what is wrong.
public struct SpecError: Error, Sendable, CustomStringConvertible {
    public let id: String
    public let field: String?
    public let message: String

    public var description: String {
        guard let field else { return message }
        return message.hasPrefix(field) ? message : "\(field): \(message)"
    }
}
