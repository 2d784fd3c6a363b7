import CSLMKernels
import Foundation
import SLMTensor

/// Several generations of one model stepped together (a server's concurrent streams): each
/// weight matrix is read once per step for all of them, as one GEMM over their rows,
/// instead of once per stream. Attention (or the Monarch/Symbio mixer) runs per stream on
/// its own cache or state, at its own position (attention: every stream's heads as the
/// tasks of one parallel region); a mixture of experts multiplies each
/// expert once for the streams routed to it. fp32 matrices are GEMMs; int8 and ternary
/// ones go through the decode pool's batched GEMV, which reads a chunk of rows once for
/// every stream.
extension IncrementalDecoder {
    /// Reads `tokens[i]` into `decoders[i]` (all built on the same weights, each with room
    /// left) and returns each one's logits for the next token, valid until its next call.
    public static func step(_ decoders: [IncrementalDecoder], tokens: [Int32]) -> [UnsafeBufferPointer<Float>] {
        precondition(decoders.count == tokens.count, "step: one token per decoder")
        guard let first = decoders.first else { return [] }
        let w = first.weights
        guard decoders.count > 1, canBatch(w), decoders.allSatisfy({ $0.weights === w }) else {
            return zip(decoders, tokens).map { $0.step($1) }
        }
        for (d, t) in zip(decoders, tokens) {
            precondition(d.length < d.capacity, "decoder: the context of \(d.capacity) tokens is full")
            precondition(t >= 0 && Int(t) < d.config.vocabSize, "decoder: token \(t) outside the vocabulary")
        }
        BatchStep(decoders, tokens).run()
        for d in decoders {
            d.length += 1
            d.readInBatches = false
        }
        return decoders.map { UnsafeBufferPointer(start: $0.logits.pointer, count: $0.config.vocabSize) }
    }

    /// Every decoder the registry's architectures make steps batched (kept as the one place
    /// to say otherwise for a future kind of block).
    static func canBatch(_ w: DecodingWeights) -> Bool { true }
}

/// One batched step's activations, [streams, features] row-major, and the work on them.
private struct BatchStep {
    let decoders: [IncrementalDecoder]
    let tokens: [Int32]
    let w: DecodingWeights
    let n, d, qkvWidth: Int
    let x, h, qkv, attended, hidden, up, stats, stats2, logits: AlignedBuffer<Float>
    /// A mixture of experts: the router's logits, and one expert's rows gathered.
    let routerLogits, gathered, expertOut: AlignedBuffer<Float>

    init(_ decoders: [IncrementalDecoder], _ tokens: [Int32]) {
        self.decoders = decoders
        self.tokens = tokens
        w = decoders[0].weights
        n = decoders.count
        d = w.config.width
        let c = w.config
        qkvWidth = d + 2 * c.kvHeads * c.headSize
        (x, h, attended) = (AlignedBuffer(count: n * d), AlignedBuffer(count: n * d), AlignedBuffer(count: n * d))
        qkv = AlignedBuffer(count: n * qkvWidth)
        (hidden, up) = (AlignedBuffer(count: n * c.ffnWidth), AlignedBuffer(count: n * c.ffnWidth))
        (stats, stats2) = (AlignedBuffer(count: n), AlignedBuffer(count: n))
        logits = AlignedBuffer(count: n * c.vocabSize, zeroed: false)
        routerLogits = AlignedBuffer(count: n * (c.experts ?? 0))
        (gathered, expertOut) = (AlignedBuffer(count: c.experts == nil ? 0 : n * d), AlignedBuffer(count: c.experts == nil ? 0 : n * d))
    }

    /// out[rows, m.rows] (+)= input[rows, inputs] · mᵀ (+ bias), for the first `rows` rows (all
    /// streams by default): a GEMM for fp32 weights, else the decode pool's batched GEMV,
    /// which reads each chunk of int8 or ternary rows once for every stream.
    func project(_ m: DecodeMatrix, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>, accumulate: Bool, rows: Int? = nil) {
        let rows = rows ?? n, inputs = Int(m.descriptor.inputs)
        guard let dense = m.denseWeights else {
            withUnsafePointer(to: m.descriptor) {
                slm_decode_gemm(decoders[0].threads, $0, Int64(rows), input.pointer, Int64(inputs), out.pointer, Int64(m.rows), accumulate ? 1 : 0)
            }
            return
        }
        Gemm.sgemm(transA: false, transB: true, m: rows, n: m.rows, k: inputs, a: input.pointer, lda: inputs, b: dense,
                   ldb: inputs, beta: accumulate ? 1 : 0, c: out.pointer, ldc: m.rows)
        if let bias = m.biasValues { slm_add_rowvec(Int64(rows), Int64(m.rows), out.pointer, bias, out.pointer) }
    }

    /// out = down(silu(gate · input) ⊙ (up · input)) for the first `rows` rows.
    func swiGLU(_ m: DecodingWeights.SwiGLU, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>, accumulate: Bool, rows: Int? = nil) {
        let rows = rows ?? n, f = w.config.ffnWidth
        project(m.gate, input, hidden, accumulate: false, rows: rows)
        project(m.up, input, up, accumulate: false, rows: rows)
        slm_swiglu_fwd(Int64(rows * f), hidden.pointer, up.pointer, hidden.pointer)
        if let norm = m.subNorm {  // BitNet's SubLN
            slm_rmsnorm_fwd(Int64(rows), Int64(f), hidden.pointer, norm.pointer, Float(w.config.normEps), up.pointer, stats.pointer)
            project(m.down, up, out, accumulate: accumulate, rows: rows)
            return
        }
        project(m.down, hidden, out, accumulate: accumulate, rows: rows)
    }

