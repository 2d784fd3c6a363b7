import CSLMKernels
import Foundation
import SLMTestSupport
import Synchronization
import Testing
@testable import SLMTensor

/// The batch-1 decode kernels (GEMV fp32 / int8, single-query attention) of every SIMD
/// table against the scalar reference, and the decode thread pool.
@Suite struct DecodeKernelTests {
    static let isas: [slm_isa] = [SLM_ISA_SCALAR, SLM_ISA_AVX2, SLM_ISA_AVX512].filter { $0.rawValue <= slm_isa_detected().rawValue }
    // (rows, cols): remainders of the 4-row block, of the two half-matrices that AVX2
    // reads side by side, and of one and two vector widths.
    static let shapes = [(1, 1), (3, 7), (4, 16), (5, 24), (6, 31), (9, 33), (37, 100), (64, 288), (130, 257)]

    static func int8Array(_ n: Int, seed: UInt64) -> [Int8] {
        var rng = RNG(seed: seed)
        return (0..<n).map { _ in Int8(Int(rng.next() % 255) - 127) }
    }

    @Test(arguments: isas)
    func gemv(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for (rows, cols) in Self.shapes {
            let w = randomArray(rows * cols, seed: 1), x = randomArray(cols, seed: 2), bias = randomArray(rows, seed: 3)
            let wq = Self.int8Array(rows * cols, seed: 4), scales = randomArray(rows, seed: 5, scale: 0.01).map(abs)
            let y0 = randomArray(rows, seed: 6)
            for accumulate: Int32 in [0, 1] {
                for b in [nil, bias] {
                    var y1 = y0, y2 = y0
                    k.gemv_f32(Int64(rows), Int64(cols), w, x, b, &y1, accumulate)
                    slm_gemv_f32_ref(Int64(rows), Int64(cols), w, x, b, &y2, accumulate)
                    expectClose(y1, y2, tolerance: 1e-4 * Float(cols).squareRoot())
                    y1 = y0
                    y2 = y0
                    k.gemv_i8(Int64(rows), Int64(cols), wq, scales, x, b, &y1, accumulate)
                    slm_gemv_i8_ref(Int64(rows), Int64(cols), wq, scales, x, b, &y2, accumulate)
                    expectClose(y1, y2, tolerance: 2e-4 * Float(cols).squareRoot())
                }
            }
        }
    }

    /// The batched fp32 GEMV (several streams' inputs at once) against the scalar reference:
    /// stream counts around the register tile's (4 with AVX-512, 2 with AVX2) and the L1
    /// block's, rows around the 4-row block, columns around the vector width, strided
    /// inputs and outputs, bias and accumulate.
    @Test(arguments: isas)
    func batchedGemv(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for n in [1, 2, 3, 4, 5, 7, 16, 33] {
            for (rows, cols) in Self.shapes + [(12, 640)] {
                let ldx = cols + 3, ldy = rows + 5
                let w = randomArray(rows * cols, seed: 1), x = randomArray(n * ldx, seed: 2), bias = randomArray(rows, seed: 3)
                let y0 = randomArray(n * ldy, seed: 6)
                for accumulate: Int32 in [0, 1] {
                    for b in [nil, bias] {
                        var y1 = y0, y2 = y0
                        k.batched_gemv_f32(Int64(n), Int64(rows), Int64(cols), w, x, Int64(ldx), b, &y1, Int64(ldy), accumulate)
                        slm_batched_gemv_f32_ref(Int64(n), Int64(rows), Int64(cols), w, x, Int64(ldx), b, &y2, Int64(ldy), accumulate)
                        expectClose(y1, y2, tolerance: 1e-4 * Float(cols).squareRoot())
                    }
                }
            }
        }
    }

    /// The int8 GEMV computes exactly the fp32 GEMV of the dequantised weights (up to
    /// summation order): the reference multiplies the same numbers.
    @Test func int8ReferenceIsTheDequantisedProduct() {
        let rows = 5, cols = 19
        let wq = Self.int8Array(rows * cols, seed: 7), scales: [Float] = [0.01, 0.02, 0.5, 0, 1]
        let x = randomArray(cols, seed: 8)
        let dense = (0..<(rows * cols)).map { Float(wq[$0]) * scales[$0 / cols] }
        var y1 = [Float](repeating: 0, count: rows), y2 = y1
        slm_gemv_i8_ref(Int64(rows), Int64(cols), wq, scales, x, nil, &y1, 0)
        slm_gemv_f32_ref(Int64(rows), Int64(cols), dense, x, nil, &y2, 0)
        expectClose(y1, y2, tolerance: 1e-5)
        #expect(y1[3] == 0)
    }

