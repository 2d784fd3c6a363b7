/// The part of TOML that presets use: `[section]` headers and `key = value` lines with
/// strings, integers, floats and booleans; `#` comments. Anything else is an error with
/// its line number.
public enum TOMLValue: Equatable, Sendable, CustomStringConvertible {
    case string(String)
    case integer(Int)
    case float(Double)
    case bool(Bool)

    public var description: String {
        switch self {
        case .string(let s): "\"\(s)\""
        case .integer(let i): String(i)
        case .float(let d): String(d)
        case .bool(let b): String(b)
        }
    }

    public var int: Int? {
        if case .integer(let i) = self { return i }
        return nil
    }

    public var double: Double? {
        switch self {
        case .integer(let i): Double(i)
        case .float(let d): d
        default: nil
        }
    }

    public var bool: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    public var string: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    /// A value as written on a command line: true/false, numbers, else a string.
    public static func parseLoose(_ text: String) -> TOMLValue {
        (try? parseValue(text)) ?? .string(text)
    }

    static func parseValue(_ text: String) throws(TOMLError) -> TOMLValue {
        let t = text.trimmingCharacters(in: .whitespaces)
        if t == "true" { return .bool(true) }
        if t == "false" { return .bool(false) }
        if t.hasPrefix("\""), t.hasSuffix("\""), t.count >= 2 {
            return .string(String(t.dropFirst().dropLast()).replacingOccurrences(of: "\\\"", with: "\"")
                .replacingOccurrences(of: "\\\\", with: "\\"))
        }
        let digits = t.replacingOccurrences(of: "_", with: "")
        if let i = Int(digits) { return .integer(i) }
        if let d = Double(digits), !digits.isEmpty { return .float(d) }
        throw TOMLError("cannot read value \(t)")
    }
}

public struct TOMLError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

public typealias TOMLTable = [String: [String: TOMLValue]]

public enum TOML {
    /// Sections to key/value pairs; keys before any header go in section "".
    public static func parse(_ text: String, name: String = "TOML") throws(TOMLError) -> TOMLTable {
        var table: TOMLTable = [:], section = ""
        for (n, raw) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            var line = Substring(raw)
            if let hash = firstUnquotedHash(line) { line = line[..<hash] }
            let t = line.trimmingCharacters(in: .whitespaces)
            if t.isEmpty { continue }
            if t.hasPrefix("[") {
                guard t.hasSuffix("]"), t.count > 2 else { throw TOMLError("\(name) line \(n + 1): malformed section header \(t)") }
                section = String(t.dropFirst().dropLast()).trimmingCharacters(in: .whitespaces)
                table[section, default: [:]] = table[section] ?? [:]
                continue
            }
            guard let eq = t.firstIndex(of: "=") else { throw TOMLError("\(name) line \(n + 1): expected key = value") }
            let key = t[..<eq].trimmingCharacters(in: .whitespaces)
            guard !key.isEmpty else { throw TOMLError("\(name) line \(n + 1): empty key") }
            do throws(TOMLError) {
                let value = t[t.index(after: eq)...].trimmingCharacters(in: .whitespaces)
                if value.hasPrefix("{") {
                    // An inline table of plain values: `coreset = {keep = 0.5, by = "loss"}` reads as coreset.keep, coreset.by.
                    guard value.hasSuffix("}") else { throw TOMLError("an inline table must end on its line with }") }
                    for item in splitUnquoted(value.dropFirst().dropLast(), on: ",") where !item.allSatisfy(\.isWhitespace) {
                        guard let e = item.firstIndex(of: "=") else { throw TOMLError("expected key = value inside { }") }
                        let inner = item[..<e].trimmingCharacters(in: .whitespaces)
                        guard !inner.isEmpty else { throw TOMLError("empty key inside { }") }
                        table[section, default: [:]][key + "." + inner] = try TOMLValue.parseValue(String(item[item.index(after: e)...]))
                    }
                } else {
                    table[section, default: [:]][key] = try TOMLValue.parseValue(value)
                }
            } catch {
                throw TOMLError("\(name) line \(n + 1): \(error.message)")
            }
        }
        return table
    }

    private static func splitUnquoted(_ text: Substring, on separator: Character) -> [Substring] {
        var parts: [Substring] = [], start = text.startIndex, quoted = false
        for i in text.indices {
            if text[i] == "\"" { quoted.toggle() }
            if text[i] == separator && !quoted {
                parts.append(text[start..<i])
                start = text.index(after: i)
            }
        }
        parts.append(text[start...])
        return parts
    }

    private static func firstUnquotedHash(_ line: Substring) -> Substring.Index? {
        var quoted = false
        for i in line.indices {
            if line[i] == "\"" { quoted.toggle() }
            if line[i] == "#" && !quoted { return i }
        }
        return nil
    }
}

/// Reads typed values out of one TOML section, rejecting keys nobody asked for.
struct SectionReader {
    let name: String
    let values: [String: TOMLValue]
    private(set) var used: Set<String> = []

    init(_ name: String, _ values: [String: TOMLValue]) {
        self.name = name
        self.values = values
    }

    mutating func int(_ key: String) throws(TOMLError) -> Int? { try get(key, "an integer") { $0.int } }
    mutating func double(_ key: String) throws(TOMLError) -> Double? { try get(key, "a number") { $0.double } }
    mutating func bool(_ key: String) throws(TOMLError) -> Bool? { try get(key, "true or false") { $0.bool } }
    mutating func string(_ key: String) throws(TOMLError) -> String? { try get(key, "a string") { $0.string } }

    private mutating func get<T>(_ key: String, _ what: String, _ convert: (TOMLValue) -> T?) throws(TOMLError) -> T? {
        used.insert(key)
        guard let v = values[key] else { return nil }
        guard let t = convert(v) else { throw TOMLError("[\(name)] \(key) must be \(what), not \(v)") }
        return t
    }

    func finish() throws(TOMLError) {
        let unknown = values.keys.filter { !used.contains($0) }.sorted()
        guard unknown.isEmpty else {
            throw TOMLError("[\(name)] unknown key\(unknown.count > 1 ? "s" : "") \(unknown.joined(separator: ", ")) (known: \(used.sorted().joined(separator: ", ")))")
        }
    }
}
