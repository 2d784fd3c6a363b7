/// GPT-2's reversible map between the 256 byte values and 256 printable characters.
///
/// Byte-level BPE vocabularies are written as strings of these characters: a byte that
/// is already printable (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stands for itself, and the 68 others
/// (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, … in byte order, so a
/// space is `Ġ` and a newline `Ċ`.
public enum ByteLevel {
    /// The character each byte is written as.
    public static let characters: [Unicode.Scalar] = {
        var out = [Unicode.Scalar](repeating: "\0", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            if isPrintable(UInt8(b)) {
                out[b] = Unicode.Scalar(UInt8(b))
            } else {
                out[b] = Unicode.Scalar(next)!
                next += 1
            }
        }
        return out
    }()

    /// The byte each character stands for, indexed by scalar value (0..<0x144); -1 where none.
    static let bytesByScalar: [Int16] = {
        var out = [Int16](repeating: -1, count: 0x144)
        for (b, c) in characters.enumerated() { out[Int(c.value)] = Int16(b) }
        return out
    }()

    /// The 256 byte values in the order of their characters' code points: the order in
    /// which Hugging Face's trainer numbers its initial alphabet (after the special tokens).
    public static let alphabetOrder: [UInt8] =
        (0..<256).map { UInt8($0) }.sorted { characters[Int($0)].value < characters[Int($1)].value }

    static func isPrintable(_ b: UInt8) -> Bool {
        (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || b >= 0xAE
    }

    /// The token string for some raw bytes.
    public static func string(of bytes: some Sequence<UInt8>) -> String {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(characters[Int(b)]) }
        return String(s)
    }

    /// The raw bytes behind a token string, or nil if a character is outside the table.
    public static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(token.unicodeScalars.count)
        for u in token.unicodeScalars {
            guard u.value < 0x144, case let b = bytesByScalar[Int(u.value)], b >= 0 else { return nil }
            out.append(UInt8(b))
        }
        return out
    }

    /// Like `bytes(of:)`, but a character outside the table stands for its own UTF-8
    /// (what Hugging Face's ByteLevel decoder does with such tokens).
    static func decodedBytes(of token: String) -> [UInt8] {
        var out: [UInt8] = []
        for u in token.unicodeScalars {
            if u.value < 0x144, case let b = bytesByScalar[Int(u.value)], b >= 0 {
                out.append(UInt8(b))
            } else {
                out += Array(String(u).utf8)
            }
        }
        return out
    }
}
