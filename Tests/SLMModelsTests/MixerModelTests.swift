import Foundation
import SLMTensor
import SLMTestSupport
import Testing
@testable import SLMModels

let tinyMonarch = ModelConfig(architecture: .monarch, vocabSize: 11, layers: 2, heads: 2, width: 8, context: 9, ffnWidth: 12)
let tinySymbio = ModelConfig(architecture: .symbio, vocabSize: 11, layers: 2, heads: 2, width: 8, context: 9, ffnWidth: 12)

/// MonarchSLM and SymbioSLM: the layouts fixed by the issue, sizes, causality, gradients,
/// reading token by token, and the registry's refusals.
@Suite struct MixerModelTests {
    static let configs = [tinyMonarch, tinySymbio]
    let ids: [Int32] = [1, 5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8, 2, 2, 1, 0, 9, 3]
    let targets: [Int32] = [5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8, 1, 2, 1, 0, 9, 3, 4]

    @Test func presetSizesAreExact() throws {
        let monarch = ModelConfig(architecture: .monarch, vocabSize: 2000, layers: 8, heads: 8, width: 256, context: 256, ffnWidth: 640)
        let symbio = ModelConfig(architecture: .symbio, vocabSize: 2000, layers: 6, heads: 4, width: 256, context: 256, ffnWidth: 640)
        #expect(monarch.parameterCount == 4_983_040)
        #expect(symbio.parameterCount == 4_065_024)
        #expect(try makeModel(monarch, seed: 1).parameterCount == 4_983_040)
        #expect(try makeModel(symbio, seed: 1).parameterCount == 4_065_024)
    }

