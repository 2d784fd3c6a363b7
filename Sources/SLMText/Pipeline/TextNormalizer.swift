import Foundation

/// Options for turning body text into training text.
public struct NormalizationOptions: Sendable {
    public var charset: Charset
    /// Fold upper case to lower case (always on for charsets without capitals).
    public var lowercase: Bool
    /// Spell out numbers ("42" → "forty-two") instead of keeping or dropping digits.
    public var numeralsAsWords: Bool

    public init(charset: Charset, lowercase: Bool = false, numeralsAsWords: Bool = false) {
        self.charset = charset
        self.lowercase = lowercase || charset.lowercase
        self.numeralsAsWords = numeralsAsWords
    }
}

/// Counts of what normalisation removed, by reason and by character.
public struct DropCounts: Sendable, Codable, Equatable {
    /// Characters outside the charset with no sensible mapping.
    public var outsideCharset: [String: Int] = [:]
    /// Superscript footnote digits.
    public var footnoteMarks = 0

    public init() {}

    public var total: Int { outsideCharset.values.reduce(0, +) + footnoteMarks }

    enum CodingKeys: String, CodingKey {
        case outsideCharset = "outside_charset", footnoteMarks = "footnote_marks"
    }

    mutating func add(_ other: DropCounts) {
        outsideCharset.merge(other.outsideCharset, uniquingKeysWith: +)
        footnoteMarks += other.footnoteMarks
    }
}

/// NFKC, typography to ASCII, accents removed, optional lower case and spelled-out
/// numbers, then the charset: mapped where a mapping makes sense, dropped and counted
/// otherwise. Whitespace runs become one space.
public struct TextNormalizer: Sendable {
    public let options: NormalizationOptions

    public init(_ options: NormalizationOptions) { self.options = options }

    public func normalize(_ text: String, drops: inout DropCounts) -> String {
        // Superscript digits are footnote references here; NFKC would turn them into words.
        var cleaned = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if TextNormalizer.superscriptDigits.contains(u.value) {
                drops.footnoteMarks += 1
            } else {
                cleaned.append(u)
            }
        }
        var s = String(cleaned).precomposedStringWithCompatibilityMapping
        s = TextNormalizer.asciiTypography(s)
        if options.numeralsAsWords { s = NumberWords.spellOut(in: s) }
        if options.lowercase { s = s.lowercased() }
        return filter(s, drops: &drops)
    }

    private func filter(_ s: String, drops: inout DropCounts) -> String {
        var out = String.UnicodeScalarView()
        out.reserveCapacity(s.unicodeScalars.count)
        var pendingSpace = false
        func emit(_ text: String) {
            for u in text.unicodeScalars {
                if u == " " {
                    pendingSpace = !out.isEmpty
                } else {
                    if pendingSpace { out.append(" ") }
                    pendingSpace = false
                    out.append(u)
                }
            }
        }
        for u in s.unicodeScalars {
            if u.properties.isWhitespace {
                emit(" ")
            } else if options.charset.contains(u) {
                emit(String(u))
            } else if u.isASCII, let replacement = options.charset.substitute(u) {
                emit(replacement)
            } else {
                drops.outsideCharset[String(u), default: 0] += 1
            }
        }
        return String(out)
    }

    static let superscriptDigits: Set<UInt32> = Set([0xB9, 0xB2, 0xB3, 0x2070] + Array(0x2074...0x2079))

    /// Quotes, dashes and ligature letters to ASCII; accents stripped from letters.
    static func asciiTypography(_ s: String) -> String {
        var out = String.UnicodeScalarView()
        for u in s.decomposedStringWithCanonicalMapping.unicodeScalars {
            switch u.value {
            case 0x2018, 0x2019, 0x201A, 0x201B, 0x2032, 0x00B4: out.append("'")
            case 0x201C, 0x201D, 0x201E, 0x201F, 0x2033, 0x00AB, 0x00BB: out.append("\"")
            case 0x2010...0x2015, 0x2212: out.append("-")
            case 0x2044: out.append("/")
            case 0x00E6: out.append(contentsOf: "ae".unicodeScalars)
            case 0x00C6: out.append(contentsOf: "Ae".unicodeScalars)
            case 0x0153: out.append(contentsOf: "oe".unicodeScalars)
            case 0x0152: out.append(contentsOf: "Oe".unicodeScalars)
            case 0x00DF: out.append(contentsOf: "ss".unicodeScalars)
            default:
                // Combining marks left by the decomposition are accents on Latin letters.
                if u.properties.generalCategory == .nonspacingMark { continue }
                out.append(u)
            }
        }
        return String(out).precomposedStringWithCanonicalMapping
    }
}
