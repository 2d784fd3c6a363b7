import CSLMKernels
import Foundation
import SLMModels
import SLMTensor
import SLMSupport
import SLMText
import SLMVisual

/// A prepared, tokenized data directory (train.bin, val.bin, meta.json).
public struct TrainingData {
    public let directory: URL
    public let meta: DatasetMeta
    public let train: TokenFile
    public let validation: TokenFile?
    /// Changes when the tokenizer or the token counts change.
    public let fingerprint: String
    /// Changes when any token changes (`contentHash` of train.bin and val.bin).
    public let hash: String

    public init(directory: URL) throws {
        self.directory = directory
        meta = try DatasetMeta.read(from: directory)
        train = try TokenFile(url: directory.appendingPathComponent("train.bin"), width: meta.width)
        let val = try TokenFile(url: directory.appendingPathComponent("val.bin"), width: meta.width)
        validation = val.count > 0 ? val : nil
        let capacity = meta.width == .uint16 ? 1 << 16 : Int(Int32.max)
        guard (1...capacity).contains(meta.vocabularySize) else {
            throw PipelineError.invalidOption("\(directory.path)/meta.json: vocab_size \(meta.vocabularySize) does not fit \(meta.width.rawValue) ids")
        }
        for file in [train, val] {
            let top = file.largestID()
            guard top < meta.vocabularySize else {
                throw PipelineError.invalidOption("\(file.url.path) holds id \(top), outside the vocabulary of \(meta.vocabularySize) (meta.json); tokenize the data again")
            }
        }
        let metaBytes = FileManager.default.contents(atPath: directory.appendingPathComponent("meta.json").path) ?? Data()
        fingerprint = SLMTrain.fingerprint([metaBytes, Data(String(train.count).utf8), Data(String(val.count).utf8)])
        hash = try contentHash([directory.appendingPathComponent("train.bin"), directory.appendingPathComponent("val.bin")])
    }

    /// "char tokenizer (micro), 28 ids, 16.5M train tokens" — for mismatch messages.
    var summary: String {
        "\(meta.tokenizer) tokenizer\(meta.charset.map { " (\($0))" } ?? ""), \(meta.vocabularySize) ids, \(meta.trainTokens) train tokens"
    }
}

public struct TrainingSummary: Sendable {
    public var steps: Int
    public var tokensSeen: Int
    public var seconds: Double
    public var bestValidationLoss: Double?
    public var lastCheckpoint: URL?
    public var stoppedBy: String
}

/// The training loop: AdamW with warm-up and cosine decay, gradient accumulation and
/// clipping, periodic evaluation, checkpoints (last K and best), progress lines and
/// metrics.jsonl. Same seed and thread count give the same losses, also across a resume.
public final class Trainer {
    public let model: any LanguageModel
    public let data: TrainingData
    public let config: TrainingConfig
    public let out: URL

    let optimizer: AdamW
    let schedule: LearningRateSchedule
    var sampler: BatchSampler
    /// Chunk weights per step when `training.sampler = "chunks"`.
    let plan: SamplingPlan?
    private var planKey: [Int]?
    var dropoutRNG: RNG
    var step = 0
    var tokensSeen = 0
    var elapsedBefore = 0.0
    var bestValidationLoss: Double?
    var ema: [Tensor]?
    /// Stops the loop after this step, as an interruption would (for tests of resuming).
    var stopAfter: Int?
    /// Called before each step with the number of steps done (tests inject faults with it,
    /// `slm bench train --profile` starts its profile after the warm-up steps).
    public var beforeStep: ((Int) -> Void)?
    /// A short sample of the model's text, logged with every evaluation (`slm dashboard` shows the latest).
    public var sampleText: (() -> String?)?
    /// Asked after every step: true stops the run there (after a checkpoint), as SIGINT or SIGTERM do in `slm train`.
    public var interruption: (() -> Bool)?
    /// The ranks of a data-parallel run (nil: this process alone). Each reads rows
    /// rank, rank + N, … of every global batch; gradients are averaged over the ranks
    /// before clipping; rank 0 alone writes metrics and checkpoints.
    public let group: (any ProcessGroup)?
    var rank: Int { group?.rank ?? 0 }
    var ranks: Int { group?.size ?? 1 }
    var isLeader: Bool { rank == 0 }
    /// Distillation's teacher (nil: none).
    let teacher: (any LanguageModel)?
    /// Online DoReMi's reference model and category weights (nil: off).
    let reference: (any LanguageModel)?
    var reweighting: DomainReweighting?
    /// How gradients are averaged over the ranks (nil: this process alone).
    let buckets: GradientBuckets?
    /// How many all-reduces a step's gradients go out in (nil: this process alone).
    public var gradientBucketCount: Int? { buckets?.bucketCount }
    let configFingerprint: String
    /// The peak MFU is a share of; 0 (MFU n/a) without one, or once the run outpaces it.
    private(set) var peakFLOPs: Double
    let peakSource: String
    private let metrics: FileHandle?

