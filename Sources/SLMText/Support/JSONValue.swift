/// A parsed JSON document that keeps object members in file order and integers exact.
///
/// Foundation's JSONSerialization loses both (objects become unordered dictionaries,
/// `1` and `true` both become NSNumber), and tokenizer files need them: vocabularies are
/// listed by id, and a flag must really be a boolean.
public enum JSONValue: Sendable {
    case null
    case bool(Bool)
    case integer(Int)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([(key: String, value: JSONValue)])

    public struct ParseError: Error, CustomStringConvertible {
        public let offset: Int
        public let message: String
        public var description: String { "malformed JSON at byte \(offset): \(message)" }
    }

    /// Parses a whole document; anything but whitespace after the value is an error.
    public static func parse(_ bytes: [UInt8]) throws(ParseError) -> JSONValue {
        var parser = Parser(bytes: bytes)
        parser.skipSpace()
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.at == bytes.count else { throw ParseError(offset: parser.at, message: "unexpected text after the document") }
        return value
    }

    /// The member named `key` of an object (the first, if repeated); nil otherwise.
    public subscript(key: String) -> JSONValue? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.key == key }?.value
    }

    /// A short name for error messages: "a string", "null", …
    public var kindName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .integer, .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }

    private struct Parser {
        let bytes: [UInt8]
        var at = 0

        // Deep enough for any real file; shallow enough that hostile input cannot overflow the stack.
        static let maxDepth = 256

        mutating func skipSpace() {
            while at < bytes.count, bytes[at] == 0x20 || bytes[at] == 0x0A || bytes[at] == 0x0D || bytes[at] == 0x09 { at += 1 }
        }

        func fail(_ message: String) -> ParseError { ParseError(offset: at, message: message) }

        mutating func value(depth: Int) throws(ParseError) -> JSONValue {
            guard depth < Self.maxDepth else { throw fail("nested more than \(Self.maxDepth) levels") }
            guard at < bytes.count else { throw fail("unexpected end of input") }
            switch bytes[at] {
            case UInt8(ascii: "{"):
                at += 1
                var members: [(key: String, value: JSONValue)] = []
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "}") { at += 1; return .object(members) }
                while true {
                    skipSpace()
                    guard at < bytes.count, bytes[at] == UInt8(ascii: "\"") else { throw fail("expected a member name in quotes") }
                    let key = try string()
                    skipSpace()
                    try expect(UInt8(ascii: ":"))
                    skipSpace()
                    members.append((key, try value(depth: depth + 1)))
                    skipSpace()
                    if try endOfList(UInt8(ascii: "}")) { return .object(members) }
                }
            case UInt8(ascii: "["):
                at += 1
                var items: [JSONValue] = []
                skipSpace()
                if at < bytes.count, bytes[at] == UInt8(ascii: "]") { at += 1; return .array(items) }
                while true {
                    skipSpace()
                    items.append(try value(depth: depth + 1))
                    skipSpace()
                    if try endOfList(UInt8(ascii: "]")) { return .array(items) }
                }
            case UInt8(ascii: "\""):
                return .string(try string())
            case UInt8(ascii: "t"):
                try literal("true"); return .bool(true)
            case UInt8(ascii: "f"):
                try literal("false"); return .bool(false)
            case UInt8(ascii: "n"):
                try literal("null"); return .null
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                return try number()
            default:
                throw fail("unexpected character \(String(UnicodeScalar(bytes[at])).debugDescription)")
            }
        }

        /// After a list item: true at the closing bracket, false at a comma.
        mutating func endOfList(_ close: UInt8) throws(ParseError) -> Bool {
            guard at < bytes.count else { throw fail("unexpected end of input") }
            if bytes[at] == close { at += 1; return true }
            if bytes[at] == UInt8(ascii: ",") { at += 1; return false }
            throw fail("expected ',' or '\(Character(UnicodeScalar(close)))'")
        }

        mutating func expect(_ byte: UInt8) throws(ParseError) {
            guard at < bytes.count, bytes[at] == byte else { throw fail("expected '\(Character(UnicodeScalar(byte)))'") }
            at += 1
        }

        mutating func literal(_ word: StaticString) throws(ParseError) {
            let n = word.utf8CodeUnitCount
            guard at + n <= bytes.count else { throw fail("unexpected end of input") }
            for k in 0..<n where bytes[at + k] != word.utf8Start[k] { throw fail("invalid literal") }
            at += n
        }

        mutating func number() throws(ParseError) -> JSONValue {
            let start = at
            var integral = true
            if bytes[at] == UInt8(ascii: "-") { at += 1 }
            let digitsStart = at
            while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
            guard at > digitsStart else { throw fail("expected digits") }
            guard bytes[digitsStart] != UInt8(ascii: "0") || at - digitsStart == 1 else { throw fail("leading zero in a number") }
            if at < bytes.count, bytes[at] == UInt8(ascii: ".") {
                integral = false
                at += 1
                let fractionStart = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                guard at > fractionStart else { throw fail("expected digits after '.'") }
            }
            if at < bytes.count, bytes[at] | 0x20 == UInt8(ascii: "e") {
                integral = false
                at += 1
                if at < bytes.count, bytes[at] == UInt8(ascii: "+") || bytes[at] == UInt8(ascii: "-") { at += 1 }
                let exponentStart = at
                while at < bytes.count, (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(bytes[at]) { at += 1 }
                guard at > exponentStart else { throw fail("expected digits in the exponent") }
            }
            let text = String(decoding: bytes[start..<at], as: UTF8.self)
            if integral, let n = Int(text) { return .integer(n) }
            guard let d = Double(text) else { throw ParseError(offset: start, message: "invalid number") }
            return .double(d)
        }

        /// A string literal starting at the opening quote.
        mutating func string() throws(ParseError) -> String {
            at += 1
            let start = at
            // Fast path: no escapes, so the bytes between the quotes are the string.
            while at < bytes.count, bytes[at] != UInt8(ascii: "\""), bytes[at] != UInt8(ascii: "\\"), bytes[at] >= 0x20 { at += 1 }
            guard at < bytes.count else { throw fail("unterminated string") }
            var raw = Array(bytes[start..<at])
            while bytes[at] != UInt8(ascii: "\"") {
                let b = bytes[at]
                guard b >= 0x20 else { throw fail("control character in a string") }
                if b != UInt8(ascii: "\\") {
                    raw.append(b)
                    at += 1
                } else {
                    at += 1
                    guard at < bytes.count else { throw fail("unterminated string") }
                    let e = bytes[at]
                    at += 1
                    switch e {
                    case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): raw.append(e)
                    case UInt8(ascii: "n"): raw.append(0x0A)
                    case UInt8(ascii: "r"): raw.append(0x0D)
                    case UInt8(ascii: "t"): raw.append(0x09)
                    case UInt8(ascii: "b"): raw.append(0x08)
                    case UInt8(ascii: "f"): raw.append(0x0C)
                    case UInt8(ascii: "u"):
                        var v = try hex4()
                        if (0xD800..<0xDC00).contains(v) {
                            // A high surrogate must be followed by an escaped low one.
                            guard at + 1 < bytes.count, bytes[at] == UInt8(ascii: "\\"), bytes[at + 1] == UInt8(ascii: "u") else {
                                throw fail("unpaired surrogate in \\u escape")
                            }
                            at += 2
                            let low = try hex4()
                            guard (0xDC00..<0xE000).contains(low) else { throw fail("unpaired surrogate in \\u escape") }
                            v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                        } else if (0xDC00..<0xE000).contains(v) {
                            throw fail("unpaired surrogate in \\u escape")
                        }
                        raw += Array(String(UnicodeScalar(v)!).utf8)
                    default:
                        throw fail("invalid escape '\\\(Character(UnicodeScalar(e)))'")
                    }
                }
                guard at < bytes.count else { throw fail("unterminated string") }
            }
            at += 1
            guard let s = String(validating: raw, as: UTF8.self) else { throw ParseError(offset: start, message: "string is not valid UTF-8") }
            return s
        }

        mutating func hex4() throws(ParseError) -> UInt32 {
            guard at + 4 <= bytes.count else { throw fail("unexpected end of input in \\u escape") }
            var v: UInt32 = 0
            for _ in 0..<4 {
                let c = bytes[at]
                let digit: UInt8
                switch c {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = c - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = c - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = c - UInt8(ascii: "A") + 10
                default: throw fail("invalid hex digit in \\u escape")
                }
                v = v << 4 | UInt32(digit)
                at += 1
            }
            return v
        }
    }
}