    @Test func namesAndShapes() throws {
        let m = try makeModel(tinyMonarch, seed: 1)
        let shapes = Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.tensor.shape.dims) })
        #expect(shapes["model.embed_tokens.weight"] == [11, 8])
        #expect(shapes["model.layers.1.input_layernorm.weight"] == [8])
        #expect(shapes["model.layers.1.mixer.conv.weight"] == [8, 4])
        #expect(shapes["model.layers.1.mixer.monarch.L1"] == [2, 3, 3, 3])
        #expect(shapes["model.layers.1.mixer.monarch.L2"] == [2, 3, 3, 3])
        #expect(shapes["model.layers.1.mixer.gate"] == [8])
        #expect(shapes["model.layers.1.post_attention_layernorm.weight"] == [8])
        #expect(shapes["model.layers.1.mlp.gate_proj.weight"] == [12, 8])
        #expect(shapes["model.layers.1.mlp.down_proj.weight"] == [8, 12])
        #expect(shapes["model.norm.weight"] == [8])
        #expect(shapes.count == 1 + 2 * 9 + 1)  // tied head: no lm_head.weight
        let s = try makeModel(tinySymbio, seed: 1)
        let symbio = Dictionary(uniqueKeysWithValues: s.parameters.map { ($0.name, $0.tensor.shape.dims) })
        #expect(symbio["model.layers.0.mixer.long_conv.weight"] == [8, 9])
        #expect(symbio["model.layers.0.mixer.gate_logits"] == [3, 8])
        #expect(symbio["model.layers.0.mixer.gate"] == nil)
        #expect(symbio.count == 1 + 2 * 10 + 1)
    }

    @Test(arguments: configs)
    func onlyLinearMatricesDecay(_ config: ModelConfig) throws {
        let m = try makeModel(config, seed: 1)
        for ((name, _), decays) in zip(m.parameters, m.parameterDecays) {
            let expected = name.hasSuffix("_proj.weight") || name == "model.embed_tokens.weight"
            #expect(decays == expected, "\(name)")
        }
    }

    @Test func initialisation() throws {
        let m = try makeModel(ModelConfig(architecture: .symbio, vocabSize: 50, layers: 1, heads: 4, width: 64, context: 256), seed: 2)
        let t = Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.tensor.toArray()) })
        func std(_ v: [Float]) -> Double {
            let mean = v.reduce(0.0) { $0 + Double($1) } / Double(v.count)
            return (v.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(v.count)).squareRoot()
        }
        #expect(abs(std(t["model.layers.0.mixer.monarch.L1"]!) - 1.0 / 4) < 0.01)   // 1/√p, p = 16
        #expect(abs(std(t["model.layers.0.mixer.conv.weight"]!) - 0.5) < 0.05)       // 1/√K
        #expect(abs(std(t["model.layers.0.mixer.long_conv.weight"]!) - 1.0 / 256) < 0.0005)  // 1/T
        #expect(t["model.layers.0.mixer.gate_logits"]!.allSatisfy { $0 == 0 })
        let entropies = (m as! SymbioSLM).gateEntropies
        #expect(entropies.count == 1 && abs(entropies[0] - log(3.0)) < 1e-6)
    }

    @Test(arguments: configs)
    func lossAtInitialisationIsNearLogVocabulary(_ config: ModelConfig) throws {
        let model = try makeModel(config, seed: 3)
        let loss = model.loss(inputs: ids, targets: targets, batch: 2, time: 9).item()
        #expect(abs(loss - Float(log(11.0))) < 0.1, "\(loss)")
    }

    @Test(arguments: configs)
    func laterTokensDoNotChangeEarlierLogits(_ config: ModelConfig) throws {
        let model = try makeModel(config, seed: 4)
        for (_, t) in model.parameters { for i in 0..<t.count { t.data[i] *= 3 } }
        let a = model.logits(Array(ids[0..<9]), batch: 1, time: 9).toArray()
        var changed = Array(ids[0..<9])
        changed[6] = 10
        let b = model.logits(changed, batch: 1, time: 9).toArray()
        #expect(Array(a[0..<(6 * 11)]) == Array(b[0..<(6 * 11)]))
        #expect(Array(a[(6 * 11)...]) != Array(b[(6 * 11)...]))
    }

    @Test(arguments: configs)
    func wholeModelGradients(_ config: ModelConfig) throws {
        let model = try makeModel(config, seed: 5)
        for (_, t) in model.parameters { for i in 0..<t.count { t.data[i] *= 3 } }
        // Gates away from zero so each organelle's share is not symmetric.
        for (name, t) in model.parameters where name.contains("gate") { for i in 0..<t.count { t.data[i] = Float(i % 5) * 0.3 - 0.5 } }
        let check = gradientCheck(model.parameters.map(\.tensor), eps: 2e-3, atol: 2e-3, rtol: 3e-2, samples: 6) { _ in
            model.loss(inputs: ids, targets: targets, batch: 2, time: 9)
        }
        #expect(check.passed, "\(check.detail)")
    }

    @Test(arguments: configs)
    func readingTokenByTokenEqualsTheFullForward(_ config: ModelConfig) throws {
        let model = try makeModel(config, seed: 6)
        let sequence = Array(ids[0..<9])
        let full = model.logits(sequence, batch: 1, time: 9).toArray()
        let state = model.makeInferenceState()
        var stepped = Autograd.noGrad { model.logits(Array(sequence[0..<4]), state: state) }.toArray()
        for id in sequence[4...] { stepped += Autograd.noGrad { model.logits([id], state: state) }.toArray() }
        #expect(state.length == 9 && state.remaining == 0)
        expectClose(stepped, full, tolerance: 1e-5)
    }

    /// The incremental state on a context of 16 (blocks of 4) with 4 heads: every split
    /// of the sequence into a first read and single steps, stepping from the very first
    /// token included, gives the full forward's logits; so does a reset and a second read.
    @Test(arguments: [ModelConfig.Architecture.monarch, .symbio])
    func everySplitOfTheSequenceGivesTheFullForward(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 13, layers: 2, heads: 4, width: 16, context: 16, ffnWidth: 20)
        let model = try makeModel(config, seed: 8)
        // Larger weights and unequal gates, so every organelle and block shows in the logits.
        for (name, t) in model.parameters {
            for i in 0..<t.count { t.data[i] = name.contains("gate") ? Float(i % 7) * 0.4 - 1 : t.data[i] * 3 }
        }
        let sequence: [Int32] = (0..<16).map { Int32(($0 * 7 + 3) % 13) }
        let full = Autograd.noGrad { model.logits(sequence, batch: 1, time: 16) }.toArray()
        let state = model.makeInferenceState()
        for first in [1, 2, 3, 4, 5, 11, 16] {
            state.reset()
            var read = Autograd.noGrad { model.logits(Array(sequence[0..<first]), state: state) }.toArray()
            for id in sequence[first...] { read += Autograd.noGrad { model.logits([id], state: state) }.toArray() }
            #expect(state.remaining == 0)
            expectClose(read, full, tolerance: 1e-5)
        }
        // Several tokens after the first read are stepped one by one.
        state.reset()
        var read = Autograd.noGrad { model.logits(Array(sequence[0..<6]), state: state) }.toArray()
        read += Autograd.noGrad { model.logits(Array(sequence[6...]), state: state) }.toArray()
        expectClose(read, full, tolerance: 1e-5)
    }

    @Test(arguments: configs)
    func saveAndLoadGiveTheSameLogits(_ config: ModelConfig) throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try makeModel(config, seed: 7)
        try ModelStore.save(model, to: dir)
        let loaded = try ModelStore.load(from: dir)
        #expect(loaded.config == config)
        #expect(loaded.logits(ids, batch: 2, time: 9).toArray() == model.logits(ids, batch: 2, time: 9).toArray())
        // transformers has no class for it: the registry says so (the export's refusal is tested in SLMInteropTests).
        #expect(config.architecture.definition?.huggingFaceConfig == nil)
    }

    @Test func configErrors() {
        var c = tinyMonarch
        c.context = 10
        #expect(throws: ConfigError("the context 10 must be a perfect square for the Monarch mixer (p² = context)")) { try c.validate() }
        c = tinySymbio
        c.tiedEmbeddings = false
        #expect(throws: ConfigError.self) { try c.validate() }
        let unknown = ModelConfig(architecture: .init(rawValue: "mamba"), vocabSize: 11, layers: 1, heads: 1, width: 8, context: 9)
        #expect(throws: ConfigError("unknown architecture mamba; known: gpt2, llama, monarch, symbio")) { try unknown.validate() }
    }
}

