import Foundation
import KVM
public import MemoryModel
import Simulation

/// One operation of a guest vCPU's program in `model: accept-memory`
/// (parameters `vcpu0`, `vcpu1`, `vcpu2`: operations separated by `;`,
/// ranges as the host language writes them, `GFN[+COUNT]`).
///
/// - `accept RANGE`: the kernel's `accept_memory(start, size)`
///   (drivers/firmware/efi/unaccepted_memory.c), stepped at its lock steps;
///   its `arch_accept_memory()` is `tdx_accept_memory()`, whose TDCALLs take
///   the largest size the alignment allows and fall back on SIZE_MISMATCH,
///   so the size a run is accepted at is the host's mapping (`host: tdx`:
///   4K, `tdx-huge`: 2M).
/// - `accept RANGE at 2M|4K`: an accepter that takes a fixed page size
///   instead of the alignment's: edk2's `TdAcceptPages()`
///   (`MdePkg/Library/TdxLib/AcceptPages.c`) with its `AcceptPageSize`
///   (TDVF's `PcdTdxAcceptPageSize`): at 2M, 2M pages where aligned and 4K
///   for the unaligned ends, a SIZE_MISMATCH recursing as 512 4K pages; at
///   4K, page by page; TDX_PAGE_ALREADY_ACCEPTED tolerated (counted as a
///   duplicate). It is the firmware's accept (the host language's `accept
///   RANGE 2m|4k`), one step, and goes past the kernel's unaccepted bitmap
///   (the firmware has none: it hands what it did not accept over as
///   unaccepted in the memory map), so an `accept_memory()` of the same
///   range afterwards meets TDX_PAGE_ALREADY_ACCEPTED, as a kernel would
///   whose firmware accepted memory it reported unaccepted.
/// - `touch RANGE`: loads/stores of every page (`access RANGE vcpu=N`).
/// - `convert RANGE shared`: `set_memory_decrypted()`: TDG.VP.VMCALL<MapGPA>,
///   which the VMM and KVM carry out under the TD's conversion policy (the
///   host language's `convert`, one call).
/// - `convert RANGE private`: `set_memory_encrypted()`: MapGPA to private
///   (`convert RANGE private`), then `tdx_accept_memory()` of the range
///   (`accept RANGE linux`): two steps, as tdx_enc_status_changed() makes them.
/// - `kexec-load RANGE`: `kexec_file_load()` of an image whose segment's
///   destination is RANGE; kernels with "kexec_core: accept unaccepted kexec
///   segments' destination addresses" (6.15) call `accept_memory()` on it
///   in `sanity_check_segment_list()` (kernel/kexec_core.c, after its overlap, size and crash-range checks), stepped like `accept`; older ones accept nothing.
/// - `reboot`: `kernel_kexec()`: `machine_shutdown()` stops the other CPUs
///   (their REBOOT_VECTOR IPI waits while one is inside `accept_memory()`
///   with interrupts off), then `machine_kexec()`'s `relocate_kernel` copies
///   into the destination (`access RANGE vcpu=N`). The TD is in the new
///   kernel afterwards: the model ends there.
public enum ProgramOp: Sendable, Hashable, CustomStringConvertible {
    case accept(Range<GuestFrameNumber>)
    case acceptAt(Range<GuestFrameNumber>, PageLevel)
    case touch(Range<GuestFrameNumber>)
    case convert(Range<GuestFrameNumber>, toPrivate: Bool)
    case kexecLoad(Range<GuestFrameNumber>)
    case reboot

    /// The operation as a program writes it.
    public var description: String {
        switch self {
        case .accept(let r): "accept \(Self.text(r))"
        case .acceptAt(let r, let l): "accept \(Self.text(r)) at \(l == .size2M ? "2M" : "4K")"
        case .touch(let r): "touch \(Self.text(r))"
        case .convert(let r, let p): "convert \(Self.text(r)) \(p ? "private" : "shared")"
        case .kexecLoad(let r): "kexec-load \(Self.text(r))"
        case .reboot: "reboot"
        }
    }

    /// `GFN` for one frame, else `GFN+COUNT`, as the host language writes ranges.
    static func text(_ r: Range<GuestFrameNumber>) -> String {
        r.length == 1 ? hex(r.lowerBound.value) : "\(hex(r.lowerBound.value))+\(hex(r.length))"
    }

    /// The last frame plus one the operation uses.
    var end: GuestFrameNumber? {
        switch self {
        case .accept(let r), .acceptAt(let r, _), .touch(let r), .convert(let r, _), .kexecLoad(let r): r.upperBound
        case .reboot: nil
        }
    }

    /// Reads one program: operations separated by `;`.
    /// - Throws: `.invalidScenario` naming the operation.
    /// - Complexity: O(length of the text).
    public static func program(_ text: String) throws -> [ProgramOp] {
        let ops = text.split(separator: ";").map { $0.split(separator: " ").map(String.init) }.filter { !$0.isEmpty }
        guard !ops.isEmpty else { throw CocomemError(.invalidScenario, "a program needs at least one operation") }
        guard ops.count <= 8 else { throw CocomemError(.invalidScenario, "a program has at most 8 operations") }
        return try ops.map(op)
    }

