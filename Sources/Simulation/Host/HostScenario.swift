import CoCoGuest
import CostModel
public import KVM
public import MemoryModel
public import TDXModule

/// A host-side scenario: a TD, its memslots, and a sequence of guest and
/// VMM operations with faults to inject. Text format, one command per
/// line, frames as guest frame numbers `GFN[+COUNT]` (decimal or 0x hex):
///
///     td vcpus=8 host=tdx-huge policy=zap-first precheck=on accept-level=inhibit module=new|legacy dpamt=on|off spec-accept=off host-placement=contiguous|scattered|buddy host-free-4k=N module-1g=off|on
///     slot id=1 base=0x0 pages=0x80000 backing=hugetlb-2m
///     build 0x800+6                 # KVM_TDX_INIT_MEM_REGION (TDH.MEM.PAGE.ADD)
///     finalize                      # TDH.MR.FINALIZE
///     accept 0x806+506 4k           # TDVF TdAcceptPages at 4K (2m: at 2M, SIZE_MISMATCH → 4K)
///     accept 0x100000+512 linux     # Linux tdx_accept_memory(): 1G, 2M, then 4K
///     accept 0x100000+512 linux vcpu=1  # the same on vCPU 1 (default vcpu=0; below the td line's vcpus)
///     access 0x1000+16              # guest touches memory (faults; #VE-accepts at 4K if SEPT_VE_DISABLE is off)
///     access 0x1000 vcpu=1          # a touch by vCPU 1
///     convert 0x7d9d7+1 shared      # guest_memfd conversion (MapGPA from the guest)
///     convert 0x7d9d7+1 private
///     attributes 0x7d9d7+1 shared   # KVM_SET_MEMORY_ATTRIBUTES instead
///     punch 0x200000+512            # fallocate(PUNCH_HOLE)
///     cycle 0x7d9d7+1 974           # COUNT × (shared, private, accept 4k)
///     inject folio-split-nomem 1
///     check                         # run every invariant now
///     remove 0x1005+1               # adversarial host: BLOCK, TRACK, REMOVE a private page
///     readd 0x1005+1                # adversarial host: AUG it again (PENDING)
///     remap 0x1005+1                # adversarial host: REMOVE, then AUG another frame
///     refuse-aug 0x1006+1           # adversarial host: never AUG these frames
///     pin 0x1000+4                  # in-place: the host pins shared pages (vhost, VFIO)
///     unpin 0x1000+4                # in-place: and drops the pins
///     hostmap 0x1000+4              # in-place: the VMM touches them through guest_memfd's mapping (SIGBUS on private)
///     halt vcpu=3                   # vCPU 3's TDVMCALL(HLT): blocked outside guest mode, TRACK's kicks skip it
///     wake vcpu=3                   # and back into the guest (TDH.VP.ENTER)
///     promote 0x0+0x40000           # module-1g=on, dpamt=off: merge each GiB's 512 2M leaves into a 1G leaf (PROMOTE; no KVM path has it)
///     destroy                       # kvm_destroy_vm(): zap, release the HKID, reclaim and free every S-EPT and control page (only check may follow)
///
/// `td platform=snp vcpus=8` makes it an SEV-SNP host (`SNPVM`, run by
/// `SNPHostRun`) with the same commands: `accept` is PSC then PVALIDATE
/// through the guest (`linux` and `2m`: 2M entries where aligned; `4k`),
/// `convert` the guest's `set_memory_decrypted()`/`set_memory_encrypted()`,
/// `attributes` the VMM converting on its own (`kvm_convert_memory()`),
/// `build` SNP_LAUNCH_UPDATE, and one more command:
///
///     rmpadjust 0x1000+512 vmpl=1   # an SVSM grants VMPL1 access (RMPADJUST)
///     psc-skip 0x1000+16            # adversarial VMM: reports page-state changes done, does nothing
///     psc-invert 0x1000+16          # adversarial VMM: converts the other way, reports success
///     psc-backward 0x1000+16        # adversarial KVM: writes back a PSC header whose cur_entry went backward
///     psc-honest 0x1000+16          # honest again
///     assign 0x1000+16              # adversarial host: RMPUPDATE to assigned, unasked (clears Validated)
///     rmp-shared 0x1000+16          # adversarial host: rmp_make_shared() of private pages, unasked
public struct HostScenario: Sendable {
    public enum Command: Sendable, Equatable {
        case build(Range<GuestFrameNumber>)
        case finalize
        /// Accept with edk2's `TdAcceptPages()` at a page size, or (nil) Linux's `tdx_accept_memory()`.
        case accept(Range<GuestFrameNumber>, PageLevel?)
        case access(Range<GuestFrameNumber>)
        case convert(Range<GuestFrameNumber>, toPrivate: Bool)
        case attributes(Range<GuestFrameNumber>, toPrivate: Bool)
        case punch(Range<GuestFrameNumber>)
        case cycle(Range<GuestFrameNumber>, count: Int)
        case inject(FaultPoint, Int)
        case check
        /// An adversarial host (issue 18 §5): `remove`, `readd`, `remap`, `refuse-aug`.
        case adversary(HostAttack, Range<GuestFrameNumber>)
        /// The host's own use of guest_memfd's shared pages under in-place
        /// conversion: `pin`, `unpin`, `hostmap`.
        case hostUse(HostUse, Range<GuestFrameNumber>)
        /// The race behind host priority (`TDXVM.hostContend`): a fault's AUG
        /// on each unmapped private entry of the range meets `acceptor`'s
        /// TDG.MEM.PAGE.ACCEPT holding it; the retry is left pending.
        case contend(Range<GuestFrameNumber>, acceptor: Int)
        /// SNP only: RMPADJUST by an SVSM at VMPL0 granting `vmpl` full access.
        case rmpadjust(Range<GuestFrameNumber>, vmpl: Int)
        /// SNP only: how the host answers page-state changes of the range
        /// from now on (`psc-skip`, `psc-invert`, `psc-backward`, `psc-honest`;
        /// `SNPVM.answerPageStateChanges`).
        case pscAnswer(SNPPSCAnswer, Range<GuestFrameNumber>)
        /// SNP only: the host's RMPUPDATE the guest did not ask for
        /// (`assign`, `rmp-shared`; `SNPVM.hostRMPUpdate`).
        case hostRMP(SNPHostRMPAction, Range<GuestFrameNumber>)
        /// `halt vcpu=N`: the vCPU's TDVMCALL(HLT) blocks it in
        /// `kvm_vcpu_block()`, outside guest mode (`TDXVM.halt(vcpu:)`);
        /// `wake vcpu=N` re-enters it (`TDXVM.wake(vcpu:)`).
        case halt
        case wake
        /// `promote GFN+COUNT` (whole GiBs): TDH.MEM.PAGE.PROMOTE of each 1G
        /// region's PD of 512 2M leaves (`TDXVM.hostPromote1G`).
        case promote(Range<GuestFrameNumber>)
        /// `destroy`: the VM's teardown (`TDXVM.destroy()`).
        case destroy
    }

