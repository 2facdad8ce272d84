import CorralAgent
import CorralFormat

/// `POST /v1/runs`, validated at the edge: every field typed and in range
/// before anything reaches the database.
struct RunRequest: Sendable {
    enum Target: Sendable {
        case hosts([String])
        case labels([String: String])
        case all
    }

    /// A bound given as a count or as a percentage of the run's hosts.
    enum Bound: Sendable, Equatable {
        case count(Int)
        case percent(Int)

        /// The count for `hosts` hosts: a percentage rounds up for the
        /// window (at least 1) and down for the error budget.
        func resolved(hosts: Int, roundingUp: Bool) -> Int {
            switch self {
            case .count(let n): return n
            case .percent(let p):
                let scaled = hosts * p
                return roundingUp ? max(1, (scaled + 99) / 100) : scaled / 100
            }
        }
    }

    var name: String
    var target: Target
    /// The job spec as compact JSON (one line of `corral batch`), checked
    /// by the same decoder the agents use.
    var jobJSON: String
    var maxConcurrency: Bound?
    var maxErrors: Bound?
    /// The job's timeout + kill grace + drain, when it has a timeout: the
    /// server ends a task still running past this plus the agent TTL.
    var deadlineSeconds: Double?

    static let maximumNameBytes = 200
    static let maximumHosts = 100_000
    static let fields: Set<String> = ["name", "target", "job", "max_concurrency", "max_errors"]

    init(body: [UInt8]) throws(APIError) {
        let members = try RunRequest.object(body, fields: RunRequest.fields)
        switch members["name"] {
        case nil: name = "run"
        case .string(let text)? where RunRequest.isValidName(text): name = text
        default: throw APIError(.badRequest, "bad_request", RunRequest.nameRule, field: "name")
        }
        target = try RunRequest.target(members["target"])
        guard case .object? = members["job"], let job = members["job"] else {
            throw APIError(.badRequest, "bad_request", "job: a job spec object (one line of corral batch) is required", field: "job")
        }
        // PostgreSQL stores no NUL in text or JSONB: refused here, not a 503
        // at the insert (or, as JSONB, a list that fails for every reader).
        if RunRequest.containsNUL(job) {
            throw APIError(.badRequest, "invalid_spec", "job: contains a NUL character (\\u0000), which the fleet's database cannot store", field: "job")
        }
        jobJSON = job.jsonText
        switch JobSpecJSON.decode(jobJSON, defaultID: "") {
        case .failure(let error):
            throw APIError(.badRequest, "invalid_spec", "job: \(error.message)", field: error.field.map { "job.\($0)" } ?? "job")
        case .success(let decoded):
            let spec = decoded.spec
            deadlineSeconds = spec.timeout.map { ($0 + spec.killGrace + spec.drainTimeout).seconds }
        }
        maxConcurrency = try RunRequest.bound(members["max_concurrency"], field: "max_concurrency", minimum: 1)
        maxErrors = try RunRequest.bound(members["max_errors"], field: "max_errors", minimum: 0)
    }

    /// A run name: 1 to `maximumNameBytes` bytes, no NUL (PostgreSQL text holds none).
    static func isValidName(_ text: String) -> Bool {
        !text.isEmpty && text.utf8.count <= maximumNameBytes && !text.utf8.contains(0)
    }

    static var nameRule: String { "name: a string of 1 to \(maximumNameBytes) bytes, without NUL" }

    /// Whether any string or key in `value` holds a NUL.
    static func containsNUL(_ value: JSONValue) -> Bool {
        switch value {
        case .string(let text): text.utf8.contains(0)
        case .array(let items): items.contains(where: containsNUL)
        case .object(let members): members.contains { $0.key.utf8.contains(0) || containsNUL($0.value) }
        default: false
        }
    }

    /// A request body's members: a JSON object with only the `fields`
    /// named, or the error naming what is wrong.
    static func object(_ body: [UInt8], fields: Set<String>) throws(APIError) -> [String: JSONValue] {
        let value: JSONValue
        switch JSONParser.parse(body) {
        case .success(let parsed): value = parsed
        case .failure(let failure): throw APIError(.badRequest, "bad_json", "the body is not JSON: \(failure)")
        }
        guard case .object(let members) = value else {
            throw APIError(.badRequest, "bad_request", "the body must be a JSON object")
        }
        if let unknown = members.keys.sorted().first(where: { !fields.contains($0) }) {
            throw APIError(.badRequest, "bad_request", "unknown field \(unknown); known: \(fields.sorted().joined(separator: ", "))", field: unknown)
        }
        return members
    }

