import Foundation

/// Per-chunk scores in [0, 1] for curriculum and filtering.
public enum TextScores {
    /// The three measures of difficulty, each normalised to [0, 1] with higher harder:
    /// how little the text compresses, how varied its words are (types over tokens), and
    /// how hard it reads (100 − Flesch reading ease, over 100). Rounded to 3 decimals.
    public struct Signals: Equatable, Sendable {
        public var compression, diversity, readability: Double

        /// Their mean: the chunk's difficulty.
        public var difficulty: Double { round3((compression + diversity + readability) / 3) }
    }

    public static func signals(_ text: String) -> Signals {
        let compressibility = clamp((compressionRatio(text) - 0.55) / 0.45)
        let words = TextScores.words(text)
        let diversity = words.isEmpty ? 0 : Double(Set(words).count) / Double(words.count)
        let readability = clamp((100 - fleschReadingEase(text, words: words)) / 100)
        return Signals(compression: round3(compressibility), diversity: round3(diversity), readability: round3(readability))
    }

    /// Harder text is less compressible, more lexically varied and less readable: the
    /// mean of the three signals.
    public static func difficulty(_ text: String) -> Double { signals(text).difficulty }

    /// Prose-likeness: mostly letters, sensible word lengths, balanced brackets and
    /// quotes, ending like a sentence, and not too short.
    public static func quality(_ text: String) -> Double {
        let visible = text.filter { $0 != " " }
        guard !visible.isEmpty else { return 0 }
        let letters = Double(visible.filter(\.isLetter).count) / Double(visible.count)
        let words = TextScores.words(text)
        let meanWord = words.isEmpty ? 0 : Double(words.reduce(0) { $0 + $1.count }) / Double(words.count)
        var q = clamp((letters - 0.5) / 0.3)
        q *= (2.5...9).contains(meanWord) ? 1 : 0.6
        q *= text.filter({ $0 == "(" }).count == text.filter({ $0 == ")" }).count ? 1 : 0.8
        q *= text.filter({ $0 == "\"" }).count % 2 == 0 ? 1 : 0.9
        q *= ".!?\"')".contains(text.last ?? " ") ? 1 : 0.8
        q *= 0.5 + 0.5 * min(1, Double(text.count) / 80)
        return round3(q)
    }

    /// Bits of a greedy LZ77 encoding (9-bit literals, 17-bit back-references of 3–18
    /// bytes within 255) over 8 bits per input byte. Near 1 for short varied text.
    static func compressionRatio(_ text: String) -> Double {
        let b = Array(text.utf8)
        guard b.count > 3 else { return 1 }
        var bits = 0, i = 0
        var lastSeen = [Int](repeating: -1, count: 4096)
        func hash(_ p: Int) -> Int { (Int(b[p]) &* 31 &+ Int(b[p + 1]) &* 7 &+ Int(b[p + 2])) & 4095 }
        while i < b.count {
            if i + 3 <= b.count {
                let h = hash(i), j = lastSeen[h]
                lastSeen[h] = i
                if j >= 0, i - j <= 255 {
                    var length = 0
                    while length < 18, i + length < b.count, b[j + length] == b[i + length] { length += 1 }
                    if length >= 3 {
                        bits += 17
                        i += length
                        continue
                    }
                }
            }
            bits += 9
            i += 1
        }
        return Double(bits) / Double(8 * b.count)
    }

    static func words(_ text: String) -> [String] {
        text.lowercased().split { !$0.isLetter && $0 != "'" }.map(String.init).filter { $0.contains(where: \.isLetter) }
    }

    /// Flesch reading ease with a vowel-group syllable count.
    static func fleschReadingEase(_ text: String, words: [String]) -> Double {
        guard !words.isEmpty else { return 100 }
        let sentences = max(1, text.filter { ".!?".contains($0) }.count)
        let syllables = words.reduce(0) { $0 + syllableCount($1) }
        return 206.835 - 1.015 * Double(words.count) / Double(sentences) - 84.6 * Double(syllables) / Double(words.count)
    }

    static func syllableCount(_ word: String) -> Int {
        var count = 0, previousVowel = false
        for c in word {
            let vowel = "aeiouy".contains(c)
            if vowel && !previousVowel { count += 1 }
            previousVowel = vowel
        }
        if word.hasSuffix("e") && count > 1 && !word.hasSuffix("le") { count -= 1 }
        return max(1, count)
    }

    static func clamp(_ x: Double) -> Double { min(1, max(0, x)) }
    static func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
}
