/// What to do with bytes that are not valid UTF-8.
public enum InvalidUTF8Policy: String, Sendable, CaseIterable {
    /// Stop, naming the file and the byte offset.
    case error
    /// Substitute U+FFFD and count the substitutions.
    case replace
}

enum UTF8Decoding {
    /// Offset of the first byte that does not start or continue a valid UTF-8 sequence.
    static func firstInvalidOffset(_ bytes: [UInt8]) -> Int? {
        var i = 0
        let n = bytes.count
        while i < n {
            let b = bytes[i]
            if b < 0x80 { i += 1; continue }
            let length: Int, minimum: UInt32
            switch b {
            case 0xC2...0xDF: length = 2; minimum = 0x80
            case 0xE0...0xEF: length = 3; minimum = 0x800
            case 0xF0...0xF4: length = 4; minimum = 0x10000
            default: return i
            }
            guard i + length <= n else { return i }
            var scalar = UInt32(b) & (0xFF >> (length + 1))
            for k in 1..<length {
                let c = bytes[i + k]
                guard c & 0xC0 == 0x80 else { return i }
                scalar = scalar << 6 | UInt32(c & 0x3F)
            }
            // Overlong forms, surrogates and values past U+10FFFF are invalid too.
            guard scalar >= minimum, scalar <= 0x10FFFF, !(0xD800...0xDFFF).contains(scalar) else { return i }
            i += length
        }
        return nil
    }

    /// Decodes `bytes`; on invalid UTF-8, throws or replaces according to `policy`.
    static func decode(_ bytes: [UInt8], name: String, policy: InvalidUTF8Policy) throws -> (text: String, replaced: Int) {
        if let text = String(validating: bytes, as: UTF8.self) { return (text, 0) }
        switch policy {
        case .error:
            throw PipelineError.invalidUTF8(path: name, offset: firstInvalidOffset(bytes) ?? 0)
        case .replace:
            let text = String(decoding: bytes, as: UTF8.self)
            return (text, text.unicodeScalars.reduce(0) { $0 + ($1 == "\u{FFFD}" ? 1 : 0) })
        }
    }
}
