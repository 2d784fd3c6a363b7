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
    public let limits: ConnectionLimits
    let connections = ConnectionCount()

    public init(scheduler: GenerationScheduler, apiKey: String? = nil, corsOrigin: String? = nil,
                limits: ConnectionLimits = ConnectionLimits(), metrics: ServerMetrics = ServerMetrics()) {
        self.scheduler = scheduler
        self.apiKey = apiKey
        self.corsOrigin = corsOrigin
        self.limits = limits
        self.metrics = metrics
    }

    /// Connections open now.
    public var openConnections: Int { connections.current }

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
        Routes(scheduler: scheduler, metrics: metrics, connections: connections).register(on: router, apiKey: apiKey)
        return router
    }

    /// The application, listening on `host:port` (port 0: any free port);
    /// `onRunning` hears the port it got. Every connection gets a `ConnectionGuard`.
    public func application(host: String, port: Int, logger: Logger? = nil,
                            onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> some ApplicationProtocol {
        let (connections, limits) = (connections, limits)
        return Application(
            router: router(),
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(count: connections, limits: limits)])),
            configuration: .init(address: .hostname(host, port: port), serverName: "swift-slm"),
            onServerRunning: { channel in onRunning(channel.localAddress?.port ?? port) },
            logger: logger)
    }

    /// The server and its scheduler as one service group that stops gracefully on SIGTERM
    /// (or `triggerGracefulShutdown()`). Then, in this order: the scheduler
    /// drains (new generation requests get 503, /health says "draining", running and
    /// waiting generations go on for up to `limits.shutdownGrace`, and are cut after it
    /// with an error event); the server finishes the responses in flight and closes.
    /// SIGINT (Ctrl-C) stops at once, also during the grace period.
    public func serviceGroup(host: String, port: Int, logger: Logger,
                             onRunning: @escaping @Sendable (Int) -> Void = { _ in }) -> ServiceGroup {
        let app = application(host: host, port: port, logger: logger, onRunning: onRunning)
        // A service group shuts its services down in reverse order: the scheduler first.
        return ServiceGroup(configuration: .init(
            services: [app, SchedulerService(scheduler: scheduler, grace: limits.shutdownGrace)],
            // What process managers send drains; Ctrl-C (also during a drain) stops at once.
            gracefulShutdownSignals: [.sigterm],
            cancellationSignals: [.sigint],
            logger: logger))
    }

    /// Serves until SIGTERM or SIGINT (see `serviceGroup`).
    public func run(host: String, port: Int, logger: Logger, onRunning: @escaping @Sendable (Int) -> Void = { _ in }) async throws {
        try await serviceGroup(host: host, port: port, logger: logger, onRunning: onRunning).run()
    }
}

/// Stops the scheduler gracefully when the service group shuts down.
struct SchedulerService: Service {
    let scheduler: GenerationScheduler
    let grace: Duration

    func run() async throws {
        try? await gracefulShutdown()
        await scheduler.stop(grace: grace)
    }
}
