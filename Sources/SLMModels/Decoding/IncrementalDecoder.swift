import CSLMKernels
import Foundation
import SLMTensor

/// Batch-1 inference without autograd: one token in, the next token's logits out.
///
/// Everything a token needs is allocated once, here: the KV cache (fp32 or f16; keys
/// stored transposed per head, [kvHeads][headSize][capacity], so a query's scores vectorise
/// across keys; values [kvHeads][capacity][headSize]) and the activations of one
/// position. A token is then ~5 parallel regions per layer on the decode thread pool
/// (GEMVs split by rows, attention split by heads) and a few single-row kernels
/// between them, with no tensor, graph node or allocation.
///
/// Not thread-safe: one decoder per generation. Many decoders share one `DecodingWeights`.
public final class IncrementalDecoder {
    public let weights: DecodingWeights
    public let config: ModelConfig
    /// Tokens in the cache.
    public internal(set) var length = 0
    public var capacity: Int { config.context }
    public var remaining: Int { capacity - length }

    private let width, heads, kvHeads, headSize, kvWidth, ffn: Int
    private let ldk: Int                   // keys' padded capacity (a multiple of 64)
    /// How the cache stores keys and values.
    public let kvCache: KVCacheFormat
    /// Keys, then values, in one buffer (as `kvCache` says): at the sizes of small models
    /// each alone would stay under the 2 MiB from which buffers get huge pages, and
    /// attention streams them.
    private let cache: AlignedBuffer<UInt8>
    private let keyCount: Int
    let x, h, qkv, attended, hidden, up, scores, logits, stats, routerLogits: AlignedBuffer<Float>
    /// A mixture's experts for the current token.
    private var chosen: [Int] = []
    /// The model's own cache behind batched reads; it holds this decoder's tokens as long
    /// as every token so far came through a batched read (`readInBatches`).
    private var prefillCache: KVCache?
    var readInBatches = false
    /// Attention-free models: the mixers' inputs and block products instead of a KV cache.
    let mixerState: MixerState?

    public init(_ weights: DecodingWeights, kvCache: KVCacheFormat = .fp32) {
        self.weights = weights
        self.kvCache = kvCache
        config = weights.config
        width = config.width
        heads = config.heads
        kvHeads = config.kvHeads
        headSize = config.headSize
        kvWidth = kvHeads * headSize
        ffn = config.ffnWidth
        ldk = (config.context + 63) / 64 * 64
        let attends = weights.block != .mixer
        keyCount = attends ? config.layers * kvHeads * headSize * ldk : 0
        cache = AlignedBuffer(count: (keyCount + (attends ? config.layers * kvHeads * config.context * headSize : 0)) * kvCache.bytesPerValue)
        mixerState = attends ? nil : MixerState(config)
        x = AlignedBuffer(count: width)
        h = AlignedBuffer(count: width)
        qkv = AlignedBuffer(count: width + 2 * kvWidth)
        attended = AlignedBuffer(count: width)
        hidden = AlignedBuffer(count: ffn)
        up = AlignedBuffer(count: ffn)
        scores = AlignedBuffer(count: heads * ldk)
        logits = AlignedBuffer(count: config.vocabSize)
        stats = AlignedBuffer(count: 2)
        routerLogits = AlignedBuffer(count: config.experts ?? 0)
        chosen.reserveCapacity(config.expertsActive ?? 0)
    }

    /// Forgets every cached token.
    public func reset() {
        length = 0
        mixerState?.reset()
    }

