public import KVM
import MemoryModel

/// The configurations of the models on the host's interfaces: what the
/// TD looks like and which steps each actor may take.
public enum HostModels {
    /// `model: host-conversion`: a tdx-huge TD under one conversion policy
    /// (seed 004), a guest that accepts at 2M and 4K and touches, the VMM
    /// converting one page each way and punching the chunk, and up to
    /// `maxFaults` injected faults from `faultPoints`.
    public struct Conversion: Sendable, Hashable {
        public var policy: ConversionPolicy
        public var faultPoints: [FaultPoint]
        public var maxFaults: Int
        /// 2 MiB chunks of the one memslot (1–4).
        public var chunks: Int
        /// Offset inside each chunk of the 4K page the steps use.
        public var page: UInt64
        /// Where KVM's S-EPT pages land in host memory (DPAMT, docs/HOST.md).
        public var placement: SEPTPlacement

        public init(policy: ConversionPolicy, faultPoints: [FaultPoint] = [], maxFaults: Int = 1, chunks: Int = 1, page: UInt64 = 5,
                    placement: SEPTPlacement = .contiguous) {
            self.policy = policy
            self.faultPoints = faultPoints
            self.maxFaults = maxFaults
            self.chunks = chunks
            self.page = page
            self.placement = placement
        }

        /// The model.
        public func model() throws -> HostCommandModel {
            let header = "td vcpus=2 host=tdx-huge sept-ve-disable=off policy=\(policy.rawValue) sept-placement=\(placement.rawValue)\n"
                + "slot id=1 base=0 pages=\(UInt64(chunks) * 512)\nfinalize"
            var steps: [ModelStep] = []
            for c in 0..<UInt64(chunks) {
                let base = hex(c * 512), f = hex(c * 512 + page)
                steps += [
                    ModelStep(.vcpu(0), "accept \(base)+512 2m", call: "TDG.MEM.PAGE.ACCEPT 2M (edk2 TdAcceptPages, SIZE_MISMATCH → 4K)"),
                    ModelStep(.vcpu(0), "accept \(f)+1 4k", call: "TDG.MEM.PAGE.ACCEPT 4K"),
                    ModelStep(.vcpu(0), "access \(f)", call: "load/store (EPT violation, #VE accept at 4K)"),
                    ModelStep(.vmm, "convert \(f)+1 shared", call: "guest_memfd conversion to shared (MapGPA)"),
                    ModelStep(.vmm, "convert \(f)+1 private", call: "guest_memfd conversion to private"),
                    ModelStep(.vmm, "punch \(base)+512", call: "fallocate(PUNCH_HOLE)"),
                ]
                if policy == .inPlace {
                    steps += [
                        ModelStep(.host, "pin \(f)+1", call: "pin_user_pages() through guest_memfd's mapping"),
                        ModelStep(.host, "unpin \(f)+1", call: "unpin_user_pages()"),
                        ModelStep(.host, "hostmap \(f)+1", call: "VMM load/store through guest_memfd's mapping (SIGBUS if private)"),
                    ]
                }
            }
            steps += faultPoints.map { ModelStep(.system, "inject \($0.rawValue)", call: "fault: the next \($0.rawValue) fails") }
            return try HostCommandModel(header: header, steps: steps, maxFaults: maxFaults)
        }
    }

    /// `model: adversarial-host`: a TD whose guest uses `pages` pages
    /// (accept, write, read, release, accept again) against a host that may
    /// remove, re-add, remap or refuse to AUG them, at most `maxAttacks`
    /// times; the guest trusts TDX_PAGE_ALREADY_ACCEPTED or not.
    public struct Adversarial: Sendable, Hashable {
        public var trustsAlreadyAccepted: Bool
        public var maxAttacks: Int
        public var pages: Int
        public var attacks: [String]

        public init(trustsAlreadyAccepted: Bool, maxAttacks: Int = 2, pages: Int = 1,
                    attacks: [String] = ["remove", "readd", "remap", "refuse-aug"]) {
            self.trustsAlreadyAccepted = trustsAlreadyAccepted
            self.maxAttacks = maxAttacks
            self.pages = pages
            self.attacks = attacks
        }

        public func model() throws -> HostCommandModel {
            // Linux requires SEPT_VE_DISABLE; a 4K-only host keeps the page
            // life cycle free of splits.
            let header = "td vcpus=2 host=tdx sept-ve-disable=on\nslot id=1 base=0 pages=512\nfinalize"
            let frames = (0..<UInt64(pages)).map { GuestFrameNumber(5 + $0) }
            let ledger = GuestLedger.Config(frames: frames, trustsAlreadyAccepted: trustsAlreadyAccepted)
            var steps = GuestLedger.steps(for: ledger)
            for g in frames {
                for a in attacks {
                    steps.append(ModelStep(.host, "\(a) \(hex(g.value))+1", call: Self.call(a)))
                }
            }
            return try HostCommandModel(header: header, steps: steps, maxFaults: 0, maxAttacks: maxAttacks, ledger: ledger)
        }

        static func call(_ a: String) -> String {
            switch a {
            case "remove": "TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE"
            case "readd": "KVM_PRE_FAULT_MEMORY: TDH.MEM.PAGE.AUG (PENDING)"
            case "remap": "REMOVE, then AUG of another frame"
            default: "the host never AUGs the page"
            }
        }
    }
}

