import ArgumentParser
import SLMTensor
import Foundation
import SLMText

/// Byte-level BPE training time and encoding throughput on one text file
/// (benchmarks/tokenizer_compare.py runs it beside Hugging Face tokenizers).
struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Measure byte-level BPE training time and encoding speed on a text file.")

    @Option(name: .long, help: "Text file to train on and encode.")
    var input: String

    @Option(name: .long, help: "Vocabulary size to train.")
    var vocabSize = 2000

    @Option(help: "Timed repeats per measurement, after one warm-up run (the median is reported).")
    var repeats = 3

    @OptionGroup var runtime: RuntimeOptions

    private var threads: Int { Parallel.threadCount }

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    struct Report: Codable {
        var input: String
        var bytes: Int
        var lines: Int
        var threads: Int
        var repeats: Int
        var release: Bool
        var vocabSize: Int
        var merges: Int
        var trainSeconds: Double
        var trainSecondsAll: [Double]
        var tokens: Int
        var bytesPerToken: Double
        /// Whole file as one text, cut into `threads` chunks where the ids cannot change.
        var encodeMBps: Double
        /// Whole file as one text on one thread.
        var encodeSingleThreadMBps: Double
        /// The file's lines (newlines kept) as a batch spread over `threads` threads.
        var encodeLinesMBps: Double

        enum CodingKeys: String, CodingKey {
            case input, bytes, lines, threads, repeats, release, merges, tokens
            case vocabSize = "vocab_size"
            case trainSeconds = "train_seconds"
            case trainSecondsAll = "train_seconds_all"
            case bytesPerToken = "bytes_per_token"
            case encodeMBps = "encode_mb_per_s"
            case encodeSingleThreadMBps = "encode_single_thread_mb_per_s"
            case encodeLinesMBps = "encode_lines_mb_per_s"
        }
    }

    func run() throws {
        guard repeats >= 1 else { throw CommandError("--repeats must be at least 1") }
        try runtime.apply()
        let data = try readInput(input)
        let text = String(decoding: data, as: UTF8.self)
        let url = URL(fileURLWithPath: input)
        let log: (String) -> Void = json ? { _ in } : { print($0) }
        #if DEBUG
        let release = false
        log("warning: debug build; figures are meaningless. Use: swift build -c release && .build/release/slm bench tokenizer …")
        #else
        let release = true
        #endif

        let trainer = BPETrainer(vocabularySize: vocabSize, specialTokens: ["<|endoftext|>"], threads: threads)
        var tokenizer: ByteLevelBPETokenizer?
        var trainError: Error?
        var trainTimes: [Double] = []
        _ = medianSeconds(repeats: repeats) {
            let t0 = DispatchTime.now().uptimeNanoseconds
            do { tokenizer = try trainer.train(files: [url]) } catch { trainError = error }
            trainTimes.append(Double(DispatchTime.now().uptimeNanoseconds - t0) * 1e-9)
        }
        if let trainError { throw CommandError("\(trainError)") }
        guard let tokenizer else { throw CommandError("training produced no tokenizer") }
        trainTimes.removeFirst()  // the warm-up run
        let trainSeconds = trainTimes.sorted()[trainTimes.count / 2]
        log(String(format: "training, vocabulary %d (%d merges) on %@ (%.2f MB): %.3f s (median of %d)",
                   tokenizer.vocabularySize, tokenizer.merges.count, input, Double(data.count) / 1e6, trainSeconds, repeats))

        var ids: [Int32] = []
        let parallel = medianSeconds(repeats: repeats) { ids = tokenizer.encode(text, threads: threads) }
        let single = medianSeconds(repeats: repeats) { _ = tokenizer.encode(text) }
        let lines = Self.linesKeepingEnds([UInt8](data))
        let batched = medianSeconds(repeats: repeats) { _ = tokenizer.encodeBatch(lines, threads: threads) }
        let mb = Double(data.count) / 1e6
        log(String(format: "encoding %d tokens (%.2f bytes per token), median of %d:", ids.count, Double(data.count) / Double(max(ids.count, 1)), repeats))
        log(String(format: "  whole text, %d threads:  %7.1f MB/s", threads, mb / parallel))
        log(String(format: "  whole text, 1 thread:   %7.1f MB/s", mb / single))
        log(String(format: "  %d lines, %d threads: %7.1f MB/s", lines.count, threads, mb / batched))

        if json {
            let report = Report(
                input: input, bytes: data.count, lines: lines.count, threads: threads, repeats: repeats, release: release,
                vocabSize: tokenizer.vocabularySize, merges: tokenizer.merges.count,
                trainSeconds: trainSeconds, trainSecondsAll: trainTimes, tokens: ids.count,
                bytesPerToken: Double(data.count) / Double(max(ids.count, 1)),
                encodeMBps: mb / parallel, encodeSingleThreadMBps: mb / single, encodeLinesMBps: mb / batched)
            try printJSON(report)
        }
    }

    /// The lines of a file, each with its "\n" (as Hugging Face reads training files).
    static func linesKeepingEnds(_ bytes: [UInt8]) -> [String] {
        var out: [String] = []
        var start = 0
        while start < bytes.count {
            let end = bytes[start...].firstIndex(of: 0x0A).map { $0 + 1 } ?? bytes.count
            out.append(String(decoding: bytes[start..<end], as: UTF8.self))
            start = end
        }
        return out
    }
}
