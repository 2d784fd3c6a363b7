import Foundation
import SLMFuzzTargets

// slm-fuzz TARGET FILE|DIR…     runs each input once and reports accepted/refused
// slm-fuzz TARGET [libFuzzer flags] CORPUS_DIR…
//                                 the same binary built by scripts/fuzz.sh, which links
//                                 libFuzzer (-D SLM_LIBFUZZER) and instruments the code.

let usage = "usage: slm-fuzz TARGET FILE|DIR…  (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))"
let arguments = CommandLine.arguments
guard arguments.count >= 2, let target = FuzzTarget(rawValue: arguments[1]) else {
    FileHandle.standardError.write(Data((usage + "\n").utf8))
    exit(2)
}

#if SLM_LIBFUZZER
@_silgen_name("LLVMFuzzerRunDriver")
func LLVMFuzzerRunDriver(_ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
                         _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32) -> Int32

nonisolated(unsafe) var selected = target
// libFuzzer reads its own flags and corpus folders: hand it argv without TARGET.
var rest: [UnsafeMutablePointer<CChar>?] = ([arguments[0]] + arguments.dropFirst(2)).map { strdup($0) } + [nil]
var argc = Int32(rest.count - 1)
let status = rest.withUnsafeMutableBufferPointer { buffer -> Int32 in
    var argv = buffer.baseAddress!
    return LLVMFuzzerRunDriver(&argc, &argv) { data, size in
        _ = selected.run(data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? [])
        return 0
    }
}
exit(status)
#else
var files: [URL] = []
for path in arguments.dropFirst(2) {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        FileHandle.standardError.write(Data("slm-fuzz: \(path) does not exist\n".utf8))
        exit(2)
    }
    if isDirectory.boolValue {
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        files += names.sorted().filter { !$0.hasPrefix(".") }.map { URL(fileURLWithPath: path).appendingPathComponent($0) }
    } else {
        files.append(URL(fileURLWithPath: path))
    }
}
var accepted = 0, refused = 0
for file in files {
    guard let data = FileManager.default.contents(atPath: file.path) else { continue }
    switch target.run(Array(data)) {
    case .accepted: accepted += 1
    case .refused: refused += 1
    }
}
print("\(target.rawValue): \(files.count) inputs, \(accepted) accepted, \(refused) refused, none crashed")
#endif