    /// Starts a run in `out`, or continues the checkpoint `resume` exactly.
    /// `teacher`: the model that `config.teacher` names, for distillation (same tokenizer).
    public init(model: any LanguageModel, data: TrainingData, config: TrainingConfig, out: URL, resume: URL? = nil,
                group: (any ProcessGroup)? = nil, teacher: (any LanguageModel)? = nil, reference: (any LanguageModel)? = nil,
                peak: PeakFLOPs.Peak? = nil, note: (String) -> Void = { _ in }) throws {
        try config.validate()
        if teacher == nil && config.teacher != nil {
            throw CheckpointError("training.teacher is set but no teacher model was loaded")
        }
        self.teacher = teacher
        for (role, companion) in [("teacher", teacher), ("DoReMi reference", reference)] {
            guard let companion else { continue }
            guard companion.config.vocabSize == model.config.vocabSize, companion.config.context >= model.config.context else {
                throw CheckpointError("the \(role) (vocabulary \(companion.config.vocabSize), context \(companion.config.context)) must share the "
                    + "student's vocabulary (\(model.config.vocabSize)) and read at least its context (\(model.config.context))")
            }
        }
        if config.doremiReference != nil && reference == nil {
            throw CheckpointError("training.doremi.reference is set but no reference model was loaded")
        }
        self.reference = reference
        if let group, config.batch % group.size != 0 {
            throw CheckpointError("training.batch \(config.batch) must be a multiple of the number of ranks (\(group.size)): "
                + "it is the global batch, which the ranks share equally")
        }
        self.group = group
        buckets = try group.map { try GradientBuckets(parameters: model.parameters.map(\.tensor), group: $0, bucketBytes: $0.bucketBytes) }
        guard data.meta.vocabularySize == model.config.vocabSize else {
            throw CheckpointError("the model's vocabulary (\(model.config.vocabSize)) differs from the data's (\(data.meta.vocabularySize))")
        }
        if let v = data.validation, v.count < model.config.context + 1 {
            throw CheckpointError("the validation split holds \(v.count) tokens, fewer than one window of \(model.config.context + 1) "
                + "(the context plus the next token), so it cannot be evaluated; prepare the data with a larger --val-fraction "
                + "or train a shorter context")
        }
        self.model = model
        self.data = data
        self.config = config
        self.out = out
        let params = model.parameters.map(\.tensor)
        let decayed = Set(zip(params, model.parameterDecays).filter(\.1).map { ObjectIdentifier($0.0) })
        optimizer = AdamW(parameters: params, learningRate: Float(config.learningRate), beta1: Float(config.beta1),
                          beta2: Float(config.beta2), weightDecay: Float(config.weightDecay),
                          decay: { decayed.contains(ObjectIdentifier($0)) })
        schedule = LearningRateSchedule(peak: config.learningRate, floor: config.minLearningRate, warmup: config.warmup,
                                        total: config.steps)
        sampler = try BatchSampler(file: data.train, batch: config.batch, context: model.config.context, seed: config.seed)
        if config.sampler == .chunks {
            guard let chunks = data.meta.chunks else {
                throw CheckpointError("training.sampler = \"chunks\" needs the chunk index that `slm data tokenize` writes from the "
                    + "pipeline's train_enriched.jsonl; \(data.directory.path) has none (tokenized by an older version, or prepared "
                    + "without the difficulty signals): run `slm data prepare` and `slm data tokenize` again")
            }
            let index = try ChunkIndex.read(directory: data.directory, meta: chunks, trainTokens: data.train.count)
            let scores = config.coresetKeep < 1 ? try ChunkScores.read(from: data.directory, chunks: index.chunks.count) : nil
            plan = try SamplingPlan(index: index, config: config, scores: scores)
            note("sampling by chunk (\(index.chunks.count) chunks of \(index.books.count) books)"
                + (config.categoryWeights.isEmpty ? "" : "; category weights \(config.categoryWeights)")
                + (config.phases.isEmpty ? "" : "; phases \(config.phases)")
                + (config.curriculum.map { "; curriculum by \($0.rawValue), easiest first, over the first "
                    + "\(Int((config.curriculumFraction * 100).rounded()))% of the steps" } ?? "")
                + (config.coresetKeep < 1 ? "; coreset: \(config.coresetKeep) of the chunks by loss, the top \(config.coresetNoise) left out as noise" : ""))
            sampler.chunks = ChunkDraw(index: index, context: model.config.context, fileCount: data.train.count)
            if reference != nil {
                reweighting = DomainReweighting(tokensPerCategory: plan!.tokensPerCategory, stepSize: config.doremiStepSize,
                                                smoothing: config.doremiSmoothing)
            }
        } else {
            plan = nil
        }
        dropoutRNG = RNG(seed: config.seed &+ 1)
        configFingerprint = fingerprint([try model.config.jsonData()])
        ema = config.emaDecay > 0 ? params.map { $0.copy() } : nil
        // MFU is against the peak of the precision the products run at.
        let peak = peak ?? PeakFLOPs.forTraining(bf16: config.precision == .bf16)
        (peakFLOPs, peakSource) = (peak.flops, peak.source)
        if Gemm.backendName == "reference" {
            note("warning: matrix products run on the plain reference loops, one to two orders of magnitude slower than oneDNN "
                + "or OpenBLAS (`slm info` says why); run scripts/setup.sh "
                + "(the libraries are found when slm starts; no rebuild is needed)")
        }
        if config.precision == .bf16 && !(CPUKernels.hasAVX512BF16 && Gemm.backendName == "onednn") {
            note("note: bf16 products are emulated here (they need oneDNN and a CPU with AVX512-BF16) and will be slower than fp32")
        }

        let fm = FileManager.default
        try fm.createDirectory(at: out, withIntermediateDirectories: true)
        if resume == nil && !Checkpoint.steps(in: out).isEmpty {
            throw CheckpointError("\(out.path) already holds checkpoints; pass --resume \(out.path) to continue, or choose another --out")
        }
        let metricsURL = out.appendingPathComponent("metrics.jsonl")
        if (group?.rank ?? 0) == 0 {
            if !fm.fileExists(atPath: metricsURL.path) { _ = fm.createFile(atPath: metricsURL.path, contents: nil) }
            metrics = try FileHandle(forWritingTo: metricsURL)
            metrics?.seekToEndOfFile()
        } else {
            metrics = nil
        }
        if let resume { try restore(from: resume, note: note) }
    }