    /// Which confidential-computing host the scenario runs on.
    public enum Platform: String, Sendable, CaseIterable {
        case tdx
        case snp
    }

    /// What the host does with guest_memfd's pages through the file's
    /// userspace mapping (in-place conversion only: with VM-wide attributes
    /// the VMM's shared memory is separate and guest_memfd never sees it).
    public enum HostUse: String, Sendable, CaseIterable {
        /// `pin_user_pages()` (`TDXVM.hostPin`).
        case pin
        /// `unpin_user_pages()` (`TDXVM.hostUnpin`).
        case unpin
        /// A load or store by the VMM (`TDXVM.hostMap`): SIGBUS on a private page.
        case hostmap
        /// A read of guest memory through the VMM's mapping, as QEMU's
        /// `dump-guest-memory` makes (`TDXVM.hostRead`): the guest's data
        /// for shared pages only (issue 18 §5; also with VM-wide attributes).
        case hostread
    }

    /// What an adversarial host does to a range of private memory.
    public enum HostAttack: String, Sendable, CaseIterable {
        /// TDH.MEM.RANGE.BLOCK, TRACK, PAGE.REMOVE (`TDXVM.hostRemove`).
        case remove
        /// TDH.MEM.PAGE.AUG again, unasked (`TDXVM.hostReadd`).
        case readd
        /// REMOVE then AUG of a new frame (`TDXVM.hostRemap`).
        case remap
        /// Never AUG (`TDXVM.hostRefuseAUG`).
        case refuseAUG = "refuse-aug"
    }

