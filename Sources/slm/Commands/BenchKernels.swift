import ArgumentParser
import CSLMKernels
import Foundation
import SLMTensor
import SLMTrain

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Benchmarks (run them from a release build: swift run -c release slm bench …).",
        subcommands: [BenchKernels.self, BenchMixers.self, BenchTokenizer.self, BenchGenerate.self, BenchTrain.self])
}

/// GEMM, attention and memory-bound kernel speeds, each against a peak measured on
/// this machine by the same binary.
struct BenchKernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kernels",
        abstract: "Measure matrix multiply (fp32, bf16), fused attention and norm/elementwise kernels.")

    @Flag(help: "Print one JSON document instead of text.")
    var json = false

    @Option(help: "Timed repeats per measurement (the median is reported).")
    var repeats = 5

    @Option(help: "Rows M = B·T for the GEMMs (comma separated).")
    var rows = "4096,8192,16384"

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        guard repeats > 0 else { throw ValidationError("--repeats must be at least 1") }
        let ms = try positiveIntegers(rows, option: "--rows")
        let log: (String) -> Void = json ? { _ in } : { print($0) }
        #if DEBUG
        log("warning: debug build; figures are meaningless. Use: swift run -c release slm bench kernels")
        #endif
        var report = KernelReport(machine: .current)
        log("machine: \(report.machine.threads) threads, kernels \(report.machine.isa), matmul \(report.machine.gemmBackend)")

        report.peak = Peaks.measure(threads: Parallel.threadCount)
        #if !DEBUG  // (debug builds compile the C kernels unoptimised)
        // Training reuses these steadier figures for MFU.
        PeakFLOPs.record(fp32: report.peak.fp32GFlops * 1e9, bf16: report.peak.bf16GFlops * 1e9, threads: Parallel.threadCount)
        #endif
        let bf16Peak = report.peak.bf16GFlops > 0
            ? String(format: "%.0f GFLOP/s", report.peak.bf16GFlops) : "n/a (no native bf16 dot product: the bf16 GEMMs below are emulated)"
        log(String(format: "peak (measured): fp32 %.0f GFLOP/s, memory %.1f GB/s, bf16 %@",
                   report.peak.fp32GFlops, report.peak.memoryGBs, bf16Peak))
        log("  from \(Peaks.method)")

        log("\nGEMM (C = A·B, fp32 accumulate), median of \(repeats):")
        log("  case       M      N      K    fp32 GFLOP/s  share   bf16 GFLOP/s  share")
        for m in ms {
            for (n, k) in [(1536, 384), (384, 1536)] {
                for gemmCase in GemmCase.allCases {
                    let r = GemmBench(kind: gemmCase, m: m, n: n, k: k).run(repeats: repeats, peak: report.peak)
                    report.gemm.append(r)
                    let bf16Share = r.bf16Share.map { String(format: "%5.1f%%", $0 * 100) } ?? "  n/a"
                    log(String(format: "  %@ %6d %6d %6d    %8.1f    %5.1f%%    %8.1f    %@", gemmCase.label.padding(toLength: 8, withPad: " ", startingAt: 0),
                               r.m, r.n, r.k, r.fp32GFlops, r.fp32Share * 100, r.bf16GFlops, bf16Share))
                }
            }
        }

        let att = AttentionBench(batch: 16, heads: 6, time: 256, headSize: 64).run(repeats: repeats, peak: report.peak)
        report.attention = att
        log(String(format: "\nfused causal attention B=16 H=6 T=256 D=64: forward %.2f ms, backward %.2f ms, forward+backward %.2f ms",
                   att.forwardMs, att.backwardMs, att.totalMs))
        log(String(format: "  %.1f GFLOP/s over the causal matmul work (%.0f%% of fp32 peak)", att.gflops, att.share * 100))

        let handoff = HandoffBench().run(repeats: repeats)
        report.handoff = handoff
        log(String(format: "\nGEMM → own parallel loop handoff (1024×384×384 GEMM, then GELU over 1024×1536): %.3f + %.3f ms alone, %.3f ms alternating (%+.3f ms)",
                   handoff.gemmMs, handoff.loopMs, handoff.alternatingMs, handoff.overheadMs))

        log("\nmemory-bound kernels (\(MemoryBench.rows) × \(MemoryBench.cols) floats), median of \(repeats):")
        for r in MemoryBench.all.map({ $0.run(repeats: repeats, peak: report.peak) }) {
            report.memory.append(r)
            log(String(format: "  %@ %7.1f GB/s  %5.1f%% of measured bandwidth  (%.3f ms)",
                       r.name.padding(toLength: 16, withPad: " ", startingAt: 0), r.gbs, r.share * 100, r.ms))
        }
        if json {
            try printJSON(report)
        }
    }
}

struct KernelReport: Codable {
    struct Machine: Codable {
        var threads: Int
        var isa: String
        var avx512bf16: Bool
        var gemmBackend: String
        var release: Bool

        static var current: Machine {
            #if DEBUG
            let release = false
            #else
            let release = true
            #endif
            return Machine(threads: Parallel.threadCount, isa: CPUKernels.activeISA, avx512bf16: CPUKernels.hasAVX512BF16,
                           gemmBackend: Gemm.backendName, release: release)
        }
    }

    var machine: Machine
    var peak = Peaks()
    var gemm: [GemmResult] = []
    var attention: AttentionResult?
    var handoff: HandoffResult?
    var memory: [MemoryResult] = []
}

/// A comma-separated list of positive integers, as bench options take them.
func positiveIntegers(_ text: String, option: String) throws -> [Int] {
    try text.split(separator: ",").map { part -> Int in
        guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n > 0 else {
            throw ValidationError("\(option) takes positive integers separated by commas, not \(text)")
        }
        return n
    }
}

/// Median wall time of `repeats` runs after one warm-up run.
func medianSeconds(repeats: Int, _ body: () -> Void) -> Double { sampleSeconds(repeats: repeats, body).median }

struct Peaks: Codable {
    var fp32GFlops = 0.0
    var bf16GFlops = 0.0
    var memoryGBs = 0.0

    static let method = "independent FMA chains (vfmadd…ps / vdpbf16ps at the widest vector width) on every thread at once for 0.3 s, and a copy+axpy stream over 3 × 64 MiB per thread at once; best of 3"

    static func measure(threads: Int) -> Peaks {
        var p = Peaks()
        for _ in 0..<3 {
            p.fp32GFlops = max(p.fp32GFlops, onAllThreads(threads) { slm_measure_fma_flops(0, 0.3) } / 1e9)
            p.bf16GFlops = max(p.bf16GFlops, onAllThreads(threads) { slm_measure_fma_flops(1, 0.3) } / 1e9)
            p.memoryGBs = max(p.memoryGBs, bandwidthGBs(threads: threads, repeats: 1))
        }
        return p
    }

    /// The memory bandwidth part of `measure` alone (GB/s, best of `repeats`).
    static func bandwidthGBs(threads: Int, repeats: Int = 3) -> Double {
        (0..<repeats).map { _ in onAllThreads(threads) { slm_measure_triad_bandwidth(3 << 26, 2) } / 1e9 }.max() ?? 0
    }

    private static func onAllThreads(_ threads: Int, _ f: @escaping @Sendable () -> Double) -> Double {
        CPUKernels.onDedicatedThreads(threads) { _ in f() }.reduce(0, +)
    }
}