    deinit { try? metrics?.close() }

    private func restore(from resume: URL, note: (String) -> Void) throws {
        let dir = try Checkpoint.resolve(resume.path)
        let state = try Checkpoint.readState(dir)
        let saved = try ModelConfig.read(from: dir.appendingPathComponent("config.json"))
        guard saved == model.config else {
            throw CheckpointError("cannot resume \(dir.path): the model config differs from the checkpoint's (\(differences(saved, model.config)))")
        }
        guard state.dataFingerprint == data.fingerprint else {
            throw CheckpointError("cannot resume \(dir.path): the data differs from what it was trained on (now \(data.summary); see \(dir.path)/data_meta.json)")
        }
        if let hash = state.dataHash, hash != data.hash {
            throw CheckpointError("cannot resume \(dir.path): the token files' contents differ from those it was trained on "
                + "(same tokenizer and token counts, other tokens); use the data it was trained on or start a new run")
        }
        let (weights, _) = try Safetensors.read(dir.appendingPathComponent("model.safetensors"))
        for (name, t) in model.parameters {
            guard let w = weights[name], w.shape == t.shape else { throw CheckpointError("\(dir.path): weights for \(name) are missing") }
            t.data.update(from: w.data, count: t.count)
        }
        let (moments, _) = try Safetensors.read(dir.appendingPathComponent("optimizer.safetensors"))
        try optimizer.load(state: moments, names: model.parameters.map(\.name), step: state.step)
        if ema != nil {
            let (averages, _) = try Safetensors.read(dir.appendingPathComponent("ema.safetensors"))
            ema = model.parameters.map { averages[$0.name]?.copy() ?? $0.tensor.copy() }
        }
        sampler.generator = SplitMix64(seed: state.samplerState)  // the seed is the whole state
        if let alpha = state.domainWeights, let current = reweighting, alpha.count == current.alpha.count {
            reweighting = DomainReweighting(tokensPerCategory: plan!.tokensPerCategory, stepSize: current.stepSize,
                                            smoothing: current.smoothing, alpha: alpha)
        }
        dropoutRNG = RNG(state: state.dropoutRNG)
        step = state.step
        tokensSeen = state.tokensSeen
        elapsedBefore = state.elapsedSeconds
        bestValidationLoss = state.bestValidationLoss
        if state.training != config {
            note("note: training settings differ from the checkpoint's; continuing with the new ones (\(differences(state.training, config)))")
        }
        // Checkpoints of this run folder past the resumed step belong to the abandoned
        // continuation: moved aside (not deleted), so that a later --resume cannot pick them.
        let newer = Checkpoint.steps(in: out).filter { $0.step > state.step }
        if !newer.isEmpty && isLeader {
            let aside = out.appendingPathComponent("superseded-at-step-\(state.step)")
            try FileManager.default.createDirectory(at: aside, withIntermediateDirectories: true)
            for c in newer {
                let target = aside.appendingPathComponent(c.url.lastPathComponent)
                try? FileManager.default.removeItem(at: target)
                try FileManager.default.moveItem(at: c.url, to: target)
            }
            note("moved \(newer.count) checkpoint(s) newer than step \(state.step) to \(aside.path)")
        }
        note("resuming \(dir.path) at step \(step)")
    }

