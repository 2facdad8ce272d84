/// Sizes as people write them: `64KiB`, `1MiB`, `10MB`, `1G`, bare bytes.
/// KB, MB, GB and TB are powers of 1000; KiB, MiB, GiB and TiB (and K, M, G,
/// T) of 1024. Nothing past `SizeText.maximum`.
public enum SizeText {
    /// The largest size accepted: 1 TiB.
    public static let maximum = 1 << 40

    public static let accepted = "a size like 65536, 64KiB, 1MiB or 10MB (0 for unlimited), at most 1TiB"

    public static func parse(_ text: String) -> Int? {
        let trimmed = text.drop(while: { $0 == " " })
        let digits = trimmed.prefix(while: { ("0"..."9").contains($0) || $0 == "." })
        let parts = digits.split(separator: ".", omittingEmptySubsequences: false)
        guard (1...2).contains(parts.count), !parts[0].isEmpty,
              let value = Double(digits) else { return nil }
        let unit = trimmed.dropFirst(digits.count).drop(while: { $0 == " " })
            .reversed().drop(while: { $0 == " " }).reversed().map { $0.lowercased() }.joined()
        let multiplier: Double
        switch unit {
        case "", "b": multiplier = 1
        case "kb": multiplier = 1e3
        case "mb": multiplier = 1e6
        case "gb": multiplier = 1e9
        case "tb": multiplier = 1e12
        case "k", "kib": multiplier = 1024
        case "m", "mib": multiplier = 1_048_576
        case "g", "gib": multiplier = 1_073_741_824
        case "t", "tib": multiplier = 1_099_511_627_776
        default: return nil
        }
        return bytes(value * multiplier)
    }

    /// A byte count given as a number: whole, not negative, at most the maximum.
    public static func bytes(_ value: Double) -> Int? {
        guard value.isFinite, value >= 0, value <= Double(maximum) else { return nil }
        return Int(value.rounded(.down))
    }
}