/// LLaMA with a sparse mixture of experts: Mixtral's names, sizes (total and active), the
/// routing against a dense computation, gradients, the load-balancing loss, and reading
/// with a KV cache.
@Suite struct MixtureOfExpertsTests {
    static let tiny = ModelConfig(architecture: .llama, vocabSize: 11, layers: 2, heads: 2, width: 8, context: 6, ffnWidth: 12,
                                  experts: 4, expertsActive: 2)
    let ids: [Int32] = [1, 5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8]
    let targets: [Int32] = [5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8, 1]

    /// A model with weights large enough that routing is far from ties.
    func model(seed: UInt64) throws -> Llama {
        let m = try makeModel(Self.tiny, seed: seed) as! Llama
        for (_, t) in m.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] *= 20 } }
        return m
    }

    @Test func presetSizes() throws {
        let moe = ModelConfig(architecture: .llama, vocabSize: 2000, layers: 6, heads: 4, width: 256, context: 256, ffnWidth: 640,
                              experts: 8, expertsActive: 2)
        // llama-5m is 5,037,312; each layer's SwiGLU (3·256·640 = 491,520) becomes 8 of
        // them plus the router (8·256).
        #expect(moe.parameterCount == 5_037_312 + 6 * (7 * 491_520 + 8 * 256))
        #expect(moe.parameterCount == 25_693_440)
        #expect(moe.activeParameterCount == 25_693_440 - 6 * 6 * 491_520)
        #expect(try makeModel(moe, seed: 1).parameterCount == 25_693_440)
        let dense = ModelConfig(architecture: .llama, vocabSize: 2000, layers: 6, heads: 4, width: 256, context: 256, ffnWidth: 640)
        #expect(dense.activeParameterCount == dense.parameterCount)
        // MFU counts the active parameters only.
        #expect(moe.flopsPerToken - dense.flopsPerToken == 2 * Double(6 * (491_520 + 8 * 256)))
    }

    @Test func mixtralNames() throws {
        let m = try makeModel(Self.tiny, seed: 1)
        let shapes = Dictionary(uniqueKeysWithValues: m.parameters.map { ($0.name, $0.tensor.shape.dims) })
        #expect(shapes["model.layers.1.mlp.gate.weight"] == [4, 8])
        #expect(shapes["model.layers.1.mlp.experts.3.gate_proj.weight"] == [12, 8])
        #expect(shapes["model.layers.1.mlp.experts.0.up_proj.weight"] == [12, 8])
        #expect(shapes["model.layers.0.mlp.experts.2.down_proj.weight"] == [8, 12])
        #expect(shapes["model.layers.0.mlp.gate_proj.weight"] == nil)
        #expect(shapes.count == 1 + 2 * (6 + 1 + 4 * 3) + 1)
    }

    /// The layer's output equals running every expert on every token and weighting by the
    /// renormalised top-k probabilities, computed here in Double.
    @Test func routingMatchesADenseComputation() throws {
        let m = try model(seed: 2), layer = m.layers[0], moe = layer.experts!
        let x = randomTensor([1, 6, 8], seed: 5)
        let (out, balance) = moe(x)
        let rows = x.toArray(), router = moe.router.weight.toArray()
        let everyExpert = moe.experts.map { $0(x).toArray() }   // [1, 6, 8] each: dense
        var expected = [Float](repeating: 0, count: 6 * 8), meanProbability = [Double](repeating: 0, count: 4)
        var routed = [Double](repeating: 0, count: 4)
        for t in 0..<6 {
            let logits = (0..<4).map { e in (0..<8).reduce(0.0) { $0 + Double(router[e * 8 + $1]) * Double(rows[t * 8 + $1]) } }
            let top = logits.max()!, z = logits.reduce(0.0) { $0 + exp($1 - top) }
            let p = logits.map { exp($0 - top) / z }
            for e in 0..<4 { meanProbability[e] += p[e] / 6 }
            let chosen = (0..<4).sorted { p[$0] > p[$1] }.prefix(2)
            let kept = chosen.reduce(0.0) { $0 + p[$1] }
            for e in chosen {
                routed[e] += 1
                for c in 0..<8 { expected[t * 8 + c] += Float(p[e] / kept) * everyExpert[e][t * 8 + c] }
            }
        }
        expectClose(out.toArray(), expected, tolerance: 1e-4)
        let hand = 4 * (0..<4).reduce(0.0) { $0 + routed[$1] / 12 * meanProbability[$1] }
        #expect(abs(Double(balance.item()) - hand) < 1e-5)
    }

    /// An even router (zero weights) gives every expert the same probability: the
    /// balancing loss is then exactly 1 whatever the ties pick.
    @Test func balanceIsOneForAnEvenRouter() throws {
        let m = try model(seed: 3), moe = m.layers[1].experts!
        for i in 0..<moe.router.weight.count { moe.router.weight.data[i] = 0 }
        #expect(abs(moe(randomTensor([2, 3, 8], seed: 6)).balance.item() - 1) < 1e-6)
    }

    @Test func gradientsOfLossAndBalanceMatchFiniteDifferences() throws {
        let m = try model(seed: 4)
        for (_, t) in m.parameters where t.rank == 2 { for i in 0..<t.count { t.data[i] /= 10 } }
        let check = gradientCheck(m.parameters.map(\.tensor), eps: 1e-3, atol: 2e-3, rtol: 3e-2, samples: 6) { _ in
            let loss = m.loss(inputs: ids, targets: targets, batch: 2, time: 6)
            return loss + m.auxiliaryLosses["router_aux"]! * 0.5
        }
        #expect(check.passed, "\(check.detail)")
    }

    @Test func readsWithAKVCacheLikeTheFullForward() throws {
        let m = try model(seed: 5)
        let full = Autograd.noGrad { m.logits(Array(ids[0..<6]), batch: 1, time: 6) }.toArray()
        let state = m.makeInferenceState()
        var read = Autograd.noGrad { m.logits(Array(ids[0..<2]), state: state) }.toArray()
        for id in ids[2..<6] { read += Autograd.noGrad { m.logits([id], state: state) }.toArray() }
        expectClose(read, full, tolerance: 1e-4)
    }

    @Test func configErrors() throws {
        var c = tinyMonarch
        c.experts = 4
        c.expertsActive = 2
        #expect(throws: ConfigError("monarch has no mixture-of-experts option (experts, experts_active)")) { try c.validate() }
        c = Self.tiny
        c.expertsActive = 5
        #expect(throws: ConfigError("need experts >= 2 and 1 <= experts_active <= experts, not 4 and 5")) { try c.validate() }
        c.expertsActive = nil
        #expect(throws: ConfigError("experts and experts_active go together")) { try c.validate() }
        #expect(throws: ConfigError.self) { try Self.tiny.architecture.definition!.huggingFaceConfig!(Self.tiny) }
        // Dense configs still write no expert keys.
        let json = String(decoding: try tinyMonarch.jsonData(), as: UTF8.self)
        #expect(!json.contains("experts"))
    }
}
