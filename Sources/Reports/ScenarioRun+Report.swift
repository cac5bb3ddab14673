import MemoryModel
public import Simulation

extension ScenarioFile.Value {
    /// The file's tree as JSON (sizes stay strings such as `"64G"`, as in the file).
    public var json: JSON {
        switch self {
        case .string(let s), .text(let s): .string(s)
        case .int(let i): .uint(i)
        case .bool(let b): .bool(b)
        case .list(let xs): .array(xs.map(\.json))
        case .map(let es): .object(es.map { ($0.key, $0.value.json) })
        }
    }
}

extension JSON {
    /// The same object with `scenario_file` (the scenario that reruns it,
    /// in the file schema) as its first key.
    public func embedding(_ file: ScenarioFile) -> JSON {
        guard case .object(let fields) = self else { return self }
        return .object([("scenario_file", file.tree.json)] + fields)
    }

    /// The object with `key` added last when `value` is not nil.
    public func adding(_ key: String, _ value: JSON?) -> JSON {
        guard let value, case .object(let fields) = self else { return self }
        return .object(fields + [(key, value)])
    }
}

extension ScenarioRunResult.StepResult {
    public var text: String {
        switch self {
        case .kexec(let k): k.text
        case .dump(let d): d.text
        case .memUsage(let u): u.text
        case .host(let h, let violations): h.text(violations: violations)
        case .snpHost(let h, let violations): h.text(checked: violations != nil)
        case .notRun(let why, let outcome): "Not run: \(why).\nOutcome: \(outcome)\n"
        }
    }

    public var json: JSON {
        switch self {
        case .kexec(let k): k.json
        case .dump(let d): d.json
        case .memUsage(let u): u.json
        case .host(let h, let violations): h.json(violations: violations)
        case .snpHost(let h, let violations): h.json(checked: violations != nil)
        case .notRun(let why, let outcome): .object([("not_run", .string(why)), ("outcome", .string(outcome))])
        }
    }
}

extension ScenarioRunResult {
    /// The boot report, then each step's report under a `== step N: KIND ==` line.
    public var text: String {
        var o = boot?.text ?? ""
        for (i, s) in steps.enumerated() {
            if !o.isEmpty { o += "\n" }
            o += "== step \(i + 1): \(file.steps[i].kind)\(continuation(i)) ==\n" + s.text
        }
        return o
    }

    /// What a step that continues from the one before says in its header:
    /// which guest it starts from.
    func continuation(_ i: Int) -> String {
        guard file.steps[i].continues else { return "" }
        return i == 0 ? ", from the boot's guest" : ", from the guest step \(i) left"
    }

    /// One object: the whole file, the boot result and each step's result,
    /// each result embedding the file that reruns it alone (with the steps
    /// it continues from, for a `from: previous` step). A continuing
    /// step's entry says so (`"from": "previous"`).
    public var json: JSON {
        var fields: [(String, JSON)] = [("scenario_file", file.tree.json)]
        fields.append(("boot", boot.map { $0.json.embedding(file.only(step: nil)) } ?? .null))
        fields.append(("steps", .array(steps.enumerated().map { i, s in
            .object([("kind", .string(file.steps[i].kind))] + (file.steps[i].continues ? [("from", .string("previous"))] : [])
                        + [("outcome", .string(s.outcome)), ("result", s.json.embedding(file.only(step: i)))])
        })))
        fields.append(("outcome", .string(outcome)))
        return .object(fields)
    }
}
