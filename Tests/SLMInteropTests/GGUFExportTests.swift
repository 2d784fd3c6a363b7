import Foundation
import SLMModels
import SLMTensor
import SLMText
import Testing
@testable import SLMInterop

/// A model folder as `slm train` leaves it: config.json, model.safetensors, tokenizer.
private func modelFolder(_ config: ModelConfig, tokenizer: any Tokenizer) throws -> URL {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("slm-gguf-\(UUID().uuidString)")
    try ModelStore.save(try makeModel(config, seed: 3), to: dir)
    try tokenizer.save(to: dir)
    return dir
}

private let text = String(repeating: "The soul is immortal, said Socrates; the body is not. Knowledge is recollection.\n", count: 30)

private func bpe(_ size: Int = 300) throws -> ByteLevelBPETokenizer {
    try BPETrainer.train(texts: [text], vocabularySize: size, specialTokens: ["<|endoftext|>"])
}

/// Exports and reads the file back with the tests' own reader.
private func exported(_ config: ModelConfig, tokenizer: any Tokenizer, type: GGUFExport.WeightType)
    throws -> (GGUFReader, [String: Tensor], GGUFExport.Summary) {
    let dir = try modelFolder(config, tokenizer: tokenizer)
    defer { try? FileManager.default.removeItem(at: dir) }
    let file = dir.appendingPathComponent("model.gguf")
    let summary = try GGUFExport.export(from: dir, to: file, type: type)
    let reader = try GGUFReader(Array(try Data(contentsOf: file)))
    #expect(summary.byteCount == reader.bytes.count)
    return (reader, try Safetensors.read(dir.appendingPathComponent("model.safetensors")).tensors, summary)
}

/// Rotate-half RoPE's rows in llama.cpp's adjacent-pair order, undone.
private func unpermuted(_ values: [Float], rows: Int, headSize: Int) -> [Float] {
    let order = GGUFLayout.adjacentPairOrder(rows: rows, headSize: headSize), length = values.count / rows
    var out = values
    for (new, old) in order.enumerated() { out[(old * length)..<((old + 1) * length)] = values[(new * length)..<((new + 1) * length)] }
    return out
}

@Suite struct GGUFExportTests {
    static let llama = ModelConfig(architecture: .llama, vocabSize: 300, layers: 2, heads: 4, kvHeads: 2, width: 64, context: 32)

