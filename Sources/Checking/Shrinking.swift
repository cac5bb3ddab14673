/// Shrinking a failing operation sequence to a shortest one, as property
/// testers do (QuickCheck's `shrink`, Hypothesis's deletion passes): a
/// counterexample a maintainer can read is worth more than the seed that
/// found it.
public enum Shrinking {
    /// The sequence left after removing operations one at a time, for as
    /// long as what remains still fails.
    ///
    /// The result still fails and is 1-minimal: removing any single
    /// operation from it makes `fails` false. `fails(ops)` must be true.
    /// - Complexity: O(n²) calls of `fails` in the worst case, each on a
    ///   sequence of at most n operations.
    public static func oneMinimal<Operation>(_ ops: [Operation], fails: ([Operation]) -> Bool) -> [Operation] {
        var current = ops
        var progress = true
        // Removing one operation can make an earlier one removable (a
        // convert that only failed after a punch), so repeat until a whole
        // pass removes nothing.
        while progress {
            progress = false
            var i = 0
            while i < current.count {
                var candidate = current
                candidate.remove(at: i)
                if fails(candidate) {
                    current = candidate
                    progress = true
                } else {
                    i += 1
                }
            }
        }
        return current
    }
}
