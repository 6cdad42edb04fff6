import MeshCore

/// Identifies a simulated host (an index into the simulation's host table).
public typealias HostID = Int

/// Identifies a simulated stream (connection).
public typealias StreamID = Int

/// What the kernel can have scheduled.
enum SimEvent {
    /// A datagram reaching its destination.
    case datagram(Datagram)
    /// A stream segment reaching one end of a connection.
    case segment(Segment)
    /// A host timer set through ``SimHost/setTimer(after:)``.
    case timer(host: HostID, incarnation: UInt32, token: UInt64)
    /// A closure scheduled through a host's ``MeshClock`` or by the kernel itself (`host == nil`).
    case closure(host: HostID?, incarnation: UInt32, label: StaticString, body: () -> Void)
}

struct Datagram {
    var from: HostID
    var to: HostID
    var port: Int
    var payload: [UInt8]
    /// The message number in the network's send order, for the log.
    var id: Int64
}

struct Segment {
    enum Kind: UInt8 { case syn, synAck, refuse, data, fin, rst }
    var stream: StreamID
    var kind: Kind
    /// The sending side: 0 is the client (connector), 1 the server (acceptor).
    var fromSide: Int
    var payload: [UInt8]
    /// Its place in the network's sending order (set when first sent; 0 before): a segment held on
    /// arrival goes back in front of those of its direction held later, as TCP never reorders.
    var sequence: UInt64 = 0
    /// Its place in its stream's direction (1, 2, …; set when first sent, never for a reset): the
    /// receiver takes a direction's segments in this order only, as TCP does, whatever held or
    /// delayed some of them on the way.
    var place = 0
}

/// What a host's process receives from the network.
public enum NetEvent {
    /// A datagram from `from`, addressed to `port`.
    case datagram(from: HostID, port: Int, payload: [UInt8])
    /// Server side: a client connected to our listening `port`.
    case accepted(StreamID, from: HostID, port: Int)
    /// Client side: our connection attempt succeeded.
    case connected(StreamID)
    /// Client side: our connection attempt failed (`.connectRefused`).
    case connectFailed(StreamID, TransportError.Kind)
    /// Bytes on an open stream, in order.
    case data(StreamID, [UInt8])
    /// The peer closed the stream after sending everything it had.
    case closed(StreamID)
    /// The peer reset the stream (it crashed, or aborted).
    case reset(StreamID)
}
