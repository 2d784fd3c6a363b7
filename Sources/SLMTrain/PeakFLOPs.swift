import Foundation
import SLMSupport
import SLMTensor

/// The FMA peak that MFU is a share of. A fraction of a second measured as training
/// starts can read low on a busy host (and MFU then high), so `slm bench kernels` keeps
/// its steadier figure (best of 3 × 0.3 s) per CPU model and thread count, and training
/// reuses it; without one, training measures best of 5 × 0.2 s and says so, and the
/// trainer drops MFU (n/a) if the run itself goes faster than that peak.
public enum PeakFLOPs {
    public struct Peak: Sendable {
        public var flops: Double
        /// How the figure was obtained, for the first lines of a run.
        public var source: String

        public init(flops: Double, source: String) {
            self.flops = flops
            self.source = source
        }
    }

    struct Entry: Codable {
        var fp32: Double
        var bf16: Double
        var measured: Date
    }

    /// `$SLM_CACHE_DIR/peaks.json`, else under `$XDG_CACHE_HOME` or `~/.cache`.
    public static var defaultCache: URL {
        let env = ProcessInfo.processInfo.environment
        let dir = env["SLM_CACHE_DIR"].map { URL(fileURLWithPath: $0) }
            ?? URL(fileURLWithPath: env["XDG_CACHE_HOME"] ?? (NSHomeDirectory() + "/.cache")).appendingPathComponent("swift-slm")
        return dir.appendingPathComponent("peaks.json")
    }

    /// The CPU's model name and the thread count: a peak holds for both together.
    static func key(threads: Int) -> String {
        let info = (try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8)) ?? ""
        let model = info.split(separator: "\n").first { $0.hasPrefix("model name") }
            .map { $0.split(separator: ":", maxSplits: 1).last.map { $0.trimmingCharacters(in: .whitespaces) } ?? "" } ?? "unknown CPU"
        return "\(model), \(threads) threads"
    }

    /// Keeps peaks that `slm bench kernels` measured (best effort: a cache that cannot be
    /// written only costs the next run its steadier figure).
    public static func record(fp32: Double, bf16: Double, threads: Int, cache: URL = defaultCache) {
        guard fp32 > 0 else { return }
        var all = read(cache)
        all[key(threads: threads)] = Entry(fp32: fp32, bf16: bf16, measured: Date())
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        guard let data = try? encoder.encode(all) else { return }
        try? FileManager.default.createDirectory(at: cache.deletingLastPathComponent(), withIntermediateDirectories: true)
        try? AtomicFile.write(data, to: cache)
    }

    /// The peak for products in `bf16` or fp32 on `threads` threads: kept, else measured
    /// now. 0 where there is none (bf16 without native bf16 products, or no x86 SIMD).
    public static func forTraining(bf16: Bool, threads: Int = Parallel.threadCount, cache: URL = defaultCache) -> Peak {
        if let kept = read(cache)[key(threads: threads)] {
            let day = ISO8601DateFormatter.string(from: kept.measured, timeZone: .current, formatOptions: [.withFullDate])
            return Peak(flops: bf16 ? kept.bf16 : kept.fp32, source: "measured by slm bench kernels on \(day)")
        }
        let flops = measured.withLock { kept in
            if let flops = kept[Key(bf16: bf16, threads: threads)] { return flops }
            let flops = CPUKernels.measurePeakFLOPs(seconds: 0.2, bf16: bf16, repeats: 5)
            kept[Key(bf16: bf16, threads: threads)] = flops
            return flops
        }
        return Peak(flops: flops, source: "measured now, best of 5 × 0.2 s; `slm bench kernels` keeps a steadier figure")
    }

    /// Measured once per process (a second each), not once per trainer.
    private struct Key: Hashable { var bf16: Bool, threads: Int }
    private static let measured = Locked<[Key: Double]>([:])

    static func read(_ cache: URL) -> [String: Entry] {
        guard let data = try? Data(contentsOf: cache) else { return [:] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return (try? decoder.decode([String: Entry].self, from: data)) ?? [:]
    }
}
