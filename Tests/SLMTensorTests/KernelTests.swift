import CSLMKernels
import SLMTestSupport
import Testing
@testable import SLMTensor

/// Each SIMD kernel table this CPU can run, against the scalar reference kernels.
@Suite struct KernelTests {
    static let isas: [slm_isa] = [SLM_ISA_AVX2, SLM_ISA_AVX512].filter { $0.rawValue <= slm_isa_detected().rawValue }
    static let sizes = [1, 7, 16, 33, 100, 257]

    @Test(arguments: isas)
    func elementwise(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for n in Self.sizes {
            let a = randomArray(n, seed: 1, scale: 2), b = randomArray(n, seed: 2, scale: 2), dy = randomArray(n, seed: 3)
            func run(_ f: (UnsafeMutablePointer<Float>) -> Void) -> [Float] {
                var y = randomArray(n, seed: 4)  // backward kernels add into their output
                y.withUnsafeMutableBufferPointer { f($0.baseAddress!) }
                return y
            }
            expectClose(run { k.add(Int64(n), a, b, $0) }, run { slm_add_ref(Int64(n), a, b, $0) }, tolerance: 1e-6)
            expectClose(run { k.mul(Int64(n), a, b, $0) }, run { slm_mul_ref(Int64(n), a, b, $0) }, tolerance: 1e-6)
            expectClose(run { k.axpy(Int64(n), 0.5, a, $0) }, run { slm_axpy_ref(Int64(n), 0.5, a, $0) }, tolerance: 1e-6)
            expectClose(run { k.gelu_fwd(Int64(n), a, $0) }, run { slm_gelu_fwd_ref(Int64(n), a, $0) }, tolerance: 2e-6)
            expectClose(run { k.gelu_bwd(Int64(n), a, dy, $0) }, run { slm_gelu_bwd_ref(Int64(n), a, dy, $0) }, tolerance: 5e-6)
            expectClose(run { k.silu_fwd(Int64(n), a, $0) }, run { slm_silu_fwd_ref(Int64(n), a, $0) }, tolerance: 2e-6)
            expectClose(run { k.silu_bwd(Int64(n), a, dy, $0) }, run { slm_silu_bwd_ref(Int64(n), a, dy, $0) }, tolerance: 5e-6)
            expectClose(run { k.swiglu_fwd(Int64(n), a, b, $0) }, run { slm_swiglu_fwd_ref(Int64(n), a, b, $0) }, tolerance: 5e-6)
            var dg1 = randomArray(n, seed: 5), du1 = randomArray(n, seed: 6), dg2 = dg1, du2 = du1
            k.swiglu_bwd(Int64(n), a, b, dy, &dg1, &du1)
            slm_swiglu_bwd_ref(Int64(n), a, b, dy, &dg2, &du2)
            expectClose(dg1, dg2, tolerance: 1e-5)
            expectClose(du1, du2, tolerance: 1e-5)
            let s1 = k.sum(Int64(n), a), s2 = slm_sum_ref(Int64(n), a)
            #expect(abs(s1 - s2) < 1e-4)
        }
    }

    @Test(arguments: isas)
    func sumOfSquaresDropoutAndAdamW(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for n in Self.sizes {
            let x = randomArray(n, seed: 40, scale: 2), dy = randomArray(n, seed: 41)
            #expect(abs(k.sumsq(Int64(n), x) - slm_sumsq_ref(Int64(n), x)) < 1e-4)
            // The same hash in every version: identical outputs, not just close ones.
            var y1 = [Float](repeating: 0, count: n), y2 = y1
            k.dropout_fwd(Int64(n), 0xDEAD_BEEF_1234, 1000, 0.3, x, &y1)
            slm_dropout_fwd_ref(Int64(n), 0xDEAD_BEEF_1234, 1000, 0.3, x, &y2)
            #expect(y1 == y2)
            var dx1 = randomArray(n, seed: 42), dx2 = dx1
            k.dropout_bwd(Int64(n), 0xDEAD_BEEF_1234, 1000, 0.3, dy, &dx1)
            slm_dropout_bwd_ref(Int64(n), 0xDEAD_BEEF_1234, 1000, 0.3, dy, &dx2)
            expectClose(dx1, dx2, tolerance: 1e-6)
            var args = slm_adamw_args(lr: 0.01, beta1: 0.9, beta2: 0.95, eps: 1e-8, correction1: 0.19,
                                      correction2: 0.0975, decay: 0.001)
            var w1 = randomArray(n, seed: 43), m1 = randomArray(n, seed: 44, scale: 0.1)
            var v1 = randomArray(n, seed: 45, scale: 0.1).map { $0 * $0 }
            var w2 = w1, m2 = m1, v2 = v1
            k.adamw(Int64(n), &args, &w1, dy, &m1, &v1)
            slm_adamw_ref(Int64(n), &args, &w2, dy, &m2, &v2)
            expectClose(w1, w2, tolerance: 1e-6)
            expectClose(m1, m2, tolerance: 1e-6)
            expectClose(v1, v2, tolerance: 1e-6)
        }
    }