    private static func target(_ value: JSONValue?) throws(APIError) -> Target {
        let usage = "target: one of {\"hosts\": [names]}, {\"labels\": {key: value}} or {\"all\": true}"
        guard case .object(let members)? = value, members.count == 1, let (key, inner) = members.first else {
            throw APIError(.badRequest, "bad_request", usage, field: "target")
        }
        switch (key, inner) {
        case ("hosts", .array(let items)):
            var names: [String] = []
            for item in items {
                guard case .string(let name) = item, AgentName.isValid(name) else {
                    throw APIError(.badRequest, "bad_request", "target.hosts: each host is an agent name (\(AgentName.rule))", field: "target.hosts")
                }
                names.append(name)
            }
            guard !names.isEmpty, names.count <= maximumHosts else {
                throw APIError(.badRequest, "bad_request", "target.hosts: 1 to \(maximumHosts) names", field: "target.hosts")
            }
            guard Set(names).count == names.count else {
                throw APIError(.badRequest, "bad_request", "target.hosts: a host is named twice", field: "target.hosts")
            }
            return .hosts(names)
        case ("labels", .object(let pairs)):
            var labels: [String: String] = [:]
            for (name, value) in pairs {
                guard case .string(let text) = value, Labels.isValidKey(name), Labels.isValidValue(text) else {
                    throw APIError(.badRequest, "bad_request", "target.labels: \(Labels.rule)", field: "target.labels")
                }
                labels[name] = text
            }
            guard !labels.isEmpty else {
                throw APIError(.badRequest, "bad_request", "target.labels: at least one label", field: "target.labels")
            }
            return .labels(labels)
        case ("all", .bool(true)):
            return .all
        default:
            throw APIError(.badRequest, "bad_request", usage, field: "target")
        }
    }

    private static func bound(_ value: JSONValue?, field: String, minimum: Int) throws(APIError) -> Bound? {
        let usage = "\(field): a whole number from \(minimum) to 1000000, or a percentage \"N%\" from \(minimum) to 100"
        switch value {
        case nil: return nil
        case .number(let number)?:
            guard let n = number.integer, n >= minimum, n <= 1_000_000 else {
                throw APIError(.badRequest, "bad_request", usage, field: field)
            }
            return .count(Int(n))
        case .string(let text)? where text.hasSuffix("%"):
            let digits = text.dropLast()
            guard (1...3).contains(digits.count), digits.allSatisfy({ $0.isASCII && $0.isNumber }),
                  let p = Int(digits), p >= minimum, p <= 100 else {
                throw APIError(.badRequest, "bad_request", usage, field: field)
            }
            return .percent(p)
        default:
            throw APIError(.badRequest, "bad_request", usage, field: field)
        }
    }

    /// The target as stored with the run (frozen: the hosts it resolved to
    /// are its tasks).
    var targetJSON: String {
        switch target {
        case .hosts(let names): return "{\"hosts\":[" + names.map(JSONWriter.quote).joined(separator: ",") + "]}"
        case .labels(let labels): return "{\"labels\":" + JSONValue.object(labels.mapValues { .string($0) }).jsonText + "}"
        case .all: return "{\"all\":true}"
        }
    }
}

/// An agent's name (its host name in the fleet): 1 to 253 bytes of
/// letters, digits, `.`, `-` and `_`.
package enum AgentName {
    package static let rule = "1 to 253 letters, digits, '.', '-' or '_'"

    package static func isValid(_ name: String) -> Bool {
        (1...253).contains(name.utf8.count)
            && name.utf8.allSatisfy { byte in
                (byte >= 0x30 && byte <= 0x39) || (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A)
                    || byte == 0x2E || byte == 0x2D || byte == 0x5F
            }
    }
}

/// Agent labels `key=value`: keys as agent names (at most 63 bytes),
/// values of 0 to 253 printable ASCII bytes without spaces.
package enum Labels {
    package static let rule = "keys of 1 to 63 letters, digits, '.', '-' or '_'; values of at most 253 printable characters without spaces"

    package static func isValidKey(_ key: String) -> Bool { AgentName.isValid(key) && key.utf8.count <= 63 }

    package static func isValidValue(_ value: String) -> Bool {
        value.utf8.count <= 253 && value.utf8.allSatisfy { $0 > 0x20 && $0 < 0x7F }
    }

    /// Parses `key=value`.
    package static func parse(_ text: String) -> (String, String)? {
        guard let equals = text.firstIndex(of: "=") else { return nil }
        let key = String(text[..<equals])
        let value = String(text[text.index(after: equals)...])
        guard isValidKey(key), isValidValue(value) else { return nil }
        return (key, value)
    }
}
