/// How a firmware's `GetMemoryMap()` turns its internal descriptor list into
/// the array the OS loader receives.
public enum GetMemoryMapStyle: String, Sendable, CaseIterable {
    /// edk2 (every release the model names): `CoreGetMemoryMap()`
    /// (MdeModulePkg/Core/Dxe/Mem/Page.c) merges each descriptor into an
    /// adjacent earlier one of the same type and attributes
    /// (`MergeMemoryMapDescriptor()`), clears `EFI_MEMORY_ACCESS_MASK`
    /// (RP, XP, RO) from every attribute and merges again
    /// (`MergeMemoryMap()`, Misc/MemoryAttributesTable.c).
    case edk2
    /// The descriptors as kept, one array entry each: what a memory map
    /// given to `cocomem accept` is taken to be (the map a firmware handed
    /// over, printed by `efi=debug`).
    case unmerged
}

extension EFIMemoryAttributes {
    /// `EFI_MEMORY_ACCESS_MASK` (MdePkg/Include/Uefi/UefiSpec.h): RP, XP and RO.
    public static let accessMask: Self = [.rp, .xp, .ro]
}

extension EFIMemoryMap {
    /// The map as `GetMemoryMap()` returns it under `style`.
    /// - Complexity: O(n) in the descriptors.
    public func returned(by style: GetMemoryMapStyle) -> EFIMemoryMap {
        switch style {
        case .unmerged:
            return self
        case .edk2:
            var merged: [EFIMemoryDescriptor] = []
            for var d in descriptors {
                d.attribute.subtract(.accessMask)
                if let last = merged.last, last.type == d.type, last.attribute == d.attribute, last.end == d.physicalStart {
                    merged[merged.count - 1].numberOfPages += d.numberOfPages
                } else {
                    merged.append(d)
                }
            }
            var out = self
            out.replaceDescriptors(merged)
            return out
        }
    }
}