    /// A split across threads must draw the same mask as one call over everything.
    @Test func dropoutMaskDependsOnlyOnTheIndex() {
        let n = 100_000, x = [Float](repeating: 1, count: n)
        var whole = [Float](repeating: 0, count: n), parts = whole
        slm_dropout_fwd(Int64(n), 99, 0, 0.3, x, &whole)
        parts.withUnsafeMutableBufferPointer { p in
            slm_dropout_fwd(37_001, 99, 0, 0.3, x, p.baseAddress!)
            slm_dropout_fwd(Int64(n - 37_001), 99, 37_001, 0.3, Array(x[37_001...]), p.baseAddress! + 37_001)
        }
        #expect(whole == parts)
        let dropped = Double(whole.filter { $0 == 0 }.count) / Double(n)
        #expect(abs(dropped - 0.3) < 0.01)
        // Neighbouring seeds give unrelated masks: about p² of elements dropped by both.
        var other = [Float](repeating: 0, count: n)
        slm_dropout_fwd(Int64(n), 100, 0, 0.3, x, &other)
        let both = Double(zip(whole, other).filter { $0 == 0 && $1 == 0 }.count) / Double(n)
        #expect(abs(both - 0.09) < 0.01)
    }

    @Test(arguments: isas)
    func rows(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for cols in Self.sizes {
            let rows = 3, n = rows * cols
            let x = randomArray(n, seed: 7, scale: 3), dy = randomArray(n, seed: 8)
            let w = randomArray(cols, seed: 9), b = randomArray(cols, seed: 10)
            var y1 = [Float](repeating: 0, count: n), y2 = y1
            var m1 = [Float](repeating: 0, count: rows), m2 = m1, r1 = m1, r2 = m1
            k.softmax_fwd(Int64(rows), Int64(cols), x, &y1)
            slm_softmax_fwd_ref(Int64(rows), Int64(cols), x, &y2)
            expectClose(y1, y2, tolerance: 1e-6)
            var dx1 = randomArray(n, seed: 11), dx2 = dx1
            k.softmax_bwd(Int64(rows), Int64(cols), y2, dy, &dx1)
            slm_softmax_bwd_ref(Int64(rows), Int64(cols), y2, dy, &dx2)
            expectClose(dx1, dx2, tolerance: 1e-5)

            k.layernorm_fwd(Int64(rows), Int64(cols), x, w, b, 1e-5, &y1, &m1, &r1)
            slm_layernorm_fwd_ref(Int64(rows), Int64(cols), x, w, b, 1e-5, &y2, &m2, &r2)
            expectClose(y1, y2, tolerance: 1e-4)
            var dw1 = randomArray(cols, seed: 12), dw2 = dw1, db1 = randomArray(cols, seed: 13), db2 = db1
            dx2 = dx1
            k.layernorm_bwd(Int64(rows), Int64(cols), x, w, m2, r2, dy, &dx1, &dw1, &db1)
            slm_layernorm_bwd_ref(Int64(rows), Int64(cols), x, w, m2, r2, dy, &dx2, &dw2, &db2)
            expectClose(dx1, dx2, tolerance: 1e-4)
            expectClose(dw1, dw2, tolerance: 1e-4)
            expectClose(db1, db2, tolerance: 1e-4)

            k.rmsnorm_fwd(Int64(rows), Int64(cols), x, w, 1e-5, &y1, &r1)
            slm_rmsnorm_fwd_ref(Int64(rows), Int64(cols), x, w, 1e-5, &y2, &r2)
            expectClose(y1, y2, tolerance: 1e-4)
            dx2 = dx1
            dw2 = dw1
            k.rmsnorm_bwd(Int64(rows), Int64(cols), x, w, r2, dy, &dx1, &dw1)
            slm_rmsnorm_bwd_ref(Int64(rows), Int64(cols), x, w, r2, dy, &dx2, &dw2)
            expectClose(dx1, dx2, tolerance: 1e-4)
            expectClose(dw1, dw2, tolerance: 1e-4)

            let targets: [Int32] = [0, Int32(cols - 1), -100]
            var l1 = [Float](repeating: 0, count: rows), l2 = l1
            k.xent_fwd(Int64(rows), Int64(cols), x, targets, -100, &l1, &r1)
            slm_xent_fwd_ref(Int64(rows), Int64(cols), x, targets, -100, &l2, &r2)
            expectClose(l1, l2, tolerance: 1e-5)
            expectClose(r1, r2, tolerance: 1e-5)
            dx2 = dx1
            k.xent_bwd(Int64(rows), Int64(cols), x, targets, -100, r2, 0.25, &dx1)
            slm_xent_bwd_ref(Int64(rows), Int64(cols), x, targets, -100, r2, 0.25, &dx2)
            expectClose(dx1, dx2, tolerance: 1e-6)
        }
    }

