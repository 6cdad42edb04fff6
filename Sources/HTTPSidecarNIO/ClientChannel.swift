import HTTPClientNIO
import HTTPSidecarEngines
import NIOCore

/// The client side of a connection engine's NIO driver (``IngressHandler``, ``EgressHandler``):
/// writes, flushes and closes on the handler's context, and holds back `read()` while the engine
/// has paused reading. A class: `read()` may deliver bytes at once, and the engine may then pause
/// reading again from inside that call.
///
/// Confined to the connection's event loop.
final class ClientChannel {
    /// The handler's context, while it is in the pipeline.
    var context: ChannelHandlerContext?
    private var readsPaused = false
    private var readPending = false

    func write(_ bytes: IOData) { context?.write(NIOAny(bytes), promise: nil) }

    func flush() { context?.flush() }

    /// Closes the connection: once what was written has left when `afterWrites`, else at once.
    func close(afterWrites: Bool) {
        guard let context else { return }
        guard afterWrites else { return context.close(promise: nil) }
        let channel = context.channel
        let promise = context.eventLoop.makePromise(of: Void.self)
        promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
        context.writeAndFlush(NIOAny(IOData.byteBuffer(channel.allocator.buffer(capacity: 0))), promise: promise)
    }

    var isWritable: Bool { context?.channel.isWritable ?? false }

    /// Stops (or resumes) reading; a `read()` held back meanwhile goes on at the resume.
    func reads(paused: Bool) {
        readsPaused = paused
        if !paused, readPending, let context {
            readPending = false
            context.read()
        }
    }

    /// The pipeline's `read()`: passed on, or held back while reading is paused.
    func read(_ context: ChannelHandlerContext) {
        if readsPaused { readPending = true } else { context.read() }
    }
}
