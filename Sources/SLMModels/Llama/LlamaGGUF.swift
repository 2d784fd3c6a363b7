/// LLaMA (and its mixtures of experts) as llama.cpp's "llama" architecture.
extension Llama {
    static func ggufLayout(_ c: ModelConfig) throws -> GGUFLayout {
        // A ternary model without SubLN is a llama whose block weights are {−s, 0, s}
        // (TQ2_0 holds them exactly); llama.cpp only lacks the 8-bit rounding of activations.
        if c.subNorm == true {
            throw ConfigError("a model with SubLN norms (sub_norm) needs llama.cpp's bitnet architecture, which this export "
                + "does not write yet; train without sub_norm to export to GGUF")
        }
        var metadata: [(key: String, value: GGUFValue)] = [
            ("llama.context_length", .uint32(UInt32(c.context))),
            ("llama.embedding_length", .uint32(UInt32(c.width))),
            ("llama.block_count", .uint32(UInt32(c.layers))),
            ("llama.feed_forward_length", .uint32(UInt32(c.ffnWidth))),
            ("llama.attention.head_count", .uint32(UInt32(c.heads))),
            ("llama.attention.head_count_kv", .uint32(UInt32(c.kvHeads))),
            ("llama.attention.key_length", .uint32(UInt32(c.headSize))),
            ("llama.attention.value_length", .uint32(UInt32(c.headSize))),
            ("llama.rope.dimension_count", .uint32(UInt32(c.headSize))),
            ("llama.rope.freq_base", .float32(Float(c.ropeTheta))),
            ("llama.attention.layer_norm_rms_epsilon", .float32(Float(c.normEps))),
            ("llama.vocab_size", .uint32(UInt32(c.vocabSize))),
        ]
        if let experts = c.experts {
            metadata += [("llama.expert_count", .uint32(UInt32(experts))),
                         ("llama.expert_used_count", .uint32(UInt32(c.expertsActive ?? 1)))]
        }
        typealias T = GGUFLayout.Tensor
        var tensors = [T("token_embd.weight", from: "model.embed_tokens.weight")]
        for i in 0..<c.layers {
            let n = "model.layers.\(i).", b = "blk.\(i)."
            let a = n + "self_attn."
            tensors.append(T(b + "attn_norm.weight", from: n + "input_layernorm.weight"))
            for (g, hf, rotary) in [("attn_q", "q_proj", true), ("attn_k", "k_proj", true), ("attn_v", "v_proj", false),
                                    ("attn_output", "o_proj", false)] {
                let suffixes = c.bias ? ["weight", "bias"] : ["weight"]
                for s in suffixes {
                    tensors.append(T(b + g + "." + s, from: a + hf + "." + s, rotaryHeadSize: rotary ? c.headSize : nil))
                }
            }
            tensors.append(T(b + "ffn_norm.weight", from: n + "post_attention_layernorm.weight"))
            if let experts = c.experts {
                let e = (0..<experts).map { n + "mlp.experts.\($0)." }
                tensors += [T(b + "ffn_gate_inp.weight", from: n + "mlp.gate.weight", keepsFloat32: true),
                            T(b + "ffn_gate_exps.weight", from: e.map { $0 + "gate_proj.weight" }),
                            T(b + "ffn_up_exps.weight", from: e.map { $0 + "up_proj.weight" }),
                            T(b + "ffn_down_exps.weight", from: e.map { $0 + "down_proj.weight" })]
            } else {
                tensors += [T(b + "ffn_gate.weight", from: n + "mlp.gate_proj.weight"),
                            T(b + "ffn_up.weight", from: n + "mlp.up_proj.weight"),
                            T(b + "ffn_down.weight", from: n + "mlp.down_proj.weight")]
            }
        }
        tensors.append(T("output_norm.weight", from: "model.norm.weight"))
        // A tied head is the embedding: llama.cpp falls back to token_embd when output is absent.
        if !c.tiedEmbeddings { tensors.append(T("output.weight", from: "lm_head.weight")) }
        return GGUFLayout(architecture: "llama", metadata: metadata, tensors: tensors)
    }
}
