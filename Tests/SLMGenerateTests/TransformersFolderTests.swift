import Foundation
import SLMModels
import SLMTensor
import SLMText
import Testing
@testable import SLMGenerate

/// Folders saved by transformers' `save_pretrained` (Fixtures/transformers, made by its
/// make_fixtures.py): the ids, logits and greedy tokens that transformers and tokenizers
/// computed are what we compute from the same files.
@Suite struct TransformersFolderTests {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .appendingPathComponent("Fixtures/transformers")

    struct Expected: Decodable {
        struct Case: Decodable { let text: String; let ids: [Int32] }
        struct Cases: Decodable { let cases: [Case] }
        let cases: [Case]
        let sequence: [Int32]
        let logits: [[Float]]
        let greedy: [Int32]
    }

    static func expected(_ folder: String) throws -> Expected {
        try JSONDecoder().decode(Expected.self, from: Data(contentsOf: fixtures.appendingPathComponent("\(folder)/expected.json")))
    }

    /// gpt2-fp16: GPT2LMHeadModel, tied, float16 weights in one file, byte-level BPE;
    /// llama-bf16-sharded: LlamaForCausalLM with grouped-query attention, untied, bfloat16
    /// weights in four shards, Llama-2-style tokenizer with byte fallback and <s>.
    @Test(arguments: ["gpt2-fp16", "llama-bf16-sharded"])
    func logitsAndGreedyTokensMatchTransformers(_ folder: String) throws {
        let bundle = try ModelBundle(directory: Self.fixtures.appendingPathComponent(folder))
        let expected = try Self.expected(folder)
        let ids = expected.sequence
        let logits = Autograd.noGrad { bundle.model.logits(ids, batch: 1, time: ids.count) }.toArray()
        let reference = expected.logits.flatMap { $0 }
        #expect(logits.count == reference.count)
        let worst = zip(logits, reference).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4, "largest logit difference \(worst)")