    public func run(report: (String) -> Void = { print($0) }) throws -> TrainingSummary {
        let context = model.config.context
        let tokensPerStep = config.batch * config.accumulation * context
        let startStep = step, started = Date()
        var lastCheckpoint: URL? = Checkpoint.steps(in: out).last?.url
        var windowLoss = 0.0, windowSteps = 0, windowTokens = 0, windowStart = Date()
        var windowAuxiliary: [String: Double] = [:]
        var windowCommunication = 0.0
        var nonFiniteInARow = 0
        var stoppedBy = "step budget"
        func elapsed() -> Double { elapsedBefore + Date().timeIntervalSince(started) }
        let localBatch = config.batch / ranks
        let rows = DropoutRows(stride: ranks, offset: rank)
        /// Why to stop before the next step, agreed by all ranks (the first reason any has).
        func stopReason() throws -> String? {
            var reasons: [Float] = [config.timeBudget.map { elapsed() >= $0 } == true ? 1 : 0,
                                    stopAfter.map { step >= $0 } == true ? 1 : 0, interruption?() == true ? 1 : 0]
            if let group { try reasons.withUnsafeMutableBufferPointer { try group.sum($0) } }
            return zip(reasons, ["time budget", "interruption", "signal"]).first { $0.0 > 0 }?.1
        }

        let active = model.config.activeParameterCount
        record(["event": "start", "step": step, "total_steps": config.steps, "tokens_per_step": tokensPerStep,
                "eval_interval": config.evalInterval, "parameters": model.parameterCount,
                "architecture": model.config.architecture.rawValue, "threads": Parallel.threadCount])
        report("training \(model.config.architecture.rawValue) with \(model.parameterCount) parameters"
            + (active < model.parameterCount ? " (\(active) active per token)" : "") + " on \(data.summary); \(config.precision.rawValue) products, peak \(peakFLOPs > 0 ? "\(Int(peakFLOPs / 1e9)) GFLOP/s (\(peakSource))" : "unknown (MFU n/a)"); "
            + "\(tokensPerStep) tokens per step"
            + (config.seqWarmup > 0 ? " (fewer while windows grow from \(min(config.seqStart, context)) tokens over \(config.seqWarmup) steps)" : "")
            + ", \(Parallel.threadCount) threads"
            + (model.ternarySwitch == nil ? "" : config.firstTernaryStep > 0
                ? "; BitNet b1.58: full precision until step \(config.firstTernaryStep), then ternary" : "; BitNet b1.58 ternary"))
        var stopping = try stopReason()
        while step < config.steps && stopping == nil {
            OpProfile.mark("between steps: logging, evaluation, checkpoints")
            beforeStep?(step)
            let lr = schedule(step)
            optimizer.learningRate = Float(lr)
            optimizer.zeroGrad()
            if let ternary = model.ternarySwitch, ternary.on != (step >= config.firstTernaryStep) {
                ternary.on = step >= config.firstTernaryStep
                if ternary.on && step > 0 { report("step \(step): from here on ternary (BitLinear) training") }
            }
            // Shorter windows during a sequence-length warm-up: fewer tokens in those steps.
            let length = config.sequenceLength(step: step, context: context)
            let stepTokens = config.batch * config.accumulation * length
            var loss = 0.0
            var nonFinite: String? = nil
            // DoReMi: each category's summed excess loss over the reference, and its tokens.
            var excess = [Double](repeating: 0, count: reweighting?.alpha.count ?? 0), excessTokens = excess
            // DoReMi's weights move every step; the plan's only with the phase or curriculum.
            if let plan, reweighting != nil || plan.key(at: step) != planKey {
                sampler.chunks!.setWeights(plan.weights(at: step, categoryMultipliers: reweighting?.multipliers))
                planKey = plan.key(at: step)
            }
            for micro in 0..<config.accumulation {
                // The data advances as in a normal step even when the step is skipped.
                let (inputs, targets) = sampler.next(rank: rank, of: ranks, length: length)
                OpProfile.mark("batch sampling")
                guard nonFinite == nil else { continue }
                var rng: RNG? = model.config.dropout > 0 ? dropoutRNG : nil
                let logits = MatmulPrecision.$current.withValue(config.precision) {
                    DropoutRows.$current.withValue(rows) {
                        model.logits(inputs, batch: localBatch, time: length, dropoutRNG: &rng)
                    }
                }
                let l = crossEntropy(logits, targets: targets)
                if let rng { dropoutRNG = rng }
                let value = l.item()
                guard value.isFinite else {
                    nonFinite = "loss \(Self.describe(nonFinite: Double(value)))"
                    continue
                }
                if reference != nil {
                    windowAuxiliary["reference_seconds", default: 0] += addExcess(logits: logits, inputs: inputs, targets: targets,
                                                                                  length: length, to: &excess, tokens: &excessTokens)
                }
                // The logged loss stays the cross-entropy; auxiliary terms are logged apart.
                var objective = l
                if teacher != nil {
                    let (term, kl, seconds) = distillation(logits: logits, inputs: inputs, length: length)
                    windowAuxiliary["teacher_seconds", default: 0] += seconds
                    windowAuxiliary["distill_kl", default: 0] += kl / Double(config.accumulation)
                    objective = objective * Float(1 - config.distillWeight) + term * Float(config.distillWeight)
                }
                for (name, term) in model.auxiliaryLosses.sorted(by: { $0.key < $1.key }) {
                    windowAuxiliary[name, default: 0] += Double(term.item()) / Double(config.accumulation)
                    if name == "router_aux", config.routerAuxWeight > 0 { objective = objective + term * Float(config.routerAuxWeight) }
                }
                let seed = Tensor(scalar: 1 / Float(config.accumulation))
                if let buckets, buckets.overlaps, micro == config.accumulation - 1 {
                    // Gradients complete in this last pass go on the wire while it runs.
                    Autograd.observing(buckets) { objective.backward(gradient: seed) }
                } else {
                    objective.backward(gradient: seed)
                }
                loss += Double(value) / Double(config.accumulation)
            }
            if let group, let buckets {
                // Every rank takes part even when its own step went non-finite, so that the
                // collectives stay matched; then all skip together.
                let communicating = Date()
                try buckets.finish()
                var control: [Float] = [Float(loss), nonFinite == nil ? 0 : 1]
                try control.withUnsafeMutableBufferPointer { try group.sum($0) }
                windowCommunication += Date().timeIntervalSince(communicating)
                loss = Double(control[0]) / Double(group.size)
                if reweighting != nil {
                    var sums = (excess + excessTokens).map(Float.init)
                    try sums.withUnsafeMutableBufferPointer { try group.sum($0) }
                    (excess, excessTokens) = (sums.prefix(excess.count).map(Double.init), sums.suffix(excess.count).map(Double.init))
                }
                if control[1] > 0 && nonFinite == nil { nonFinite = "a non-finite loss on another rank" }
            }
            OpProfile.mark("after backward (the MPI all-reduce, if any)")
            let norm = nonFinite == nil ? clipGradients() : .nan
            OpProfile.mark("gradient norm and clipping")
            if nonFinite == nil && !norm.isFinite { nonFinite = "gradient norm \(Self.describe(nonFinite: Double(norm)))" }
            // A skipped step makes no update, but the step, the schedule and the data move on.
            step += 1
            tokensSeen += stepTokens
            if let reason = nonFinite {
                optimizer.skip()
                nonFiniteInARow += 1
                report("step \(step): skipped, \(reason) (\(nonFiniteInARow) in a row)")
                record(["step": step, "skipped": reason, "lr": lr, "tokens": tokensSeen, "elapsed": elapsed()])
                if nonFiniteInARow >= config.maxNonFiniteSteps {
                    throw CheckpointError("\(nonFiniteInARow) steps in a row had a non-finite loss or gradient (the last: \(reason) at step "
                        + "\(step), learning rate \(String(format: "%.2e", lr))); stopped without saving. The last good checkpoint is "
                        + "\(lastCheckpoint?.path ?? "none (no checkpoint yet)"). Try a lower learning rate or a longer warm-up.")
                }
            } else {
                nonFiniteInARow = 0
                optimizer.update()
                updateEMA()
                reweighting?.update(excess: excess, tokens: excessTokens)
                OpProfile.mark("AdamW update")
                windowLoss += loss
                windowSteps += 1
                windowTokens += stepTokens
            }

            if nonFinite == nil && (step % config.logInterval == 0 || step == config.steps) {
                let seconds = Date().timeIntervalSince(windowStart)
                let rate = Double(windowTokens) / max(seconds, 1e-9)
                // Unknown (nil) without a peak: bf16 products emulated, or no x86 SIMD.
                var mfu = peakFLOPs > 0 ? 3 * model.config.flopsPerToken * rate / (peakFLOPs * Double(ranks)) : nil
                if let share = mfu, share > 1 {
                    // No run beats the FMA peak: the peak read low, so no share of it means anything.
                    report(String(format: "note: this run does %.0f GFLOP/s per process, more than the peak of %.0f GFLOP/s (%@), which therefore "
                        + "read low; MFU is n/a from here (`slm bench kernels` measures and keeps a steadier peak)",
                        share * peakFLOPs / 1e9, peakFLOPs / 1e9, peakSource))
                    peakFLOPs = 0
                    mfu = nil
                }
                let done = Double(step - startStep), remaining = Double(config.steps - step)
                let eta = done > 0 ? Date().timeIntervalSince(started) / done * remaining : 0
                let mean = windowLoss / Double(windowSteps)
                report(progressLine(loss: mean, lr: lr, rate: rate, mfu: mfu, elapsed: elapsed(), eta: eta))
                var entry: [String: Any] = ["step": step, "loss": mean, "lr": lr, "grad_norm": norm, "tokens_per_sec": rate,
                                            "tokens": tokensSeen, "elapsed": elapsed()]
                if let mfu { entry["mfu"] = mfu }
                if config.seqWarmup > 0 { entry["seq_len"] = length }
                if let reweighting, let plan {
                    entry["domain_weights"] = Dictionary(uniqueKeysWithValues: zip(plan.index.categories, reweighting.alpha))
                }
                if let plan, let key = planKey {
                    // The phase in effect (0-based) and the share of chunks the curriculum admits.
                    if !plan.phases.isEmpty { entry["phase"] = key[0] }
                    if plan.rankOfChunk != nil { entry["curriculum_reach"] = Double(key[1]) / Double(plan.index.chunks.count) }
                }
                for (name, total) in windowAuxiliary { entry[name] = total / Double(windowSteps) }
                // Seconds per step spent waiting for the all-reduces after the backward pass (what
                // the overlap did not hide), waiting for the slowest rank included.
                if group != nil { entry["allreduce_seconds"] = windowCommunication / Double(windowSteps) }
                record(entry)
                (windowLoss, windowSteps, windowTokens, windowStart) = (0, 0, 0, Date())
                windowAuxiliary = [:]
                windowCommunication = 0
            }
            if isLeader && (step % config.evalInterval == 0 || step == config.steps) {
                lastCheckpoint = try evaluateAndSave(elapsed: elapsed(), report: report)
            }
            stopping = try stopReason()
        }
        if let stopping, step < config.steps { stoppedBy = stopping }
        if isLeader, lastCheckpoint.map({ $0.lastPathComponent != checkpointName(step) }) ?? true, step > startStep {
            lastCheckpoint = try evaluateAndSave(elapsed: elapsed(), report: report)
        }
        if isLeader, let ema, let validation = data.validation {
            let emaLoss = withWeights(ema) { evaluate(validation) }
            report(String(format: "EMA weights: validation loss %.4f", emaLoss))
            record(["step": step, "ema_val_loss": emaLoss])
        }
        let summary = TrainingSummary(steps: step, tokensSeen: tokensSeen, seconds: elapsed(),
                                      bestValidationLoss: bestValidationLoss, lastCheckpoint: lastCheckpoint, stoppedBy: stoppedBy)
        report("done (\(stoppedBy)): \(step) steps, \(tokensSeen) tokens in \(Duration.format(summary.seconds))"
            + (bestValidationLoss.map { String(format: "; best validation loss %.4f (%@/best)", $0, out.path) } ?? "")
            + "; last checkpoint \(lastCheckpoint?.path ?? "none")")
        return summary
    }

