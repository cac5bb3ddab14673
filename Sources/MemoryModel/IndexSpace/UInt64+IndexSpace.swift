/// Transitional: lets maps keyed by a raw number compile while the layers
/// move to typed keys. A map keyed by `UInt64` names no index space; new
/// code keys by a typed space instead.
extension UInt64: IndexSpace {
    @inlinable public var value: UInt64 { self }
}
