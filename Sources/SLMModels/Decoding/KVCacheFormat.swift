import CSLMKernels

/// How a decoder keeps the keys and values of the tokens it has read. Attention reads the
/// whole cache for every token, so with many streams (a server) or long contexts these
/// bytes, not the weights, come to bound a step; f16 halves them.
public enum KVCacheFormat: String, CaseIterable, Sendable {
    /// As computed: the decoder then matches the model's forward pass to fp32 rounding.
    case fp32
    /// IEEE half floats (10-bit mantissa), values clamped to ±65504: each key and value
    /// is rounded once, to about 3 significant digits, as llama.cpp's default cache does.
    case f16

    /// f16 where the kernels widen halves in hardware (F16C: the AVX2 and AVX-512 levels),
    /// which made one stream and sixteen faster on Zen 3 (docs/BENCHMARKS.md); fp32 on the
    /// portable kernels, whose conversion costs more than the bytes it saves.
    public static func preferred(for isa: slm_isa) -> KVCacheFormat { isa == SLM_ISA_SCALAR ? .fp32 : .f16 }

    /// `fp32`, `f16`, or `auto`: the preferred format for `isa` (default: the kernels active now).
    public init?(setting: String, isa: slm_isa = slm_isa_active()) {
        if setting == "auto" { self = .preferred(for: isa) } else if let f = KVCacheFormat(rawValue: setting) { self = f } else { return nil }
    }

    public var bytesPerValue: Int { self == .fp32 ? 4 : 2 }
    var kernelFormat: slm_kv_format { self == .fp32 ? SLM_KV_F32 : SLM_KV_F16 }
}
