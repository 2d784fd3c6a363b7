import Foundation
import Hummingbird
import Logging
import NIOCore
import ServiceLifecycle
import SLMGenerate

/// The request context of the server's routes.
public struct ServerContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var maxUploadSize: Int { ServerLimits.maxBodyBytes }

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// A context without a channel, for calling the router's responder directly in tests.
    public init(logger: Logger) {
        coreContext = .init(source: LoggerSource(logger: logger))
    }

    private struct LoggerSource: RequestContextSource {
        var logger: Logger
    }
}

/// An OpenAI-compatible server for one model.
public struct OpenAIServer: Sendable {
    public let scheduler: GenerationScheduler
    public let metrics: ServerMetrics
    public let apiKey: String?
    /// The origin browsers may call the API from ("*": any); nil: no CORS headers, so
    /// browsers allow only pages of the server's own origin (the playground).
    public let corsOrigin: String?

    public init(scheduler: GenerationScheduler, apiKey: String? = nil, corsOrigin: String? = nil,
                metrics: ServerMetrics = ServerMetrics()) {
        self.scheduler = scheduler
        self.apiKey = apiKey
        self.corsOrigin = corsOrigin
        self.metrics = metrics
    }

    /// Middleware, outermost first: metrics (sees every final status), CORS when an
    /// origin is configured (it answers preflights, which carry no key), errors (OpenAI's
    /// shape for whatever is thrown); then the routes, where the API routes check the key.
    public func router() -> Router<ServerContext> {
        let router = Router(context: ServerContext.self)
        router.add(middleware: MetricsMiddleware(metrics: metrics))
        if let corsOrigin {
            router.add(middleware: CORSMiddleware(
                allowOrigin: corsOrigin == "*" ? .all : .custom(corsOrigin),
                allowHeaders: [.accept, .authorization, .contentType, .origin],
                allowMethods: [.get, .post, .options], maxAge: .seconds(600)))
        }
        router.add(middleware: ErrorMiddleware())
        Routes(scheduler: scheduler, metrics: metrics).register(on: router, apiKey: apiKey)
        return router
    }

    /// The application, listening on `host:port` (port 0: any free port);
    /// `onRunning` hears the port it got.
    public func application(host: String, port: Int, logger: Logger? = nil,
                            onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        Application(
            router: router(),
            configuration: .init(address: .hostname(host, port: port), serverName: "swift-slm"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// Serves until SIGINT or SIGTERM. Then, in this order: the scheduler stops (running
    /// generations end: streams with an error event, waiting requests with 503), the
    /// server finishes the responses in flight and closes, and this returns.
    public func run(host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        let app = application(host: host, port: port, logger: logger, onRunning: onRunning)
        // A service group shuts its services down in reverse order: the scheduler first.
        let group = ServiceGroup(configuration: .init(
            services: [app, SchedulerService(scheduler: scheduler)],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger))
        try await group.run()
    }
}

/// Stops the scheduler when the service group shuts down.
struct SchedulerService: Service {
    let scheduler: GenerationScheduler

    func run() async throws {
        try? await gracefulShutdown()
        // shutdown() blocks until the worker thread has ended its round: off the pool.
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            Thread.detachNewThread {
                scheduler.shutdown()
                done.resume()
            }
        }
    }
}
