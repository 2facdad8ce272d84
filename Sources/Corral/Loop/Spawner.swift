import CCorral
#if canImport(Glibc)
import Glibc
#endif

/// Calls the C spawn path with a launch plan and three stdio descriptors.
enum Spawner {
    struct Spawned {
        let pid: Int32
        let pidfd: Int32
        /// Killed before its exec (`SpawnWatch.abort`): it never ran the command.
        var aborted = false
    }

    enum Failure: Error {
        /// Out of processes or memory right now; worth retrying later.
        case transient(Errno)
        case failed(SpawnFailure)
    }

    /// How a spawn closes the descriptors a job must not inherit.
    enum CloseStrategy: Int32 {
        case closeRange = 0
        /// As without close_range (kernels before 5.9, seccomp).
        case listProcSelfFD = 1
        /// As without close_range and /proc: close every number below the limit.
        case closeBelowLimit = 2
    }

    /// For tests: forces a close fallback. Set only while no job spawns.
    static func forceCloseStrategy(_ strategy: CloseStrategy) {
        cc_spawn_set_close_fallback(strategy.rawValue)
    }

    static func spawn(_ plan: LaunchPlan, command: Command, workingDirectory: String?,
                      stdio: (Int32, Int32, Int32), nofileSoft: UInt64?, cgroupProcs: Int32? = nil,
                      nice: Int32? = nil, watch: SpawnWatch? = nil) -> Result<Spawned, Failure> {
        var request = cc_spawn_request()
        request.watch = watch?.pointer
        if let nice {
            request.set_nice = true
            request.nice = nice
        }
        request.cgroup_procs_fd = cgroupProcs ?? -1
        request.parent_pid = getpid()
        request.path = UnsafePointer(plan.path[0])
        request.argv = UnsafePointer(plan.argv.pointers)
        request.envp = UnsafePointer(plan.envp.pointers)
        request.cwd = plan.workingDirectory.map { UnsafePointer($0[0]) }
        request.stdio = (stdio.0, stdio.1, stdio.2)
        if let soft = nofileSoft {
            request.restore_nofile = true
            request.nofile_soft = soft
        }
        let groups = plan.identity?.groups ?? []
        var result = cc_spawn_result()
        let status = groups.withUnsafeBufferPointer { groupBuffer -> Int32 in
            if let identity = plan.identity {
                if let gid = identity.gid { request.set_gid = true; request.gid = gid }
                if let uid = identity.uid { request.set_uid = true; request.uid = uid }
                request.set_groups = true
                request.groups = groupBuffer.baseAddress
                request.group_count = groupBuffer.count
            }
            return cc_spawn(&request, &result)
        }
        if status == 0 { return .success(Spawned(pid: result.pid, pidfd: result.pidfd, aborted: result.aborted)) }
        let code = result.error
        if result.stage == CC_STAGE_CLONE, [EAGAIN, ENOMEM, EMFILE, ENFILE].contains(code) {
            return .failure(.transient(Errno(code: code)))
        }
        return .failure(.failed(failure(stage: result.stage, errno: code, plan: plan,
                                        command: command, workingDirectory: workingDirectory)))
    }

    private static func failure(stage: cc_spawn_stage, errno code: Int32, plan: LaunchPlan,
                                command: Command, workingDirectory: String?) -> SpawnFailure {
        let reason = SpawnFailure.describe(code)
        let path = String(cString: plan.path[0])
        let needsRoot = code == EPERM ? " (changing user or group needs root)" : ""
        switch stage {
        case CC_STAGE_CLONE:
            return SpawnFailure(errno: code, stage: .clone, message: "cannot create a process: \(reason)")
        case CC_STAGE_SETSID:
            return SpawnFailure(errno: code, stage: .setsid, message: "setsid failed: \(reason)")
        case CC_STAGE_STDIO:
            return SpawnFailure(errno: code, stage: .stdio, message: "cannot set up stdio: \(reason)")
        case CC_STAGE_CHDIR:
            return SpawnFailure(errno: code, stage: .chdir,
                                message: "cannot change directory to \(workingDirectory ?? "?"): \(reason)")
        case CC_STAGE_SETGROUPS:
            return SpawnFailure(errno: code, stage: .setgroups, message: "setgroups failed: \(reason)\(needsRoot)")
        case CC_STAGE_SETGID:
            return SpawnFailure(errno: code, stage: .setgid,
                                message: "setgid(\(plan.identity?.gid ?? 0)) failed: \(reason)\(needsRoot)")
        case CC_STAGE_SETUID:
            return SpawnFailure(errno: code, stage: .setuid,
                                message: "setuid(\(plan.identity?.uid ?? 0)) failed: \(reason)\(needsRoot)")
        case CC_STAGE_RLIMIT:
            return SpawnFailure(errno: code, stage: .rlimit, message: "cannot restore the open-files limit: \(reason)")
        case CC_STAGE_CGROUP:
            return SpawnFailure(errno: code, stage: .cgroup, message: "cannot join the job's cgroup: \(reason)")
        case CC_STAGE_PARENT_DEATH:
            return SpawnFailure(errno: code, stage: .parentDeath, message: "cannot tie the job to the runner's life: \(reason)")
        case CC_STAGE_PRIORITY:
            return SpawnFailure(errno: code, stage: .priority, message: "cannot set the job's nice value: \(reason)")
        case CC_STAGE_CLOSE_FDS:
            return SpawnFailure(errno: code, stage: .closeDescriptors, message: "cannot close descriptors: \(reason)")
        default:
            let shown = command.program == path ? path : "\(command.program) (\(path))"
            return SpawnFailure(errno: code, stage: .exec, message: "cannot execute \(shown): \(reason)")
        }
    }
}
