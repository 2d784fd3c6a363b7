import Foundation

/// Finds a tokenizer from a command-line spec:
/// - `char` (the ascii charset) or `char:NAME` (a named charset);
/// - a directory holding a Hugging Face `tokenizer.json` (byte-level BPE);
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
    if fm.fileExists(atPath: tokenizerJSON.path) { return try ByteLevelBPETokenizer(tokenizerJSON: tokenizerJSON) }
    let vocab = dir.appendingPathComponent("vocab.json")
    let merges = dir.appendingPathComponent("merges.txt")
    if fm.fileExists(atPath: vocab.path) && fm.fileExists(atPath: merges.path) {
        return try ByteLevelBPETokenizer(vocabJSON: vocab, merges: merges)
    }
    if fm.fileExists(atPath: vocab.path) { return try CharTokenizer(contentsOf: vocab) }
    throw TokenizerError.notFound(spec)
}