    // MARK: - Steps

    /// Replaces each gradient by its mean over the ranks: one all-reduce over all of them,
    /// packed into one buffer (a parameter without a gradient this step counts as zeros).
    /// DoReMi: adds each token's loss above the reference model's to the category of its
    /// window (the category of the chunk the window starts in); returns the seconds taken.
    private func addExcess(logits: Tensor, inputs: [Int32], targets: [Int32], length: Int,
                           to excess: inout [Double], tokens: inout [Double]) -> Double {
        guard let reference, let plan else { return 0 }
        let started = Date()
        let model = tokenLosses(logits, targets: targets)
        let baseline = Autograd.noGrad {
            MatmulPrecision.$current.withValue(config.precision) {
                tokenLosses(reference.logits(inputs, batch: sampler.lastChunks.count, time: length), targets: targets)
            }
        }
        for (row, chunk) in sampler.lastChunks.enumerated() {
            let category = plan.index.chunks[chunk].category
            for t in (row * length)..<((row + 1) * length) { excess[category] += Double(max(model[t] - baseline[t], 0)) }
            tokens[category] += Double(length)
        }
        return Date().timeIntervalSince(started)
    }

    /// Distillation: T² · CE(softmax(teacher / T), softmax(student / T)) on these windows,
    /// the KL it amounts to (the term less the teacher's own entropy) for the log, and the
    /// teacher's seconds.
    private func distillation(logits: Tensor, inputs: [Int32], length: Int) -> (term: Tensor, kl: Double, seconds: Double) {
        let started = Date(), temperature = config.distillTemperature
        let soft = Autograd.noGrad {
            MatmulPrecision.$current.withValue(config.precision) {
                softmaxTargets(teacher!.logits(inputs, batch: inputs.count / length, time: length), temperature: Float(temperature))
            }
        }
        let seconds = Date().timeIntervalSince(started)
        let term = softCrossEntropy(logits, targets: soft, temperature: Float(temperature))
        return (term, Double(term.item()) - temperature * temperature * meanEntropy(soft), seconds)
    }

