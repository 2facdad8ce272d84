import Foundation

/// Durations as people write them: `500ms`, `30s`, `5m`, `1h`, `1h30m`,
/// `1.5s`; a bare number is seconds.
public enum DurationText {
    public static let accepted = "a duration like 500ms, 30s, 5m, 1h30m or a number of seconds"

    public static func parse(_ text: String) -> Duration? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        guard !trimmed.isEmpty else { return nil }
        if let seconds = Double(trimmed) { return seconds >= 0 && seconds.isFinite ? .seconds(seconds) : nil }
        var total = Duration.zero
        var rest = Substring(trimmed)
        while !rest.isEmpty {
            let number = rest.prefix(while: { $0.isNumber || $0 == "." })
            guard !number.isEmpty, let value = Double(number), value.isFinite else { return nil }
            rest = rest.dropFirst(number.count)
            let unit = rest.prefix(while: { $0.isLetter })
            rest = rest.dropFirst(unit.count)
            switch unit.lowercased() {
            case "ms": total += .milliseconds(value)
            case "s": total += .seconds(value)
            case "m": total += .seconds(value * 60)
            case "h": total += .seconds(value * 3600)
            case "us", "µs": total += .microseconds(value)
            default: return nil
            }
        }
        return total
    }

    /// A number of seconds from JSON (a number) or text.
    public static func parse(seconds: Double) -> Duration? {
        seconds >= 0 && seconds.isFinite ? .seconds(seconds) : nil
    }
}
