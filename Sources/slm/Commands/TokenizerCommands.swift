import ArgumentParser
import SLMTensor
import Foundation
import SLMText

struct TokenizerCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Train a byte-level BPE tokenizer, or encode and decode text with any tokenizer.",
        subcommands: [TokenizerTrain.self, TokenizerEncode.self, TokenizerDecode.self])
}

/// The contents of a file, or of standard input when `path` is nil.
func readInput(_ path: String?) throws -> Data {
    guard let path else { return FileHandle.standardInput.readDataToEndOfFile() }
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CommandError("\(path): no such file") }
    guard !isDir.boolValue else { throw CommandError("\(path): is a directory, not a file") }
    do { return try Data(contentsOf: URL(fileURLWithPath: path)) } catch {
        throw CommandError("\(path): cannot read (\(error.localizedDescription))")
    }
}

/// `loadTokenizer`, with its errors as one line for the user.
func loadTokenizerForCLI(_ spec: String) throws -> any Tokenizer {
    do { return try loadTokenizer(spec) } catch let error as TokenizerError {
        throw CommandError(error.description)
    }
}

func writeStandardError(_ line: String) {
    FileHandle.standardError.write(Data((line + "\n").utf8))
}

struct TokenizerTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Learn a byte-level BPE tokenizer (Hugging Face compatible) from text files.",
        discussion: """
            Writes tokenizer.json (Hugging Face tokenizers format) and vocab.json + merges.txt \
            (GPT-2 format) to --out. Files are read line by line, as Hugging Face's trainer does.
            """)

    @Option(name: .long, parsing: .upToNextOption, help: "Text files to learn from.")
    var input: [String] = []

    @Option(name: .long, help: "Vocabulary size: special tokens + 256 bytes + merges.")
    var vocabSize = 2000

    @Option(name: .long, help: "Directory to write the tokenizer to (created if needed).")
    var out: String

    @Option(name: .long, parsing: .upToNextOption, help: "Special tokens, given the first ids (default: <|endoftext|>).")
    var special: [String] = ["<|endoftext|>"]

    @Option(name: .long, help: "Smallest pair count worth a merge.")
    var minFrequency = 2

    @OptionGroup var runtime: RuntimeOptions

    private var threads: Int { Parallel.threadCount }

    func run() throws {
        guard !input.isEmpty else { throw CommandError("give at least one --input file") }
        guard minFrequency >= 1 else { throw CommandError("--min-frequency must be at least 1") }
        try runtime.apply()
        if let empty = special.firstIndex(of: "") { throw CommandError("--special token \(empty + 1) is empty") }
        let minimum = Set(special).count + 256
        guard vocabSize >= minimum else {
            throw CommandError(TokenizerError.vocabularyTooSmall(requested: vocabSize, minimum: minimum).description)
        }
        var bytes = 0
        for path in input {
            var isDir: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else { throw CommandError("\(path): no such file") }
            guard !isDir.boolValue else { throw CommandError("\(path): is a directory, not a file") }
            guard FileManager.default.isReadableFile(atPath: path) else { throw CommandError("\(path): not readable") }
            bytes += ((try? FileManager.default.attributesOfItem(atPath: path)[.size]) as? Int) ?? 0
        }
        var isDir: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDir), !isDir.boolValue {
            throw CommandError("\(out): exists and is not a directory")
        }

        let trainer = BPETrainer(vocabularySize: vocabSize, specialTokens: special, minFrequency: minFrequency, threads: threads)
        let start = DispatchTime.now().uptimeNanoseconds
        func elapsed() -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) * 1e-9 }
        let live = isatty(2) != 0
        writeStandardError(String(format: "reading %d file%@, %.1f MB", input.count, input.count == 1 ? "" : "s", Double(bytes) / 1e6))
        let tokenizer: ByteLevelBPETokenizer
        do {
            tokenizer = try trainer.train(files: input.map { URL(fileURLWithPath: $0) }) { progress in
                switch progress {
                case .counted(let distinct, let words, _):
                    writeStandardError(String(format: "counted %d words, %d distinct (%.2f s)", words, distinct, elapsed()))
                case .merged(let n, let target):
                    if live { FileHandle.standardError.write(Data("\rmerges: \(n)/\(target)".utf8)) }
                }
            }
        } catch let error as TokenizerError {
            throw CommandError(error.description)
        }
        if live { writeStandardError("") }
        let seconds = elapsed()
        do { try tokenizer.save(to: URL(fileURLWithPath: out)) } catch {
            throw CommandError("\(out): cannot write the tokenizer (\(error.localizedDescription))")
        }
        let specials = tokenizer.specialTokens.count
        print(String(format: "learned %d merges in %.2f s; vocabulary %d (%d special, 256 bytes, %d merged) written to %@",
                     tokenizer.merges.count, seconds, tokenizer.vocabularySize, specials,
                     tokenizer.vocabularySize - specials - 256, out))
        if tokenizer.vocabularySize < vocabSize {
            writeStandardError("note: stopped below --vocab-size \(vocabSize): no pair occurs \(minFrequency) times or more")
        }
    }
}

