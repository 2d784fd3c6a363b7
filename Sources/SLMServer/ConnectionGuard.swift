import Foundation
import HTTPTypes
import NIOCore
import NIOHTTPTypes

/// Limits on connections, applied below the router: how many may be open at once, and
/// how long a client may take to deliver a complete request.
public struct ConnectionLimits: Sendable {
    /// Open connections at most; a connection beyond gets 503 (with Retry-After) to its
    /// first request and is closed.
    public var maxConnections = 256
    /// A request's head and body must have arrived this long after the connection was
    /// ready for it (opened, or its previous response sent), or the connection is closed.
    /// This bounds slow senders (one byte now and then) and idle keep-alive connections
    /// alike; a response being generated or streamed is not limited by it.
    public var requestTimeout: Duration = .seconds(30)
    /// After SIGTERM: how long running generations may go on to their end
    /// before they are cut (new requests get 503 meanwhile).
    public var shutdownGrace: Duration = .seconds(30)

    public init() {}
}

/// The server's count of open connections, shared by every connection's guard.
final class ConnectionCount: @unchecked Sendable {  // (a lock guards value)
    private let lock = NSLock()
    private var value = 0

    /// Counts a new connection in; returns the count with it.
    func open() -> Int { lock.withLock { value += 1; return value } }
    func close() { lock.withLock { value -= 1 } }
    var current: Int { lock.withLock { value } }
}

/// One connection's guard (one instance per connection, on its event loop): refuses the
/// connection when it is over the cap, and closes it when a request is late.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private let count: ConnectionCount
    private let limits: ConnectionLimits
    private var counted = false
    private var overCap = false
    private var deadline: Scheduled<Void>?

    init(count: ConnectionCount, limits: ConnectionLimits) {
        self.count = count
        self.limits = limits
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if context.channel.isActive { opened(context) }
    }

    func channelActive(context: ChannelHandlerContext) {
        opened(context)
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if counted {
            count.close()
            counted = false
        }
        deadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let part = unwrapInboundIn(data)
        if overCap {
            if case .head = part { refuse(context) }
            return  // nothing of an over-cap connection reaches the routes
        }
        if case .end = part {
            deadline?.cancel()
            deadline = nil
        }
        context.fireChannelRead(data)
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { arm(context) }  // the next request's clock starts
        context.write(data, promise: promise)
    }

    private func opened(_ context: ChannelHandlerContext) {
        guard !counted else { return }
        counted = true
        overCap = count.open() > limits.maxConnections
        arm(context)
    }

    private func arm(_ context: ChannelHandlerContext) {
        deadline?.cancel()
        let channel = context.channel
        deadline = context.eventLoop.scheduleTask(in: TimeAmount(limits.requestTimeout)) { channel.close(promise: nil) }
    }

    /// 503 in OpenAI's error shape, then close.
    private func refuse(_ context: ChannelHandlerContext) {
        let error = APIError(.serviceUnavailable, "The server has too many open connections. Retry after a moment.",
                             type: "server_error", code: "too_many_connections")
        let body = (try? JSONEncoder().encode(error.body)) ?? Data()
        var head = HTTPResponse(status: .serviceUnavailable)
        head.headerFields[.contentType] = "application/json"
        head.headerFields[.contentLength] = String(body.count)
        head.headerFields[.retryAfter] = "1"
        head.headerFields[.connection] = "close"
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(context.channel.allocator.buffer(bytes: body))), promise: nil)
        let channel = context.channel
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in channel.close(promise: nil) }
    }
}
