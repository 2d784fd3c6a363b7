/// GPT-2 as llama.cpp's "gpt2" architecture: the same blocks (pre-norm LayerNorm with
/// bias, fused QKV, tanh GELU, learned positions); Conv1D weights turned to [out, in].
extension GPT2 {
    static func ggufLayout(_ c: ModelConfig) throws -> GGUFLayout {
        // llama.cpp's gpt2 requires every bias; zeros would do, but such a file would claim
        // parameters the model never had.
        guard c.bias else {
            throw ConfigError("llama.cpp's gpt2 architecture needs biases, and this gpt2 model has none (model.bias = false)")
        }
        let metadata: [(key: String, value: GGUFValue)] = [
            ("gpt2.context_length", .uint32(UInt32(c.context))),
            ("gpt2.embedding_length", .uint32(UInt32(c.width))),
            ("gpt2.feed_forward_length", .uint32(UInt32(c.ffnWidth))),
            ("gpt2.block_count", .uint32(UInt32(c.layers))),
            ("gpt2.attention.head_count", .uint32(UInt32(c.heads))),
            ("gpt2.attention.layer_norm_epsilon", .float32(Float(c.normEps))),
        ]
        typealias T = GGUFLayout.Tensor
        var tensors = [T("token_embd.weight", from: "transformer.wte.weight"),
                       T("position_embd.weight", from: "transformer.wpe.weight")]
        for i in 0..<c.layers {
            let n = "transformer.h.\(i).", b = "blk.\(i)."
            for (g, hf, matrix) in [("attn_norm", "ln_1", false), ("attn_qkv", "attn.c_attn", true),
                                    ("attn_output", "attn.c_proj", true), ("ffn_norm", "ln_2", false),
                                    ("ffn_up", "mlp.c_fc", true), ("ffn_down", "mlp.c_proj", true)] {
                tensors += [T(b + g + ".weight", from: n + hf + ".weight", transposed: matrix),
                            T(b + g + ".bias", from: n + hf + ".bias")]
            }
        }
        tensors += [T("output_norm.weight", from: "transformer.ln_f.weight"), T("output_norm.bias", from: "transformer.ln_f.bias")]
        if !c.tiedEmbeddings { tensors.append(T("output.weight", from: "lm_head.weight")) }
        return GGUFLayout(architecture: "gpt2", metadata: metadata, tensors: tensors)
    }
}
