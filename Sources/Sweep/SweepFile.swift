import Foundation
import MemoryModel
public import Simulation
public import Yams

/// A sweep file (docs/SCENARIOS.md, "Sweeps"): a scenario file in which a
/// value may be a list (`vcpus: [1, 8, 64]`) or a range (`memory: 4G..1T *2`),
/// each such value an axis, plus an optional `sweep:` section (`find:`,
/// `max-points:`). The points are the cross product of the axes, in file
/// order with the last axis fastest; each point is a concrete scenario file
/// read by `ScenarioFile`'s own reader, so every key of every step is
/// sweepable and every error names the key and the line.
// Yams' `Node` is a tree of values (strings, marks, arrays) without
// reference types, but it is not marked Sendable; a SweepFile never changes
// after `parse`, so sharing it across the runner's threads is safe.
public struct SweepFile: @unchecked Sendable {
    /// One list or range of the file.
    public struct Axis: @unchecked Sendable {
        /// The key's path, dotted (`guest.memory`, `steps.1.dump.level`, `workload.1`).
        public var path: String
        /// The column the value lands in (`guest_memory`, `step1_dump_level`; `workload` for a phase).
        public var column: String
        /// Each value as the file writes it.
        public var values: [String]
        /// The range it came from (nil: a list).
        public var range: SweepRange?
        /// The line of the value in the file.
        public var line: Int
        /// Where the value is in the node tree: an index per level.
        var location: [Int]
        /// The nodes a list gives (nil: a range, whose values are new scalars).
        var nodes: [Node]?
        var mark: Mark?
    }

    /// The most points a sweep runs without `--yes` (`sweep.max-points` changes it).
    public static let defaultMaxPoints: UInt64 = 100_000
    /// The most points a sweep runs even with `--yes`: the rows are held in memory until the write (about 5 KB a point).
    public static let hardMaxPoints: UInt64 = 1_000_000

    public var name: String
    /// The file's text, as read (the `runs` table keeps it).
    public var text: String
    public var axes: [Axis]
    public var find: FindSpec?
    public var maxPoints: UInt64
    /// The number of points of the cross product (at most `hardMaxPoints`).
    public var count: Int
    /// The file without its `sweep:` section.
    var root: Node

