/// Carries simulator objects into the `@Sendable` callbacks that the `MeshCore` seams require.
///
/// In a simulation every callback runs on the simulation's own thread, so nothing is shared across
/// threads; the seams' implementations trap if they are called from anywhere else.
public struct SimThreadBound<Value>: @unchecked Sendable {
    public let value: Value
    public init(_ value: Value) { self.value = value }
}
