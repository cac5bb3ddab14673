public import MemoryModel

/// Per-VM memory attributes (`virt/kvm/kvm_main.c`,
/// KVM_SET_MEMORY_ATTRIBUTES, `kvm->mem_attr_array`): whether each guest
/// frame is private (`KVM_MEMORY_ATTRIBUTE_PRIVATE`). Everything starts
/// private, as a TD's memory does.
public struct MemoryAttributes: Sendable {
    /// Private by guest frame.
    public private(set) var privateAttr = IntervalMap<GuestFrameNumber, Bool>(initial: true)

    public init() {}

    /// `kvm_mem_is_private()`.
    /// - Complexity: O(log runs).
    public func isPrivate(_ gfn: GuestFrameNumber) -> Bool { privateAttr.value(at: gfn) }

    /// True if every frame in `frames` is private.
    /// - Complexity: O(log runs + k).
    public func allPrivate(_ frames: Range<GuestFrameNumber>) -> Bool { privateAttr.allSatisfy(in: frames) { $0 } }

    /// True if `frames` (non-empty) is not uniformly private or shared
    /// (`hugepage_has_attrs()` failing: KVM_LPAGE_MIXED_FLAG).
    /// - Complexity: O(log runs).
    public func isMixed(_ frames: Range<GuestFrameNumber>) -> Bool {
        privateAttr.run(containing: frames.lowerBound).range.upperBound < frames.upperBound
    }

    /// `kvm_vm_set_mem_attributes()`: the attribute store itself.
    /// - Complexity: O(log runs + k).
    mutating func set(_ frames: Range<GuestFrameNumber>, private isPrivate: Bool) { privateAttr.assign(frames, isPrivate) }
}
