import CSLMKernels
import SLMTensor

/// How a decoder stores its weight matrices.
public enum WeightPrecision: String, Sendable, CaseIterable, Codable {
    /// The trained fp32 weights, as they are.
    case fp32
    /// Weight-only int8: one fp32 scale per output row (max |w| / 127), activations fp32.
    /// A quarter of the memory traffic per token; logits move by a fraction of a percent.
    case int8
    /// BitNet b1.58 models only: the blocks' weights as they trained, ternary, packed 2
    /// bits each, with int8 activations; the output head in int8. (A ternary model's
    /// blocks decode ternary at every precision; this one also makes its head int8.)
    case ternary

    /// Refuses ternary decoding of a model that did not train ternary.
    public func check(for config: ModelConfig) throws(ConfigError) {
        if self == .ternary && config.quantization != .ternary {
            throw ConfigError("--weights ternary needs a model trained ternary (training.quantization = \"ternary\"); "
                + "this one has full-precision weights: use fp32 or int8")
        }
    }
}

/// A weight matrix in decode layout: row-major [rows (outputs), cols (inputs)], so one
/// output is one contiguous dot product and threads split the rows. fp32, int8 with a
/// scale per row, or packed ternary with a scale per row (BitNet models). Built once from a model's tensors (a copy: later changes to the
/// model do not reach it).
final class DecodeMatrix {
    let rows: Int
    let cols: Int
    let precision: WeightPrecision
    private let f32: AlignedBuffer<Float>?
    private let i8: AlignedBuffer<Int8>?
    private let t2: AlignedBuffer<UInt8>?
    private let scales: AlignedBuffer<Float>?
    private let bias: AlignedBuffer<Float>?

    /// What the C kernels read; points into the buffers above.
    private(set) var descriptor: slm_matrix

    /// Stacks row blocks (each [rows_i, cols], row-major) into one matrix, with their
    /// biases (all or none). `inputMajor` blocks are stored [cols, rows_i] (GPT-2's
    /// Conv1D layout) and are transposed here. What the kernels read comes from `arena`.
    init(blocks: [(weight: Tensor, bias: Tensor?)], inputMajor: Bool, precision: WeightPrecision, arena: WeightArena) {
        precondition(!blocks.isEmpty)
        let cols = inputMajor ? blocks[0].weight.shape[0] : blocks[0].weight.shape[1]
        let rowCounts = blocks.map { inputMajor ? $0.weight.shape[1] : $0.weight.shape[0] }
        let rows = rowCounts.reduce(0, +)
        self.rows = rows
        self.cols = cols
        self.precision = precision
        for b in blocks {
            precondition(b.weight.dtype == .float32 && b.weight.rank == 2, "decode: weights must be fp32 matrices")
            precondition((inputMajor ? b.weight.shape[0] : b.weight.shape[1]) == cols, "decode: stacked blocks differ in width")
        }
        // fp32 row-major copy first (transposed if needed), then quantised if asked.
        let dense = precision == .fp32 ? AlignedBuffer<Float>(count: rows * cols, arena: arena)
            : AlignedBuffer<Float>(count: rows * cols, zeroed: false)
        var row0 = 0
        for (b, n) in zip(blocks, rowCounts) {
            let src = b.weight.data, dst = dense.pointer + row0 * cols
            if inputMajor {
                for i in 0..<cols { for o in 0..<n { dst[o * cols + i] = src[i * n + o] } }
            } else {
                dst.update(from: src, count: n * cols)
            }
            row0 += n
        }
        if blocks.contains(where: { $0.bias != nil }) {
            let b = AlignedBuffer<Float>(count: rows, arena: arena)
            row0 = 0
            for (block, n) in zip(blocks, rowCounts) {
                if let t = block.bias { (b.pointer + row0).update(from: t.data, count: n) }
                row0 += n
            }
            bias = b
        } else {
            bias = nil
        }
        var format = SLM_WEIGHTS_F32, storedColumns = cols
        var f32: AlignedBuffer<Float>? = nil, i8: AlignedBuffer<Int8>? = nil, t2: AlignedBuffer<UInt8>? = nil
        var scales: AlignedBuffer<Float>? = nil
        switch precision {
        case .fp32:
            f32 = dense
        case .int8:
            (i8, scales) = DecodeMatrix.quantize(dense.pointer, rows: rows, cols: cols, arena: arena)
            format = SLM_WEIGHTS_I8
        case .ternary:
            // Each block keeps the absmean scale of its own tensor, as its BitLinear trained.
            let blockScales = blocks.map { ternaryScale($0.weight.data, count: $0.weight.count) }
            let rowScales = zip(blockScales, rowCounts).flatMap { [Float](repeating: $0, count: $1) }
            (t2, scales, storedColumns) = DecodeMatrix.packTernary(dense.pointer, rows: rows, cols: cols, rowScales: rowScales, arena: arena)
            format = SLM_WEIGHTS_T2
        }
        (self.f32, self.i8, self.t2, self.scales) = (f32, i8, t2, scales)
        let w: UnsafeRawPointer = f32.map { UnsafeRawPointer($0.pointer) } ?? i8.map { UnsafeRawPointer($0.pointer) }
            ?? UnsafeRawPointer(t2!.pointer)
        descriptor = slm_matrix(rows: Int64(rows), cols: Int64(storedColumns), inputs: Int64(cols), format: format, w: w,
                                scales: scales.map { UnsafePointer($0.pointer) }, bias: bias.map { UnsafePointer($0.pointer) })
    }

