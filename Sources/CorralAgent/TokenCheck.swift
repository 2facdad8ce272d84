/// Compares a presented token with the agent's in time that depends only
/// on the expected token's length, so response times do not leak how many
/// leading bytes a guess got right.
package struct TokenCheck: Sendable {
    private let expected: [UInt8]

    package init(_ token: String) { expected = Array(token.utf8) }

    package func accepts(_ presented: some StringProtocol) -> Bool {
        let given = Array(presented.utf8)
        var difference: UInt8 = given.count == expected.count ? 0 : 1
        for index in expected.indices {
            let byte = index < given.count ? given[index] : 0
            difference |= byte ^ expected[index]
        }
        return difference == 0
    }
}
