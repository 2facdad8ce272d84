/// A spec turned into what `execve` needs: resolved path, argv, envp, ids.
/// Built on the submitting thread (PATH and NSS lookups may block), used on
/// the loop.
struct LaunchPlan: Sendable {
    let path: CStringArray
    let argv: CStringArray
    let envp: CStringArray
    let workingDirectory: CStringArray?
    let identity: ResolvedIdentity?
    let input: [UInt8]

    /// Prepares `spec` for the job `id`; a lookup that fails is a spawn failure.
    static func prepare(_ spec: JobSpec, id: JobID) -> Result<LaunchPlan, SpawnFailure> {
        let (envp, searchPath) = ProcessEnvironment.block(for: spec.environment, jobID: id)
        let path: String
        switch PathLookup.resolve(spec.command.program, searchPath: searchPath) {
        case .success(let found): path = found
        case .failure(let failure): return .failure(failure)
        }
        let identity: ResolvedIdentity?
        switch UserLookup.resolve(user: spec.user, group: spec.group) {
        case .success(let resolved): identity = resolved
        case .failure(let failure): return .failure(failure)
        }
        let input = spec.input.bytes ?? []
        return .success(LaunchPlan(
            path: CStringArray([path]),
            argv: CStringArray(spec.command.argv),
            envp: envp,
            workingDirectory: spec.workingDirectory.map { CStringArray([$0]) },
            identity: identity,
            input: input))
    }
}
