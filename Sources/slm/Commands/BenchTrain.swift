import ArgumentParser
import Foundation
import SLMModels
import SLMTensor
import SLMText
import SLMTrain

/// Training speed with the real trainer: ms per step, tokens/s, MFU and peak RSS.
struct BenchTrain: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train",
        abstract: "Training speed of a preset: ms/step, tokens/s, MFU, peak RSS (release builds).",
        discussion: "Runs the trainer for --steps steps (the first --warmup are not timed) on --data, or on random tokens when no data is given.")

    @Option(help: "A preset from presets/.") var preset: String
    @Option(help: "Tokenized data folder (default: random tokens of the preset's vocabulary).") var data: String?
    @Option(help: "Vocabulary size for random tokens.") var vocabSize = 65
    @Option(help: "Steps in all.") var steps = 13
    @Option(help: "Steps not timed at the start.") var warmup = 3
    @Option(help: "Matrix products in fp32, or in bf16 with fp32 weights (MFU is then against the bf16 peak, n/a where bf16 is emulated), or auto (bf16 where native).",
            transform: parsePrecision)
    var precision = MatmulPrecision.fp32
    @Option(name: .customLong("set"), help: "Override any value: model.KEY=VALUE or training.KEY=VALUE.") var overrides: [String] = []
    @Flag(help: "Also time every op kind, forward and backward, and the work between them (after the warm-up steps).")
    var profile = false
    @Flag(help: "Print a JSON object.") var json = false
    @OptionGroup var runtime: RuntimeOptions

    struct Report: Codable {
        var preset: String
        var precision: String
        var threads: Int
        var parameters: Int
        var tokensPerStep: Int
        var msPerStep: Double
        var tokensPerSecond: Double
        var mfu: Double?
        var peakRSSMiB: Double
        var config: ModelConfig
        /// With --profile: seconds (and, for matrix products, floating-point operations)
        /// per timed step by op kind or label, and calls in all `profiledSteps`.
        var profile: [String: OpProfile.Entry]?
        var profiledSteps: Int?
    }

    func run() throws {
        try runtime.apply()
        guard steps > warmup, warmup >= 0 else { throw CommandError("--steps must exceed --warmup") }
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("slm-bench-train-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: scratch) }
        let dataURL = try data.map { URL(fileURLWithPath: $0) } ?? randomData(in: scratch)
        let trainingData = try userFacing { try TrainingData(directory: dataURL) }
        var p = try userFacing { try Preset.load(preset, executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()) }
        try userFacing { try p.override(overrides) }
        var (modelConfig, training) = try userFacing { try p.configs(vocabSize: trainingData.meta.vocabularySize) }
        training.steps = steps
        training.precision = precision
        training.logInterval = 1
        training.evalInterval = steps + 1
        training.evalBatches = 1
        let model = try userFacing { try makeModel(modelConfig, seed: training.seed) }
        let out = scratch.appendingPathComponent("run")
        let trainer = try userFacing { try Trainer(model: model, data: trainingData, config: training, out: out) }
        let opProfile = profile ? OpProfile() : nil
        if let opProfile { trainer.beforeStep = { [warmup] step in if step == warmup { opProfile.reset() } } }
        try userFacing {
            if let opProfile { _ = try opProfile.collect { try trainer.run { _ in } } } else { _ = try trainer.run { _ in } }
        }

        let rates = try String(contentsOf: out.appendingPathComponent("metrics.jsonl"), encoding: .utf8).split(separator: "\n")
            .compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
            .compactMap { o -> (Int, Double, Double?)? in
                guard let s = o["step"] as? Int, let r = o["tokens_per_sec"] as? Double else { return nil }
                return (s, r, o["mfu"] as? Double)  // no MFU where no peak could be measured
            }.filter { $0.0 > warmup }
        guard !rates.isEmpty else { throw CommandError("no speed was logged after the warm-up steps; give more --steps") }
        let tokensPerStep = training.batch * training.accumulation * modelConfig.context
        let rate = rates.map(\.1).sorted()[rates.count / 2]
        let mfus = rates.compactMap(\.2).sorted(), mfu = mfus.isEmpty ? nil : mfus[mfus.count / 2]
        modelConfig.dropout = model.config.dropout
        let profiled = steps - warmup
        let perStep = opProfile?.entries.mapValues { e in
            OpProfile.Entry(forwardSeconds: e.forwardSeconds / Double(profiled), backwardSeconds: e.backwardSeconds / Double(profiled),
                            calls: e.calls, forwardFlops: e.forwardFlops / Double(profiled),
                            backwardFlops: e.backwardFlops / Double(profiled))
        }
        let report = Report(preset: preset, precision: precision.rawValue, threads: Parallel.threadCount, parameters: model.parameterCount,
                            tokensPerStep: tokensPerStep, msPerStep: 1000 * Double(tokensPerStep) / rate, tokensPerSecond: rate,
                            mfu: mfu, peakRSSMiB: peakResidentMiB(), config: modelConfig,
                            profile: perStep, profiledSteps: perStep == nil ? nil : profiled)
        if json {
            try printJSON(report)
        } else {
            let mfuText = mfu.map { String(format: "%.1f%%", 100 * $0) } ?? "n/a (no peak measured on this CPU)"
            print(String(format: "%@ (%d parameters, %d threads, %@): %.0f ms/step, %.0f tokens/s, MFU %@, peak RSS %.0f MiB",
                         preset, report.parameters, report.threads, precision.rawValue, report.msPerStep, rate, mfuText, report.peakRSSMiB))
            if let perStep { printProfile(perStep, steps: profiled) }
        }
    }

    /// One line per op kind or label, the most expensive first: ms per step forward and
    /// backward, and the share of all the time charged.
    private func printProfile(_ entries: [String: OpProfile.Entry], steps: Int) {
        let total = entries.values.reduce(0) { $0 + $1.forwardSeconds + $1.backwardSeconds }
        guard total > 0 else { return }
        print(String(format: "\nwhere a step's time goes (mean of %d steps; %.1f ms charged per step):", steps, total * 1000))
        print("op or work                                       forward ms  backward ms   share  calls/step")
        for (name, e) in entries.sorted(by: { $0.value.forwardSeconds + $0.value.backwardSeconds > $1.value.forwardSeconds + $1.value.backwardSeconds }) {
            let share = (e.forwardSeconds + e.backwardSeconds) / total
            print(String(format: "%@ %11.2f %12.2f %6.1f%% %10.1f", name.padding(toLength: 48, withPad: " ", startingAt: 0),
                         e.forwardSeconds * 1000, e.backwardSeconds * 1000, share * 100, Double(e.calls) / Double(steps)))
        }
        let counted = entries.filter { $0.value.forwardFlops + $0.value.backwardFlops > 0 }.sorted { $0.key < $1.key }
        guard !counted.isEmpty else { return }
        // The peak MFU is a share of (kept by `slm bench kernels`, else measured now).
        let peak = PeakFLOPs.forTraining(bf16: precision == .bf16)
        print(peak.flops > 0
              ? String(format: "\nmatrix products: GFLOP/s, and the share of the %.1f GFLOP/s %@ peak (%@):", peak.flops / 1e9,
                       precision.rawValue, peak.source)
              : "\nmatrix products: GFLOP/s (no \(precision.rawValue) peak on this CPU):")
        func rate(_ flops: Double, _ seconds: Double) -> String {
            guard flops > 0, seconds > 0 else { return "-" }
            let text = String(format: "%.1f", flops / seconds / 1e9)
            return peak.flops > 0 ? text + String(format: " (%.0f%%)", 100 * flops / seconds / peak.flops) : text
        }
        for (name, e) in counted {
            print("\(name.padding(toLength: 12, withPad: " ", startingAt: 0)) forward \(rate(e.forwardFlops, e.forwardSeconds)), "
                  + "backward \(rate(e.backwardFlops, e.backwardSeconds)), "
                  + "both \(rate(e.forwardFlops + e.backwardFlops, e.forwardSeconds + e.backwardSeconds))")
        }
    }

    /// A data folder of random tokens (uniform over the vocabulary).
    private func randomData(in dir: URL) throws -> URL {
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        var rng = RNG(seed: 3)
        for (name, count) in [("train.bin", 1 << 20), ("val.bin", 1 << 16)] {
            let ids = (0..<count).map { _ in Int32(rng.next() % UInt64(vocabSize)) }
            try TokenFileWriter.write(ids, width: TokenWidth(vocabularySize: vocabSize), to: dir.appendingPathComponent(name))
        }
        let meta = DatasetMeta(tokenizer: "none", charset: nil, lowercase: nil, numeralsAsWords: nil, vocabularySize: vocabSize,
                               width: TokenWidth(vocabularySize: vocabSize), separator: 0, trainTokens: 1 << 20,
                               validationTokens: 1 << 16, trainCharacters: 1 << 20, validationCharacters: 1 << 16)
        try JSONEncoder().encode(meta).write(to: dir.appendingPathComponent("meta.json"))
        return dir
    }
}

/// The process's peak resident set size so far.
func peakResidentMiB() -> Double {
    var usage = rusage()
    #if os(Linux)
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    return Double(usage.ru_maxrss) / 1024          // kilobytes on Linux
    #else
    getrusage(RUSAGE_SELF, &usage)
    return Double(usage.ru_maxrss) / 1_048_576     // bytes on macOS
    #endif
}