    /// A non-finite value as logs say it: "nan" whatever its sign bit (x86's default NaN
    /// has it set, so the same failure printed "-nan" or "nan" by the path it took),
    /// "inf" or "-inf".
    static func describe(nonFinite v: Double) -> String { v.isNaN ? "nan" : "\(v)" }

    /// Scales gradients so their global norm is at most `gradClip`; returns the norm before.
    func clipGradients() -> Double {
        let grads = model.parameters.compactMap(\.tensor.grad)
        let norm = grads.reduce(0.0) { $0 + slm_sumsq(Int64($1.count), $1.data) }.squareRoot()
        if config.gradClip > 0, norm > config.gradClip {
            let s = Float(config.gradClip / (norm + 1e-6))
            for g in grads { slm_scale(Int64(g.count), s, g.data, g.data) }
        }
        return norm
    }

    func updateEMA() {
        guard let ema else { return }
        let d = Float(config.emaDecay)
        for (e, (_, p)) in zip(ema, model.parameters) {
            slm_scale(Int64(e.count), d, e.data, e.data)
            slm_axpy(Int64(e.count), 1 - d, p.data, e.data)
        }
    }

    /// Mean loss over `evalBatches` batches of a sampler seeded the same way every time,
    /// so evaluations are comparable across steps and runs.
    func evaluate(_ file: TokenFile) -> Double {
        guard var s = try? BatchSampler(file: file, batch: config.batch, context: model.config.context, seed: config.seed ^ 0xE7A1) else {
            return .nan
        }
        return Autograd.noGrad {
            var total = 0.0
            for _ in 0..<config.evalBatches {
                let (x, y) = s.next()
                total += Double(model.loss(inputs: x, targets: y, batch: config.batch, time: model.config.context).item())
            }
            return total / Double(config.evalBatches)
        }
    }