    @Test func headerMetadataAndTensorsOfALlamaModel() throws {
        let c = Self.llama
        let (gguf, weights, _) = try exported(c, tokenizer: try bpe(), type: .f32)
        #expect(gguf.version == 3)
        let m = gguf.metadata
        #expect(m["general.architecture"] == .string("llama"))
        #expect(m["general.file_type"] == .uint32(0))
        #expect(m["llama.context_length"] == .uint32(32))
        #expect(m["llama.embedding_length"] == .uint32(64))
        #expect(m["llama.block_count"] == .uint32(2))
        #expect(m["llama.feed_forward_length"] == .uint32(UInt32(c.ffnWidth)))
        #expect(m["llama.attention.head_count"] == .uint32(4))
        #expect(m["llama.attention.head_count_kv"] == .uint32(2))
        #expect(m["llama.rope.dimension_count"] == .uint32(16))
        #expect(m["llama.rope.freq_base"] == .float32(10_000))
        #expect(m["llama.attention.layer_norm_rms_epsilon"] == .float32(Float(1e-6)))
        // 2 layers × 9 tensors, embedding, final norm; no output (tied).
        #expect(gguf.tensors.count == 20)
        #expect(gguf.tensor("output.weight") == nil)
        for t in gguf.tensors { #expect(t.offset % 32 == 0) }
        #expect(gguf.dataStart % 32 == 0)

        let embedding = try #require(gguf.tensor("token_embd.weight"))
        #expect(embedding.dimensions == [64, 300])  // innermost first
        #expect(try gguf.floats(embedding) == weights["model.embed_tokens.weight"]!.toArray())
        let down = try #require(gguf.tensor("blk.1.ffn_down.weight"))
        #expect(down.dimensions == [c.ffnWidth, 64])
        #expect(try gguf.floats(down) == weights["model.layers.1.mlp.down_proj.weight"]!.toArray())
        #expect(try gguf.floats(try #require(gguf.tensor("output_norm.weight"))) == weights["model.norm.weight"]!.toArray())
        // Q and K rows are reordered for llama.cpp's RoPE, V is not.
        let q = try gguf.floats(try #require(gguf.tensor("blk.0.attn_q.weight")))
        let sourceQ = weights["model.layers.0.self_attn.q_proj.weight"]!.toArray()
        #expect(q != sourceQ)
        #expect(unpermuted(q, rows: 64, headSize: 16) == sourceQ)
        let k = try #require(gguf.tensor("blk.0.attn_k.weight"))
        #expect(k.dimensions == [64, 32])
        #expect(unpermuted(try gguf.floats(k), rows: 32, headSize: 16) == weights["model.layers.0.self_attn.k_proj.weight"]!.toArray())
        #expect(try gguf.floats(try #require(gguf.tensor("blk.0.attn_v.weight"))) == weights["model.layers.0.self_attn.v_proj.weight"]!.toArray())
    }

    /// The reordered rows under adjacent-pair RoPE give what the original rows give under
    /// our rotate-half RoPE, reordered the same way: so every query·key product is unchanged.
    @Test func reorderedRowsTurnWithAdjacentPairs() {
        let heads = 3, d = 8, position = 5
        var rng = RNG(seed: 9)
        let x = Tensor.randn([1, 1, heads, d], rng: &rng)
        let table = RotaryEmbedding(headDim: d, maxPositions: 8)
        let ours = rope(x, table, offset: position).toArray()
        let order = GGUFLayout.adjacentPairOrder(rows: heads * d, headSize: d)
        let permuted = order.map { x.toArray()[$0] }
        // llama.cpp's "llama" RoPE: element 2i turns with 2i + 1 by angle p·θ^(−2i/d).
        var turned = permuted
        for h in 0..<heads {
            for i in 0..<(d / 2) {
                let angle = Double(position) * pow(10_000, -Double(2 * i) / Double(d))
                let a = permuted[h * d + 2 * i], b = permuted[h * d + 2 * i + 1]
                turned[h * d + 2 * i] = a * Float(cos(angle)) - b * Float(sin(angle))
                turned[h * d + 2 * i + 1] = a * Float(sin(angle)) + b * Float(cos(angle))
            }
        }
        let expected = order.map { ours[$0] }
        for (a, b) in zip(turned, expected) { #expect(abs(a - b) < 1e-5) }
    }

    @Test func tokenizerAsLlamaCppByteLevelBPE() throws {
        let tokenizer = try bpe(280)
        var c = Self.llama
        c.vocabSize = 300  // larger than the tokenizer: the rest are unused pads
        let (gguf, _, _) = try exported(c, tokenizer: tokenizer, type: .f32)
        let m = gguf.metadata
        #expect(m["tokenizer.ggml.model"] == .string("gpt2"))
        #expect(m["tokenizer.ggml.pre"] == .string("gpt-2"))
        #expect(m["tokenizer.ggml.add_bos_token"] == .bool(false))
        guard case .array(let tokens)? = m["tokenizer.ggml.tokens"], case .array(let types)? = m["tokenizer.ggml.token_type"],
              case .array(let merges)? = m["tokenizer.ggml.merges"] else {
            Issue.record("tokenizer arrays missing")
            return
        }
        #expect(tokens.count == 300 && types.count == 300)
        let end = try #require(tokenizer.specialTokens["<|endoftext|>"])
        #expect(m["tokenizer.ggml.bos_token_id"] == .uint32(UInt32(end)))
        #expect(m["tokenizer.ggml.eos_token_id"] == .uint32(UInt32(end)))
        #expect(tokens[Int(end)] == .string("<|endoftext|>") && types[Int(end)] == .int32(3))
        for id in 0..<tokenizer.vocabularySize where Int32(id) != end {
            #expect(tokens[id] == .string(tokenizer.tokens[id]))
            #expect(types[id] == .int32(1))
        }
        #expect(tokens[299] == .string("[PAD299]") && types[299] == .int32(5))
        #expect(merges.count == tokenizer.merges.count)
        let first = tokenizer.merges[0]
        #expect(merges[0] == .string(tokenizer.tokens[Int(first.0)] + " " + tokenizer.tokens[Int(first.1)]))
        // A space is GPT-2's "Ġ" in token texts.
        #expect(tokens.contains(.string("Ġ")))
    }

    /// Character models: each character's bytes in byte-level form, no merges.
    @Test func characterVocabulary() throws {
        let chars = CharTokenizer(charset: .micro)
        var c = Self.llama
        c.vocabSize = chars.vocabularySize
        let (gguf, _, _) = try exported(c, tokenizer: chars, type: .f32)
        guard case .array(let tokens)? = gguf.metadata["tokenizer.ggml.tokens"] else { Issue.record("no tokens"); return }
        #expect(tokens.count == chars.vocabularySize)
        let space = try #require(chars.characters.firstIndex(of: " "))
        #expect(tokens[space] == .string("Ġ"))
        #expect(gguf.metadata["tokenizer.ggml.merges"] == .array([]))
        #expect(gguf.metadata["tokenizer.ggml.bos_token_id"] == nil)
    }

    @Test func halfPrecisionAndQ8_0() throws {
        let c = Self.llama
        let (f16, weights, _) = try exported(c, tokenizer: try bpe(), type: .f16)
        #expect(f16.metadata["general.file_type"] == .uint32(1))
        let up = try #require(f16.tensor("blk.0.ffn_up.weight"))
        #expect(up.type == 1)
        let source = weights["model.layers.0.mlp.up_proj.weight"]!.toArray()
        for (a, b) in zip(try f16.floats(up), source) { #expect(abs(a - b) <= abs(b) / 1024 + 1e-7) }
        #expect(f16.tensor("blk.0.attn_norm.weight")?.type == 0)  // norms stay f32

        let (q8, _, _) = try exported(c, tokenizer: try bpe(), type: .q8_0)
        #expect(q8.metadata["general.file_type"] == .uint32(7))
        let q8up = try #require(q8.tensor("blk.0.ffn_up.weight"))
        #expect(q8up.type == 8)
        let decoded = try q8.floats(q8up)
        for block in 0..<(source.count / 32) {
            let values = source[(block * 32)..<((block + 1) * 32)]
            // Half a step of rounding, plus the f16 scale's relative error 2^-11 on up to 127 steps.
            let step = values.map(abs).max()! / 127
            for j in 0..<32 { #expect(abs(decoded[block * 32 + j] - values[block * 32 + j]) <= step * (0.5 + 127 / 2048) + 1e-7) }
        }
    }

    /// ggml's Q8_0 block, by hand: scale max|x|/127 as f16, values round(x / scale).
    @Test func q8_0BlockByHand() {
        let x = (0..<32).map { Float($0) - 8 }  // −8 … 23
        let bytes = GGUFEncoding.q8_0(x)
        #expect(bytes.count == 34)
        let d = Float(23) / 127
        #expect(UInt16(bytes[0]) | UInt16(bytes[1]) << 8 == Float16(d).bitPattern)
        for j in 0..<32 { #expect(Int8(bitPattern: bytes[2 + j]) == Int8((x[j] / d).rounded(.toNearestOrAwayFromZero))) }
        #expect(Int8(bitPattern: bytes[2 + 31]) == 127)
        #expect(GGUFEncoding.q8_0([Float](repeating: 0, count: 32)) == [UInt8](repeating: 0, count: 34))
    }

    /// TQ2_0 by hand: value 0 is −s (code 0, byte 0 bits 0-1), value 32 is +s (code 2, byte 0
    /// bits 2-3), value 129 is 0 (code 1, byte 33 bits 0-1), value 255 is +s (code 2, byte
    /// 63 bits 6-7); the rest are 0 (code 1); then s as f16.
    @Test func tq2_0BlockByHand() {
        let s: Float = 0.25
        var x = [Float](repeating: 0, count: 256)
        (x[0], x[32], x[255]) = (-s, s, s)
        let bytes = GGUFEncoding.tq2_0(x)
        #expect(bytes.count == 66)
        #expect(bytes[0] == 0b01_01_10_00)
        #expect(bytes[33] == 0b01_01_01_01)
        #expect(bytes[63] == 0b10_01_01_01)
        #expect(bytes[1..<32].allSatisfy { $0 == 0b01_01_01_01 })
        #expect(UInt16(bytes[64]) | UInt16(bytes[65]) << 8 == Float16(s).bitPattern)
    }

    /// A ternary model: block matrices as {−s, 0, s}, TQ2_0 where rows are multiples of 256
    /// (others Q8_0, named), the embedding F32; TQ2_0 refused for full-precision models;
    /// a model with SubLN refused (llama.cpp's bitnet architecture is not written).
    @Test func ternaryModelAsTQ2_0() throws {
        var c = ModelConfig(architecture: .llama, vocabSize: 300, layers: 1, heads: 4, width: 256, context: 32, ffnWidth: 384)
        c.quantization = .ternary
        let (gguf, weights, summary) = try exported(c, tokenizer: try bpe(), type: .tq2_0)
        #expect(gguf.metadata["general.file_type"] == .uint32(37))
        #expect(gguf.tensor("blk.0.attn_v.weight")?.type == 35 && gguf.tensor("blk.0.ffn_up.weight")?.type == 35)
        // ffn_down's rows are 384 values: not a TQ2_0 block multiple.
        #expect(gguf.tensor("blk.0.ffn_down.weight")?.type == 8 && summary.storedAsQ8_0 == ["blk.0.ffn_down.weight"])
        #expect(gguf.tensor("token_embd.weight")?.type == 0)
        let v = weights["model.layers.0.self_attn.v_proj.weight"]!
        let expected = ternaryWeights(v).toArray(), scale = expected.map(abs).max()!
        #expect(Set(expected.map { $0 == 0 ? 0 : $0 > 0 ? 1 : -1 }).count == 3)
        let stored = try #require(gguf.tensor("blk.0.attn_v.weight"))
        #expect(stored.dimensions == [256, 256])
        let decoded = try gguf.floats(stored)
        #expect(zip(decoded, expected).allSatisfy { abs($0 - $1) <= scale / 1024 }, "{−s, 0, s} up to s in f16")
        #expect(throws: ConfigError.self) { _ = try exported(Self.llama, tokenizer: try bpe(), type: .tq2_0) }
        c.subNorm = true
        #expect(throws: ConfigError.self) { _ = try exported(c, tokenizer: try bpe(), type: .tq2_0) }
    }

    /// Rows of a length Q8_0 cannot block stay f32, and the summary says which.
    @Test func q8_0FallsBackForShortRows() throws {
        var c = Self.llama
        c.width = 48
        c.heads = 3
        c.kvHeads = 3
        let (gguf, _, summary) = try exported(c, tokenizer: try bpe(), type: .q8_0)
        #expect(gguf.tensor("blk.0.attn_q.weight")?.type == 0)
        #expect(summary.keptFloat32.contains("blk.0.attn_q.weight"))
        // ffn_down's rows are the SwiGLU width, a multiple of 32.
        #expect(c.ffnWidth % 32 == 0 && gguf.tensor("blk.0.ffn_down.weight")?.type == 8)
    }

    /// A mixture of experts as Mixtral runs in llama.cpp: experts stacked, router in f32.
    @Test func mixtureOfExperts() throws {
        var c = Self.llama
        c.experts = 4
        c.expertsActive = 2
        let (gguf, weights, _) = try exported(c, tokenizer: try bpe(), type: .q8_0)
        #expect(gguf.metadata["llama.expert_count"] == .uint32(4))
        #expect(gguf.metadata["llama.expert_used_count"] == .uint32(2))
        let router = try #require(gguf.tensor("blk.0.ffn_gate_inp.weight"))
        #expect(router.type == 0 && router.dimensions == [64, 4])
        let up = try #require(gguf.tensor("blk.1.ffn_up_exps.weight"))
        #expect(up.dimensions == [64, c.ffnWidth, 4])
        let down = try #require(gguf.tensor("blk.1.ffn_down_exps.weight"))
        #expect(down.dimensions == [c.ffnWidth, 64, 4])
        let expert2 = weights["model.layers.1.mlp.experts.2.down_proj.weight"]!.toArray()
        let decoded = Array(try gguf.floats(down)[(2 * expert2.count)..<(3 * expert2.count)])
        for (a, b) in zip(decoded, expert2) { #expect(abs(a - b) < 2e-3) }
        #expect(gguf.tensor("blk.0.ffn_up.weight") == nil)
    }

    /// GPT-2 as llama.cpp's gpt2: Conv1D weights turned to [out, in], biases, positions.
    @Test func gpt2Model() throws {
        let chars = CharTokenizer(charset: .micro)
        let c = ModelConfig(architecture: .gpt2, vocabSize: chars.vocabularySize, layers: 2, heads: 2, width: 32, context: 16)
        let (gguf, weights, _) = try exported(c, tokenizer: chars, type: .f32)
        #expect(gguf.metadata["general.architecture"] == .string("gpt2"))
        #expect(gguf.metadata["gpt2.context_length"] == .uint32(16))
        #expect(gguf.metadata["gpt2.feed_forward_length"] == .uint32(128))
        #expect(gguf.metadata["gpt2.attention.layer_norm_epsilon"] == .float32(Float(1e-5)))
        #expect(gguf.tensors.count == 2 + 2 * 12 + 2 + 1)
        let qkv = try #require(gguf.tensor("blk.1.attn_qkv.weight"))
        #expect(qkv.dimensions == [32, 96])  // ne: inputs first, so rows of 32 inputs, 96 of them
        let source = weights["transformer.h.1.attn.c_attn.weight"]!.toArray()  // [32 in, 96 out]
        let values = try gguf.floats(qkv)
        for o in [0, 17, 95] {
            for i in [0, 5, 31] { #expect(values[o * 32 + i] == source[i * 96 + o]) }
        }
        #expect(try gguf.floats(try #require(gguf.tensor("blk.0.ffn_up.bias"))) == weights["transformer.h.0.mlp.c_fc.bias"]!.toArray())
        #expect(gguf.tensor("position_embd.weight")?.dimensions == [32, 16])
        #expect(gguf.tensor("output.weight")?.dimensions == [32, chars.vocabularySize])
    }

    @Test func architecturesLlamaCppCannotRunAreRefused() throws {
        var noBias = ModelConfig(architecture: .gpt2, vocabSize: 28, layers: 1, heads: 2, width: 16, context: 16)
        noBias.bias = false
        for c in [noBias] + [ModelConfig.Architecture.monarch, .symbio].map({
            ModelConfig(architecture: $0, vocabSize: 28, layers: 1, heads: 2, width: 16, context: 16)
        }) {
            let dir = try modelFolder(c, tokenizer: CharTokenizer(charset: .micro))
            defer { try? FileManager.default.removeItem(at: dir) }
            #expect(throws: ConfigError.self) {
                try GGUFExport.export(from: dir, to: dir.appendingPathComponent("m.gguf"), type: .f32)
            }
            #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("m.gguf").path))
        }
    }
}