    /// Reads `ids` after the cached tokens and returns the logits after the last one.
    /// Short reads go through the batched decode step, every token a row (`stepRows`).
    /// With fp32 weights, a longer read into an empty cache, or one that continues such
    /// reads (a long prompt read in chunks) of an attention model, takes the model's
    /// general forward pass (GEMMs), faster for long prompts; its keys and values are then
    /// copied into this cache. Other long reads take batched steps of `stepRows` rows (so
    /// int8 and ternary decoders see their own keys and values).
    @discardableResult
    public func prefill(_ ids: [Int32]) -> UnsafeBufferPointer<Float> {
        precondition(!ids.isEmpty && length + ids.count <= capacity,
                     "decoder: \(length) cached + \(ids.count) new tokens exceed the context of \(capacity)")
        if ids.count == 1 { return step(ids[0]) }
        let continues = length > 0 && readInBatches && mixerState == nil && ids.count >= 8
        if weights.precision == .fp32 && ids.count > Self.stepRows && (length == 0 || continues) {
            return prefillBatched(ids)
        }
        var out: UnsafeBufferPointer<Float>!
        for start in stride(from: 0, to: ids.count, by: Self.stepRows) {
            out = Self.read([self], chunks: [Array(ids[start..<min(ids.count, start + Self.stepRows)])])[0]
        }
        return out
    }

    /// Reads of up to this many tokens go through the batched decode step (a row per token,
    /// the head for the last one only), longer ones too unless fp32 weights can take the
    /// model's general forward pass (GEMMs; see `prefill`). First token after a prompt of
    /// 39 / 128 / 240 tokens, batched step against general forward pass (llama-5m, 2
    /// threads, AVX-512): 5.4 / 15.2 / 29.0 ms against 9.3 / 18.3 / 29.7; char-10m at 240:
    /// 50.0 against 43.9; the stories15M shape (32,000 logits per token) at 240: 39.6
    /// against 60.4. Stepping token by token took 0.5 ms per llama-5m token.
    static let stepRows = 128

    /// Reads one token and returns the logits for the next (valid until the next call).
    public func step(_ token: Int32) -> UnsafeBufferPointer<Float> {
        precondition(length < capacity, "decoder: the context of \(capacity) tokens is full")
        precondition(token >= 0 && Int(token) < config.vocabSize, "decoder: token \(token) outside the vocabulary")
        readInBatches = false
        switch weights.block {
        case .gpt2: stepGPT2(Int(token))
        case .llama: stepLlama(Int(token))
        case .mixer: stepMixer(Int(token))
        }
        length += 1
        return UnsafeBufferPointer(start: logits.pointer, count: config.vocabSize)
    }

    // MARK: - One token

    /// Threads per parallel region; nil follows `Parallel.threadCount` (--threads,
    /// SLM_NUM_THREADS). Tests set it to compare thread counts.
    public var threadCount: Int?
    var threads: Int64 { Int64(threadCount ?? Parallel.threadCount) }

    private func stepGPT2(_ token: Int) {
        let w = weights, d = Int64(width), eps = Float(config.normEps), pos = length
        slm_add(d, w.tokenEmbedding.pointer + token * width, w.positionEmbedding!.pointer + pos * width, x.pointer)
        for (i, l) in w.layers.enumerated() {
            slm_layernorm_fwd(1, d, x.pointer, l.norm1.pointer, l.norm1Bias?.pointer, eps, h.pointer, stats.pointer, stats.pointer + 1)
            gemv(l.qkv!, h, qkv)
            attend(layer: i, position: pos)
            gemv(l.o!, attended, x, accumulate: true)
            slm_layernorm_fwd(1, d, x.pointer, l.norm2.pointer, l.norm2Bias?.pointer, eps, h.pointer, stats.pointer, stats.pointer + 1)
            gemv(l.up!, h, hidden, activation: SLM_ACT_GELU)
            gemv(l.down!, hidden, x, accumulate: true)
        }
        slm_layernorm_fwd(1, d, x.pointer, w.finalNorm.pointer, w.finalNormBias?.pointer, eps, h.pointer, stats.pointer, stats.pointer + 1)
        gemv(w.head, h, logits)
    }

