import Foundation

/// Finds a tokenizer from a command-line spec:
/// - `char` (the ascii charset) or `char:NAME` (a named charset);
/// - a directory holding a Hugging Face `tokenizer.json` (byte-level BPE, or Llama's
///   SentencePiece-style BPE with "▁" and byte fallback);
/// - a directory holding GPT-2's `vocab.json` + `merges.txt` (byte-level BPE);
/// - a directory holding a character `vocab.json`.
public func loadTokenizer(_ spec: String) throws -> any Tokenizer {
    if spec == "char" { return CharTokenizer(charset: .ascii) }
    if spec.hasPrefix("char:") { return CharTokenizer(charset: try Charset.named(String(spec.dropFirst(5)))) }
    let dir = URL(fileURLWithPath: spec)
    let fm = FileManager.default
    var isDir: ObjCBool = false
    guard fm.fileExists(atPath: dir.path, isDirectory: &isDir), isDir.boolValue else { throw TokenizerError.notFound(spec) }
    let tokenizerJSON = dir.appendingPathComponent("tokenizer.json")
    if fm.fileExists(atPath: tokenizerJSON.path) { return try loadTokenizerJSON(tokenizerJSON) }
    let vocab = dir.appendingPathComponent("vocab.json")
    let merges = dir.appendingPathComponent("merges.txt")
    if fm.fileExists(atPath: vocab.path) && fm.fileExists(atPath: merges.path) {
        return try ByteLevelBPETokenizer(vocabJSON: vocab, merges: merges)
    }
    if fm.fileExists(atPath: vocab.path) { return try CharTokenizer(contentsOf: vocab) }
    throw TokenizerError.notFound(spec)
}

/// A Hugging Face `tokenizer.json` in either form we read.
public func loadTokenizerJSON(_ url: URL) throws -> any Tokenizer {
    let bytes: [UInt8]
    do { bytes = [UInt8](try Data(contentsOf: url)) } catch {
        throw TokenizerError.invalidFile(path: url.path, reason: "cannot read: \(error.localizedDescription)")
    }
    return try readTokenizerJSON(bytes, path: url.path)
}

/// The text of a `tokenizer.json` in either form; `path` is for error messages.
public func readTokenizerJSON(_ bytes: [UInt8], path: String) throws(TokenizerError) -> any Tokenizer {
    if let root = try? JSONValue.parse(bytes), MetaspaceBPETokenizer.recognizes(root) {
        return try MetaspaceBPETokenizer(huggingFaceJSON: bytes, path: path)
    }
    return try ByteLevelBPETokenizer(huggingFaceJSON: bytes, path: path)
}
