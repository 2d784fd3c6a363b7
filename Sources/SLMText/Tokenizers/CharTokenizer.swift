import Foundation
import SLMSupport

/// One id per character, from a charset or a saved `vocab.json` (character → id).
public struct CharTokenizer: Tokenizer {
    public let kind = "char"
    public let characters: [Character]
    public var vocabularySize: Int { characters.count }
    public var specialTokens: [String: Int32] { [:] }
    private let ids: [Character: Int32]
    private let bytes: [[UInt8]]

    public init(characters: [Character]) {
        self.characters = characters
        ids = Dictionary(uniqueKeysWithValues: characters.enumerated().map { ($1, Int32($0)) })
        bytes = characters.map { Array(String($0).utf8) }
    }

    public init(charset: Charset) { self.init(characters: charset.characters) }

    /// Reads a vocab.json whose keys are single characters and whose ids are 0..<n.
    public init(contentsOf file: URL) throws {
        let data = try Data(contentsOf: file)
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Int] else {
            throw TokenizerError.invalidFile(path: file.path, reason: "expected a JSON object of character → id")
        }
        var chars = [Character?](repeating: nil, count: object.count)
        for (key, id) in object {
            guard key.count == 1, id >= 0, id < object.count, chars[id] == nil else {
                throw TokenizerError.invalidFile(path: file.path, reason: "entry \(JSONText.quote(key)): \(id) is not one character with a unique id in 0..<\(object.count)")
            }
            chars[id] = key.first!
        }
        self.init(characters: chars.map { $0! })
    }

    /// Ids of the characters of `text`; characters outside the vocabulary are skipped.
    public func encode(_ text: String) -> [Int32] { encodeCounting(text).ids }

    /// Ids, plus how many characters were outside the vocabulary and skipped.
    public func encodeCounting(_ text: String) -> (ids: [Int32], skipped: Int) {
        var out: [Int32] = []
        out.reserveCapacity(text.utf8.count)
        var skipped = 0
        for c in text {
            if let id = ids[c] { out.append(id) } else { skipped += 1 }
        }
        return (out, skipped)
    }

    public func id(of c: Character) -> Int32? { ids[c] }

    public func tokenBytes(_ id: Int32) -> [UInt8]? {
        id >= 0 && Int(id) < bytes.count ? bytes[Int(id)] : nil
    }

    /// Writes vocab.json, one entry per line in id order.
    public func save(to directory: URL) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let lines = characters.enumerated().map { "  \(JSONText.quote(String($1))): \($0)" }
        let text = "{\n" + lines.joined(separator: ",\n") + "\n}\n"
        try AtomicFile.write(Data(text.utf8), to: directory.appendingPathComponent("vocab.json"))
    }
}