    /// Reads a sweep file; a file without lists or ranges is a sweep of one point.
    /// - Throws: `.invalidScenario` naming the file, the line and the key.
    public static func parse(_ text: String, name: String = "sweep") throws -> SweepFile {
        let normalized = text.replacingOccurrences(of: "\r\n", with: "\n")
        let composed: Node?
        try YAMLKeyGuard.check(normalized, name: name)
        do { composed = try Yams.compose(yaml: normalized) } catch let e as YamlError {
            throw CocomemError(.invalidScenario, "\(name) \(ScenarioFile.describe(e))")
        }
        guard let node = composed, let mapping = node.mapping else {
            throw CocomemError(.invalidScenario, "\(name): the file is empty or not a mapping (expected a scenario file, docs/SCENARIOS.md)")
        }
        var pairs: [(Node, Node)] = []
        var sweepNode: Node? = nil
        for (k, v) in mapping {
            if k.scalar?.string == "sweep" { sweepNode = v } else { pairs.append((k, v)) }
        }
        let root = Node.mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark))
        var axes: [Axis] = []
        try collect(root, path: [], location: [], into: &axes, name: name)
        var maxPoints = defaultMaxPoints
        var find: FindSpec? = nil
        if let s = sweepNode { (find, maxPoints) = try section(s, name: name) }
        var total: UInt64 = 1
        for a in axes {
            let (t, overflow) = total.multipliedReportingOverflow(by: UInt64(a.values.count))
            guard !overflow, t <= hardMaxPoints else {
                throw CocomemError(.invalidScenario, "\(name): the sweep has more than \(hardMaxPoints) points, more than cocomem runs in one sweep; narrow a range or split the file")
            }
            total = t
        }
        var file = SweepFile(name: name, text: text, axes: axes, find: nil, maxPoints: maxPoints, count: Int(total), root: root)
        if let find { file.find = try file.resolve(find) }
        return file
    }

    /// Reads a sweep file from `path` (`-` is standard input).
    public static func load(path: String) throws -> SweepFile {
        var isDir: ObjCBool = false
        guard path == "-" || (FileManager.default.fileExists(atPath: path, isDirectory: &isDir) && !isDir.boolValue),
              let h = path == "-" ? FileHandle.standardInput : FileHandle(forReadingAtPath: path) else {
            throw CocomemError(.io, "cannot read sweep file '\(path)'")
        }
        let d = h.readDataToEndOfFile()
        guard d.count <= 1 << 24 else { throw CocomemError(.invalidScenario, "\(path): larger than 16 MiB, not a sweep file") }
        guard let t = String(data: d, encoding: .utf8) else { throw CocomemError(.invalidScenario, "\(path): not UTF-8 text") }
        return try parse(t, name: path)
    }

    /// Refuses a sweep above its limit unless the caller said yes.
    public func checkLimit(yes: Bool) throws {
        if count > maxPoints && !yes {
            throw CocomemError(.invalidScenario, "\(name): the sweep has \(count) points, more than the limit of \(maxPoints); pass --yes to run them all (or set sweep.max-points)")
        }
    }

    // MARK: axes

    static func collect(_ node: Node, path: [String], location: [Int], into axes: inout [Axis], name: String) throws {
        guard let mapping = node.mapping else { return }
        for (i, (k, v)) in mapping.enumerated() {
            guard let key = k.scalar?.string else { continue }
            let here = path + [key]
            let loc = location + [i]
            if path.isEmpty, key == "steps", let steps = v.sequence {
                for (j, step) in steps.enumerated() {
                    guard let m = step.mapping else { continue }
                    for (p, (kind, body)) in m.enumerated() where body.mapping != nil {
                        try collect(body, path: ["steps", String(j + 1), kind.scalar?.string ?? "?"], location: loc + [j, p], into: &axes, name: name)
                    }
                }
            } else if path.isEmpty || path.first == "steps", key == "workload", let phases = v.sequence {
                // A list of phases (the top level's, or a kexec step's next-kernel workload): an axis only as a list in a phase's place.
                for (j, phase) in phases.enumerated() where phase.sequence != nil {
                    try axes.append(listAxis(phase, path: here + [String(j + 1)], column: path.isEmpty ? "workload" : columnName(here),
                                             location: loc + [j], name: name))
                }
            } else if key == "commands" {
                continue  // the host command language: text, never an axis
            } else if v.mapping != nil {
                try collect(v, path: here, location: loc, into: &axes, name: name)
            } else if v.sequence != nil {
                try axes.append(listAxis(v, path: here, column: columnName(here), location: loc, name: name))
            } else if let s = v.scalar, SweepRange.looksLikeRange(s.string) {
                let r: SweepRange
                do { r = try SweepRange.parse(s.string) } catch let e as CocomemError {
                    throw CocomemError(.invalidScenario, "\(name) line \(v.mark?.line ?? 0): '\(key)': \(e.message)")
                }
                guard r.count <= hardMaxPoints else {
                    throw CocomemError(.invalidScenario, "\(name) line \(v.mark?.line ?? 0): '\(key)': range '\(s.string)' has \(r.count) values, more than cocomem runs in one sweep (\(hardMaxPoints))")
                }
                let values = (0..<r.count).map { r.text(r.value(at: $0)) }
                axes.append(Axis(path: here.joined(separator: "."), column: columnName(here), values: values, range: r,
                                 line: v.mark?.line ?? 0, location: loc, nodes: nil, mark: v.mark))
            }
        }
    }

    static func listAxis(_ v: Node, path: [String], column: String, location: [Int], name: String) throws -> Axis {
        let items = v.sequence.map(Array.init) ?? []
        let line = v.mark?.line ?? 0
        guard !items.isEmpty else {
            throw CocomemError(.invalidScenario, "\(name) line \(line): '\(path.last ?? "")': an empty list gives no points")
        }
        for item in items where item.scalar == nil {
            throw CocomemError(.invalidScenario, "\(name) line \(item.mark?.line ?? line): '\(path.last ?? "")': a list of values holds single values, got a \(item.mapping != nil ? "mapping" : "list")")
        }
        return Axis(path: path.joined(separator: "."), column: column, values: items.map { $0.scalar?.string ?? "" }, range: nil,
                    line: line, location: location, nodes: items, mark: v.mark)
    }

    /// `guest.memory` → `guest_memory`; `steps.1.dump.level` → `step1_dump_level`.
    static func columnName(_ path: [String]) -> String {
        if path.first == "steps", path.count >= 2 {
            return Row.column(["step" + path[1]] .joined() + "_" + path.dropFirst(2).joined(separator: "_"))
        }
        return Row.column(path.joined(separator: "_"))
    }

    // MARK: points

    /// The value index of each axis at point `index`: axes in file order,
    /// the last fastest.
    public func digits(of index: Int) -> [Int] {
        var rest = index
        var d = [Int](repeating: 0, count: axes.count)
        for a in axes.indices.reversed() {
            d[a] = rest % axes[a].values.count
            rest /= axes[a].values.count
        }
        return d
    }

    /// The concrete document of a point: each axis replaced by one of its values.
    public func document(digits: [Int], overriding: [Int: String] = [:]) -> Node {
        var node = root
        for (a, axis) in axes.enumerated() {
            let value: Node
            if let text = overriding[a] {
                value = .scalar(Node.Scalar(text, .implicit, .plain, axis.mark))
            } else if let nodes = axis.nodes {
                value = nodes[digits[a]]
            } else {
                value = .scalar(Node.Scalar(axis.values[digits[a]], .implicit, .plain, axis.mark))
            }
            node = Self.replace(node, at: axis.location[...], with: value)
        }
        return node
    }

    /// The scenario of a point, read by `ScenarioFile`'s reader (errors name the sweep file's lines).
    public func scenario(digits: [Int], overriding: [Int: String] = [:]) throws -> ScenarioFile {
        try ScenarioFile.parse(node: document(digits: digits, overriding: overriding), name: name)
    }

    static func replace(_ node: Node, at location: ArraySlice<Int>, with value: Node) -> Node {
        guard let i = location.first else { return value }
        let rest = location.dropFirst()
        switch node {
        case .mapping(let m):
            var pairs = Array(m).map { ($0.key, $0.value) }
            pairs[i].1 = replace(pairs[i].1, at: rest, with: value)
            return .mapping(Node.Mapping(pairs, m.tag, m.style, m.mark))
        case .sequence(let s):
            var items = Array(s)
            items[i] = replace(items[i], at: rest, with: value)
            return .sequence(Node.Sequence(items, s.tag, s.style, s.mark))
        default:
            return node
        }
    }

    /// The axis a name refers to: its path (`guest.memory`), its column
    /// (`guest_memory`) or the unique axis whose column ends with `_NAME`.
    public func axis(named n: String) throws -> Int {
        let c = Row.column(n)
        if let i = axes.firstIndex(where: { $0.path == n || $0.column == c }) { return i }
        let matches = axes.indices.filter { axes[$0].column.hasSuffix("_" + c) }
        if matches.count == 1 { return matches[0] }
        let known = axes.map(\.column).joined(separator: ", ")
        throw CocomemError(.invalidScenario, "\(name): 'find' names axis '\(n)', \(matches.isEmpty ? "which is not a list or range of the file" : "which is ambiguous") (axes: \(known.isEmpty ? "none" : known))")
    }
}