    private func stepLlama(_ token: Int) {
        let w = weights, d = Int64(width), eps = Float(config.normEps), pos = length
        x.pointer.update(from: w.tokenEmbedding.pointer + token * width, count: width)
        let cosTable = w.ropeCos!.pointer, sinTable = w.ropeSin!.pointer
        for (i, l) in w.layers.enumerated() {
            slm_rmsnorm_fwd(1, d, x.pointer, l.norm1.pointer, eps, h.pointer, stats.pointer)
            gemv(l.qkv!, h, qkv)
            let q = qkv.pointer, k = qkv.pointer + width
            slm_rope(1, 1, Int64(heads), Int64(headSize), Int64(pos), cosTable, sinTable, q, q, 0)
            slm_rope(1, 1, Int64(kvHeads), Int64(headSize), Int64(pos), cosTable, sinTable, k, k, 0)
            attend(layer: i, position: pos)
            if let norm = l.attentionSubNorm {
                slm_rmsnorm_fwd(1, d, attended.pointer, norm.pointer, eps, h.pointer, stats.pointer)
                gemv(l.o!, h, x, accumulate: true)
            } else {
                gemv(l.o!, attended, x, accumulate: true)
            }
            swiGLU(l)
        }
        slm_rmsnorm_fwd(1, d, x.pointer, w.finalNorm.pointer, eps, h.pointer, stats.pointer)
        gemv(w.head, h, logits)
    }

    /// MonarchSLM, SymbioSLM: the normed input goes straight into the mixer state, the
    /// mixer steps on it (single-threaded: O(√T·d) per Monarch layer), then LLaMA's SwiGLU.
    private func stepMixer(_ token: Int) {
        let w = weights, d = Int64(width), eps = Float(config.normEps), pos = length, state = mixerState!
        x.pointer.update(from: w.tokenEmbedding.pointer + token * width, count: width)
        for (i, l) in w.layers.enumerated() {
            let memory = state.memory(layer: i)
            slm_rmsnorm_fwd(1, d, x.pointer, l.norm1.pointer, eps, memory.input(pos), stats.pointer)
            memory.commit(pos..<(pos + 1))
            l.mixer!.step(memory, position: pos, into: attended.pointer)
            slm_add(d, x.pointer, attended.pointer, x.pointer)
            swiGLU(l)
        }
        state.advance(by: 1)
        slm_rmsnorm_fwd(1, d, x.pointer, w.finalNorm.pointer, eps, h.pointer, stats.pointer)
        gemv(w.head, h, logits)
    }

    /// x += down(silu(gate(h)) · up(h)) with h = RMSNorm(x).
    /// The feed-forward half of a LLaMA-style block: SwiGLU, or a mixture of SwiGLU experts.
    private func swiGLU(_ l: DecodingWeights.Layer) {
        slm_rmsnorm_fwd(1, Int64(width), x.pointer, l.norm2.pointer, Float(config.normEps), h.pointer, stats.pointer)
        if let experts = l.experts {
            mixtureOfExperts(experts)
            return
        }
        swiGLU(l.swiGLU!, weight: 1)
    }

    /// x += weight · down(silu(gate·h) ⊙ up·h).
    private func swiGLU(_ m: DecodingWeights.SwiGLU, weight: Float) {
        withUnsafePointer(to: m.gate.descriptor) { g in
            withUnsafePointer(to: m.up.descriptor) { u in
                slm_decode_gemv_swiglu(threads, g, u, h.pointer, hidden.pointer, up.pointer)
            }
        }
        if let norm = m.subNorm {
            slm_rmsnorm_fwd(1, Int64(ffn), hidden.pointer, norm.pointer, Float(config.normEps), up.pointer, stats.pointer)
            gemv(m.down, up, x, accumulate: true)
            return
        }
        if weight != 1 { for i in 0..<ffn { hidden.pointer[i] *= weight } }  // (down is linear)
        gemv(m.down, hidden, x, accumulate: true)
    }

    /// Routing as the training layer routes: the `active` largest router logits (ties to
    /// the lower index), weighted by the softmax of those kept logits. No allocation:
    /// `chosen` keeps its capacity.
    private func mixtureOfExperts(_ e: DecodingWeights.Experts) {
        gemv(e.router, h, routerLogits)
        let logits = routerLogits.pointer
        chosen.removeAll(keepingCapacity: true)
        for _ in 0..<e.active {
            var best = -1
            for i in 0..<e.experts.count where !chosen.contains(i) && (best < 0 || logits[i] > logits[best]) { best = i }
            chosen.append(best)
        }
        let top = logits[chosen[0]]
        let total = chosen.reduce(Float(0)) { $0 + exp(logits[$1] - top) }
        for expert in chosen { swiGLU(e.experts[expert], weight: exp(logits[expert] - top) / total) }
    }

