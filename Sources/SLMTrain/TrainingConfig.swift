import Foundation
import SLMModels
import SLMTensor

/// How to train: batch, budget, optimizer, schedule, evaluation and checkpoints.
public struct TrainingConfig: Codable, Sendable, Equatable {
    public var batch = 16
    /// Micro-batches summed per optimizer step.
    public var accumulation = 1
    public var steps = 1000
    /// Stop after this many seconds even if steps remain (nil: no limit).
    public var timeBudget: Double? = nil
    public var learningRate = 1e-3
    /// Where the cosine decay ends.
    public var minLearningRate = 1e-4
    public var warmup = 100
    public var weightDecay = 0.1
    public var beta1 = 0.9
    public var beta2 = 0.95
    /// Global gradient-norm limit (0: no clipping).
    public var gradClip = 1.0
    public var evalInterval = 250
    public var evalBatches = 20
    public var logInterval = 10
    /// Checkpoint at every evaluation and at the end; keep this many besides `best`.
    public var keepLast = 3
    public var seed: UInt64 = 1337
    /// Decay of an exponential moving average of the weights (0: off).
    public var emaDecay = 0.0
    /// Precision of the matrix products in training steps (weights, gradients and the
    /// optimizer stay fp32; evaluation runs in fp32). Presets default to `auto`
    /// (`MatmulPrecision.native`); a checkpoint records the precision chosen.
    public var precision = MatmulPrecision.fp32
    /// Weight of a mixture of experts' load-balancing loss in the objective.
    public var routerAuxWeight = 0.01
    /// A step with a non-finite loss or gradient norm is skipped (no update); this many
    /// in a row stop training.
    public var maxNonFiniteSteps = 5
    /// Windows uniformly over train.bin, or from chunk starts by weight (`SamplingPlan`);
    /// the settings below need `chunks`.
    public var sampler = Sampler.uniform
    /// "NAME=WEIGHT, …": how much more often a category's chunks are read (others: 1).
    public var categoryWeights = ""
    /// "CATEGORY+CATEGORY@FRACTION, …, all@FRACTION": the categories read from each
    /// fraction of the steps on (empty: all, throughout).
    public var phases = ""
    /// A difficulty signal to order the data by, easiest first, over the first
    /// `curriculumFraction` of the steps (nil: none).
    public var curriculum: CurriculumSignal? = nil
    public var curriculumFraction = 0.3
    /// Sequence-length warm-up: windows grow from `seqStart` tokens to the full context,
    /// linearly over this many steps, in multiples of 8 (0: full windows throughout).
    public var seqWarmup = 0
    public var seqStart = 64
    /// Coreset (`coreset = {keep = 0.5, by = "loss"}`): train only on this share of the
    /// chunks, chosen by the scores of `slm data score` (1: all). The `coresetNoise` share
    /// with the highest loss is left out as noise, and the `keep` share just below it kept.
    public var coresetKeep = 1.0
    public var coresetNoise = 0.05
    /// Distillation: a teacher checkpoint (nil: none) whose softened distribution the
    /// student also learns, objective (1 − w) · CE + w · T² · CE(softmax(teacher / T), softmax(student / T)).
    public var teacher: String? = nil
    /// Online DoReMi (`doremi = {reference = "runs/ref/best", step_size = 1, smoothing = 1e-3}`):
    /// category weights moved each step by the excess loss over this reference model (nil: off).
    public var doremiReference: String? = nil
    public var doremiStepSize = 1.0
    public var doremiSmoothing = 1e-3
    public var distillWeight = 0.5
    public var distillTemperature = 2.0
    /// BitNet b1.58 (`quantization = "ternary"`): the model's block linear maps train as
    /// BitLinears; the model's config records it. nil: full precision.
    public var quantization: ModelConfig.Quantization? = nil
    /// "16-to-1.58": this share of the steps in full precision first, then ternary (0: ternary throughout).
    public var fullPrecisionFraction = 0.0

    /// The first step that trains ternary.
    public var firstTernaryStep: Int { Int((fullPrecisionFraction * Double(steps)).rounded()) }

    /// The window length of a step under the sequence-length warm-up.
    public func sequenceLength(step: Int, context: Int) -> Int {
        guard seqWarmup > 0, step < seqWarmup, seqStart < context else { return context }
        let grown = Double(seqStart) + Double(context - seqStart) * Double(step) / Double(seqWarmup)
        return min(context, max(min(seqStart, context), Int(grown / 8) * 8))
    }

