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
    public var targetsPromoWatermark: Bool { order >= KernelVersion.v6_12.order }
    public var unacceptedIsUnusableForWatermarks: Bool { order < KernelVersion.v6_11.order }
    public var acceptsOneBlockWhileWatermarksZero: Bool { order >= KernelVersion.v6_16.order }
    public var reserveUnacceptedEndAligned: Bool { order >= KernelVersion.v7_0.order }
    public var hasPageUnacceptedType: Bool { order >= KernelVersion.v6_12.order }
    /// vmcoreinfo exports `NUMBER(PAGE_UNACCEPTED_MAPCOUNT_VALUE)` (6.16).
    public var exportsUnacceptedMapcount: Bool { order >= KernelVersion.v6_16.order }
    /// "kexec_core: accept unaccepted kexec segments' destination
    /// addresses" (Yan Zhao; mm tree 2025, in the 6.16-era tree):
    /// `sanity_check_segment_list()` ends with `accept_memory()` of every
    /// segment.
    public var acceptsKexecDestinations: Bool { order >= KernelVersion.v6_16.order }
    /// b3ba234171cd "kexec_file: load kernel at top of system RAM if
    /// required" (v6.8): a top-down kexec_file buffer walks System RAM from
    /// the top (`walk_system_ram_res_rev()`); 6.5 walks bottom-up.
    public var kexecFileWalksTopDown: Bool { order >= KernelVersion.v6_11.order }
}
