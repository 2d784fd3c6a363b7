import SLMTestSupport
import Testing
@testable import SLMTensor

/// Shape checks name the op and both shapes. (Ops stop on them; the checks are tested
/// directly because a stopped process cannot report.)
@Suite struct ShapeErrorTests {
    @Test func matmulInnerDimensions() {
        #expect(throws: ShapeError("matmul: inner dimensions differ (3 vs 4) for [2, 3] × [4, 5]")) {
            try MatmulPlan([2, 3], [4, 5], transA: false, transB: false)
        }
        #expect(throws: ShapeError("matmul: batch dimensions differ for [2, 2, 3] and [3, 3, 5]")) {
            try MatmulPlan([2, 2, 3], [3, 3, 5], transA: false, transB: false)
        }
        #expect(throws: ShapeError.self) { try MatmulPlan([3], [3, 5], transA: false, transB: false) }
    }

    @Test func broadcasting() {
        #expect(throws: ShapeError("add: shapes [2, 3] and [4] cannot be broadcast together")) {
            try Shape.broadcast([2, 3], [4], op: "add")
        }
        #expect((try? Shape.broadcast([2, 1, 3], [4, 1], op: "mul")) == [2, 4, 3])
    }

    @Test func reshapeCounts() {
        #expect(throws: ShapeError("reshape: shape [4, 2] holds 8 elements, tensor has 6")) {
            try Shape.resolving([4, 2], count: 6, op: "reshape")
        }
        #expect(throws: ShapeError.self) { try Shape.resolving([-1, -1], count: 6, op: "reshape") }
        #expect(throws: ShapeError.self) { try Shape.resolving([-1, 4], count: 6, op: "reshape") }
        #expect((try? Shape.resolving([-1, 3], count: 6, op: "reshape")) == [2, 3])
    }

    @Test func axes() {
        #expect(throws: ShapeError("slice: axis 3 is out of range for shape [2, 3]")) {
            try Shape([2, 3]).axis(3, op: "slice")
        }
        #expect((try? Shape([2, 3]).axis(-1, op: "sum")) == 1)
    }
}