    private func evaluateAndSave(elapsed: Double, report: (String) -> Void) throws -> URL {
        // Never publish weights that went non-finite (from outside a step: every update
        // had finite gradients); the last checkpoint stays the good one.
        if let bad = model.parameters.first(where: { p in !(0..<p.tensor.count).allSatisfy { p.tensor.data[$0].isFinite } }) {
            throw CheckpointError("\(bad.name) holds non-finite values at step \(step); stopped without saving. The last good checkpoint "
                + "is \(Checkpoint.steps(in: out).last?.url.path ?? "none (no checkpoint yet)").")
        }
        var improved = false
        if let validation = data.validation {
            let loss = evaluate(validation)
            improved = bestValidationLoss.map { loss < $0 } ?? true
            if improved { bestValidationLoss = loss }
            // Bits per character: the loss in bits, spread over the characters the tokens stand for.
            let charsPerToken = Double(max(data.meta.validationCharacters, 1)) / Double(max(data.meta.validationTokens, 1))
            let bpc = loss / log(2) / charsPerToken
            report(String(format: "  eval at step %d: validation loss %.4f | perplexity %.2f | %.3f bits/char%@", step, loss,
                          exp(loss), bpc, improved ? " | best so far" : ""))
            var entry: [String: Any] = ["step": step, "val_loss": loss, "val_ppl": exp(loss), "val_bpc": bpc, "elapsed": elapsed]
            for (name, values) in model.layerMetrics.sorted(by: { $0.key < $1.key }) {
                entry[name] = values
                report("  \(name.replacingOccurrences(of: "_", with: " ")) per layer: " + values.map { String(format: "%.4f", $0) }.joined(separator: " "))
            }
            if let text = sampleText?() { entry["sample"] = text }
            record(entry)
            writeLossChart(report: report)
        }
        let target = out.appendingPathComponent(checkpointName(step))
        let state = TrainerState(step: step, tokensSeen: tokensSeen, elapsedSeconds: elapsed, bestValidationLoss: bestValidationLoss,
                                 samplerState: sampler.generator.state, dropoutRNG: dropoutRNG.state,
                                 dataFingerprint: data.fingerprint, dataHash: data.hash, configFingerprint: configFingerprint,
                                 training: config, domainWeights: reweighting?.alpha)
        try Checkpoint.write(to: target, model: model, optimizer: optimizer, state: state,
                             ema: ema.map { e in zip(model.parameters, e).map { ($0.name, $1) } }, tokenizerFrom: data.directory)
        for old in Checkpoint.steps(in: out).dropLast(config.keepLast) { try? FileManager.default.removeItem(at: old.url) }
        if improved {
            let temp = out.appendingPathComponent(".best.partial-\(ProcessInfo.processInfo.processIdentifier)")
            try? FileManager.default.removeItem(at: temp)
            try FileManager.default.copyItem(at: target, to: temp)
            try Checkpoint.publish(temp, as: out.appendingPathComponent("best"))
        }
        return target
    }