        let generator = Generator(model: bundle.model, tokenizer: bundle.tokenizer)
        var tokens: [Int32] = []
        _ = generator.generate(prompt: ids, options: GenerationOptions(maxTokens: expected.greedy.count,
                                                                       sampling: SamplingParameters(temperature: 0))) {
            tokens.append($0.id)
            return true
        }
        #expect(tokens == expected.greedy)
    }

    @Test(arguments: ["gpt2-fp16", "llama-bf16-sharded"])
    func promptIdsMatchTransformersTokenizer(_ folder: String) throws {
        let bundle = try ModelBundle(directory: Self.fixtures.appendingPathComponent(folder))
        for c in try Self.expected(folder).cases {
            #expect(bundle.encodePrompt(c.text).ids == c.ids, "\(c.text.debugDescription)")
        }
    }

    @Test func configsReadAsOurs() throws {
        let gpt2 = try ModelStore.load(from: Self.fixtures.appendingPathComponent("gpt2-fp16")).config
        #expect(gpt2 == ModelConfig(architecture: .gpt2, vocabSize: 420, layers: 2, heads: 4, width: 32, context: 64,
                                    ffnWidth: 128, normEps: 1e-5, bias: true, tiedEmbeddings: true))
        let llama = try ModelStore.load(from: Self.fixtures.appendingPathComponent("llama-bf16-sharded")).config
        #expect(llama == ModelConfig(architecture: .llama, vocabSize: 583, layers: 2, heads: 4, kvHeads: 2, width: 32, context: 64,
                                     ffnWidth: 88, normEps: 1e-5, ropeTheta: 10_000, bias: false, tiedEmbeddings: false))
    }

    /// The Llama tokenizer ends generations at </s>; its prompts start with <s>.
    @Test func llamaSpecialTokens() throws {
        let tokenizer = try loadTokenizer(Self.fixtures.appendingPathComponent("llama-bf16-sharded").path)
        #expect(tokenizer.kind == "metaspace-bpe")
        #expect(tokenizer.promptPrefix == [1] && tokenizer.endOfTextID == 2)
        // Text comes back with "▁" as spaces and <0xNN> tokens as their bytes.
        let ids = tokenizer.encode("emoji 🙂 and 日本語")
        #expect(try tokenizer.decode(ids) == " emoji 🙂 and 日本語")
    }

    /// The same vocabulary in the newer spelling: a Metaspace pre-tokenizer that puts "▁"
    /// only before the start of the text (not after an added token), without splitting.
    @Test func metaspacePreTokenizerMatchesTokenizers() throws {
        let tokenizer = try loadTokenizerJSON(Self.fixtures.appendingPathComponent("tokenizer-metaspace.json"))
        let expected = try JSONDecoder().decode(Expected.Cases.self,
                                                from: Data(contentsOf: Self.fixtures.appendingPathComponent("tokenizer-metaspace-expected.json")))
        for c in expected.cases {
            #expect(tokenizer.promptPrefix + tokenizer.encode(c.text) == c.ids, "\(c.text.debugDescription)")
        }
    }

    // MARK: Refusals

    /// A copy of a fixture folder with config.json edited.
    func folder(_ name: String, editing edit: (inout [String: Any]) -> Void) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("hf-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: Self.fixtures.appendingPathComponent(name), to: dir)
        let url = dir.appendingPathComponent("config.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        edit(&json)
        try JSONSerialization.data(withJSONObject: json).write(to: url)
        return dir
    }

    func loadError(_ dir: URL) -> String {
        defer { try? FileManager.default.removeItem(at: dir) }
        do {
            _ = try ModelStore.load(from: dir)
            return "loaded"
        } catch {
            return "\(error)"
        }
    }

    @Test func unsupportedConfigsAreRefusedByName() throws {
        let scaled = loadError(try folder("llama-bf16-sharded") { $0["rope_parameters"] = ["rope_type": "linear", "factor": 2.0, "rope_theta": 1e4] })
        #expect(scaled.contains("rope_type linear") && scaled.contains("scaled RoPE"), "\(scaled)")
        let oldScaled = loadError(try folder("llama-bf16-sharded") { $0["rope_scaling"] = ["type": "dynamic", "factor": 2.0] })
        #expect(oldScaled.contains("rope_scaling is set"), "\(oldScaled)")
        let act = loadError(try folder("llama-bf16-sharded") { $0["hidden_act"] = "gelu" })
        #expect(act.contains("hidden_act gelu is not supported"), "\(act)")
        let mlpBias = loadError(try folder("llama-bf16-sharded") { $0["mlp_bias"] = true })
        #expect(mlpBias.contains("mlp_bias"), "\(mlpBias)")
        let gelu = loadError(try folder("gpt2-fp16") { $0["activation_function"] = "gelu" })
        #expect(gelu.contains("activation_function gelu is not supported"), "\(gelu)")
        let layerScale = loadError(try folder("gpt2-fp16") { $0["scale_attn_by_inverse_layer_idx"] = true })
        #expect(layerScale.contains("scale_attn_by_inverse_layer_idx"), "\(layerScale)")
        let other = loadError(try folder("gpt2-fp16") { $0["model_type"] = "mistral" })
        #expect(other.contains("model_type mistral is not one swift-slm runs"), "\(other)")
        let head = loadError(try folder("gpt2-fp16") { $0["architectures"] = ["GPT2ForSequenceClassification"] })
        #expect(head.contains("GPT2ForSequenceClassification is not a causal language model"), "\(head)")
        let missing = loadError(try folder("llama-bf16-sharded") { $0["hidden_size"] = nil })
        #expect(missing.contains("hidden_size is missing"), "\(missing)")
    }

    @Test func missingOrMislabelledShardsAreRefused() throws {
        let dir = try folder("llama-bf16-sharded") { _ in }
        try FileManager.default.removeItem(at: dir.appendingPathComponent("model-00003-of-00004.safetensors"))
        #expect(loadError(dir).contains("model-00003-of-00004.safetensors: cannot be read"))

        let moved = try folder("llama-bf16-sharded") { _ in }
        let index = moved.appendingPathComponent("model.safetensors.index.json")
        var json = try JSONSerialization.jsonObject(with: Data(contentsOf: index)) as! [String: Any]
        var map = json["weight_map"] as! [String: String]
        map["model.norm.weight"] = "model-00001-of-00004.safetensors"
        json["weight_map"] = map
        try JSONSerialization.data(withJSONObject: json).write(to: index)
        let error = loadError(moved)
        #expect(error.contains("model.norm.weight is not listed for this shard"), "\(error)")

        let pickle = try folder("gpt2-fp16") { _ in }
        try FileManager.default.moveItem(at: pickle.appendingPathComponent("model.safetensors"), to: pickle.appendingPathComponent("pytorch_model.bin"))
        #expect(loadError(pickle).contains("only pytorch_model.bin"))
    }
}
