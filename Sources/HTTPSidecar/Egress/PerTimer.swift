/// A value for each of an ``EgressExchange``'s timers, in three fixed slots (no allocation per
/// request): the exchange's armed generations, and a driver's scheduled tasks. Inlinable, so a
/// driver in another module uses it specialized.
public struct PerTimer<Value> {
    @usableFromInline var deadline: Value
    @usableFromInline var attempt: Value
    @usableFromInline var wait: Value

    /// Every timer starts at `value`.
    @inlinable public init(_ value: Value) {
        deadline = value
        attempt = value
        wait = value
    }

    @inlinable public subscript(_ timer: EgressExchange.Timer) -> Value {
        get {
            switch timer {
            case .deadline: deadline
            case .attempt: attempt
            case .wait: wait
            }
        }
        set {
            switch timer {
            case .deadline: deadline = newValue
            case .attempt: attempt = newValue
            case .wait: wait = newValue
            }
        }
    }

    /// Changes every timer's value with `body`.
    @inlinable public mutating func updateAll(_ body: (inout Value) -> Void) {
        body(&deadline)
        body(&attempt)
        body(&wait)
    }
}

extension PerTimer: Sendable where Value: Sendable {}