struct TokenizerEncode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode",
        abstract: "Print the token ids of a file or of standard input.")

    @Option(name: .long, help: "char, char:NAME, or a tokenizer directory.")
    var tokenizer: String

    @Option(name: .long, help: "File to encode (default: standard input).")
    var input: String?

    @Flag(help: "Print {\"ids\": [...], \"count\": n} instead of ids separated by spaces.")
    var json = false

    func run() throws {
        let t = try loadTokenizerForCLI(tokenizer)
        let data = try readInput(input)
        let ids: [Int32]
        if let bpe = t as? ByteLevelBPETokenizer {
            // Bytes, not a String: invalid UTF-8 survives the round trip.
            ids = bpe.encode(bytes: [UInt8](data))
        } else {
            ids = t.encode(String(decoding: data, as: UTF8.self))
        }
        // Written as bytes: millions of ids are common, and String appends would dominate.
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 7 + 32)
        let asJSON = json
        if asJSON { out += Array("{\"ids\": [".utf8) }
        var digits = [UInt8](repeating: 0, count: 12)
        for (n, id) in ids.enumerated() {
            if n > 0 {
                if asJSON { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: " "))
            }
            var v = Int(id).magnitude, k = digits.count
            repeat {
                k -= 1
                digits[k] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
            } while v > 0
            if id < 0 { out.append(UInt8(ascii: "-")) }
            out += digits[k...]
        }
        if asJSON { out += Array("], \"count\": \(ids.count)}".utf8) }
        out.append(0x0A)
        FileHandle.standardOutput.write(Data(out))
    }
}

struct TokenizerDecode: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "decode",
        abstract: "Print the text of token ids read from a file or standard input.",
        discussion: "Ids may be separated by spaces, newlines or commas, or given as a JSON array (or the object `encode --json` prints).")

    @Option(name: .long, help: "char, char:NAME, or a tokenizer directory.")
    var tokenizer: String

    @Option(name: .long, help: "File of ids (default: standard input).")
    var input: String?

    func run() throws {
        let t = try loadTokenizerForCLI(tokenizer)
        let ids = try Self.parseIDs(readInput(input))
        let bytes: [UInt8]
        do { bytes = try t.decodeBytes(ids) } catch let error as TokenizerError {
            throw CommandError(error.description)
        }
        FileHandle.standardOutput.write(Data(bytes))
    }

    static func parseIDs(_ data: Data) throws -> [Int32] {
        let bytes = [UInt8](data)
        let first = bytes.first { ![0x20, 0x0A, 0x0D, 0x09].contains($0) }
        if first == UInt8(ascii: "[") || first == UInt8(ascii: "{") {
            let value: JSONValue
            do { value = try JSONValue.parse(bytes) } catch { throw CommandError("ids: \(error.description)") }
            var items: [JSONValue]
            switch value {
            case .array(let a): items = a
            case .object:
                guard case .array(let a)? = value["ids"] else { throw CommandError("ids: a JSON object needs an \"ids\" array") }
                items = a
            default: items = []
            }
            return try items.enumerated().map { n, item in
                guard case .integer(let id) = item, let id32 = Int32(exactly: id) else {
                    throw CommandError("ids: item \(n + 1) is \(item.kindName), not a token id")
                }
                return id32
            }
        }
        let text = String(decoding: bytes, as: UTF8.self)
        return try text.split { $0 == "," || $0.isWhitespace }.map { word in
            guard let id = Int32(word) else { throw CommandError("ids: '\(word.prefix(40))' is not a token id") }
            return id
        }
    }
}