    /// Ternary codes (t + 1, 2 bits) of round(w / scale) clamped to [−1, 1], in the kernel's
    /// TQ2_0 order; columns padded with zero weights to a multiple of `SLM_T2_GROUP`.
    static func packTernary(_ w: UnsafePointer<Float>, rows: Int, cols: Int,
                            rowScales: [Float], arena: WeightArena) -> (AlignedBuffer<UInt8>, AlignedBuffer<Float>, Int) {
        let group = Int(SLM_T2_GROUP), padded = (cols + group - 1) / group * group, rowBytes = padded / 4
        let packed = AlignedBuffer<UInt8>(count: rows * rowBytes, arena: arena), s = AlignedBuffer<Float>(count: rows, arena: arena)
        for r in 0..<rows {
            let row = w + r * cols, out = packed.pointer + r * rowBytes, scale = rowScales[r]
            s.pointer[r] = scale
            for k in 0..<padded {
                let t = k < cols ? Int(min(max((row[k] / scale).rounded(.toNearestOrEven), -1), 1)) : 0
                let (g, i) = k.quotientAndRemainder(dividingBy: group)
                out[g * 32 + i % 32] |= UInt8(t + 1) << (2 * (i / 32))
            }
        }
        return (packed, s, padded)
    }

    /// Symmetric per-row quantisation: scale = max |w| / 127, q = round(w / scale).
    /// A row of zeros gets scale 0 (and q = 0), so it stays exactly zero.
    static func quantize(_ w: UnsafePointer<Float>, rows: Int, cols: Int,
                         arena: WeightArena) -> (AlignedBuffer<Int8>, AlignedBuffer<Float>) {
        let q = AlignedBuffer<Int8>(count: rows * cols, arena: arena), s = AlignedBuffer<Float>(count: rows, arena: arena)
        for r in 0..<rows {
            let row = w + r * cols, out = q.pointer + r * cols
            var m: Float = 0
            for k in 0..<cols { m = max(m, abs(row[k])) }
            let scale = m / 127, inverse = m > 0 ? 127 / m : 0
            for k in 0..<cols { out[k] = Int8(max(-127, min(127, (row[k] * inverse).rounded()))) }
            s.pointer[r] = scale
        }
        return (q, s)
    }

    /// Bytes of weights (and scales) a GEMV with this matrix reads.
    var weightBytes: Int {
        switch precision {
        case .fp32: rows * cols * 4
        case .int8: rows * cols + rows * 4
        case .ternary: rows * Int(descriptor.cols) / 4 + rows * 4
        }
    }
}