    public enum Sampler: String, Codable, Sendable, CaseIterable { case uniform, chunks }
    public enum CurriculumSignal: String, Codable, Sendable, CaseIterable { case compression, diversity, readability, difficulty }

    enum CodingKeys: String, CodingKey {
        case batch, accumulation, steps, warmup, beta1, beta2, seed
        case timeBudget = "time_budget", learningRate = "learning_rate", minLearningRate = "min_learning_rate"
        case weightDecay = "weight_decay", gradClip = "grad_clip", evalInterval = "eval_interval"
        case evalBatches = "eval_batches", logInterval = "log_interval", keepLast = "keep_last", emaDecay = "ema_decay"
        case precision, routerAuxWeight = "router_aux_weight", maxNonFiniteSteps = "max_nonfinite_steps"
        case sampler, categoryWeights = "category_weights", phases, curriculum, curriculumFraction = "curriculum_fraction"
        case seqWarmup = "seq_warmup", seqStart = "seq_start", coresetKeep = "coreset_keep", coresetNoise = "coreset_noise"
        case teacher, distillWeight = "distill_weight", distillTemperature = "distill_temperature"
        case doremiReference = "doremi_reference", doremiStepSize = "doremi_step_size", doremiSmoothing = "doremi_smoothing"
        case quantization, fullPrecisionFraction = "full_precision_fraction"
    }

    public init() {}