    func checkpointName(_ step: Int) -> String { String(format: "ckpt-%06d", step) }

    /// Runs `body` with the model's weights temporarily replaced.
    private func withWeights<T>(_ weights: [Tensor], _ body: () -> T) -> T {
        let saved = model.parameters.map { $0.tensor.copy() }
        for (w, (_, p)) in zip(weights, model.parameters) { p.data.update(from: w.data, count: p.count) }
        defer { for (w, (_, p)) in zip(saved, model.parameters) { p.data.update(from: w.data, count: p.count) } }
        return body()
    }

    // MARK: - Output

    func progressLine(loss: Double, lr: Double, rate: Double, mfu: Double?, elapsed: Double, eta: Double) -> String {
        let fraction = Double(step) / Double(config.steps), width = 20
        let filled = Int(fraction * Double(width))
        let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
        let digits = String(config.steps).count
        let stepText = String(repeating: " ", count: max(0, digits - String(step).count)) + String(step)
        let mfuText = mfu.map { String(format: "%4.1f%%", $0 * 100) } ?? "  n/a"
        return String(format: "step %@/%d [%@] %5.1f%% | loss %.4f | lr %.2e | %@ tok/s | MFU %@ | %@ elapsed, ETA %@",
                      stepText, config.steps, bar, fraction * 100, loss, lr, compact(rate), mfuText,
                      Duration.format(elapsed), Duration.format(eta))
    }

    private func compact(_ x: Double) -> String {
        x >= 1e6 ? String(format: "%.2fM", x / 1e6) : x >= 1e3 ? String(format: "%.1fk", x / 1e3) : String(format: "%.0f", x)
    }

    /// loss.svg in the run folder, redrawn from metrics.jsonl; a failure to draw it is
    /// reported and does not stop training.
    private func writeLossChart(report: (String) -> Void) {
        do {
            let log = try MetricsLog.read(out.path)
            try AtomicFile.write(Data(MetricsChart.lossChart(log).svg().utf8), to: out.appendingPathComponent("loss.svg"))
        } catch {
            report("  note: could not draw loss.svg: \(error)")
        }
    }

    private func record(_ values: [String: Any]) {
        guard let metrics, let data = try? JSONSerialization.data(withJSONObject: values, options: [.sortedKeys]) else { return }
        metrics.write(data + Data("\n".utf8))
    }
}

/// "layers 6 → 4, width 384 → 256": the top-level JSON fields that differ.
func differences<T: Encodable>(_ a: T, _ b: T) -> String {
    let encoder = JSONEncoder()
    guard let da = try? encoder.encode(a), let db = try? encoder.encode(b),
          let ja = try? JSONSerialization.jsonObject(with: da) as? [String: Any],
          let jb = try? JSONSerialization.jsonObject(with: db) as? [String: Any] else { return "unknown" }
    let keys = Set(ja.keys).union(jb.keys).sorted()
    let changed = keys.compactMap { k -> String? in
        let x = ja[k].map { "\($0)" } ?? "none", y = jb[k].map { "\($0)" } ?? "none"
        return x == y ? nil : "\(k) \(x) → \(y)"
    }
    return changed.joined(separator: ", ")
}
