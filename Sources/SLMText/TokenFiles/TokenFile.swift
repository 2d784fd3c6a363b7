import Foundation
import SLMSupport

/// Width of the ids in a token file: uint16 while the vocabulary fits, else uint32.
public enum TokenWidth: String, Codable, Sendable {
    case uint16, uint32

    public init(vocabularySize: Int) { self = vocabularySize <= 65_536 ? .uint16 : .uint32 }
    public var bytes: Int { self == .uint16 ? 2 : 4 }
}

/// Little-endian token ids on disk, written atomically.
public enum TokenFileWriter {
    public static func write(_ ids: [Int32], width: TokenWidth, to url: URL) throws {
        var data = Data(count: ids.count * width.bytes)
        data.withUnsafeMutableBytes { raw in
            switch width {
            case .uint16:
                let p = raw.bindMemory(to: UInt16.self)
                for (i, id) in ids.enumerated() { p[i] = UInt16(truncatingIfNeeded: id).littleEndian }
            case .uint32:
                let p = raw.bindMemory(to: UInt32.self)
                for (i, id) in ids.enumerated() { p[i] = UInt32(bitPattern: id).littleEndian }
            }
        }
        try AtomicFile.write(data, to: url)
    }
}

/// A token file mapped into memory: reading a window touches only its pages.
public final class TokenFile: @unchecked Sendable {
    public let url: URL
    public let width: TokenWidth
    public let count: Int
    private let base: UnsafeRawPointer?
    private let mappedLength: Int

    public init(url: URL, width: TokenWidth) throws {
        self.url = url
        self.width = width
        let fd = open(url.path, O_RDONLY)
        guard fd >= 0 else { throw PipelineError.notFound(url.path) }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw PipelineError.notFound(url.path) }
        let length = Int(info.st_size)
        guard length % width.bytes == 0 else {
            throw PipelineError.invalidOption("\(url.path): \(length) bytes is not a whole number of \(width.rawValue) ids")
        }
        count = length / width.bytes
        mappedLength = length
        if length == 0 {
            base = nil
        } else {
            guard let p = mmap(nil, length, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
                throw PipelineError.invalidOption("\(url.path): cannot be memory-mapped")
            }
            base = UnsafeRawPointer(p)
        }
    }

    deinit {
        if let base { munmap(UnsafeMutableRawPointer(mutating: base), mappedLength) }
    }

    public subscript(i: Int) -> Int32 {
        precondition(i >= 0 && i < count, "TokenFile: index \(i) outside 0..<\(count)")
        switch width {
        case .uint16: return Int32(UInt16(littleEndian: base!.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))
        case .uint32: return Int32(bitPattern: UInt32(littleEndian: base!.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
        }
    }

    /// The largest id in the file (-1 when empty): one pass, to check a file against
    /// its vocabulary before a model indexes an embedding with it.
    public func largestID() -> Int32 {
        guard let base, count > 0 else { return -1 }
        switch width {
        case .uint16:
            var top: UInt16 = 0
            for raw in UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt16.self), count: count) { top = max(top, UInt16(littleEndian: raw)) }
            return Int32(top)
        case .uint32:
            var top: UInt32 = 0
            for raw in UnsafeBufferPointer(start: base.assumingMemoryBound(to: UInt32.self), count: count) { top = max(top, UInt32(littleEndian: raw)) }
            return Int32(clamping: top)
        }
    }

    /// Ids [start, start + length).
    public func window(at start: Int, length: Int) -> [Int32] {
        precondition(start >= 0 && length >= 0 && start + length <= count,
                     "TokenFile: window \(start)..<\(start + length) outside 0..<\(count)")
        return (start..<(start + length)).map { self[$0] }
    }
}

/// Random windows of `context + 1` tokens, `batch` per step, from a seeded generator
/// whose state can be saved and restored to resume exactly.
public struct BatchSampler: Sendable {
    public let file: TokenFile
    public let batch: Int
    public let context: Int
    public var generator: SplitMix64
    /// Windows from chunk starts by weight (nil: uniform over every position).
    public var chunks: ChunkDraw?
    /// The chunks of this rank's windows in the last batch (empty when sampling uniformly).
    public private(set) var lastChunks: [Int] = []

