import Foundation
import SLMTensor
import SLMTestSupport
import Testing
@testable import SLMModels

let tinyGPT2 = ModelConfig(architecture: .gpt2, vocabSize: 11, layers: 2, heads: 2, width: 8, context: 6)
let tinyLlama = ModelConfig(architecture: .llama, vocabSize: 11, layers: 2, heads: 4, kvHeads: 2, width: 16, context: 6, ffnWidth: 24)

func tempDirectory() -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("slm-models-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

@Suite struct ModelTests {
    static let configs = [tinyGPT2, tinyLlama]
    let ids: [Int32] = [1, 5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8]
    let targets: [Int32] = [5, 2, 9, 0, 3, 7, 7, 4, 10, 6, 8, 1]

    @Test(arguments: [ModelConfig.Architecture.gpt2, .llama])
    func lossAtInitialisationIsLogVocabulary(_ architecture: ModelConfig.Architecture) throws {
        let config = ModelConfig(architecture: architecture, vocabSize: 200, layers: 2, heads: 4, width: 64, context: 32)
        let model = try makeModel(config, seed: 1)
        var rng = RNG(seed: 2)
        let ids = (0..<(4 * 32)).map { _ in Int32(rng.next() % 200) }
        let loss = model.loss(inputs: ids, targets: ids.reversed(), batch: 4, time: 32).item()
        #expect(abs(loss - Float(log(200.0))) < 0.05, "\(loss)")
        #expect(model.parameterCount == config.parameterCount)
    }

    /// Every parameter of a whole model against central differences.
    @Test(arguments: configs)
    func wholeModelGradients(_ config: ModelConfig) throws {
        let model = try makeModel(config, seed: 3)
        // Weights 3× their initial size so every path carries signal, yet the loss stays
        // smooth enough for central differences at eps 2e-3.
        for (_, t) in model.parameters { for i in 0..<t.count { t.data[i] *= 3 } }
        let check = gradientCheck(model.parameters.map(\.tensor), eps: 2e-3, atol: 2e-3, rtol: 3e-2, samples: 6) { _ in
            model.loss(inputs: ids, targets: targets, batch: 2, time: 6)
        }
        #expect(check.passed, "\(check.detail)")
    }

    @Test func flopsCountTheHeadOnce() {
        // llama-5m by hand: 5,037,312 parameters, every one in one multiply-add per token
        // (norm weights too, a rounding error), plus 2·2·T·d per layer for the attention
        // scores and their weighted sum: 2 · 5,037,312 + 4 · 6 · 256 · 256.
        var llama = ModelConfig(architecture: .llama, vocabSize: 2000, layers: 6, heads: 4, width: 256, context: 256, ffnWidth: 640)
        #expect(llama.flopsPerToken == 11_647_488)
        // An untied head has its own weights but costs the same products.
        llama.tiedEmbeddings = false
        #expect(llama.parameterCount == 5_037_312 + 512_000)
        #expect(llama.flopsPerToken == 11_647_488)
        var gpt2 = tinyGPT2
        let tied = gpt2.flopsPerToken
        gpt2.tiedEmbeddings.toggle()
        #expect(gpt2.flopsPerToken == tied)
    }

    @Test func dropoutOnlyWhenTraining() throws {
        var config = tinyGPT2
        config.dropout = 0.5
        let model = try makeModel(config, seed: 4)
        let a = model.logits(ids, batch: 2, time: 6).toArray(), b = model.logits(ids, batch: 2, time: 6).toArray()
        #expect(a == b)
        var rng: RNG? = RNG(seed: 5)
        #expect(model.logits(ids, batch: 2, time: 6, dropoutRNG: &rng).toArray() != a)
    }

    @Test(arguments: configs)
    func saveAndLoadGiveTheSameLogits(_ config: ModelConfig) throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let model = try makeModel(config, seed: 6)
        try ModelStore.save(model, to: dir)
        let loaded = try ModelStore.load(from: dir)
        #expect(loaded.config == config)
        #expect(loaded.logits(ids, batch: 2, time: 6).toArray() == model.logits(ids, batch: 2, time: 6).toArray())
        #expect(loaded.parameters.map(\.name) == model.parameters.map(\.name))
    }

    @Test func namesFollowHuggingFace() throws {
        let gpt = try makeModel(tinyGPT2, seed: 1).parameters.map(\.name)
        #expect(gpt.contains("transformer.h.1.attn.c_attn.weight") && gpt.contains("lm_head.weight") && gpt.contains("transformer.wpe.weight"))
        let llama = try makeModel(tinyLlama, seed: 1).parameters.map(\.name)
        #expect(llama.contains("model.layers.0.self_attn.k_proj.weight") && llama.contains("model.norm.weight"))
        #expect(!llama.contains("lm_head.weight"), "tied by default")
        let gptShapes = Dictionary(uniqueKeysWithValues: try makeModel(tinyGPT2, seed: 1).parameters.map { ($0.name, $0.tensor.shape) })
        #expect(gptShapes["transformer.h.0.attn.c_attn.weight"] == [8, 24], "Conv1D layout [in, out]")
    }

    @Test func mismatchedWeightsAreRefused() throws {
        let model = try makeModel(tinyLlama, seed: 7)
        var weights = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.tensor) })
        weights["model.norm.weight"] = Tensor.zeros([3])
        weights.removeValue(forKey: "model.layers.1.mlp.up_proj.weight")
        weights["extra"] = Tensor.zeros([1])
        #expect(throws: ConfigError("weights do not match the model: model.layers.1.mlp.up_proj.weight is missing; model.norm.weight has shape [3], expected [16]; unexpected tensor extra")) {
            try makeModel(tinyLlama, weights: weights)
        }
    }

    @Test func configValidationAndJSON() throws {
        var bad = tinyLlama
        bad.kvHeads = 3
        bad.dropout = 1
        #expect(throws: ConfigError("heads 4 must be a multiple of kv_heads 3; dropout must be in [0, 1)")) { try bad.validate() }
        let decoded = try JSONDecoder().decode(ModelConfig.self, from: try tinyLlama.jsonData())
        #expect(decoded == tinyLlama)
        #expect(String(decoding: try tinyLlama.jsonData(), as: UTF8.self).contains("\"kv_heads\" : 2"))
        #expect(ModelConfig.swigluWidth(256) == 704)
    }
}

