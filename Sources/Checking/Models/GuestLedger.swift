import KVM
public import MemoryModel
import TDXModule

/// The guest's side of the adversarial-host model: what the guest believes
/// about each page it uses, against what the platform holds, for the
/// guest's invariants (`guest.accept-once-where-contents-matter`,
/// `guest.contents-intact`).
///
/// The guest's program per watched page is the life of a page a guest
/// hands out and takes back: accept it (expecting zeros: TDG.MEM.PAGE.ACCEPT
/// zeroes the page), write to it, read it back, release it (stop using it
/// and expect the host to take it back, as an SVSM invalidating a page or a
/// kernel converting it to shared does; TDX has no platform operation for
/// this, which is the point of COCONUT-SVSM PR 506), and accept it again.
///
/// What the platform holds is followed from the observer's side: a page's
/// contents are zero after an ACCEPT that succeeded (the page was not
/// accessible before it and is after), the guest's after a write, and gone
/// once the S-EPT no longer maps it accessibly (REMOVE, a zap).
public struct GuestLedger: Sendable {
    /// The options of the guest.
    public struct Config: Sendable, Hashable {
        /// The pages the guest uses.
        public var frames: [GuestFrameNumber]
        /// Whether an accept that returns TDX_PAGE_ALREADY_ACCEPTED counts
        /// as done (edk2's `TdAcceptPages()`, an SVSM before PR 506) or as a
        /// failure (Linux `try_accept_one()`: any non-zero status fails;
        /// `tdx_accept_memory()` returns false at 4K and the caller stops).
        public var trustsAlreadyAccepted: Bool

        public init(frames: [GuestFrameNumber], trustsAlreadyAccepted: Bool) {
            self.frames = frames
            self.trustsAlreadyAccepted = trustsAlreadyAccepted
        }
    }

    enum Belief: UInt64 { case unaccepted, fresh, holdsData, released }
    enum Contents: UInt64 { case zero, guestData, gone }

    let config: Config
    var belief: [Belief]
    var contents: [Contents]
    /// The guest stopped (a failed accept it treats as fatal, a fatal access).
    public private(set) var stopped = false

    public init(config: Config) {
        self.config = config
        belief = config.frames.map { _ in .unaccepted }
        contents = config.frames.map { _ in .gone }
    }

    /// The beliefs after `path`, each step having succeeded (a failed one
    /// ends the path: the state is terminal).
    init(config: Config, replaying path: [ModelStep]) {
        self.init(config: config)
        for s in path {
            guard let (verb, i) = guestStep(s) else { continue }
            switch verb {
            case "accept": belief[i] = .fresh
            case "write": belief[i] = .holdsData
            case "release": belief[i] = .released
            default: break
            }
        }
    }

    /// The guest's steps for page `i` of `config`: the host command each
    /// runs, and what it is.
    public static func steps(for config: Config) -> [ModelStep] {
        config.frames.flatMap { g -> [ModelStep] in
            let f = "0x" + String(g.value, radix: 16)
            let driver = config.trustsAlreadyAccepted ? "4k" : "linux"
            let acceptCall = config.trustsAlreadyAccepted
                ? "TDG.MEM.PAGE.ACCEPT 4K, ALREADY_ACCEPTED taken as done (edk2 TdAcceptPages, SVSM before PR 506)"
                : "TDG.MEM.PAGE.ACCEPT via tdx_accept_memory(): any non-zero status fails"
            return [
                ModelStep(.vcpu(0), "accept \(f)+1 \(driver)", call: acceptCall),
                ModelStep(.vcpu(0), "access \(f)+1", call: "write: the guest stores its data"),
                ModelStep(.vcpu(0), "access \(f)+1", call: "read: the guest reads its data back"),
                ModelStep(.vcpu(0), "# guest: release \(f)", call: "release: stops using the page, expects the host to take it back"),
            ]
        }
    }

    /// The verb and page index of a guest step, nil for host steps.
    func guestStep(_ s: ModelStep) -> (String, Int)? {
        guard s.actor == .vcpu(0) else { return nil }
        let parts = s.command.split(separator: " ")
        let verb: String
        let arg: Substring
        if s.command.hasPrefix("# guest: release ") { verb = "release"; arg = parts[3] }
        else if parts.first == "accept" { verb = "accept"; arg = parts[1] }
        // A read and a write are the same host command (a guest access);
        // the step's call says which.
        else if parts.first == "access" { verb = s.call.hasPrefix("read") ? "read" : "write"; arg = parts[1] }
        else { return nil }
        guard let g = parseFrame(String(arg)), let i = config.frames.firstIndex(of: g) else { return nil }
        return (verb, i)
    }

    /// Whether the guest's program takes `s` now (host steps always are).
    func enables(_ s: ModelStep) -> Bool {
        guard let (verb, i) = guestStep(s) else { return true }
        switch verb {
        case "accept": return belief[i] == .unaccepted || belief[i] == .released
        case "write": return belief[i] == .fresh
        case "read": return belief[i] == .holdsData
        case "release": return belief[i] == .fresh || belief[i] == .holdsData
        default: return false
        }
    }

    /// What the observer notes before `s` runs: whether each page was
    /// accessible.
    func observeBefore(_ s: ModelStep, vm: TDXVM) -> [Bool] {
        config.frames.map { vm.module.isAccessible($0.only) }
    }

    /// Updates beliefs and contents after `s`, returning the guest
    /// invariants it broke.
    mutating func observeAfter(_ s: ModelStep, before: [Bool], vm: TDXVM, guestFailure: String?) -> [Violation] {
        var out: [Violation] = []
        let after = config.frames.map { vm.module.isAccessible($0.only) }
        // The host took a page away: its contents are gone.
        for i in config.frames.indices where before[i] && !after[i] { contents[i] = .gone }
        guard let (verb, i) = guestStep(s) else { return out }
        let f = config.frames[i].address
        if guestFailure != nil || vm.isDead { stopped = true; return out }
        switch verb {
        case "accept":
            if !before[i] && after[i] {
                contents[i] = .zero
            } else if before[i] && contents[i] == .guestData {
                // TDX_PAGE_ALREADY_ACCEPTED, taken as done: the guest now
                // believes the page fresh, but the module did not zero it.
                out.append(Violation(invariant: InvariantRegistry.acceptOnceWhereContentsMatter.name,
                                     detail: "accept of \(f) returned TDX_PAGE_ALREADY_ACCEPTED and the guest took it as a fresh page: its earlier contents are still there"))
            }
            belief[i] = .fresh
        case "write":
            contents[i] = .guestData
            belief[i] = .holdsData
        case "read":
            if contents[i] != .guestData {
                out.append(Violation(invariant: InvariantRegistry.contentsIntact.name,
                                     detail: "read of \(f) returned \(contents[i] == .zero ? "zeros" : "nothing the guest wrote") and the guest went on"))
            }
        case "release":
            belief[i] = .released
        default: break
        }
        return out
    }

    /// The ledger's part of the fingerprint.
    var words: [UInt64] {
        [0xF1F0_0000_0000_00FF, stopped ? 1 : 0] + zip(belief, contents).map { $0.rawValue << 4 | $1.rawValue }
    }
}