    /// Keys missing from a saved state (written before they existed) keep their defaults.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        batch = try value(.batch, batch)
        accumulation = try value(.accumulation, accumulation)
        steps = try value(.steps, steps)
        timeBudget = try c.decodeIfPresent(Double.self, forKey: .timeBudget)
        learningRate = try value(.learningRate, learningRate)
        minLearningRate = try value(.minLearningRate, minLearningRate)
        warmup = try value(.warmup, warmup)
        weightDecay = try value(.weightDecay, weightDecay)
        beta1 = try value(.beta1, beta1)
        beta2 = try value(.beta2, beta2)
        gradClip = try value(.gradClip, gradClip)
        evalInterval = try value(.evalInterval, evalInterval)
        evalBatches = try value(.evalBatches, evalBatches)
        logInterval = try value(.logInterval, logInterval)
        keepLast = try value(.keepLast, keepLast)
        seed = try value(.seed, seed)
        emaDecay = try value(.emaDecay, emaDecay)
        precision = try value(.precision, precision)
        routerAuxWeight = try value(.routerAuxWeight, routerAuxWeight)
        maxNonFiniteSteps = try value(.maxNonFiniteSteps, maxNonFiniteSteps)
        sampler = try value(.sampler, sampler)
        categoryWeights = try value(.categoryWeights, categoryWeights)
        phases = try value(.phases, phases)
        curriculum = try c.decodeIfPresent(CurriculumSignal.self, forKey: .curriculum)
        curriculumFraction = try value(.curriculumFraction, curriculumFraction)
        seqWarmup = try value(.seqWarmup, seqWarmup)
        seqStart = try value(.seqStart, seqStart)
        coresetKeep = try value(.coresetKeep, coresetKeep)
        coresetNoise = try value(.coresetNoise, coresetNoise)
        teacher = try c.decodeIfPresent(String.self, forKey: .teacher)
        distillWeight = try value(.distillWeight, distillWeight)
        distillTemperature = try value(.distillTemperature, distillTemperature)
        doremiReference = try c.decodeIfPresent(String.self, forKey: .doremiReference)
        doremiStepSize = try value(.doremiStepSize, doremiStepSize)
        doremiSmoothing = try value(.doremiSmoothing, doremiSmoothing)
        quantization = try c.decodeIfPresent(ModelConfig.Quantization.self, forKey: .quantization)
        fullPrecisionFraction = try value(.fullPrecisionFraction, fullPrecisionFraction)
    }

    init(section: [String: TOMLValue]) throws(TOMLError) {
        var r = SectionReader("training", section)
        precision = .native
        if let v = try r.int("batch") { batch = v }
        if let v = try r.int("accumulation") { accumulation = v }
        if let v = try r.int("steps") { steps = v }
        if let v = try r.string("time") {
            guard let s = Duration.seconds(v) else { throw TOMLError("[training] time must look like 90s, 10m or 1h30m, not \(v)") }
            timeBudget = s
        }
        if let v = try r.double("learning_rate") { learningRate = v }
        if let v = try r.double("min_learning_rate") { minLearningRate = v }
        if let v = try r.int("warmup") { warmup = v }
        if let v = try r.double("weight_decay") { weightDecay = v }
        if let v = try r.double("beta1") { beta1 = v }
        if let v = try r.double("beta2") { beta2 = v }
        if let v = try r.double("grad_clip") { gradClip = v }
        if let v = try r.int("eval_interval") { evalInterval = v }
        if let v = try r.int("eval_batches") { evalBatches = v }
        if let v = try r.int("log_interval") { logInterval = v }
        if let v = try r.int("keep_last") { keepLast = v }
        if let v = try r.int("seed") { seed = UInt64(v) }
        if let v = try r.double("ema_decay") { emaDecay = v }
        if let v = try r.double("router_aux_weight") { routerAuxWeight = v }
        if let v = try r.int("max_nonfinite_steps") { maxNonFiniteSteps = v }
        let samplerSetting = try r.string("sampler")
        if let v = samplerSetting {
            guard let k = Sampler(rawValue: v) else { throw TOMLError("[training] sampler must be uniform or chunks, not \(v)") }
            sampler = k
        }
        if let v = try r.string("category_weights") { categoryWeights = v }
        if let v = try r.string("phases") { phases = v }
        if let v = try r.string("curriculum") {
            guard let k = CurriculumSignal(rawValue: v) else {
                throw TOMLError("[training] curriculum must be one of \(CurriculumSignal.allCases.map(\.rawValue).joined(separator: ", ")), not \(v)")
            }
            curriculum = k
        }
        if let v = try r.double("curriculum_fraction") { curriculumFraction = v }
        if let v = try r.int("seq_warmup") { seqWarmup = v }
        if let v = try r.int("seq_start") { seqStart = v }
        if let v = try r.double("coreset.keep") { coresetKeep = v }
        if let v = try r.double("coreset.noise") { coresetNoise = v }
        if let v = try r.string("teacher") { teacher = v }
        if let v = try r.string("doremi.reference") { doremiReference = v }
        if let v = try r.double("doremi.step_size") { doremiStepSize = v }
        if let v = try r.double("doremi.smoothing") { doremiSmoothing = v }
        if let v = try r.double("distill_weight") { distillWeight = v }
        if let v = try r.double("distill_temperature") { distillTemperature = v }
        if let v = try r.string("coreset.by"), v != "loss" {
            throw TOMLError("[training] coreset.by must be \"loss\" (the chunk losses of `slm data score`), not \(v)")
        }
        // Weights, phases, a curriculum or a coreset mean sampling by chunk unless told otherwise.
        if samplerSetting == nil && (!categoryWeights.isEmpty || !phases.isEmpty || curriculum != nil || coresetKeep < 1
                                     || doremiReference != nil) {
            sampler = .chunks
        }
        if let v = try r.string("quantization") {
            guard let q = ModelConfig.Quantization(rawValue: v) else { throw TOMLError("[training] quantization must be \"ternary\", not \(v)") }
            quantization = q
        }
        if let v = try r.double("full_precision_fraction") { fullPrecisionFraction = v }
        if let v = try r.string("precision") {
            guard let p = MatmulPrecision(setting: v) else { throw TOMLError("[training] precision must be auto, fp32 or bf16, not \(v)") }
            precision = p
        }
        try r.finish()
    }

    public func validate() throws(ConfigError) {
        var problems: [String] = []
        if batch < 1 || accumulation < 1 || steps < 1 { problems.append("batch, accumulation and steps must be at least 1") }
        if learningRate <= 0 || minLearningRate < 0 || minLearningRate > learningRate {
            problems.append("need 0 <= min_learning_rate <= learning_rate and learning_rate > 0")
        }
        if warmup < 0 || evalInterval < 1 || evalBatches < 1 || logInterval < 1 || keepLast < 1 {
            problems.append("warmup >= 0, and eval_interval, eval_batches, log_interval, keep_last >= 1")
        }
        if !(0..<1).contains(beta1) || !(0..<1).contains(beta2) { problems.append("betas must be in [0, 1)") }
        if !(0..<1).contains(emaDecay) { problems.append("ema_decay must be in [0, 1)") }
        if let t = timeBudget, t <= 0 { problems.append("time budget must be positive") }
        if routerAuxWeight < 0 { problems.append("router_aux_weight must be at least 0") }
        if maxNonFiniteSteps < 1 { problems.append("max_nonfinite_steps must be at least 1") }
        if !(0...1).contains(distillWeight) || !(distillTemperature > 0 && distillTemperature.isFinite) {
            problems.append("distill_weight must be in [0, 1] and distill_temperature positive")
        }
        if seqWarmup < 0 || seqStart < 1 { problems.append("seq_warmup must be at least 0 and seq_start at least 1") }
        if !(curriculumFraction > 0 && curriculumFraction <= 1) { problems.append("curriculum_fraction must be in (0, 1]") }
        if sampler == .uniform && (!categoryWeights.isEmpty || !phases.isEmpty || curriculum != nil || coresetKeep < 1
                                   || doremiReference != nil) {
            problems.append("category_weights, phases, curriculum, coreset and doremi need sampler = \"chunks\"")
        }
        if !(doremiStepSize > 0 && doremiStepSize.isFinite) || !(0..<1).contains(doremiSmoothing) {
            problems.append("doremi.step_size must be positive and doremi.smoothing in [0, 1)")
        }
        if !(coresetKeep > 0 && coresetKeep <= 1) || !(coresetNoise >= 0 && coresetNoise < 1) || (coresetKeep < 1 && coresetKeep + coresetNoise > 1) {
            problems.append("coreset.keep must be in (0, 1], coreset.noise in [0, 1), and a coreset's keep and noise together at most 1")
        }
        if !(0..<1).contains(fullPrecisionFraction) || (fullPrecisionFraction > 0 && quantization == nil) {
            problems.append("full_precision_fraction must be in [0, 1) and goes with quantization = \"ternary\"")
        }
        do {
            _ = try Self.parseCategoryWeights(categoryWeights)
            _ = try Self.parsePhases(phases)
        } catch {
            problems.append(error.message)
        }
        if !problems.isEmpty { throw ConfigError(problems.joined(separator: "; ")) }
    }
}

