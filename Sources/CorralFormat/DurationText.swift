import Corral

/// Durations as people write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`,
/// `7d`, `1.5s`; a bare number is seconds. Nothing negative, nothing past
/// `JobSpec.maximumDuration` (3650 days), so no later conversion can trap.
public enum DurationText {
    public static let accepted =
        "a duration like 500ms, 30s, 5m, 1h30m, 7d or a number of seconds, at most \(maximumText)"

    /// `JobSpec.maximumDuration` as written here.
    public static let maximumText = "\(JobSpec.maximumDuration.components.seconds / 86_400)d"

    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.utf8.drop(while: isBlank).reversed().drop(while: isBlank).reversed()
        guard !trimmed.isEmpty else { return nil }
        var rest = Substring(String(decoding: trimmed, as: UTF8.self))
        if let seconds = decimal(rest) { return parse(seconds: seconds) }
        var total = Duration.zero
        while !rest.isEmpty {
            let number = rest.prefix(while: { ("0"..."9").contains($0) || $0 == "." })
            guard let value = decimal(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { $0.isLetter })
            rest = rest.dropFirst(unit.count)
            let perUnit: Double
            switch unit {
            case "us", "µs": perUnit = 1e-6
            case "ms": perUnit = 1e-3
            case "s": perUnit = 1
            case "m": perUnit = 60
            case "h": perUnit = 3600
            case "d": perUnit = 86_400
            default: return nil
            }
            guard let part = parse(seconds: value * perUnit) else { return nil }
            total += part
            guard total <= JobSpec.maximumDuration else { return nil }
        }
        return total
    }

    /// A number of seconds from JSON or text: finite, not negative, at most
    /// the maximum; nil otherwise.
    public static func parse(seconds: Double) -> Duration? {
        guard seconds.isFinite, seconds >= 0,
              seconds <= Double(JobSpec.maximumDuration.components.seconds) else { return nil }
        return .nanoseconds(Int64((seconds * 1e9).rounded()))
    }

    /// Digits with at most one decimal point and a digit on each side of it
    /// or before it: `30`, `1.5`, `2.`. No sign, exponent, hex or `inf`.
    private static func decimal(_ text: Substring) -> Double? {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty,
              parts.allSatisfy({ $0.allSatisfy { ("0"..."9").contains($0) } }) else { return nil }
        return Double(text)
    }

    private static func isBlank(_ byte: UInt8) -> Bool { byte == 0x20 || byte == 0x09 }
}
