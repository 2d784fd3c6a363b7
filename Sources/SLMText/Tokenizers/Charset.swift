/// A named set of characters that a character-level model sees.
///
/// - `micro`: a–z, space and period (28 symbols), as the original character model.
/// - `classic`: a–z, space and . , ; : ? ! ' " - ( )
/// - `ascii`: printable ASCII and newline, case kept.
public struct Charset: Sendable, Equatable {
    public let name: String
    /// The characters, in the order their ids are assigned (by code point).
    public let characters: [Character]
    /// Whether upper case is folded to lower case (micro, classic).
    public let lowercase: Bool
    private let allowed: Set<Unicode.Scalar>

    init(name: String, scalars: [Unicode.Scalar], lowercase: Bool) {
        let sorted = scalars.sorted { $0.value < $1.value }
        self.name = name
        self.characters = sorted.map(Character.init)
        self.lowercase = lowercase
        self.allowed = Set(sorted)
    }

    public static let micro = Charset(name: "micro", scalars: letters + [" ", "."], lowercase: true)
    public static let classic = Charset(
        name: "classic", scalars: letters + Array(" .,;:?!'\"-()".unicodeScalars), lowercase: true)
    public static let ascii = Charset(
        name: "ascii", scalars: ["\n"] + (0x20...0x7E).map { Unicode.Scalar(UInt8($0)) }, lowercase: false)

    public static let all = [micro, classic, ascii]

    public static func named(_ name: String) throws(TokenizerError) -> Charset {
        guard let c = all.first(where: { $0.name == name }) else { throw .unknownCharset(name) }
        return c
    }

    public func contains(_ u: Unicode.Scalar) -> Bool { allowed.contains(u) }

    /// What an ASCII character outside the set becomes, or nil to drop it. Letters and
    /// spaces never reach here (the pipeline folds case and whitespace first).
    public func substitute(_ u: Unicode.Scalar) -> String? {
        if contains(u) { return String(u) }
        switch name {
        case "micro":
            switch u {
            case "!", "?", ";", ":": return "."       // sentence or clause ends
            case ",", "-", "(", ")", "[", "]", "{", "}", "/", "\n", "\t", "_", "&", "+", "=", "|", "~", "`":
                return " "                              // separators
            default: return nil                         // quotes, apostrophes, digits, symbols
            }
        case "classic":
            switch u {
            case "[", "{": return "("
            case "]", "}": return ")"
            case "`": return "'"
            case "/", "\n", "\t", "_", "|", "~": return " "
            case "&": return " and "
            default: return nil
            }
        default:
            return u == "\t" ? " " : nil
        }
    }

    private static let letters = (UInt8(ascii: "a")...UInt8(ascii: "z")).map { Unicode.Scalar($0) }
}
