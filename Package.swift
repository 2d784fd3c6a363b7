// swift-tools-version: 6.0
import PackageDescription

let package = Package(
    name: "swift-slm",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "SLMTensor", targets: ["SLMTensor"]),
        .library(name: "SLMText", targets: ["SLMText"]),
        .library(name: "SLMModels", targets: ["SLMModels"]),
        .library(name: "SLMTrain", targets: ["SLMTrain"]),
        .library(name: "SLMGenerate", targets: ["SLMGenerate"]),
        .library(name: "SLMServer", targets: ["SLMServer"]),
        .library(name: "SLMVisual", targets: ["SLMVisual"]),
        .executable(name: "slm", targets: ["slm"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // Already required by Hummingbird; named so that SLMServer may import them.
        .package(url: "https://github.com/apple/swift-nio", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.5.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
    ],
    targets: [
        // CPU kernels in C: scalar reference versions plus AVX2 / AVX-512 versions
        // chosen at run time, and the matrix-multiply backends (oneDNN, CBLAS,
        // Accelerate) loaded at run time. No compiler flags: the ISA lives in
        // target attributes, so the package stays usable as a dependency.
        .target(
            name: "CSLMKernels",
            linkerSettings: [
                .linkedLibrary("dl", .when(platforms: [.linux])),
                .linkedLibrary("m", .when(platforms: [.linux])),
                .linkedFramework("Accelerate", .when(platforms: [.macOS])),
            ]
        ),
        // MPI opened at run time (OpenMPI's libmpi.so.40), for data-parallel training.
        .target(name: "CSLMMPI", linkerSettings: [.linkedLibrary("dl", .when(platforms: [.linux]))]),
        .target(name: "SLMTensor", dependencies: ["CSLMKernels", "SLMSupport"]),
        .target(name: "SLMSupport"),
        .target(name: "SLMText", dependencies: ["SLMSupport"]),
        .target(name: "SLMModels", dependencies: ["SLMTensor", "CSLMKernels", "SLMSupport"]),
        .target(name: "SLMVisual", dependencies: ["SLMSupport"]),
        .target(name: "SLMTrain", dependencies: ["CSLMKernels", "CSLMMPI", "SLMTensor", "SLMModels", "SLMText", "SLMSupport", "SLMVisual"]),
        .target(name: "SLMGenerate", dependencies: ["SLMTensor", "SLMModels", "SLMText"]),
        .target(name: "SLMInterop", dependencies: ["SLMModels", "SLMSupport", "SLMTensor", "SLMText"]),
        .target(
            name: "SLMServer",
            dependencies: [
                "SLMGenerate", "SLMModels", "SLMSupport", "SLMTensor", "SLMText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "SLMDashboard",
            dependencies: [
                "SLMVisual",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Every parser of outside input as a function of bytes, for fuzzing and its regressions.
        .target(name: "SLMFuzzTargets", dependencies: ["SLMModels", "SLMServer", "SLMText", "SLMTrain"]),
        .executableTarget(name: "slm-fuzz", dependencies: ["SLMFuzzTargets"]),
        .executableTarget(
            name: "slm",
            dependencies: [
                "SLMSupport", "SLMTensor", "SLMText", "SLMModels", "SLMTrain", "SLMGenerate", "SLMServer", "SLMInterop", "SLMVisual",
                "SLMDashboard",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(name: "SLMTestSupport", dependencies: ["SLMTensor"], path: "Tests/SLMTestSupport"),
        .testTarget(name: "SLMTensorTests", dependencies: ["SLMTensor", "CSLMKernels", "SLMSupport", "SLMTestSupport"]),
        .testTarget(name: "SLMModelsTests", dependencies: ["SLMModels", "SLMTensor", "CSLMKernels", "SLMTestSupport"], exclude: ["Fixtures"]),
        .testTarget(name: "SLMTextTests", dependencies: ["SLMText", "SLMSupport"], resources: [.copy("Fixtures")]),
        .testTarget(name: "SLMInteropTests", dependencies: ["SLMInterop", "SLMModels", "SLMTensor", "SLMText"]),
        .testTarget(name: "SLMGenerateTests", dependencies: ["SLMGenerate", "SLMModels", "SLMTensor", "SLMText"],
                    exclude: ["Fixtures"]),
        .testTarget(
            name: "SLMServerTests",
            dependencies: [
                "SLMServer", "SLMGenerate", "SLMModels", "SLMText",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .testTarget(name: "SLMVisualTests", dependencies: ["SLMVisual"]),
        .testTarget(
            name: "SLMDashboardTests",
            dependencies: [
                "SLMDashboard", "SLMVisual",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ]
        ),
        .testTarget(name: "SLMFuzzTargetsTests", dependencies: ["SLMFuzzTargets"]),
        .testTarget(name: "SLMTrainTests", dependencies: ["SLMTrain", "SLMModels", "SLMTensor", "SLMText", "SLMSupport", "SLMTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