    /// Each stream's top experts by router logit (ties to the lower index), weighted by the
    /// softmax of the kept logits, as the decoder and the training layer route; each expert
    /// runs once on the rows of the streams routed to it.
    func mixtureOfExperts(_ e: DecodingWeights.Experts) {
        let count = e.experts.count
        project(e.router, h, routerLogits, accumulate: false)
        var routed = [[(stream: Int, weight: Float)]](repeating: [], count: count)
        for i in 0..<n {
            let logits = routerLogits.pointer + i * count
            var chosen: [Int] = []
            for _ in 0..<e.active {
                var best = -1
                for k in 0..<count where !chosen.contains(k) && (best < 0 || logits[k] > logits[best]) { best = k }
                chosen.append(best)
            }
            let top = logits[chosen[0]]
            let total = chosen.reduce(Float(0)) { $0 + exp(logits[$1] - top) }
            for k in chosen { routed[k].append((i, exp(logits[k] - top) / total)) }
        }
        for (k, streams) in routed.enumerated() where !streams.isEmpty {
            for (row, s) in streams.enumerated() { (gathered.pointer + row * d).update(from: h.pointer + s.stream * d, count: d) }
            swiGLU(e.experts[k], gathered, expertOut, accumulate: false, rows: streams.count)
            for (row, s) in streams.enumerated() { slm_axpy(Int64(d), s.weight, expertOut.pointer + row * d, x.pointer + s.stream * d) }
        }
    }

    /// LayerNorm (GPT-2) or RMSNorm (LLaMA) of every row.
    func norm(_ weight: AlignedBuffer<Float>, _ bias: AlignedBuffer<Float>?, _ input: AlignedBuffer<Float>, _ out: AlignedBuffer<Float>) {
        let eps = Float(w.config.normEps)
        if w.block == .gpt2 {
            slm_layernorm_fwd(Int64(n), Int64(d), input.pointer, weight.pointer, bias?.pointer, eps, out.pointer, stats.pointer, stats2.pointer)
        } else {
            slm_rmsnorm_fwd(Int64(n), Int64(d), input.pointer, weight.pointer, eps, out.pointer, stats.pointer)
        }
    }

    func run() {
        let c = w.config, vocab = c.vocabSize
        for (i, (dec, t)) in zip(decoders, tokens).enumerated() {
            let row = x.pointer + i * d
            row.update(from: w.tokenEmbedding.pointer + Int(t) * d, count: d)
            if let positions = w.positionEmbedding { slm_add(Int64(d), row, positions.pointer + dec.length * d, row) }
        }
        for (layer, l) in w.layers.enumerated() {
            if let mixer = l.mixer {
                // Monarch/Symbio: each stream's normed input goes into its mixer state, and the
                // mixer steps there (O(√T·d) per Monarch layer), as the decoder does alone.
                for (i, dec) in decoders.enumerated() {
                    let state = dec.mixerState!, memory = state.memory(layer: layer), pos = dec.length
                    slm_rmsnorm_fwd(1, Int64(d), x.pointer + i * d, l.norm1.pointer, Float(c.normEps), memory.input(pos), stats.pointer)
                    memory.commit(pos..<(pos + 1))
                    mixer.step(memory, position: pos, into: attended.pointer + i * d)
                }
                slm_add(Int64(n * d), x.pointer, attended.pointer, x.pointer)
                norm(l.norm2, nil, x, h)
                swiGLU(l.swiGLU!, h, x, accumulate: true)
                continue
            }
            norm(l.norm1, l.norm1Bias, x, h)
            project(l.qkv!, h, qkv, accumulate: false)
            // Each stream's query on its own cache and position; all of them in one region.
            var queries: [slm_attention_decode_args] = []
            queries.reserveCapacity(n)
            for (i, dec) in decoders.enumerated() {
                let q = qkv.pointer + i * qkvWidth
                if let cosTable = w.ropeCos?.pointer, let sinTable = w.ropeSin?.pointer {
                    let k = q + d, pos = Int64(dec.length)
                    slm_rope(1, 1, Int64(c.heads), Int64(c.headSize), pos, cosTable, sinTable, q, q, 0)
                    slm_rope(1, 1, Int64(c.kvHeads), Int64(c.headSize), pos, cosTable, sinTable, k, k, 0)
                }
                queries.append(dec.attention(layer: layer, position: dec.length, qkv: q, out: attended.pointer + i * d))
            }
            queries.withUnsafeBufferPointer { slm_decode_attention(decoders[0].threads, $0.baseAddress, Int64(n)) }
            if let subNorm = l.attentionSubNorm {  // BitNet's SubLN
                slm_rmsnorm_fwd(Int64(n), Int64(d), attended.pointer, subNorm.pointer, Float(c.normEps), h.pointer, stats.pointer)
                project(l.o!, h, x, accumulate: true)
            } else {
                project(l.o!, attended, x, accumulate: true)
            }
            norm(l.norm2, l.norm2Bias, x, h)
            if let m = l.swiGLU {
                swiGLU(m, h, x, accumulate: true)
            } else if let e = l.experts {
                mixtureOfExperts(e)
            } else {
                project(l.up!, h, hidden, accumulate: false)
                slm_gelu_fwd(Int64(n * c.ffnWidth), hidden.pointer, hidden.pointer)
                project(l.down!, hidden, x, accumulate: true)
            }
        }
        for dec in decoders { dec.mixerState?.advance(by: 1) }
        norm(w.finalNorm, w.finalNormBias, x, h)
        project(w.head, h, logits, accumulate: false)
        for (i, dec) in decoders.enumerated() { dec.logits.pointer.update(from: logits.pointer + i * vocab, count: vocab) }
    }
}
