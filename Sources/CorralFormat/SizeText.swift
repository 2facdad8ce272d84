import Foundation

/// Sizes as people write them: `64KiB`, `1MiB`, `10MB`, `1G`, bare bytes.
/// KB, MB and GB are powers of 1000; KiB, MiB and GiB (and K, M, G) of 1024.
public enum SizeText {
    public static let accepted = "a size like 65536, 64KiB, 1MiB or 10MB (0 for unlimited)"

    public static func parse(_ text: String) -> Int? {
        let trimmed = text.trimmingCharacters(in: .whitespaces)
        let digits = trimmed.prefix(while: { $0.isNumber || $0 == "." })
        guard !digits.isEmpty, let value = Double(digits), value >= 0 else { return nil }
        let unit = String(trimmed.dropFirst(digits.count)).trimmingCharacters(in: .whitespaces).lowercased()
        let multiplier: Double
        switch unit {
        case "", "b": multiplier = 1
        case "kb": multiplier = 1e3
        case "mb": multiplier = 1e6
        case "gb": multiplier = 1e9
        case "k", "kib": multiplier = 1024
        case "m", "mib": multiplier = 1024 * 1024
        case "g", "gib": multiplier = 1024 * 1024 * 1024
        default: return nil
        }
        let bytes = value * multiplier
        guard bytes < Double(Int.max) else { return nil }
        return Int(bytes)
    }
}
