public import GuestKernel

extension KernelVersion {
    /// Where this release's behaviour `b` comes from: `mainline 6.12`,
    /// `stable 6.12.21` (a backport), or, when it lacks it, the mainline
    /// release that introduced it.
    func source(of b: KernelBehaviour) -> String {
        if let p = b.backport(for: release) { return "stable \(p)" }
        return "mainline \(b.origin.mainline)"
    }

    /// The commit that decided `b`, or what stands for it when the version
    /// table has no verified mainline id.
    static func commit(_ b: KernelBehaviour) -> String { b.origin.commit ?? "unverified" }

    /// `Kernel: 6.12.30 (mainline 6.12 + stable backports: 800f1059c99e from
    /// 6.12.21)` and one line per behaviour in the version table, each with
    /// `yes` or `no`, the commit and where it comes from (docs/VERSIONS.md).
    public var reportText: String {
        let backports = self.backports
        var o = "Kernel: \(release) ("
        o += release.patch == nil ? "mainline \(release.series).0" : "mainline \(release.series)"
        if !backports.isEmpty {
            o += " + stable backports: " + backports.map { "\(Self.commit($0.0)) from \($0.1)" }.joined(separator: ", ")
        }
        o += ")\n"
        for b in KernelBehaviour.allCases {
            let yes = has(b)
            o += "  " + (yes ? "yes " : "no  ") + Self.commit(b).padded(13) + b.origin.subject
            o += " (" + (yes ? source(of: b) : "from mainline \(b.origin.mainline)") + ")\n"
        }
        return o
    }

    /// `kernel_behaviours`: every behaviour of the version table with whether
    /// this release has it, the commit and its source.
    public var behavioursJSON: JSON {
        .array(KernelBehaviour.allCases.map { b in
            .object([("name", .string(b.rawValue)), ("present", .bool(has(b))),
                     ("commit", b.origin.commit.map { .string($0) } ?? .null),
                     ("subject", .string(b.origin.subject)), ("source", .string(source(of: b)))])
        })
    }
}
