import SLMTestSupport
import Testing
@testable import SLMTensor

@Suite struct AutogradTests {
    @Test func gradientsAccumulateUntilZeroed() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        (x * x).sum().backward()
        #expect(x.grad!.toArray() == [2, 4, 6])
        (x * x).sum().backward()
        #expect(x.grad!.toArray() == [4, 8, 12])
        x.zeroGrad()
        #expect(x.grad!.toArray() == [0, 0, 0])
        (scale(x, 3)).sum().backward()
        #expect(x.grad!.toArray() == [3, 3, 3])
    }

    @Test func tensorUsedTwiceGetsBothContributions() {
        let x = Tensor([2], shape: [1], requiresGrad: true)
        let y = x * x * x  // 3x² = 12
        y.sum().backward()
        #expect(x.grad!.item() == 12)
    }

    /// An observer hears of each leaf once, when no node still to run adds to its gradient:
    /// the gradient it sees then is the final one, and a leaf used early and late (as a tied
    /// embedding is) completes after one used only late.
    @Test func observersHearOfEachGradientWhenItIsComplete() {
        final class Recorder: BackwardObserver, @unchecked Sendable {
            var seen: [(Tensor, [Float])] = []
            var nodes = 0
            func gradientComplete(_ leaf: Tensor) { seen.append((leaf, leaf.grad?.toArray() ?? [])) }
            func nodeFinished() { nodes += 1 }
        }
        let early = Tensor([0.5, -1], shape: [2], requiresGrad: true)
        let late = Tensor([2, 3], shape: [2], requiresGrad: true)
        let constant = Tensor([1, 1], shape: [2])
        let h = gelu(early * constant) * late
        let loss = (h * early).sum()
        let recorder = Recorder()
        Autograd.observing(recorder) { loss.backward() }
        #expect(recorder.seen.map { ObjectIdentifier($0.0) } == [ObjectIdentifier(late), ObjectIdentifier(early)])
        #expect(recorder.seen[0].1 == late.grad!.toArray() && recorder.seen[1].1 == early.grad!.toArray())
        #expect(recorder.nodes == 5)   // the sum, two products, gelu and the product with the constant
        // Outside `observing`, nobody is told.
        let again = (late * late).sum()
        again.backward()
        #expect(recorder.seen.count == 2)
    }

    @Test func graphIsFreedAfterBackward() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let h = gelu(x)
        let loss = h.sum()
        #expect(h.node != nil && loss.node != nil)
        loss.backward()
        #expect(h.node == nil && loss.node == nil)
        #expect(h.grad == nil, "intermediate gradients are released")
        #expect(x.grad != nil, "leaf gradients stay")
    }

    @Test func noGradRecordsNothing() {
        let x = Tensor([1, 2], shape: [2], requiresGrad: true)
        let y = Autograd.noGrad { gelu(x) * x }
        #expect(!y.requiresGrad && y.node == nil)
        #expect(Autograd.isRecording)
        let z = gelu(x)
        #expect(z.requiresGrad && !z.isLeaf)
    }

    @Test func inputsWithoutGradRecordNothing() {
        let x = Tensor([1, 2], shape: [2])
        let y = gelu(x)
        #expect(!y.requiresGrad && y.node == nil)
    }

    @Test func explicitSeedGradient() {
        let x = Tensor([1, 2, 3], shape: [3], requiresGrad: true)
        let y = scale(x, 2)
        y.backward(gradient: Tensor([1, 0, -1], shape: [3]))
        #expect(x.grad!.toArray() == [2, 0, -2])
    }

    /// The checker itself must reject a wrong gradient.
    @Test func gradientCheckCatchesAWrongBackward() {
        func badSquare(_ x: Tensor) -> Tensor {
            let out = Autograd.noGrad { x * x }
            Autograd.record(out, op: "badSquare", inputs: [x]) { g in
                // Off by 5%: d(x²)/dx is 2x, this says 1.9x.
                let scaled = Autograd.noGrad { g * x * 1.9 }
                x.accumulateGrad(scaled)
            }
            return out
        }
        let x = randomTensor([16], seed: 1)
        #expect(!gradientCheck([x]) { badSquare($0[0]) }.passed)
        #expect(gradientCheck([x]) { $0[0] * $0[0] }.passed)
    }
}
