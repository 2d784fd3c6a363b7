import ArgumentParser
import Foundation
import SLMGenerate
import SLMModels
import SLMTensor
import SLMText
import SLMTrain
import Synchronization

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model on a tokenized data folder, with checkpoints you can resume.",
        discussion: """
        Choose a model and training settings with --preset (presets/NAME.toml) or --config FILE (same TOML \
        format); any value can be overridden with --set model.KEY=VALUE or --set training.KEY=VALUE, and the \
        common ones have their own flags. --depth N derives width (64·N), heads (N) and a token budget \
        (20 tokens per parameter) from the depth alone. Checkpoints go to OUT/ckpt-NNNNNN (the last few) and \
        OUT/best; --resume OUT (or a checkpoint folder) continues exactly where a run stopped.
        """)

    @Option(help: "A preset from presets/ (micro, char-10m, llama-5m, llama-moe, bitnet-5m, monarch-5m, symbio-4m).")
    var preset: String?

    @Option(help: "A TOML file with [model] and [training] sections.")
    var config: String?

    @Option(help: "Folder prepared by `slm data prepare` and `slm data tokenize`.")
    var data: String

    @Option(help: "Run folder for checkpoints and metrics.jsonl.")
    var out: String

    @Option(help: "Continue from a checkpoint folder, or from the newest checkpoint of a run folder.")
    var resume: String?

    @Option(name: .customLong("init"), help: ArgumentHelp(
        "Fine-tune: start from this model's weights (a checkpoint, or a folder saved by transformers' save_pretrained). Its "
        + "shape replaces the [model] section; --preset/--config give the training settings (defaults without them). The "
        + "data must be tokenized with its tokenizer (`slm data tokenize --tokenizer DIR`).", valueName: "DIR"))
    var initFrom: String?

    @Option(help: "nanochat-style size dial: layers = N, width = 64·N, heads = N, steps from 20 tokens per parameter.")
    var depth: Int?

    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Sequences per micro-batch.") var batch: Int?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(help: "Time budget, e.g. 90s, 10m, 1h30m.") var time: String?
    @Option(help: "Random seed (data order, initialisation, dropout).") var seed: Int?
    @Option(name: .customLong("eval-interval"), help: "Steps between evaluations and checkpoints.") var evalInterval: Int?

    @Option(name: .customLong("set"), help: "Override any value: model.KEY=VALUE or training.KEY=VALUE (repeatable).")
    var overrides: [String] = []

    @Option(help: "Matrix products in fp32, or in bf16 with fp32 weights, gradients and optimizer (about twice as fast on CPUs with AVX512-BF16, emulated and slower elsewhere), or auto: bf16 where the CPU has native bf16, else fp32. Default: the preset's training.precision, else auto; a resume keeps the checkpoint's.",
            transform: parsePrecision)
    var precision: MatmulPrecision?

    @Option(help: ArgumentHelp("BitNet b1.58: the blocks' linear maps train with ternary weights and 8-bit activations (training.quantization); "
        + "with training.full_precision_fraction = F, the first F of the steps train in full precision (\"16-to-1.58\").", valueName: "ternary"))
    var quantize: ModelConfig.Quantization?

    @Option(help: "Distil from this checkpoint (same tokenizer as the data): the student also learns the teacher's softened distribution, weighted by training.distill_weight (0.5) at training.distill_temperature (2).")
    var teacher: String?

    @Option(help: "Characters of text to sample at the end (0: none).")
    var sample = 200

    @Option(help: "Tokens of text to sample at every evaluation, logged in metrics.jsonl for `slm dashboard` (0: none).")
    var evalSample = 64

    @Flag(help: "Start `slm dashboard` on the run beside the training (stopped when training ends).")
    var dashboard = false

    @Option(help: "The dashboard's port on 127.0.0.1.") var dashboardPort = 8090

    @Option(help: "Under mpirun: gradients travel between ranks in fp32, or in bf16 (half the bytes, rounded).")
    var allreduce: WirePrecision = .fp32

    @Option(help: ArgumentHelp("Under mpirun: gradients are summed in buckets of about this many MiB, each sent while the backward pass "
        + "still runs; 0 sends them all in one sum after it.", valueName: "MiB"))
    var allreduceBucketMb: Double = Double(MPIGroup.defaultBucketBytes) / 1_048_576

    @OptionGroup var runtime: RuntimeOptions

    func run() throws {
        try runtime.apply()
        guard allreduceBucketMb >= 0, allreduceBucketMb.isFinite else {
            throw ValidationError("--allreduce-bucket-mb must be 0 (no overlap) or a positive size, not \(allreduceBucketMb)")
        }
        // Under mpirun, one rank of a data-parallel run: rank 0 alone prints and writes.
        let group = try userFacing {
            try MPIGroup.fromEnvironment(wire: allreduce, bucketBytes: Int(allreduceBucketMb * 1_048_576))
        }
        do {
            try train(group: group)
        } catch {
            guard let group else { throw error }
            printError("rank \(group.rank): \(error)")
            group.abort(code: 1)
        }
    }

    private func train(group: MPIGroup?) throws {
        let leader = (group?.rank ?? 0) == 0
        func say(_ line: String) { if leader { print(line) } }
        let dataURL = URL(fileURLWithPath: data), outURL = URL(fileURLWithPath: out)
        let trainingData = try userFacing { try TrainingData(directory: dataURL) }
        let initial = try initFrom.map { path in try userFacing { try loadInitial(path, data: dataURL) } }
        var (modelConfig, trainingConfig) = try userFacing { try configs(vocabSize: trainingData.meta.vocabularySize, initial: initial) }
        // Ternary training makes a ternary model (a full-precision one given with --init becomes one).
        if let q = trainingConfig.quantization { modelConfig.quantization = q }
        let model = try userFacing {
            guard let initial else { return try makeModel(modelConfig, seed: trainingConfig.seed) }
            guard initial.config != modelConfig else { return initial }
            return try makeModel(modelConfig, weights: Dictionary(uniqueKeysWithValues: initial.parameters.map { ($0.name, $0.tensor) }))
        }
        if let initial, leader {
            printError("fine-tuning \(initFrom!): \(modelConfig.architecture), \(initial.parameterCount) parameters")
        }
        let teacherModel = try trainingConfig.teacher.map { path in try userFacing { try loadCompanion(path, role: "teacher", data: dataURL) } }
        let referenceModel = try trainingConfig.doremiReference.map { path in
            try userFacing { try loadCompanion(path, role: "DoReMi reference", data: dataURL) }
        }
        let trainer = try userFacing {
            try Trainer(model: model, data: trainingData, config: trainingConfig, out: outURL,
                        resume: resume.map { URL(fileURLWithPath: $0) }, group: group, teacher: teacherModel,
                        reference: referenceModel) { if leader { printError($0) } }
        }
        if referenceModel != nil, leader {
            printError("online DoReMi against \(trainingConfig.doremiReference!): step size \(trainingConfig.doremiStepSize), "
                + "smoothing \(trainingConfig.doremiSmoothing); category weights logged as domain_weights")
        }
        if let teacherModel, leader {
            printError("distilling from \(trainingConfig.teacher!) (\(teacherModel.parameterCount) parameters): weight "
                + "\(trainingConfig.distillWeight), temperature \(trainingConfig.distillTemperature)")
        }
        if let group, leader {
            printError("data-parallel: \(group.size) ranks, \(trainingConfig.batch / group.size) of the \(trainingConfig.batch) sequences "
                + "of each batch per rank, gradients averaged in \(allreduce.rawValue)"
                + (group.bucketBytes > 0 ? " in \(trainer.gradientBucketCount ?? 0) buckets of at most "
                    + "\(String(format: "%g", allreduceBucketMb)) MiB, sent during the backward pass" : " in one sum after the backward pass"))
        }
        trainer.interruption = { StopSignal.received }
        StopSignal.install()
        let tokenizer = try? loadTokenizer(dataURL.path)
        let prompt = Array((try? TokenFile(url: dataURL.appendingPathComponent("val.bin"), width: trainingData.meta.width))
            .flatMap { $0.count > 8 ? $0.window(at: 0, length: 8) : nil } ?? [])
        /// The first 8 validation tokens and `count` more from the model.
        func sampleText(_ count: Int) -> String? {
            guard let tokenizer else { return nil }
            let options = GenerationOptions(maxTokens: count, sampling: SamplingParameters(temperature: 0.8, seed: trainingConfig.seed))
            let text = Generator(model: model, tokenizer: tokenizer).generate(prompt: prompt, options: options).text
            return ((try? tokenizer.decode(prompt)) ?? "") + text
        }
        if evalSample > 0 && leader { trainer.sampleText = { sampleText(evalSample) } }
        let dashboardProcess = dashboard && leader ? try startDashboard() : nil
        defer {
            if let dashboardProcess {
                dashboardProcess.terminate()
                printError("dashboard stopped; `slm dashboard \(out)` shows the run again")
            }
        }
        let summary = try userFacing { try trainer.run(report: say) }
        guard leader else { return }
        if sample > 0, let shown = sampleText(sample) {
            print("sample: \(shown.replacingOccurrences(of: "\n", with: " ⏎ "))")
        }
        if summary.stoppedBy != "step budget" { printError("stopped by the \(summary.stoppedBy); --resume \(out) continues") }
    }

    /// `slm dashboard OUT` as a child process of this one.
    private func startDashboard() throws -> Process {
        guard (1...65535).contains(dashboardPort) else { throw ValidationError("--dashboard-port must be in 1...65535") }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        if !FileManager.default.isExecutableFile(atPath: process.executableURL!.path) {
            process.executableURL = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        }
        process.arguments = ["dashboard", out, "--port", String(dashboardPort)]
        do { try process.run() } catch { throw CommandError("could not start the dashboard: \(error)") }
        return process
    }

    /// Model and training settings from the preset/config/checkpoint and every override.
    /// A teacher or reference checkpoint, refused unless its tokenizer files are the data's, byte for byte.
    func loadCompanion(_ path: String, role: String, data: URL) throws -> any LanguageModel {
        let dir = try Checkpoint.resolve(path)
        let files = ["tokenizer.json", "vocab.json", "merges.txt"].filter {
            FileManager.default.fileExists(atPath: data.appendingPathComponent($0).path)
        }
        for name in files where FileManager.default.contents(atPath: dir.appendingPathComponent(name).path)
            != FileManager.default.contents(atPath: data.appendingPathComponent(name).path) {
            throw CommandError("the \(role) \(path) does not share the data's tokenizer (\(name) differs or is missing): "
                + "it must use the same tokenizer as the model it trains")
        }
        return try ModelStore.load(from: dir)
    }

    /// The model to fine-tune, refused unless its tokenizer reads as the data's (same ids, same bytes).
    func loadInitial(_ path: String, data: URL) throws -> any LanguageModel {
        guard resume == nil else { throw CommandError("--init starts a run from a model; --resume continues one: give one of them") }
        let dir = URL(fileURLWithPath: path)
        let model = try ModelStore.load(from: dir)
        let theirs = try loadTokenizer(dir.path), ours = try loadTokenizer(data.path)
        let same = theirs.kind == ours.kind && theirs.vocabularySize == ours.vocabularySize
            && (0..<Int32(ours.vocabularySize)).allSatisfy { theirs.tokenBytes($0) == ours.tokenBytes($0) }
        guard same else {
            throw CommandError("\(path) has another tokenizer than \(data.path) (\(theirs.kind), \(theirs.vocabularySize) ids against "
                + "\(ours.kind), \(ours.vocabularySize)): tokenize the data with `slm data tokenize --data \(data.path) --tokenizer \(path)`")
        }
        return model
    }

    /// --set values, then the flags that stand for a setting (checked together with them).
    var allOverrides: [String] { overrides + (quantize.map { ["training.quantization=\"\($0.rawValue)\""] } ?? []) }

    func configs(vocabSize: Int, initial: (any LanguageModel)? = nil) throws -> (ModelConfig, TrainingConfig) {
        guard preset == nil || config == nil else { throw CommandError("give --preset or --config, not both") }
        var p: Preset
        if let initial {
            // The model is given; a preset or config contributes its [training] section.
            guard depth == nil else { throw CommandError("--depth sizes a new model; it does not apply with --init") }
            var training = TrainingConfig()
            if let name = preset ?? config {
                p = try Preset.load(name, executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
                try p.override(allOverrides)
                training = try p.trainingConfig()
            } else if !allOverrides.isEmpty {
                p = try Preset(name: "--set", text: "")
                try p.override(allOverrides)
                training = try p.trainingConfig()
            }
            return (initial.config, try applyFlags(training))
        }
        if let name = preset ?? config {
            p = try Preset.load(name, executable: URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath())
        } else if let resume {
            // Resuming without a preset: the checkpoint says what it was.
            let dir = try Checkpoint.resolve(resume)
            let model = try ModelConfig.read(from: dir.appendingPathComponent("config.json"))
            let state = try Checkpoint.readState(dir)
            return (model, try applyFlags(state.training))
        } else {
            throw CommandError("choose a model: --preset NAME, --config FILE, or --resume DIR")
        }
        if let depth { try p.applyDepth(depth, vocabSize: vocabSize) }
        try p.override(allOverrides)
        let (model, training) = try p.configs(vocabSize: vocabSize)
        return (model, try applyFlags(training))
    }

    func applyFlags(_ base: TrainingConfig) throws -> TrainingConfig {
        var t = base
        if let steps { t.steps = steps }
        if let batch { t.batch = batch }
        if let lr { t.learningRate = lr; t.minLearningRate = min(t.minLearningRate, lr) }
        if let seed { t.seed = UInt64(seed) }
        if let evalInterval { t.evalInterval = evalInterval }
        if let teacher { t.teacher = URL(fileURLWithPath: teacher).standardizedFileURL.path }
        if let precision { t.precision = precision }
        if let quantize { t.quantization = quantize }
        if let time {
            guard let s = SLMTrain.Duration.seconds(time) else { throw CommandError("--time must look like 90s, 10m or 1h30m, not \(time)") }
            t.timeBudget = s
        }
        try t.validate()
        return t
    }
}

/// SIGINT and SIGTERM end training after the current step, with a checkpoint; a second
/// one stops at once.
enum StopSignal {
    private static let flag = Atomic<Bool>(false)

    static var received: Bool { flag.load(ordering: .relaxed) }

    static func install() {
        for s in [SIGINT, SIGTERM] {
            signal(s) { number in
                if StopSignal.flag.exchange(true, ordering: .relaxed) { _exit(128 + number) }
                // Only async-signal-safe calls here: write(2) of a static string.
                let note: StaticString = "\nstopping after this step (again to stop at once)\n"
                _ = note.withUTF8Buffer { write(2, $0.baseAddress, $0.count) }
            }
        }
    }
}

extension WirePrecision: ExpressibleByArgument {}
extension ModelConfig.Quantization: ExpressibleByArgument {}