    @Test(arguments: isas)
    func attention(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        for (b, tq, tk, hq, hkv, d) in [(2, 9, 9, 4, 2, 16), (1, 1, 70, 3, 1, 64), (1, 67, 67, 2, 2, 7),
                                         (2, 100, 133, 4, 2, 40), (1, 70, 70, 1, 1, 64), (1, 300, 300, 4, 2, 64)] {
            let q = randomTensor([b, tq, hq, d], seed: 14), kk = randomTensor([b, tk, hkv, d], seed: 15)
            let v = randomTensor([b, tk, hkv, d], seed: 16), dout = randomTensor([b, tq, hq, d], seed: 17)
            let out1 = Tensor.zeros(q.shape), out2 = Tensor.zeros(q.shape)
            let lse1 = Tensor.zeros([b, hq, tq]), lse2 = Tensor.zeros([b, hq, tq])
            func args(_ out: Tensor, _ lse: Tensor) -> slm_attention_args {
                slm_attention_args(B: Int64(b), Tq: Int64(tq), Tk: Int64(tk), Hq: Int64(hq), Hkv: Int64(hkv), D: Int64(d), ldq: 0, ldkv: 0,
                                   scale: 0.3, q: q.data, k: kk.data, v: v.data, out: out.data, lse: lse.data)
            }
            var a1 = args(out1, lse1), a2 = args(out2, lse2)
            k.attention_fwd(&a1, 0, Int64(b * hkv))
            slm_attention_fwd_ref(&a2, 0, Int64(b * hkv))
            expectClose(out1.toArray(), out2.toArray(), tolerance: 1e-5)
            expectClose(lse1.toArray(), lse2.toArray(), tolerance: 1e-5)
            let grads1 = [randomTensor(q.shape, seed: 18), randomTensor(kk.shape, seed: 19), randomTensor(v.shape, seed: 20)]
            let grads2 = grads1.map { $0.copy() }
            k.attention_bwd(&a2, dout.data, grads1[0].data, grads1[1].data, grads1[2].data, 0, Int64(b * hkv))
            slm_attention_bwd_ref(&a2, dout.data, grads2[0].data, grads2[1].data, grads2[2].data, 0, Int64(b * hkv))
            for (g1, g2) in zip(grads1, grads2) { expectClose(g1.toArray(), g2.toArray(), tolerance: 1e-4) }
        }
    }

    /// q, k and v read from inside one wider row (GPT-2's fused projection), as the
    /// strides say, and their gradients written back the same way.
    @Test(arguments: isas)
    func attentionWithRowStrides(_ isa: slm_isa) {
        let k = slm_kernel_table_for(isa)!.pointee
        let (b, t, h, d) = (2, 45, 2, 24), width = h * d, ld = 3 * width + 5  // padded rows
        let fused = randomTensor([b, t, ld], seed: 30), dout = randomTensor([b, t, h, d], seed: 31)
        var outs: [[Float]] = [], grads: [[Float]] = []
        for reference in [false, true] {
            let out = Tensor.zeros([b, t, h, d]), lse = Tensor.zeros([b, h, t]), g = randomTensor([b, t, ld], seed: 32)
            var a = slm_attention_args(B: Int64(b), Tq: Int64(t), Tk: Int64(t), Hq: Int64(h), Hkv: Int64(h), D: Int64(d),
                                       ldq: Int64(ld), ldkv: Int64(ld), scale: 0.2, q: fused.data,
                                       k: fused.data + width, v: fused.data + 2 * width, out: out.data, lse: lse.data)
            let (dq, dk, dv) = (g.data, g.data + width, g.data + 2 * width)
            if reference {
                slm_attention_fwd_ref(&a, 0, Int64(b * h))
                slm_attention_bwd_ref(&a, dout.data, dq, dk, dv, 0, Int64(b * h))
            } else {
                k.attention_fwd(&a, 0, Int64(b * h))
                k.attention_bwd(&a, dout.data, dq, dk, dv, 0, Int64(b * h))
            }
            outs.append(out.toArray())
            grads.append(g.toArray())
        }
        expectClose(outs[0], outs[1], tolerance: 1e-5)
        expectClose(grads[0], grads[1], tolerance: 1e-4)
        // The padding between rows is never written.
        let g0 = randomTensor([b, t, ld], seed: 32).toArray()
        for row in 0..<(b * t) { for c in (3 * width)..<ld { #expect(grads[0][row * ld + c] == g0[row * ld + c]) } }
    }

    @Test func bfloat16ConversionMatchesReference() {
        let x = randomArray(100, seed: 21, scale: 100) + [0, -0, 1, 1.00390625, 1.01171875, .infinity]
        var y1 = [UInt16](repeating: 0, count: x.count), y2 = y1
        slm_f32_to_bf16(Int64(x.count), x, &y1)
        slm_f32_to_bf16_ref(Int64(x.count), x, &y2)
        #expect(y1 == y2)
        // Ties round to even: 1 + 2^-8 lies halfway between 1 (0x3F80) and 1 + 2^-7 (0x3F81);
        // 1 + 3·2^-8 halfway between 0x3F81 and 0x3F82.
        #expect(y2[y2.count - 4] == 0x3F80)
        #expect(y2[y2.count - 3] == 0x3F80)
        #expect(y2[y2.count - 2] == 0x3F82)
    }
}

extension slm_isa: @retroactive CustomTestStringConvertible {
    public var testDescription: String { String(cString: slm_isa_name(self)) }
}