    static func op(_ w: [String]) throws -> ProgramOp {
        func range(_ s: String) throws -> Range<GuestFrameNumber> {
            let parts = s.split(separator: "+", omittingEmptySubsequences: false).map(String.init)
            func num(_ t: String) -> UInt64? { t.hasPrefix("0x") ? UInt64(t.dropFirst(2), radix: 16) : UInt64(t) }
            guard (1...2).contains(parts.count), let a = num(parts[0]), let n = parts.count == 2 ? num(parts[1]) : 1,
                  n > 0, n <= 8192, a <= 1 << 20 else {
                throw CocomemError(.invalidScenario, "'\(s)' is not a range GFN[+COUNT] (up to 8192 frames below 4 GiB)")
            }
            return Range(start: GuestFrameNumber(a), count: n)
        }
        let line = w.joined(separator: " ")
        switch (w[0], w.count) {
        case ("accept", 2): return .accept(try range(w[1]))
        case ("accept", 4) where w[2] == "at":
            guard let level = ["2M": PageLevel.size2M, "4K": .size4K][w[3]] else {
                throw CocomemError(.invalidScenario, "'\(line)': the size must be 2M or 4K (TdAcceptPages' AcceptPageSize)")
            }
            return .acceptAt(try range(w[1]), level)
        case ("touch", 2): return .touch(try range(w[1]))
        case ("convert", 3) where ["shared", "private"].contains(w[2]): return .convert(try range(w[1]), toPrivate: w[2] == "private")
        case ("kexec-load", 2): return .kexecLoad(try range(w[1]))
        case ("reboot", 1): return .reboot
        default:
            throw CocomemError(.invalidScenario, "unknown operation '\(line)' (expected: accept RANGE, accept RANGE at 2M|4K, touch RANGE, convert RANGE shared|private, kexec-load RANGE, reboot)")
        }
    }
}

/// The host's and the VMM's moves in `model: accept-memory` (parameter
/// `host-steps`): each one line of the host command language, run between
/// any two vCPU steps, at most `host-budget` of them on a path.
enum HostMove {
    /// The verbs a host move may use, with the real calls behind them.
    static let verbs: [String: (actor: ActorID, call: String)] = [
        "remove": (.host, "KVM's zap of private memory: a crossing 2M leaf split first, then TDH.MEM.RANGE.BLOCK, TDH.MEM.TRACK, TDH.MEM.PAGE.REMOVE"),
        "readd": (.host, "fault-in: KVM_PRE_FAULT_MEMORY, TDH.MEM.PAGE.AUG (PENDING)"),
        "remap": (.host, "REMOVE, then AUG of another frame"),
        "refuse-aug": (.host, "the host never AUGs these frames"),
        "punch": (.vmm, "fallocate(PUNCH_HOLE) on guest_memfd: KVM zaps the range"),
        "attributes": (.vmm, "KVM_SET_MEMORY_ATTRIBUTES on its own (no MapGPA): KVM splits a crossing leaf and zaps"),
        "pin": (.host, "pin_user_pages() through guest_memfd's mapping"),
        "unpin": (.host, "unpin_user_pages()"),
        "hostmap": (.host, "VMM load/store through guest_memfd's mapping"),
    ]

    /// Reads `host-steps` (host commands separated by `;` or `,`).
    /// - Throws: `.invalidScenario` for a verb that is not a host move or a line the host language refuses.
    static func steps(_ text: String, header: String) throws -> [ModelStep] {
        let lines = text.split(whereSeparator: { $0 == ";" || $0 == "," }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        return try lines.map { l in
            let verb = String(l.split(separator: " ").first ?? "")
            guard let v = verbs[verb] else {
                throw CocomemError(.invalidScenario, "host step '\(l)': not a host move (expected: \(verbs.keys.sorted().joined(separator: ", ")))")
            }
            do { _ = try HostScenario.parse(header + "\n" + l) } catch let e as CocomemError {
                throw CocomemError(.invalidScenario, "host step '\(l)': \(e.message)")
            }
            return ModelStep(v.actor, l, call: v.call)
        }
    }
}

extension AcceptMemoryModel.Config {
    /// Seed 001 with a second vCPU (the verdict table's `001-kexec-2vcpu-*`
    /// rows, examples/check/accept-memory-kexec.yaml): vCPU 0 loads a kexec
    /// image whose segment goes to 6 MiB + 64 KiB and reboots into it; vCPU 1
    /// accepts the 4 MiB block at 4 MiB (its window overlaps the
    /// destination's unit) and touches its first page there.
    public static func kexecWhileAccepting(kernel: String) -> Self {
        var c = Self(kernel: kernel)
        c.programs = [[.kexecLoad(Range(start: GuestFrameNumber(0x600), count: 0x10)), .reboot],
                      [.accept(Range(start: GuestFrameNumber(0x400), count: 0x400)), .touch(GuestFrameNumber(0x600).only)]]
        c.vcpus = 2
        return c
    }
}