    /// The most frames one `readd` or `remap` may cover: 1 GiB.
    public static let maxReaddFrames: UInt64 = PageLevel.size1G.pages
    /// The most page conversions all `cycle` commands of a file may ask for
    /// (COUNT × pages, summed): about 6 s in a release build at ~6 µs each.
    public static let maximumCyclePages: UInt64 = 1_000_000

    public var platform = Platform.tdx
    public var options = KVMOptions()
    public var features = TDXModuleFeatures()
    public var vcpus = 8
    public var slots: [Memslot] = []
    public var commands: [Command] = []
    /// Where each command came from (line numbers), for messages.
    public var lines: [Int] = []
    /// The guest vCPU each command runs on (`vcpu=N` on `accept` and
    /// `access`; 0 for every other command): whose clock its TDCALLs and
    /// exits charge and which vCPU the TDX module and KVM see.
    public var commandVCPUs: [Int] = []

    /// The vCPU of command `i` (0 when the scenario was built without one).
    public func vcpu(ofCommand i: Int) -> Int { i < commandVCPUs.count ? commandVCPUs[i] : 0 }

    public init() {}

    /// Parses the text format; errors name the line. `platform` (the
    /// command line's `--platform`) runs the scenario on that host: a td
    /// line naming the other platform is an error.
    public static func parse(_ text: String, platform: Platform? = nil) throws -> HostScenario {
        var s = HostScenario()
        var cyclePages: UInt64 = 0
        if let platform { s.platform = platform }
        var sawTD = false
        /// The line of a `destroy`, after which only `check` (and td/slot lines) may come.
        var destroyLine: Int?
        /// Commands' `vcpu=` with their lines, checked against the td line's vcpus once all is read.
        var vcpuLines: [(vcpu: Int, line: Int)] = []
        for (i, raw) in text.splitLines().enumerated() {
            let n = i + 1
            let line = raw.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            let f = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
            guard let verb = f.first else { continue }
            func err(_ m: String) -> CocomemError { CocomemError(.invalidScenario, "host scenario line \(n): \(m)") }
            func frames(_ k: Int) throws -> Range<GuestFrameNumber> {
                guard f.count > k else { throw err("\(verb) needs a GFN[+COUNT]") }
                // Empty parts kept: "+" alone split to nothing and parts[0] trapped (the host fuzzer's find).
                let parts = f[k].split(separator: "+", omittingEmptySubsequences: false)
                guard parts.count <= 2, let a = parseInteger(parts[0]) else { throw err("bad frames '\(f[k])'") }
                let c = parts.count == 2 ? parseInteger(parts[1]) : 1
                guard let c, c > 0, a <= UInt64.max >> 13, c <= 1 << 40 else { throw err("bad frame count in '\(f[k])'") }
                return Range(start: GuestFrameNumber(a), count: c)
            }
            /// key=value pairs in the order written.
            func pairs(_ from: Int) throws -> [(String, String)] {
                try f.dropFirst(from).map { p in
                    let kv = p.split(separator: "=", maxSplits: 1).map(String.init)
                    guard kv.count == 2 else { throw err("expected key=value, got '\(p)'") }
                    return (kv[0], kv[1])
                }
            }
            func kv(_ from: Int) throws -> [String: String] {
                Dictionary(try pairs(from), uniquingKeysWith: { _, b in b })
            }
            /// The guest commands' optional `vcpu=N` among `f[k...]`, with
            /// the other words left over.
            var commandVCPU = 0
            func splitVCPU(_ k: Int) throws -> [String] {
                var rest: [String] = []
                var seen = false
                for w in f.dropFirst(k) {
                    guard w.hasPrefix("vcpu=") else { rest.append(w); continue }
                    let v = w.dropFirst(5)
                    guard !seen else { throw err("\(verb) takes one vcpu=") }
                    guard let x = Int(v), x >= 0, x < 4096 else { throw err("vcpu must be a vCPU index 0...4095, got '\(v)'") }
                    seen = true
                    commandVCPU = x
                }
                if seen { vcpuLines.append((commandVCPU, n)) }
                return rest
            }
            func onOff(_ v: String, _ key: String) throws -> Bool {
                guard v == "on" || v == "off" else { throw err("\(key) must be on or off") }
                return v == "on"
            }
            if let d = destroyLine, !["check", "td", "slot"].contains(verb) {
                throw err("\(verb) after destroy (line \(d)): the VM is gone; only check may follow")
            }
            switch verb {
            case "td":
                sawTD = true
                // host= and module= set whole configurations: apply them
                // first so that the other options refine them.
                let rank = ["host": 0, "module": 1]
                let ordered = try pairs(1).enumerated().sorted { (rank[$0.element.0] ?? 2, $0.offset) < (rank[$1.element.0] ?? 2, $1.offset) }
                if let p = ordered.first(where: { $0.element.0 == "platform" })?.element.1 {
                    guard let pl = Platform(rawValue: p) else { throw err("platform must be tdx or snp") }
                    if let platform, platform != pl { throw err("platform=\(p) on the td line, but --platform \(platform.rawValue)") }
                    s.platform = pl
                }
                for (k, v) in ordered.map(\.element) {
                    if s.platform == .snp, !["platform", "vcpus", "check", "policy"].contains(k) {
                        throw err("td option '\(k)' is for the TDX host; platform=snp takes vcpus=, check= and policy=in-place")
                    }
                    if s.platform == .snp, k == "policy", v != ConversionPolicy.inPlace.rawValue {
                        throw err("policy=\(v) orders the TDX host's S-EPT and folio splits; platform=snp takes policy=in-place (or none: VM-wide attributes)")
                    }
                    switch k {
                    case "platform": break
                    case "vcpus":
                        guard let x = Int(v), x >= 1, x <= 4096 else { throw err("vcpus must be 1...4096") }
                        s.vcpus = x
                    case "host":
                        guard let h = TDXHostModel(rawValue: v) else { throw err("host must be tdx or tdx-huge") }
                        (s.options, s.features) = h.configuration
                    case "policy":
                        guard let p = ConversionPolicy(rawValue: v) else { throw err("policy must be one of \(ConversionPolicy.allCases.map(\.rawValue).joined(separator: ", "))") }
                        s.options.conversionPolicy = p
                    case "precheck": s.options.lpagePrecheck = try onOff(v, k)
                    case "accept-level":
                        guard let p = AcceptLevelPolicy(rawValue: v) else { throw err("accept-level must be inhibit, per-fault or none") }
                        s.options.acceptLevelPolicy = p
                    case "huge-pages": s.options.tdxHugePage = try onOff(v, k)
                    case "module":
                        guard v == "new" || v == "legacy" else { throw err("module must be new or legacy") }
                        let dp = s.features.dynamicPAMT
                        s.features = v == "new" ? TDXModuleFeatures() : .legacy
                        s.features.dynamicPAMT = dp
                    case "dpamt":
                        // on is v4, the series the model followed before v6 had a name here.
                        guard ["on", "off", "v4", "v6"].contains(v) else { throw err("dpamt must be on, off, v4 or v6") }
                        s.features.dynamicPAMT = v != "off"
                        if v == "v6" { s.options.dpamtSeries = .v6 } else if v != "off" { s.options.dpamtSeries = .v4 }
                    case "host-phys-bits":
                        guard let b = Int(v), (36...52).contains(b) else { throw err("host-phys-bits must be 36...52") }
                        s.options.hostPhysBits = b
                    case "host-memory":
                        guard let b = (try? ByteCount.parse(v))?.value, b >= PageLevel.size2M.bytes, b <= 1 << 52 else { throw err("host-memory must be a size from 2M to 4P") }
                        s.options.hostMemoryPages = b / PageLevel.size4K.bytes
                    case "demote-loop": s.options.demoteRestartableLoop = try onOff(v, k)
                    case "spec-accept": s.features.acceptWalkCases = try onOff(v, k) ? .specTable82 : .moduleCode
                    case "sept-ve-disable": s.options.septVEDisable = try onOff(v, k)
                    case "check": s.options.checkInvariants = try onOff(v, k)
                    case "vm-attributes": s.options.vmMemoryAttributes = try onOff(v, k)
                    case "host-placement", "sept-placement":
                        guard let p = SEPTPlacement(rawValue: v) else { throw err("\(k) must be contiguous, scattered or buddy") }
                        s.options.septPlacement = p
                    case "host-free-4k":
                        guard let x = parseInteger(Substring(v)), x <= 1 << 32 else { throw err("host-free-4k must be a page count 0...4294967296") }
                        s.options.hostIsolatedFreePages = x
                    case "module-1g": s.features.privateMappings1G = try onOff(v, k)
                    case "hp-lock-timeout":
                        guard let t = Double(v), TrustDomain.hpLockTimeoutRange.contains(t) else { throw err("hp-lock-timeout must be seconds from 0.01 to 100 (the module's MIN/MAX_HP_LOCK_TIMEOUT_USEC)") }
                        s.options.hpLockTimeout = t
                    default: throw err("unknown td option '\(k)'")
                    }
                }
            case "slot":
                let d = try kv(1)
                guard let id = d["id"].flatMap({ Int($0) }), let b = d["base"].flatMap({ parseInteger(Substring($0)) }), let p = d["pages"].flatMap({ parseInteger(Substring($0)) }) else {
                    throw err("slot needs id=, base= and pages=")
                }
                guard p > 0, p <= 1 << 32, b <= 1 << 40 else { throw err("slot size out of range") }
                let backing = try d["backing"].map { v -> GmemBacking in
                    guard let g = GmemBacking(rawValue: v) else { throw err("backing must be buddy, hugetlb-2m or hugetlb-1g") }
                    return g
                } ?? .hugetlb2M
                s.slots.append(Memslot(id: id, baseGFN: GuestFrameNumber(b), pages: p, backing: backing, userspaceAddrAligned: d["uaddr-aligned"] != "off"))
            case let v where s.platform == .snp && ["inject", "remove", "readd", "remap", "refuse-aug", "hostread", "contend", "halt", "wake"].contains(v):
                throw err("\(verb) is a TDX host command; the SNP host (platform=snp) has no such step")
            case let v where SNPPSCAnswer(rawValue: v) != nil:
                guard s.platform == .snp else { throw err("\(verb) is an SNP host command (page-state changes): it needs platform=snp on the td line") }
                guard f.count <= 2 else { throw err("\(verb) takes one GFN[+COUNT], got '\(f[2])'") }
                s.commands.append(.pscAnswer(SNPPSCAnswer(rawValue: v)!, try frames(1)))
            case let v where SNPHostRMPAction(rawValue: v) != nil:
                guard s.platform == .snp else { throw err("\(verb) is an SNP host command (an RMPUPDATE): it needs platform=snp on the td line") }
                guard f.count <= 2 else { throw err("\(verb) takes one GFN[+COUNT], got '\(f[2])'") }
                let r = try frames(1)
                // assign prepares unassigned pages 2M range by 2M range: bounded as readd is.
                if v == "assign", r.count > HostScenario.maxReaddFrames {
                    throw err("assign covers at most \(HostScenario.maxReaddFrames) frames (1 GiB), got \(r.count)")
                }
                s.commands.append(.hostRMP(SNPHostRMPAction(rawValue: v)!, r))
            case "rmpadjust":
                guard s.platform == .snp else { throw err("rmpadjust needs platform=snp on the td line") }
                let d = try kv(2)
                guard d.keys.allSatisfy({ $0 == "vmpl" }), let v = Int(d["vmpl"] ?? "1"), (1...3).contains(v) else {
                    throw err("rmpadjust takes GFN[+COUNT] and vmpl=1...3")
                }
                s.commands.append(.rmpadjust(try frames(1), vmpl: v))
            case "halt", "wake":
                let rest = try splitVCPU(1)
                guard f.contains(where: { $0.hasPrefix("vcpu=") }) else { throw err("\(verb) needs vcpu=N") }
                guard rest.isEmpty else { throw err("\(verb) takes only vcpu=N, got '\(rest[0])'") }
                s.commands.append(verb == "halt" ? .halt : .wake)
            case "build": s.commands.append(.build(try frames(1)))
            case "finalize": s.commands.append(.finalize)
            case "accept":
                let rest = try splitVCPU(2)
                guard rest.count <= 1 else { throw err("accept takes GFN[+COUNT], a driver (4k, 2m or linux) and vcpu=N, got '\(rest[1])'") }
                let lv = rest.first ?? "linux"
                guard ["4k", "2m", "linux"].contains(lv) else { throw err("accept driver must be 4k, 2m (TDVF) or linux") }
                s.commands.append(.accept(try frames(1), lv == "4k" ? .size4K : lv == "2m" ? .size2M : nil))
            case "access":
                let rest = try splitVCPU(2)
                guard rest.isEmpty else { throw err("access takes GFN[+COUNT] and vcpu=N, got '\(rest[0])'") }
                s.commands.append(.access(try frames(1)))
            case "convert", "attributes":
                guard f.count > 2, f[2] == "shared" || f[2] == "private" else { throw err("\(verb) needs shared or private") }
                let r = try frames(1)
                s.commands.append(verb == "convert" ? .convert(r, toPrivate: f[2] == "private") : .attributes(r, toPrivate: f[2] == "private"))
            case "punch": s.commands.append(.punch(try frames(1)))
            case "cycle":
                guard f.count > 2, let c = Int(f[2]), c > 0, c <= 1_000_000 else { throw err("cycle needs a count 1...1000000") }
                let r = try frames(1)
                // Each cycle converts and accepts every page of the range, so
                // the work is COUNT × pages: bounded over the whole file, not
                // per line (`cycle 0x0+0x80000 1000000` ran for hours; issue 15).
                cyclePages += UInt64(c).multipliedReportingOverflow(by: r.length).partialValue
                guard cyclePages <= HostScenario.maximumCyclePages, r.length <= HostScenario.maximumCyclePages else {
                    throw err("cycle commands may convert at most \(HostScenario.maximumCyclePages) pages in all (COUNT × pages, summed over the file)")
                }
                s.commands.append(.cycle(r, count: c))
            case "inject":
                guard f.count > 1, let p = FaultPoint(rawValue: f[1]) else {
                    throw err("inject needs one of \(FaultPoint.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                let c = f.count > 2 ? Int(f[2]) : 1
                guard let c, c > 0 else { throw err("bad inject count") }
                s.commands.append(.inject(p, c))
            case "check": s.commands.append(.check)
            case "promote":
                guard f.count <= 2 else { throw err("promote takes one GFN[+COUNT], got '\(f[2])'") }
                let r = try frames(1)
                guard r.lowerBound.isAligned(to: .size1G), r.length % PageLevel.size1G.pages == 0 else {
                    throw err("promote merges whole GiBs: GFN and COUNT must be multiples of 0x40000")
                }
                s.commands.append(.promote(r))
            case "destroy":
                guard f.count == 1 else { throw err("destroy takes no arguments, got '\(f[1])'") }
                destroyLine = n
                s.commands.append(.destroy)
            case "remove", "readd", "remap", "refuse-aug":
                guard f.count <= 2 else { throw err("\(verb) takes one GFN[+COUNT], got '\(f[2])'") }
                let r = try frames(1)
                // readd and remap fault pages in one at a time (as
                // KVM_PRE_FAULT_MEMORY does): bounded so a typo cannot
                // run for hours.
                if verb == "readd" || verb == "remap", r.count > HostScenario.maxReaddFrames {
                    throw err("\(verb) covers at most \(HostScenario.maxReaddFrames) frames (1 GiB), got \(r.count)")
                }
                s.commands.append(.adversary(HostAttack(rawValue: verb)!, r))
            case "contend":
                // vcpu= names the accepting vCPU here (default 1), not the one the command runs on.
                let rest = try splitVCPU(2)
                let acceptor = f.contains(where: { $0.hasPrefix("vcpu=") }) ? commandVCPU : 1
                commandVCPU = 0
                guard acceptor != 0 else { throw err("contend's vcpu= is the vCPU inside ACCEPT; vCPU 0 is the faulting one, so it must be 1 or more") }
                guard rest.isEmpty else { throw err("contend takes GFN[+COUNT] and vcpu=N, got '\(rest[0])'") }
                let r = try frames(1)
                guard r.count <= TDXVM.maxContendFrames else {
                    throw err("contend covers at most \(TDXVM.maxContendFrames) frames (one 2M range), got \(r.count)")
                }
                if acceptor == 1 { vcpuLines.append((1, n)) }
                s.commands.append(.contend(r, acceptor: acceptor))
            case "pin", "unpin", "hostmap", "hostread":
                // hostmap and hostread also run with VM-wide attributes: the VMM's own shared memory.
                guard s.options.conversionPolicy == .inPlace || verb == "hostmap" || verb == "hostread" else {
                    throw err("\(verb) needs policy=in-place on the td line (only in-place conversion maps guest_memfd's pages to the host)")
                }
                guard f.count <= 2 else { throw err("\(verb) takes one GFN[+COUNT], got '\(f[2])'") }
                s.commands.append(.hostUse(HostUse(rawValue: verb)!, try frames(1)))
            default: throw err("unknown command '\(verb)'")
            }
            if verb != "td" && verb != "slot" { s.lines.append(n); s.commandVCPUs.append(commandVCPU) }
        }
        // After the whole file: a td line may follow the commands.
        if let bad = vcpuLines.first(where: { $0.vcpu >= s.vcpus }) {
            throw CocomemError(.invalidScenario, "host scenario line \(bad.line): vcpu=\(bad.vcpu), but the TD has \(s.vcpus) vCPUs (0...\(s.vcpus - 1))")
        }
        guard sawTD || !s.slots.isEmpty else { throw CocomemError(.invalidScenario, "host scenario has no td or slot line") }
        guard !s.slots.isEmpty else { throw CocomemError(.invalidScenario, "host scenario has no slot line") }
        try s.options.checkAttributesSwitch()
        if s.options.hostIsolatedFreePages > 0 && s.options.septPlacement != .buddy {
            throw CocomemError(.invalidScenario, "host-free-4k is the buddy allocator's free-memory state: it needs host-placement=buddy")
        }
        return s
    }

    /// The 4 GiB, 8-vCPU TD behind seed 004's [5] and [6] (PUBLISHED.md):
    /// three memslots; firmware and early-kernel 4K accepts on the GFNs Yan
    /// Zhao reported; the three busiest private↔shared churn GFNs with
    /// their counts; TDVF's 2M pre-acceptance of low memory and the kernel's
    /// lazy 2M accepts of 134 chunks of high memory on the way to login.
    public static let seed004 = """
    # seed 004 [5]/[6]: 4 GiB TD, 8 vCPUs, three memslots (PUBLISHED.md)
    td vcpus=8 host=tdx-huge
    slot id=1 base=0x0 pages=0x80000 backing=hugetlb-2m
    slot id=2 base=0x100000 pages=0x80000 backing=hugetlb-2m
    slot id=3 base=0xffc00 pages=0x400 backing=buddy
    build 0xffc00+0x400          # firmware volume
    build 0x800+6                # TD HOB and temporary memory
    finalize
    accept 0x806+506 4k          # TDVF, once per page
    accept 0x7e800+512 4k        # TDVF, once per page
    accept 0x0+0x80000 2m        # TDVF pre-accepts RAM below 4 GiB at 2M
    cycle 0x7d9d7+1 974          # private<->shared churn, busiest GFNs
    cycle 0x7d9da+1 476
    cycle 0x7d9d9+1 156
    accept 0x100000+0x10c00 linux # kernel: lazy accepts up to login
    check
    """
}