extension ModelConfig {
    /// A model from a preset's [model] section; the vocabulary comes from the data.
    init(section: [String: TOMLValue], vocabSize: Int) throws(TOMLError) {
        var r = SectionReader("model", section)
        let name = try r.string("architecture") ?? "gpt2"
        guard let definition = Architectures.named(name) else {
            throw TOMLError("[model] architecture must be one of \(Architectures.names.joined(separator: ", ")), not \(name)")
        }
        let architecture = definition.name
        guard let layers = try r.int("layers"), let heads = try r.int("heads"), let width = try r.int("width"),
              let context = try r.int("context") else {
            throw TOMLError("[model] needs layers, heads, width and context")
        }
        self.init(architecture: architecture, vocabSize: try r.int("vocab_size") ?? vocabSize, layers: layers, heads: heads,
                  kvHeads: try r.int("kv_heads"), width: width, context: context, ffnWidth: try r.int("ffn_width"),
                  normEps: try r.double("norm_eps"), ropeTheta: try r.double("rope_theta") ?? 10_000,
                  bias: try r.bool("bias"), tiedEmbeddings: try r.bool("tied_embeddings"),
                  dropout: try r.double("dropout") ?? 0, experts: try r.int("experts"),
                  expertsActive: try r.int("experts_active"), subNorm: try r.bool("sub_norm"))
        try r.finish()
    }
}

extension MatmulPrecision {
    /// bf16 where the CPU multiplies bf16 natively (AVX512-BF16, through oneDNN), else
    /// fp32: emulated bf16 is slower than fp32.
    public static var native: MatmulPrecision {
        CPUKernels.hasAVX512BF16 && Gemm.backendName == "onednn" ? .bf16 : .fp32
    }

    /// `fp32`, `bf16`, or `auto` (`native`).
    public init?(setting: String) {
        if setting == "auto" { self = .native } else if let p = MatmulPrecision(rawValue: setting) { self = p } else { return nil }
    }
}