    /// Ternary codes packed in TQ2_0 order: t[r][k] for k < cols, zero weights after.
    static func packTernary(_ t: [Int], rows: Int, cols: Int) -> [UInt8] {
        var packed = [UInt8](repeating: 0, count: rows * cols / 4)
        for r in 0..<rows {
            for k in 0..<cols {
                let (g, i) = k.quotientAndRemainder(dividingBy: 128)
                packed[r * cols / 4 + g * 32 + i % 32] |= UInt8(t[r * cols + k] + 1) << (2 * (i / 32))
            }
        }
        return packed
    }

    /// The ternary GEMV: every SIMD table equals the reference (integer sums; the scaling
    /// may round differently by an ulp),
    /// and the reference equals the plain product of ternary weights and int8 inputs, by
    /// rows of one to five groups (AVX-512's odd last group included).
    @Test(arguments: isas)
    func ternaryGemv(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for (rows, cols) in [(1, 128), (3, 256), (5, 384), (9, 640)] {
            var rng = RNG(seed: UInt64(rows * cols))
            let t = (0..<(rows * cols)).map { _ in Int(rng.next() % 3) - 1 }
            // Extreme inputs too: all −128 would saturate int16 pair sums if the kernel mishandled them.
            let xq = (0..<cols).map { i in i % 7 == 0 ? Int8.min : Int8(truncatingIfNeeded: Int(rng.next() % 256) - 128) }
            let xsum = Int32(xq.reduce(0) { $0 + Int($1) })
            let packed = Self.packTernary(t, rows: rows, cols: cols)
            let scales = randomArray(rows, seed: 9, scale: 0.1).map(abs), bias = randomArray(rows, seed: 10)
            let y0 = randomArray(rows, seed: 11)
            for accumulate: Int32 in [0, 1] {
                for b in [nil, bias] {
                    var y1 = y0, y2 = y0
                    k.gemv_t2(Int64(rows), Int64(cols), packed, scales, xq, xsum, 0.5, b, &y1, accumulate)
                    slm_gemv_t2_ref(Int64(rows), Int64(cols), packed, scales, xq, xsum, 0.5, b, &y2, accumulate)
                    // Integer sums, so only the float epilogue (fused or not) may differ: by an ulp.
                    expectClose(y1, y2, tolerance: 1e-4)
                    var plain = [Float](repeating: 0, count: rows)
                    for r in 0..<rows {
                        var dot = 0
                        for c in 0..<cols { dot += t[r * cols + c] * Int(xq[c]) }
                        let base: Float = accumulate == 1 ? y0[r] : 0
                        plain[r] = base + Float(dot) * (scales[r] * 0.5) + (b?[r] ?? 0)
                    }
                    expectClose(y2, plain, tolerance: 1e-4)
                }
            }
        }
    }

    /// The activation quantiser rounds like the training one: x·127/max|x|, ties to even.
    @Test func activationQuantiser() {
        let x: [Float] = [0.5, -1.0, 0.25, 0.1, 0, 0.0]
        var q = [Int8](repeating: 99, count: 8), scale: Float = 0, sum: Int32 = 0
        slm_quantize_act_i8(6, 8, x, &q, &scale, &sum)
        #expect(q == [64, -127, 32, 13, 0, 0, 0, 0] && sum == -18)
        #expect(abs(scale - 1 / 127) < 1e-9)
    }

