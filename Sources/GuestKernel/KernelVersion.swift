/// Kernel generations whose unaccepted-memory behaviour differs. Each
/// property names the change that introduced it.
public enum KernelVersion: String, Sendable, CaseIterable {
    /// v6.5-6.10: `try_to_accept_memory()` only after a failed watermark
    /// check, up to the high watermark, unaccepted pages counted as unusable.
    case v6_5 = "6.5"
    /// v6.11 ("mm: fix endless reclaim on machines with unaccepted memory"):
    /// `cond_accept_memory()` before the watermark check, up to high.
    case v6_11 = "6.11"
    /// v6.12: up to the promo watermark; `PageUnaccepted()` page type.
    case v6_12 = "6.12"
    /// 6.16-era: also the Mar 2025 fix that accepts one block per allocation
    /// while watermarks are still zero; kexec accepts segment destinations;
    /// vmcoreinfo exports PAGE_UNACCEPTED_MAPCOUNT_VALUE.
    case v6_16 = "6.16"
    /// 2026: the Feb 2026 `reserve_unaccepted()` end-alignment fix.
    case v7_0 = "7.0"

    var order: Int { KernelVersion.allCases.firstIndex(of: self)! }
    public var acceptsBeforeWatermarkCheck: Bool { order >= KernelVersion.v6_11.order }
    public var targetsPromoWatermark: Bool { order >= KernelVersion.v6_12.order }
    public var unacceptedIsUnusableForWatermarks: Bool { order < KernelVersion.v6_11.order }
    public var acceptsOneBlockWhileWatermarksZero: Bool { order >= KernelVersion.v6_16.order }
    public var reserveUnacceptedEndAligned: Bool { order >= KernelVersion.v7_0.order }
    public var hasPageUnacceptedType: Bool { order >= KernelVersion.v6_12.order }
    /// vmcoreinfo exports `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)` (6.16).
    public var exportsUnacceptedMapcount: Bool { order >= KernelVersion.v6_16.order }
}
