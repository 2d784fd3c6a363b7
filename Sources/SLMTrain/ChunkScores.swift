import Foundation
import SLMModels
import SLMSupport
import SLMTensor
import SLMText

/// Each training chunk's mean next-token loss under a small trained model (`slm data
/// score`), kept in `train_scores.bin` beside the chunk index for coreset selection: a
/// 16-byte header (`SLMSCORE`, then version 1 and the number of chunks as little-endian
/// uint32), then one little-endian float32 per chunk in the index's order.
public enum ChunkScores {
    public static let fileName = "train_scores.bin"
    static let magic = Array("SLMSCORE".utf8)

    /// Runs the model over train.bin in windows of its context, each target token's loss
    /// going to the chunk that holds it; a chunk's score is the mean over its tokens.
    public static func compute(model: any LanguageModel, data: TrainingData, index: ChunkIndex, batch: Int = 8,
                               progress: (Int, Int) -> Void = { _, _ in }) -> [Float] {
        let context = model.config.context, count = data.train.count
        var sums = [Double](repeating: 0, count: index.chunks.count), counts = [Int](repeating: 0, count: index.chunks.count)
        // Window starts: back to back, then one more ending at the file's end for the tail.
        var starts = Array(stride(from: 0, through: count - context - 1, by: context))
        if let last = starts.last, last + context < count - 1 { starts.append(count - context - 1) }
        var chunk = 0, scored = 0   // positions 1...scored have their loss counted
        for first in stride(from: 0, to: starts.count, by: batch) {
            let group = Array(starts[first..<min(first + batch, starts.count)])
            var inputs: [Int32] = [], targets: [Int32] = []
            for s in group {
                let w = data.train.window(at: s, length: context + 1)
                inputs += w.dropLast()
                targets += w.dropFirst()
            }
            let losses = Autograd.noGrad { tokenLosses(model.logits(inputs, batch: group.count, time: context), targets: targets) }
            for (row, s) in group.enumerated() where s + context > scored {
                // The tail window re-reads positions already scored; each counts once.
                for position in max(s + 1, scored + 1)...(s + context) {
                    while index.chunks[chunk].start + index.chunks[chunk].length <= position { chunk += 1 }
                    sums[chunk] += Double(losses[row * context + position - s - 1])
                    counts[chunk] += 1
                }
                scored = s + context
            }
            progress(min(first + batch, starts.count), starts.count)
        }
        return zip(sums, counts).map { $1 > 0 ? Float($0 / Double($1)) : .nan }
    }

    public static func write(_ scores: [Float], to directory: URL) throws {
        var data = Data(magic)
        func put(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        put(1)
        put(UInt32(scores.count))
        for s in scores { put(s.bitPattern) }
        try AtomicFile.write(data, to: directory.appendingPathComponent(fileName))
    }

    public static func read(from directory: URL, chunks: Int) throws -> [Float] {
        let url = directory.appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw CheckpointError("\(url.path) is missing: a coreset needs the chunks' losses; run `slm data score --model CKPT --data \(directory.path)` first")
        }
        let bytes = [UInt8](data)
        func load(_ offset: Int) -> UInt32 { bytes.withUnsafeBytes { UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self)) } }
        guard bytes.count >= 16, Array(bytes[0..<8]) == magic, load(8) == 1, Int(load(12)) == chunks, bytes.count == 16 + 4 * chunks else {
            throw CheckpointError("\(url.path) does not hold one score for each of the \(chunks) chunks of this data (tokenized again since?); "
                + "run `slm data score` again")
        }
        return (0..<chunks).map { Float(bitPattern: load(16 + 4 * $0)) }
    }

    /// The chunks a coreset keeps: ranked by loss, the highest `noise` share left out, and
    /// the `keep` share just below it kept (a chunk without a score is never kept).
    public static func selection(_ scores: [Float], keep: Double, noise: Double) -> [Bool] {
        let ranked = scores.indices.filter { !scores[$0].isNaN }.sorted { (scores[$0], $0) < (scores[$1], $1) }
        let n = Double(ranked.count)
        let top = Int((n * (1 - noise)).rounded()), bottom = max(0, top - Int((n * keep).rounded()))
        var kept = [Bool](repeating: false, count: scores.count)
        for i in ranked[bottom..<top] { kept[i] = true }
        return kept
    }
}
