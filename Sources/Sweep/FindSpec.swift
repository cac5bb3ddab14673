import MemoryModel
import Yams

/// `sweep.find`: a threshold search along one axis (docs/SCENARIOS.md,
/// "Threshold search"): `{largest: memory, where: "total_boot_s < 45"}` is
/// the largest value of the axis at which the condition holds, for every
/// combination of the other axes; `smallest` the smallest.
public struct FindSpec: Sendable {
    /// `largest:` (true) or `smallest:`.
    public var largest: Bool
    /// The axis as the file names it.
    public var axisName: String
    /// The axis's index in `SweepFile.axes` (resolved on load).
    public var axis: Int = 0
    /// `where:` as written, and parsed.
    public var whereText: String
    public var condition: Expression
    /// `resolution:` (nil: the range's step, or 1 GiB / 1 for a geometric range).
    public var resolution: UInt64?
    /// The resolution the search uses (set on load; 0 for a list axis, which is not bisected).
    public var step: UInt64 = 0
}

extension SweepFile {
    static let sectionKeys = ["find", "max-points"]
    static let findKeys = ["largest", "smallest", "where", "resolution"]

    /// Reads the `sweep:` section.
    static func section(_ node: Node, name: String) throws -> (FindSpec?, UInt64) {
        func fail(_ n: Node, _ m: String) -> CocomemError { CocomemError(.invalidScenario, "\(name) line \(n.mark?.line ?? 0): \(m)") }
        guard let m = node.mapping else { throw fail(node, "'sweep' must be a mapping with keys \(sectionKeys.joined(separator: ", "))") }
        var find: FindSpec? = nil
        var maxPoints = defaultMaxPoints
        for (k, v) in m {
            let key = k.scalar?.string ?? ""
            switch key {
            case "max-points":
                guard let s = v.scalar?.string, let n = UInt64(s), n > 0 else { throw fail(v, "'max-points' must be a whole number above 0") }
                maxPoints = n
            case "find":
                guard let f = v.mapping else { throw fail(v, "'find' must be a mapping with keys \(findKeys.joined(separator: ", "))") }
                var largest: Bool? = nil
                var axis = ""
                var whereNode: Node? = nil
                var resolution: UInt64? = nil
                for (fk, fv) in f {
                    let fkey = fk.scalar?.string ?? ""
                    switch fkey {
                    case "largest", "smallest":
                        guard largest == nil else { throw fail(fk, "'find' takes one of largest, smallest") }
                        guard let s = fv.scalar?.string, !s.isEmpty else { throw fail(fv, "'\(fkey)' must name an axis") }
                        largest = fkey == "largest"
                        axis = s
                    case "where":
                        whereNode = fv
                    case "resolution":
                        guard let s = fv.scalar?.string else { throw fail(fv, "'resolution' must be a size or a number") }
                        do {
                            let r = try UInt64(s) ?? ByteCount.parse(s).value
                            guard r > 0 else { throw CocomemError(.invalidScenario, "must be above 0") }
                            resolution = r
                        } catch let e as CocomemError { throw fail(fv, "'resolution': \(e.message)") }
                    default:
                        throw fail(fk, "unknown key '\(fkey)' under find (expected: \(findKeys.joined(separator: ", ")))")
                    }
                }
                guard let largest else { throw fail(v, "'find' needs largest: AXIS or smallest: AXIS") }
                guard let whereNode, let w = whereNode.scalar?.string else { throw fail(v, "'find' needs where: CONDITION") }
                let condition: Expression
                do { condition = try Expression.parse(w) } catch let e as CocomemError { throw fail(whereNode, "'where': \(e.message)") }
                find = FindSpec(largest: largest, axisName: axis, whereText: w, condition: condition, resolution: resolution)
            default:
                throw fail(k, "unknown key '\(key)' under sweep (expected: \(sectionKeys.joined(separator: ", ")))")
            }
        }
        return (find, maxPoints)
    }

    /// Resolves the axis a find names and the resolution it bisects at.
    func resolve(_ spec: FindSpec) throws -> FindSpec {
        var f = spec
        f.axis = try axis(named: spec.axisName)
        if let r = axes[f.axis].range {
            f.step = spec.resolution ?? r.defaultResolution
        } else if spec.resolution != nil {
            throw CocomemError(.invalidScenario, "\(name): 'resolution' applies to a range axis; '\(axes[f.axis].column)' is a list (its values are the only candidates)")
        }
        return f
    }
}