    public init(file: TokenFile, batch: Int, context: Int, seed: UInt64) throws {
        guard batch > 0, context > 0 else { throw PipelineError.invalidOption("batch and context must be positive") }
        guard file.count > context else {
            throw PipelineError.invalidOption("\(file.url.path) holds \(file.count) tokens; a window needs \(context + 1)")
        }
        self.file = file
        self.batch = batch
        self.context = context
        generator = SplitMix64(seed: seed)
    }

    /// Inputs and next-token targets, each [batch × context], row-major.
    public mutating func next() -> (inputs: [Int32], targets: [Int32]) { next(rank: 0, of: 1) }

    /// One data-parallel rank's share of the next batch: rows rank, rank + ranks, … of it,
    /// each [batch / ranks × context]. Every rank draws all the batch's window starts, so
    /// the ranks together read exactly the windows `next()` gives, and the generator's
    /// state does not depend on the number of ranks (a run resumes on another count).
    /// `length` (at most the context) shortens the windows, as a sequence-length warm-up does.
    public mutating func next(rank: Int, of ranks: Int, length: Int? = nil) -> (inputs: [Int32], targets: [Int32]) {
        precondition(ranks >= 1 && (0..<ranks).contains(rank) && batch % ranks == 0, "sampler: rank \(rank) of \(ranks), batch \(batch)")
        let context = length ?? self.context
        precondition((1...self.context).contains(context), "sampler: windows of \(context) tokens with a context of \(self.context)")
        var inputs: [Int32] = [], targets: [Int32] = []
        lastChunks = []
        inputs.reserveCapacity(batch / ranks * context)
        targets.reserveCapacity(batch / ranks * context)
        let starts = UInt64(file.count - context)
        for row in 0..<batch {
            let draw = generator.next()
            let window = chunks?.window(for: draw)
            let start = window?.start ?? Int(draw % starts)
            guard row % ranks == rank else { continue }
            if let window { lastChunks.append(window.chunk) }
            let w = file.window(at: start, length: context + 1)
            inputs += w.dropLast()
            targets += w.dropFirst()
        }
        return (inputs, targets)
    }
}

/// Window starts drawn from chunk starts with a weight per chunk, kept inside the chunk's
/// book where the book is long enough: a window that would run past the book's end starts
/// earlier, so that it ends there.
public struct ChunkDraw: Sendable {
    public let index: ChunkIndex
    /// Where a window drawn at each chunk starts.
    let starts: [Int]
    /// Cumulative weights; the last is the total.
    private var cumulative: [Double] = []

    public init(index: ChunkIndex, context: Int, fileCount: Int) {
        self.index = index
        var bookEnd: [Int: Int] = [:], bookStart: [Int: Int] = [:]
        for c in index.chunks {
            bookEnd[c.book] = max(bookEnd[c.book] ?? 0, c.start + c.length)
            bookStart[c.book] = min(bookStart[c.book] ?? Int.max, c.start)
        }
        let window = context + 1
        starts = index.chunks.map { c in
            var s = c.start
            if let end = bookEnd[c.book], s + window > end { s = max(bookStart[c.book]!, end - window) }
            return min(s, fileCount - window)
        }
    }

    /// Sets the weights (one per chunk, at least 0, not all 0).
    public mutating func setWeights(_ weights: [Double]) {
        precondition(weights.count == index.chunks.count, "ChunkDraw: \(weights.count) weights for \(index.chunks.count) chunks")
        var total = 0.0
        cumulative = weights.map { total += $0; return total }
        precondition(total > 0, "ChunkDraw: every weight is 0")
    }

    /// The chunk for a uniform 64-bit draw, and where its window starts.
    func window(for draw: UInt64) -> (chunk: Int, start: Int) {
        let target = Double(draw >> 11) * 0x1p-53 * cumulative.last!
        var lo = 0, hi = cumulative.count - 1
        while lo < hi {
            let mid = (lo + hi) / 2
            if cumulative[mid] > target { hi = mid } else { lo = mid + 1 }
        }
        return (lo, starts[lo])
    }
}