    @Test(arguments: isas)
    func attentionDecode(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for format in [SLM_KV_F32, SLM_KV_F16] {
            for (hq, hkv, d, n, capacity) in [(4, 2, 16, 9, 20), (3, 1, 64, 70, 70), (2, 2, 7, 1, 5), (6, 6, 48, 200, 256), (2, 1, 20, 131, 140), (2, 2, 128, 129, 130), (1, 1, 72, 64, 64)] {
                let ldk = (capacity + 63) / 64 * 64
                let q = randomArray(hq * d, seed: 9), kt = randomArray(hkv * d * ldk, seed: 10), v = randomArray(hkv * capacity * d, seed: 11)
                let kt16 = kt.map(slm_f16_from_f32), v16 = v.map(slm_f16_from_f32)
                var out1 = [Float](repeating: 0, count: hq * d), out2 = out1
                var s1 = [Float](repeating: 0, count: hq * ldk), s2 = s1
                func run(_ out: inout [Float], _ scores: inout [Float], _ f: (UnsafePointer<slm_attention_decode_args>) -> Void) {
                    func go(_ kp: UnsafeRawPointer, _ vp: UnsafeRawPointer) {
                        q.withUnsafeBufferPointer { qp in
                            out.withUnsafeMutableBufferPointer { op in scores.withUnsafeMutableBufferPointer { sp in
                                var a = slm_attention_decode_args(Hq: Int64(hq), Hkv: Int64(hkv), D: Int64(d), n: Int64(n), ldk: Int64(ldk),
                                                                  ldv: Int64(capacity), scale: 0.25, q: qp.baseAddress, kt: kp, v: vp,
                                                                  out: op.baseAddress, scores: sp.baseAddress, kv: format)
                                f(&a)
                            } }
                        }
                    }
                    if format == SLM_KV_F16 {
                        kt16.withUnsafeBytes { kp in v16.withUnsafeBytes { vp in go(kp.baseAddress!, vp.baseAddress!) } }
                    } else {
                        kt.withUnsafeBytes { kp in v.withUnsafeBytes { vp in go(kp.baseAddress!, vp.baseAddress!) } }
                    }
                }
                run(&out1, &s1) { k.attention_decode($0, 0, Int64(hq)) }
                run(&out2, &s2) { slm_attention_decode_ref($0, 0, Int64(hq)) }
                expectClose(out1, out2, tolerance: 1e-5)
                // Heads split across tasks give the same result as all at once.
                var out3 = [Float](repeating: 0, count: hq * d), s3 = s1
                run(&out3, &s3) { slm_decode_attention(3, $0, 1) }
                expectClose(out3, out2, tolerance: 1e-5)
            }
        }
    }

    /// The half-float conversions against Swift's own Float16: every one of the 65,536
    /// halves back to float, and floats around every rounding boundary (ties, subnormals,
    /// the top of the range) to half; beyond ±65504 ours clamps where Float16 overflows.
    @Test func halfFloatConversions() {
        for bits in 0...UInt16.max {
            let mine = slm_f32_from_f16(bits), theirs = Float(Float16(bitPattern: bits))
            #expect(mine.bitPattern == theirs.bitPattern || (mine.isNaN && theirs.isNaN), "half \(bits)")
        }
        var rng = RNG(seed: 7)
        var floats: [Float] = [0, -0, 1, -1, 0.1, 65504, -65504, 65519.99, 1e-8, 2.98e-8, 5.96e-8, 6.1e-5, 6.0e-5, .leastNormalMagnitude]
        for bits in stride(from: UInt32(0x3300_0000), to: 0x4780_0000, by: 0x1000) {  // halves' ties and their neighbours
            for delta: Int32 in [-1, 0, 1] { floats.append(Float(bitPattern: UInt32(Int32(bitPattern: bits) + delta))) }
        }
        for _ in 0..<10_000 { floats.append(Float(bitPattern: UInt32(truncatingIfNeeded: rng.next())) ) }
        for f in floats where f.isFinite && abs(f) <= 65504 {
            #expect(slm_f16_from_f32(f) == Float16(f).bitPattern, "float \(f)")
        }
        #expect(slm_f16_from_f32(1e6) == Float16(65504).bitPattern && slm_f16_from_f32(-.infinity) == Float16(-65504).bitPattern)
        #expect(Float16(bitPattern: slm_f16_from_f32(.nan)).isNaN)
    }

