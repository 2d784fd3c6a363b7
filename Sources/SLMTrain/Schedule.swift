import Foundation

/// Linear warm-up to the peak rate, then cosine decay to a floor at the last step.
public struct LearningRateSchedule: Sendable, Equatable {
    public var peak: Double
    public var floor: Double
    public var warmup: Int
    public var total: Int

    public init(peak: Double, floor: Double, warmup: Int, total: Int) {
        self.peak = peak
        self.floor = floor
        self.warmup = warmup
        self.total = total
    }

    /// The rate for step `step` (0-based).
    public func callAsFunction(_ step: Int) -> Double {
        if step < warmup { return peak * Double(step + 1) / Double(warmup) }
        let span = max(1, total - 1 - warmup)
        let progress = min(1, Double(step - warmup) / Double(span))
        return floor + (peak - floor) * 0.5 * (1 + cos(.pi * progress))
    }
}

/// Durations written as 90s, 10m, 1h30m or plain seconds.
public enum Duration {
    public static func seconds(_ text: String) -> Double? {
        if let plain = Double(text) { return plain >= 0 ? plain : nil }
        var total = 0.0, number = ""
        for c in text {
            if c.isNumber || c == "." {
                number.append(c)
            } else {
                guard let value = Double(number) else { return nil }
                switch c {
                case "s": total += value
                case "m": total += 60 * value
                case "h": total += 3600 * value
                case "d": total += 86_400 * value
                default: return nil
                }
                number = ""
            }
        }
        return number.isEmpty && total > 0 ? total : nil
    }

    public static func format(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60)
    }
}
