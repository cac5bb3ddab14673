public import CoCoGuest
public import CostModel
public import KVM
public import MemoryModel

/// The SEV-SNP platform as a booted guest sees it when it runs on the KVM
/// SEV-SNP host model (`cocomem boot --platform snp --host snp`): every
/// access goes through `SNPVM.access(gfn:)` (a nested page fault
/// `sev_gmem_prepare()` resolves, #VC 0x404 on a page not validated), and
/// the host memory committed is guest_memfd's folios plus the VMSA pages.
public final class SNPHostPlatform: GuestPlatform {
    public let vm: SNPVM
    public init(vm: SNPVM) { self.vm = vm }
    public var name: String { "snp" }
    public var kind: PlatformKind { .snp }
    /// - Complexity: `SNPVM.isValidated`.
    public func isAccessible(_ r: AddressRange) -> Bool { vm.isValidated(r.framesCovering) }
    public var committedBytes: UInt64 { ByteCount.frames(vm.hostCommittedPages).value }
    public func touch(gfn: GuestFrameNumber, vcpu: Int) -> (OpCounts, AcceptOutcome) {
        let before = vm.ops
        let fatal = vm.access(gfn: gfn)
        return (vm.ops - before, fatal.map { .terminated($0) } ?? .ok)
    }
}
