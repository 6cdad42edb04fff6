import MeshCore

/// The pull consumer instances of one sidecar, by group and name: creation (a unique name per
/// group, a bounded number of instances), lookup, and forgetting closed ones. An instance lives in
/// this process only: the app talks to its own pod's sidecar.
public final class PullConsumerRegistry {
    public let limits: PullConsumerLimits
    private var instances: [InstanceKey: PullConsumer] = [:]
    private var random: SeededRandom

    struct InstanceKey: Hashable {
        var group: String
        var name: String
    }

    public init(limits: PullConsumerLimits, random: SeededRandom) {
        self.limits = limits
        self.random = random
    }

    /// Instances open or closing.
    public var count: Int { instances.count }

    /// Every instance, sorted by group and name (for metrics and shutdown).
    public var all: [PullConsumer] {
        instances.values.sorted { ($0.group, $0.name) < ($1.group, $1.name) }
    }

    /// Makes a new instance, named `name` or `rest-consumer-<random hex>`; refused when the name is
    /// taken in the group (409 40902) or the sidecar keeps as many instances as it may (429).
    public func create(group: String, name: String?, settings: PullConsumerSettings, now: MeshInstant) -> Result<PullConsumer, PullError> {
        let chosen = name ?? "rest-consumer-" + String(random.next(), radix: 16)
        let key = InstanceKey(group: group, name: chosen)
        // A closing instance of that name finishes on its own; the name is free again at once.
        if let existing = instances[key], existing.phase == .open { return .failure(.instanceExists(chosen)) }
        guard instances.count < limits.maxInstances else { return .failure(.tooManyInstances(limits.maxInstances)) }
        let instance = PullConsumer(group: group, name: chosen, settings: settings, limits: limits, now: now)
        instances[key] = instance
        return .success(instance)
    }

    /// The instance `name` of `group`, if it is open (a closing one is already gone for the app).
    public func instance(group: String, name: String) -> PullConsumer? {
        guard let found = instances[InstanceKey(group: group, name: name)], found.phase == .open else { return nil }
        return found
    }

    /// Forgets `instance` once its group consumer is closed.
    public func forget(_ instance: PullConsumer) {
        let key = InstanceKey(group: instance.group, name: instance.name)
        if instances[key] === instance { instances[key] = nil }
    }
}