    private func gemv(_ m: DecodeMatrix, _ input: AlignedBuffer<Float>, _ output: AlignedBuffer<Float>,
                      accumulate: Bool = false, activation: slm_activation = SLM_ACT_NONE) {
        withUnsafePointer(to: m.descriptor) { slm_decode_gemv(threads, $0, input.pointer, output.pointer, accumulate ? 1 : 0, activation) }
    }

    /// Stores one position's keys and values ([kvHeads, headSize] each) in a layer's
    /// cache: keys as a column of the transposed layout, values as rows.
    private func store(layer: Int, position pos: Int, keys k: UnsafePointer<Float>, values vNew: UnsafePointer<Float>) {
        let (kt, v) = cachePointers(layer: layer)
        slm_kv_store(kvCache.kernelFormat, Int64(kvHeads), Int64(headSize), Int64(ldk), Int64(capacity), Int64(pos), k, vNew, kt, v)
    }

    /// Stores this position's key and value (from `qkv`) in the cache, then attends.
    func attend(layer: Int, position pos: Int) {
        var args = attention(layer: layer, position: pos, qkv: qkv.pointer, out: attended.pointer)
        slm_decode_attention(threads, &args, 1)
    }

    /// Stores the key and value of `qkv` ([q | k | v] of one position) in the cache and
    /// returns the attention of its query over the cache, into `out` (run by
    /// `slm_decode_attention`, alone or beside other decoders' queries).
    func attention(layer: Int, position pos: Int, qkv: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>) -> slm_attention_decode_args {
        store(layer: layer, position: pos, keys: qkv + width, values: qkv + width + kvWidth)
        let (kt, v) = cachePointers(layer: layer)
        return slm_attention_decode_args(
            Hq: Int64(heads), Hkv: Int64(kvHeads), D: Int64(headSize), n: Int64(pos + 1), ldk: Int64(ldk),
            ldv: Int64(capacity), scale: 1 / Float(headSize).squareRoot(), q: qkv, kt: kt, v: v,
            out: out, scores: scores.pointer, kv: kvCache.kernelFormat)
    }

    private func cachePointers(layer: Int) -> (keys: UnsafeMutableRawPointer, values: UnsafeMutableRawPointer) {
        let base = UnsafeMutableRawPointer(cache.pointer), bytes = kvCache.bytesPerValue
        return (base + layer * kvHeads * headSize * ldk * bytes, base + (keyCount + layer * kvHeads * capacity * headSize) * bytes)
    }

    // MARK: - Batched prefill

    private func prefillBatched(_ ids: [Int32]) -> UnsafeBufferPointer<Float> {
        if let mixerState {
            // The model's own first read fills this decoder's mixer state.
            mixerState.reset()
            let out = Autograd.noGrad { weights.model.logits(ids, state: mixerState) }
            withExtendedLifetime(out) {
                logits.pointer.update(from: out.data + (ids.count - 1) * config.vocabSize, count: config.vocabSize)
            }
            length = ids.count
            return UnsafeBufferPointer(start: logits.pointer, count: config.vocabSize)
        }
        let cache = prefillCache ?? KVCache(config)
        prefillCache = cache
        if length == 0 { cache.reset() }
        let start = length, n = ids.count
        let out = Autograd.noGrad { weights.model.logits(ids, state: cache) }
        withExtendedLifetime(out) { logits.pointer.update(from: out.data + (n - 1) * config.vocabSize, count: config.vocabSize) }
        // The model's cache is [position][kvHead][headSize] per layer; ours is transposed
        // for keys and head-major for values.
        for layer in 0..<config.layers {
            let (keys, values) = cache.storage(layer: layer)
            for p in start..<(start + n) {
                store(layer: layer, position: p, keys: keys + p * kvWidth, values: values + p * kvWidth)
            }
        }
        length = start + n
        readInBatches = true
        return UnsafeBufferPointer(start: logits.pointer, count: config.vocabSize)
    }
}