    /// A position's keys go to a column of the transposed keys, its values to a row; the
    /// SIMD stores write the same bits as the reference (clamping and NaN included), for
    /// every head size's tail.
    @Test(arguments: isas)
    func kvStore(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for (hkv, d, capacity, pos) in [(2, 16, 20, 7), (1, 7, 5, 4), (3, 20, 64, 0), (2, 64, 130, 129)] {
            let ldk = (capacity + 63) / 64 * 64
            var keys = randomArray(hkv * d, seed: 12, scale: 3), values = randomArray(hkv * d, seed: 13, scale: 3)
            // Beyond the half range (clamped to ±65504) and NaN (kept), in the vector part when d allows.
            keys[0] = 1e6
            values[hkv * d - 2] = -7e5
            values[0] = .nan
            for format in [SLM_KV_F32, SLM_KV_F16] {
                let bytes = format == SLM_KV_F16 ? 2 : 4
                var kt1 = [UInt8](repeating: 0, count: hkv * d * ldk * bytes), v1 = [UInt8](repeating: 0, count: hkv * capacity * d * bytes)
                var kt2 = kt1, v2 = v1
                k.kv_store(format, Int64(hkv), Int64(d), Int64(ldk), Int64(capacity), Int64(pos), keys, values, &kt1, &v1)
                slm_kv_store_ref(format, Int64(hkv), Int64(d), Int64(ldk), Int64(capacity), Int64(pos), keys, values, &kt2, &v2)
                #expect(kt1 == kt2 && v1 == v2)
                // Independently: key (h, c) at column pos of row h·d + c, value at row (h, pos).
                let h = hkv - 1, c = d - 1
                let key = (h * d + c) * ldk + pos, value = (h * capacity + pos) * d + c
                if format == SLM_KV_F16 {
                    kt1.withUnsafeBytes { #expect($0.load(fromByteOffset: key * 2, as: UInt16.self) == Float16(keys[h * d + c]).bitPattern) }
                    v1.withUnsafeBytes { #expect($0.load(fromByteOffset: value * 2, as: UInt16.self) == Float16(values[h * d + c]).bitPattern) }
                } else {
                    kt1.withUnsafeBytes { #expect($0.load(fromByteOffset: key * 4, as: Float.self) == keys[h * d + c]) }
                    v1.withUnsafeBytes { #expect($0.load(fromByteOffset: value * 4, as: Float.self) == values[h * d + c]) }
                }
            }
        }
    }

    /// Several streams' queries in one region (a batched step): each equals its own
    /// reference, for caches of different lengths and 1 to 3 threads.
    @Test func attentionDecodeOfSeveralQueries() {
        let (hq, hkv, d, capacity) = (4, 2, 16, 100), ldk = 128
        let lengths = [1, 37, 100, 64, 9]
        func buffer(_ values: [Float]) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: values.count)
            p.initialize(from: values, count: values.count)
            return p
        }
        var owned: [UnsafeMutablePointer<Float>] = []
        defer { owned.forEach { $0.deallocate() } }
        func args(_ s: Int) -> slm_attention_decode_args {
            let q = buffer(randomArray(hq * d, seed: UInt64(20 + s))), kt = buffer(randomArray(hkv * d * ldk, seed: UInt64(40 + s)))
            let v = buffer(randomArray(hkv * capacity * d, seed: UInt64(60 + s)))
            let out = buffer([Float](repeating: .nan, count: hq * d)), scores = buffer([Float](repeating: 0, count: hq * ldk))
            owned += [q, kt, v, out, scores]
            return slm_attention_decode_args(Hq: Int64(hq), Hkv: Int64(hkv), D: Int64(d), n: Int64(lengths[s]), ldk: Int64(ldk),
                                             ldv: Int64(capacity), scale: 0.25, q: q, kt: kt, v: v, out: out, scores: scores, kv: SLM_KV_F32)
        }
        let batch = lengths.indices.map(args)
        for threads in 1...3 {
            slm_decode_attention(Int64(threads), batch, Int64(batch.count))
            for var a in batch {
                let got = Array(UnsafeBufferPointer(start: a.out, count: hq * d))
                let expected = UnsafeMutablePointer<Float>.allocate(capacity: hq * d)
                defer { expected.deallocate() }
                a.out = expected
                slm_attention_decode_ref(&a, 0, Int64(hq))
                expectClose(got, Array(UnsafeBufferPointer(start: expected, count: hq * d)), tolerance: 1e-5)
            }
        }
    }

    /// Every task of every region runs exactly once, for 1 to 3 threads and more tasks
    /// than threads, including after the workers have gone to sleep.
    @Test func poolRunsEachTaskOnce() {
        final class Counts: @unchecked Sendable {
            let slots = UnsafeMutablePointer<Int>.allocate(capacity: 9)
            init() { slots.initialize(repeating: 0, count: 9) }
            deinit { slots.deallocate() }
        }
        let counts = Counts()
        let fn: slm_pool_fn = { ctx, task, tasks in
            let slots = ctx!.assumingMemoryBound(to: Int.self)
            slots[Int(task)] += 1  // each task owns its slot: no race
        }
        for (threads, tasks) in [(1, 1), (1, 3), (2, 2), (2, 8), (3, 3), (3, 7)] {
            counts.slots.update(repeating: 0, count: 9)
            for round in 0..<2000 {
                if round % 500 == 499 { usleep(2000) }  // let the workers fall asleep, then wake them
                slm_pool_run(Int64(threads), Int64(tasks), fn, counts.slots)
            }
            for t in 0..<tasks { #expect(counts.slots[t] == 2000, "task \(t) of \(tasks) on \(threads) threads") }
            for t in tasks..<9 { #expect(counts.slots[t] == 0) }
        }
        #expect(slm_pool_workers() >= 2)
    }

    /// Consecutive jobs with different task counts (a token's GEMVs and attention
    /// alternate 8, 12, 6, … tasks). A worker that read one job's claim and the next job's
    /// description used to run a task twice and leave the caller waiting forever.
    @Test func poolJobsOfChangingSizesRunEachTaskOnce() {
        final class Counts: @unchecked Sendable { let slots = UnsafeMutablePointer<Int>.allocate(capacity: 64) }
        let counts = Counts()
        defer { counts.slots.deallocate() }
        let fn: slm_pool_fn = { ctx, task, _ in
            ctx!.assumingMemoryBound(to: Int.self)[Int(task)] += 1
        }
        // Small jobs the caller often finishes alone, then larger ones; three threads on a
        // two-core machine get workers preempted at every point of the loop.
        let sizes = [2, 9, 3, 64, 2, 7, 31, 5]
        for threads in [2, 3] {
            counts.slots.update(repeating: 0, count: 64)
            var expected = [Int](repeating: 0, count: 64)
            for round in 0..<200_000 {
                let tasks = sizes[round % sizes.count]
                slm_pool_run(Int64(threads), Int64(tasks), fn, counts.slots)
                for t in 0..<tasks { expected[t] += 1 }
            }
            #expect(Array(UnsafeBufferPointer(start: counts.slots, count: 64)) == expected, "\(threads) threads")
        }
    }

    /// Splitting a GEMV's rows across threads does not change a single bit of it.
    @Test func parallelGEMVMatchesOneThread() {
        let rows = 1000, cols = 288
        let w = randomArray(rows * cols, seed: 12), x = randomArray(cols, seed: 13), bias = randomArray(rows, seed: 14)
        let wq = Self.int8Array(rows * cols, seed: 15), scales = randomArray(rows, seed: 16, scale: 0.01)
        let up = randomArray(rows * cols, seed: 17)
        func run(_ threads: Int64) -> [[Float]] {
            var outs: [[Float]] = []
            w.withUnsafeBufferPointer { wp in wq.withUnsafeBufferPointer { qp in up.withUnsafeBufferPointer { upp in
                scales.withUnsafeBufferPointer { sp in bias.withUnsafeBufferPointer { bp in
                    var f = slm_matrix(rows: Int64(rows), cols: Int64(cols), inputs: Int64(cols), format: SLM_WEIGHTS_F32, w: wp.baseAddress, scales: nil, bias: bp.baseAddress)
                    var q = slm_matrix(rows: Int64(rows), cols: Int64(cols), inputs: Int64(cols), format: SLM_WEIGHTS_I8, w: qp.baseAddress, scales: sp.baseAddress, bias: nil)
                    var u = slm_matrix(rows: Int64(rows), cols: Int64(cols), inputs: Int64(cols), format: SLM_WEIGHTS_F32, w: upp.baseAddress, scales: nil, bias: nil)
                    var y = [Float](repeating: 1, count: rows), scratch = y
                    slm_decode_gemv(threads, &f, x, &y, 1, SLM_ACT_GELU)
                    outs.append(y)
                    slm_decode_gemv(threads, &q, x, &y, 0, SLM_ACT_NONE)
                    outs.append(y)
                    slm_decode_gemv_swiglu(threads, &f, &u, x, &y, &scratch)
                    outs.append(y)
                } }
            } } }
            return outs
        }
        let one = run(1)
        #expect(run(2) == one)
        #expect(run(3) == one)
        // And the fused activations are the plain kernels applied afterwards.
        var expected = [Float](repeating: 0, count: rows)
        slm_gemv_f32(Int64(rows), Int64(cols), w, x, bias, &expected, 0)
        expected = expected.map { $0 + 1 }
        slm_gelu_fwd(Int64(rows), expected, &expected)
        #expect(one[0] == expected)
    }
}
