import Foundation

/// What every tokenizer offers: text to ids and back, its vocabulary size and special
/// tokens, the bytes behind each id (for streaming decoders that must not split a UTF-8
/// character), and saving to a directory.
public protocol Tokenizer: Sendable {
    /// "char", "byte-bpe" or "metaspace-bpe": recorded in meta.json and checkpoints.
    var kind: String { get }
    /// Number of ids; every id is in 0..<vocabularySize.
    var vocabularySize: Int { get }
    /// Special tokens by their text, e.g. ["<|endoftext|>": 0].
    var specialTokens: [String: Int32] { get }

    /// Ids put before a prompt (Llama's `<s>`), as transformers' tokenizers add them;
    /// `encode` leaves them out.
    var promptPrefix: [Int32] { get }
    /// The id that ends a generation, if any.
    var endOfTextID: Int32? { get }

    func encode(_ text: String) -> [Int32]
    /// The UTF-8 bytes an id stands for, or nil for an id outside the vocabulary.
    func tokenBytes(_ id: Int32) -> [UInt8]?
    /// Writes the files that `loadTokenizer` reads back.
    func save(to directory: URL) throws
}

extension Tokenizer {
    public var promptPrefix: [Int32] { [] }
    public var endOfTextID: Int32? { specialTokens["<|endoftext|>"] }

    /// The bytes of a sequence of ids (lossless: invalid UTF-8 stays as it was encoded).
    public func decodeBytes(_ ids: [Int32]) throws -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 3)
        for id in ids {
            guard let bytes = tokenBytes(id) else {
                throw TokenizerError.unknownID(id, vocabularySize: vocabularySize)
            }
            out += bytes
        }
        return out
    }

    /// The text of a sequence of ids; bytes that are not valid UTF-8 become U+FFFD.
    public func decode(_ ids: [Int32]) throws -> String {
        String(decoding: try decodeBytes(ids), as: UTF8.self)
    }
}

public enum TokenizerError: Error, CustomStringConvertible, Equatable {
    case unknownID(Int32, vocabularySize: Int)
    case unknownCharset(String)
    case invalidFile(path: String, reason: String)
    case unsupported(path: String, what: String)
    case vocabularyTooSmall(requested: Int, minimum: Int)
    case notFound(String)

    public var description: String {
        switch self {
        case .unknownID(let id, let n): "token id \(id) is outside the vocabulary (0..<\(n))"
        case .unknownCharset(let name): "unknown charset '\(name)' (choose micro, classic or ascii)"
        case .invalidFile(let path, let reason): "\(path): \(reason)"
        case .unsupported(let path, let what): "\(path): unsupported tokenizer (\(what)); swift-slm reads character vocabularies, byte-level BPE and Llama-style (Metaspace, byte-fallback) BPE"
        case .vocabularyTooSmall(let requested, let minimum): "vocabulary size \(requested) is too small: byte-level BPE needs at least \(minimum) (256 bytes plus special tokens)"
        case .notFound(let what): "no tokenizer found at \(what) (expected 'char', 'char:CHARSET', or a directory with tokenizer.json, vocab.json + merges.txt, or a character vocab.json)"
        }
    }
}