@Suite struct SafetensorsTests {
    @Test func roundTripWithMetadata() throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let a = randomTensor([3, 5], seed: 1), b = randomTensor([7], seed: 2), empty = Tensor.zeros([0, 4])
        let url = dir.appendingPathComponent("x.safetensors")
        try Safetensors.write([("b", b), ("a", a), ("empty", empty)], metadata: ["format": "pt"], to: url)
        let data = try Data(contentsOf: url)
        let headerLength = data.prefix(8).withUnsafeBytes { Int($0.loadUnaligned(as: UInt64.self)) }
        #expect((8 + headerLength) % 8 == 0, "data starts 8-byte aligned")
        let (tensors, metadata) = try Safetensors.read(url)
        #expect(metadata == ["format": "pt"])
        #expect(tensors["a"]!.toArray() == a.toArray() && tensors["a"]!.shape == [3, 5])
        #expect(tensors["b"]!.toArray() == b.toArray())
        #expect(tensors["empty"]!.shape == [0, 4])
        // bf16 storage is written as BF16 and widened on reading.
        try Safetensors.write([("h", Tensor([1.5, -2, 3.25], shape: [3]).converted(to: .bfloat16))], to: url)
        #expect(try Safetensors.read(url).tensors["h"]!.toArray() == [1.5, -2, 3.25])
    }

    @Test func tornAndCorruptFilesAreRefused() throws {
        let dir = tempDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let url = dir.appendingPathComponent("x.safetensors")
        try Safetensors.write([("a", randomTensor([64], seed: 3))], to: url)
        let full = try Data(contentsOf: url)
        try full.prefix(full.count - 10).write(to: url)
        #expect(throws: SafetensorsError.self) { try Safetensors.read(url) }
        try full.prefix(5).write(to: url)
        #expect(throws: SafetensorsError("\(url.path): shorter than a safetensors header (5 bytes)")) { try Safetensors.read(url) }
        var garbage = full
        garbage[8] = UInt8(ascii: "!")
        try garbage.write(to: url)
        #expect(throws: SafetensorsError("\(url.path): header is not a JSON object")) { try Safetensors.read(url) }
    }
}

/// Logits of tiny models computed independently, by the PyTorch reference in
/// benchmarks/reference (`reference.py fixture`), whose safetensors files were written by
/// the Python safetensors library.
@Suite struct ReferenceFixtureTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures")

    /// Logits and loss; for MonarchSLM and SymbioSLM (whose reference builds the dense
    /// masked Monarch matrix from explicit P and B(L) matrices) also a few gradients.
    @Test(arguments: ["tiny-gpt2", "tiny-llama", "tiny-monarch", "tiny-symbio", "tiny-bitnet"])
    func logitsMatchThePyTorchReference(_ name: String) throws {
        let dir = Self.fixtures.appendingPathComponent(name)
        let model = try ModelStore.load(from: dir)
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("expected.json"))) as! [String: Any]
        let rows = expected["inputs"] as! [[Int]]
        let inputs = rows.flatMap { $0 }.map(Int32.init)
        let targets = (expected["targets"] as! [[Int]]).flatMap { $0 }.map(Int32.init)
        let logits = model.logits(inputs, batch: rows.count, time: rows[0].count)
        expectClose(logits.toArray(), (expected["logits"] as! [Double]).map(Float.init), tolerance: 2e-5)
        let loss = crossEntropy(logits, targets: targets)
        #expect(abs(Double(loss.item()) - (expected["loss"] as! Double)) < 1e-5)
        guard let gradients = expected["gradients"] as? [String: [Double]] else { return }
        loss.backward()
        let parameters = Dictionary(uniqueKeysWithValues: model.parameters.map { ($0.name, $0.tensor) })
        for (name, values) in gradients {
            let grad = try #require(parameters[name]?.grad, "\(name) has no gradient")
            expectClose(grad.toArray(), values.map(Float.init), tolerance: 2e-5)
        }
        #expect(gradients.count == 4)
    }
}
