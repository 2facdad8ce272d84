import CCorral
import CLibUV
#if canImport(Glibc)
import Glibc
#endif

extension LoopJob {
    // MARK: Performing the lifecycle's actions

    /// Performs what `JobLifecycle` answered, in order. An action may lead
    /// to another event at once (a delivery that needs no inspection hands
    /// over): its actions are performed before the rest of these.
    func perform(_ actions: [JobLifecycle.Action]) {
        for action in actions {
            switch action {
            case .armTimer(let wait):
                startTimer(wait)
            case .stopTimer:
                stopTimer()
            case .sendStopSignal:
                // With SIGCONT, so a stopped job can act on it. The cgroup
                // tier's backstop sweep waits for the grace's SIGKILL (and the
                // leader's exit): a burst of deadlines costs no extra scans.
                signalGroup(spec.stopSignal.rawValue)
                signalGroup(SIGCONT)
                hurryDeath()
                if containment == .processGroup { scheduler.sweeper.requestSignal(self, spec.stopSignal.rawValue) }
            case .killEverything:
                killEverything()
            case .reapLeader(let killingTheRest):
                reapExitedLeader(killingTheRest: killingTheRest)
            case .forgetLeader:
                forgetVanishedLeader()
            case .sweepAfterLeader:
                // After every job, in both tiers: whatever carries its id outside
                // the killed group and leaf is killed (or, kept, listed), pass
                // after pass in later loop iterations until a scan finds nothing new.
                // Unless nothing at all was created on the host since the
                // leader: then the job forked nothing, and there is nothing to find.
                if forkedNothing { break }
                if keepsDaemons { keepDaemons() } else { scheduler.sweeper.request(self) }
            case .checkDrained:
                drainProgressed()
            case .beginDelivery(let ending):
                beginDelivery(ending)
            case .handOver:
                handOver()
            case .leaveTable:
                scheduler.jobDidFinish(self)
            }
        }
    }

    /// Something the result waits for ended (a pipe, the leaf, the sweep):
    /// delivers if nothing else is waited for.
    func drainProgressed() {
        guard case .draining = lifecycle.state else { return }
        perform(lifecycle.drained(ready: readyToDeliver))
    }

    /// No process or thread was created in this pid namespace since the
    /// leader (`ns_last_pid` is still its pid), so none of its own: one
    /// read of a sysctl, which spares a job that ran alone on a quiet host
    /// the sweep's /proc scan. (A job's fork in a child pid namespace gets
    /// a pid in this one too. Only 32,768 forks wrapping the counter back
    /// to the same pid could fool it.)
    /// Read when the exit is first seen, before the reap: while the leader
    /// is an unreaped zombie its pid cannot be handed out again, so an
    /// equal `ns_last_pid` is the leader's own.
    var forkedNothing: Bool { forkedNothingAtExit == true }

    // MARK: Signals

    /// Signals the job's process group. Only called while the leader is
    /// alive or an unreaped zombie, so the group id cannot have been reused.
    func signalGroup(_ signal: Int32) {
        guard !leaderVanished else { return }  // reaped elsewhere: the group id may belong to someone else now
        precondition(!leaderReaped, "group signal after the leader was reaped")
        Syscalls.kill(-pid, signal)
    }

    /// Has the leader, just signalled, run its exit in the real-time class
    /// if the kernel has already decided that it dies (SIGKILL, or a stop
    /// signal it neither handles, ignores nor blocks, and that ends it by
    /// default: `cc_hurry_dying_process` reads SIGKILL pending): among 100
    /// CPU-bound jobs on 2 cores a `sleep` took 142 ms at p50 and 708 ms at
    /// p99 from its SIGTERM to its death, waiting for a turn to die. No code
    /// of the job runs at that priority — a leader that handles the signal,
    /// or stops on it, is left where it is — and the rest of its group is
    /// left as it is: a job that forks in a loop must not fork faster. Only
    /// while the leader is unreaped, so its pid is still its own.
    func hurryDeath() {
        guard scheduler.hurriesDyingJobs, !leaderVanished, !leaderReaped, leaderStatus == nil else { return }
        _ = cc_hurry_dying_process(pid)
    }

    /// Whether any process is still in the job's process group (the id stays
    /// in use while any member does). EPERM answers yes: a member this
    /// process may not signal (one that changed its user) is still there.
    func groupHasMembers() -> Bool {
        switch Syscalls.kill(-pid, 0) {
        case .success: true
        case .failure(let error): error.code != ESRCH
        }
    }

    // MARK: Leader

    /// The pidfd became readable.
    func leaderMayHaveExited() {
        switch observeLeader() {
        case .running: break
        case .exited(let status): perform(lifecycle.leaderExited(status, lingering: lingering))
        case .vanished: perform(lifecycle.leaderVanished(lingering: lingering))
        }
    }

    /// The leader's state, read without reaping it; an exit is recorded.
    func observeLeader() -> JobLifecycle.LeaderNow {
        var info = cc_exit_info()
        let status = cc_wait_pidfd(pidfd, cc_WEXITED | cc_WNOWAIT | cc_WNOHANG, &info)
        if status == -ECHILD { return .vanished }
        guard status == 0, info.pid != 0 else { return .running }
        let exit: TerminationStatus = info.code == cc_CLD_EXITED
            ? .exited(info.status)
            : .signaled(Signal(rawValue: info.status), coreDumped: info.code == cc_CLD_DUMPED)
        if leaderStatus == nil {
            leaderStatus = exit
            leaderExitedAt = .now()
            forkedNothingAtExit = ProcFiles.lastAllocatedPID() == pid
        }
        return .exited(exit)
    }

    /// The leader exited and is still pinned by being unreaped: kill what
    /// remains of its group and leaf (unless kept), reap it, and see
    /// whether anything of the group was left.
    private func reapExitedLeader(killingTheRest: Bool) {
        if let poll { uv_poll_stop(poll) }
        if killingTheRest {
            let containedLeft = containment == .cgroup && killCgroup()
            signalGroup(SIGKILL)
            reapLeader()
            lingeringKilled = containedLeft || groupHasMembers()
        } else {
            releaseWatchdogSlot()  // what it leaves is meant to keep running
            reapLeader()
        }
        closePoll()
    }

    /// Someone else reaped the leader: its status is lost, and its group
    /// may no longer be pinned.
    private func forgetVanishedLeader() {
        leaderVanished = true
        leaderReaped = true
        leaderExitedAt = .now()
        watchdogForgetGroup()
        LeaderRegistry.remove(pid)
        if let poll { uv_poll_stop(poll) }
        closePoll()
    }

    func outputDidEnd() {
        drainProgressed()
    }

    /// The leader is reaped, every pipe is at end-of-file, and (cgroup tier)
    /// nothing is left in the job's cgroup; if something is, the leaf is
    /// watched from then on, so its emptying delivers the result.
    var readyToDeliver: Bool {
        leaderReaped && allOutputsEnded && !sweepPending && !leafPopulated()
    }

    // MARK: Delivery

    /// Begins delivery (once): closes what is still open, then has the
    /// inspector find what the result still needs — who holds force-closed
    /// pipes, the leaf's CPU time (the emptied leaf is removed after), what
    /// a `.leaveRunning` job left — and hands the result over when it
    /// answers, or after `finishTimeout` without those if it does not.
    private func beginDelivery(_ ending: JobLifecycle.Ending) {
        scheduler.assertOnLoopThread()
        self.ending = ending
        input?.close()
        var inodes: Set<UInt64> = []
        if outputs.contains(where: \.isOpen) {
            pipesForceClosed = true
            inodes = Set(outputs.filter(\.isOpen).compactMap(\.inode))
        }
        for output in outputs where output.isOpen { output.close() }
        var removeLeaf = false
        if leaf != nil, !leafPopulated() {
            removeLeaf = true  // empty for good: removed once cpu.stat is read
        }
        let order = FinishOrder(
            id: id, inodes: inodes, kills: spec.lingering == .kill || stopReason != nil,
            leaf: leaf?.path, removeLeaf: removeLeaf,
            listing: sweepPending && keepsDaemons ? keptListing() : nil)  // the drain timeout came first: as it is now
        if removeLeaf { releaseLeaf() }
        if order.needsInspection { scheduler.finish(order) }
        perform(lifecycle.deliveryBegan(askedInspector: order.needsInspection))
    }

    /// The inspector's answer for this job's result.
    func inspected(_ answer: FinishAnswer) {
        finishAnswer = answer
        perform(lifecycle.inspectorAnswered())
    }

    /// How long a result waits for the inspector's last answer before it
    /// goes out without it. One walk of every descriptor on a host with
    /// 2,700 processes took 0.7–0.9 s (debug build, loaded 2-core machine),
    /// and a burst of force-closed jobs may wait for one walk before theirs.
    static let finishTimeout = Duration.seconds(5)

    /// Hands the result over, with what the inspector found (nil: it did
    /// not answer in time).
    private func handOver() {
        closeTimer()
        if let answer = finishAnswer {
            let kills = spec.lingering == .kill || stopReason != nil
            if kills, containment == .cgroup, !answer.holders.isEmpty { killCgroup() }
            pipeHolders = answer.holders.map { holder in
                let belongs = holder.belongs || escapees.contains(holder.pid) || killedPIDs.contains(holder.pid)
                if holder.pidfd >= 0 {
                    _ = cc_pidfd_send_signal(holder.pidfd, SIGKILL)
                    Syscalls.close(holder.pidfd)
                }
                return PipeHolder(process: ProcessSummary(pid: holder.pid, command: holder.command),
                                  killed: kills && belongs)
            }
            if answer.cpuTime != nil { cpuTime = answer.cpuTime }
            if let list = answer.listing {
                leftRunningCount = list.count
                leftRunning = list.processes
            }
        } else if spec.lingering == .kill || stopReason != nil, containment == .cgroup {
            killCgroup()
        }
        releaseWatchdogSlot()
        submission.onCompletion(result())
        scheduler.jobDidDeliver()
        perform(lifecycle.settled(handlesOpen: openHandles, sweepPending: sweepPending))
    }

    /// Gives up on a leader that did not die even after SIGKILL (shutdown
    /// only): stops watching it. It stays a zombie of this process once it
    /// dies; `EventLoop.Diagnostics.abandonedLeaders` counts these.
    func abandon() {
        releaseWatchdogSlot()
        LeaderRegistry.remove(pid)
        closePoll()
        releaseLeaf()
    }

    var allOutputsEnded: Bool { outputs.allSatisfy { !$0.isOpen } }

    /// Reaps the leader, which has exited (WNOHANG: never blocks the loop).
    func reapLeader() {
        watchdogForgetGroup()  // before the group id can be freed
        // Reaped and forgotten under the registry's lock: a spawn thread
        // cannot register a new leader that took this pid in between.
        leaderReaped = LeaderRegistry.reap(pid) { [pidfd] in
            var info = cc_exit_info()
            let status = cc_wait_pidfd(pidfd, cc_WEXITED | cc_WNOHANG, &info)
            // ECHILD: reaped by someone else just now; its status was already read.
            return (status == 0 && info.pid != 0) || status == -ECHILD
        } || leaderReaped
    }

    /// The watchdog stops signalling the job's group (the leader is being
    /// reaped) but still sweeps for its processes.
    func watchdogForgetGroup() {
        if let watchdogSlot { scheduler.configuration.watchdog?.forgetGroup(watchdogSlot) }
    }

    /// The watchdog forgets the job altogether.
    func releaseWatchdogSlot() {
        guard let watchdogSlot else { return }
        self.watchdogSlot = nil
        scheduler.configuration.watchdog?.release(watchdogSlot)
    }

    /// Stops watching the pidfd; it is closed with its poll handle. The
    /// pointer is dropped at once: after the close callback it is freed.
    func closePoll() {
        guard let poll else { return }
        self.poll = nil
        closingPoll = UnsafeMutableRawPointer(poll)
        UVHandle.close(poll)
    }

    func closeTimer() {
        guard let timer else { return }
        self.timer = nil
        UVHandle.close(timer)
    }

    /// The result, its kept output moved out of the pipes unassembled.
    func result() -> PendingResult {
        let outcome: Outcome
        switch ending {
        case .stopped(.deadline)?: outcome = .timedOut
        case .stopped(.cancel)?: outcome = .cancelled
        case .exited(.exited(let code))?: outcome = .exited(code)
        case .exited(.signaled(let signal, let core))?: outcome = .signaled(signal, coreDumped: core)
        case .vanished?:
            outcome = .lost(reason: "the leader (pid \(pid)) was reaped by someone else in this process "
                + "(waitpid(-1) or SIGCHLD ignored); its exit status is unknown")
        case nil:
            preconditionFailure("a result before delivery began")
        }
        var stdout = KeptOutput.empty
        var stderr = KeptOutput.empty
        for output in outputs {
            if output.stream == .stderr { stderr = output.takeKept() } else { stdout = output.takeKept() }
        }
        return PendingResult(JobResult(
            id: id, name: spec.name, outcome: outcome,
            leaderStatus: leaderReaped ? leaderStatus : nil,
            stdout: .empty, stderr: .empty, pipesForceClosed: pipesForceClosed,
            lingeringKilled: lingeringKilled, leaderReaped: leaderReaped, pid: pid,
            containment: containment, killed: killed, escapeesKilled: escapees.count,
            pipeHolders: pipeHolders, leftRunning: leftRunning, leftRunningCount: leftRunningCount, cpuTime: cpuTime,
            timing: JobTiming(submitted: submission.submitted, spawned: spawnedAt,
                              leaderExited: leaderExitedAt, delivered: .now(), startedAt: startedAt)),
            stdout: stdout, stderr: stderr)
    }

    static func failedResult(_ submission: Submission, _ failure: SpawnFailure, containment: Containment) -> JobResult {
        notStartedResult(submission, outcome: .failedToStart(failure), containment: containment)
    }

    /// The result of a job that never started (failed to, or cancelled in the queue).
    static func notStartedResult(_ submission: Submission, outcome: Outcome, containment: Containment) -> JobResult {
        JobResult(
            id: submission.id, name: submission.spec.name, outcome: outcome,
            leaderStatus: nil, stdout: .empty, stderr: .empty, pipesForceClosed: false,
            lingeringKilled: false, leaderReaped: true, pid: nil, containment: containment,
            killed: [], escapeesKilled: 0, pipeHolders: [], leftRunning: [], cpuTime: nil,
            timing: JobTiming(submitted: submission.submitted, spawned: nil, leaderExited: nil,
                              delivered: .now(), startedAt: .now()))
    }
}

/// Writes a job's stdin bytes through a pipe, then closes it.
final class InputWriter: LoopObject {
    private unowned let job: LoopJob
    private let handle: UnsafeMutablePointer<uv_pipe_t>
    private let request = UnsafeMutablePointer<uv_write_t>.allocate(capacity: 1)
    private let bytes: UnsafeMutableRawBufferPointer
    /// Closing has begun: the handle may already be freed, never touch it again.
    private var closing = false

    init(job: LoopJob, fd: Int32, bytes: [UInt8]) {
        self.job = job
        self.bytes = .allocate(byteCount: bytes.count, alignment: 1)
        self.bytes.copyBytes(from: bytes)
        handle = UVHandle.allocate(UV_NAMED_PIPE, as: uv_pipe_t.self)
        super.init()
        UVHandle.setOwner(handle, self)
        request.pointee.data = unretained
        uv_pipe_init(job.scheduler.loop, handle, 0)
        var buffer = uv_buf_init(self.bytes.baseAddress!.assumingMemoryBound(to: CChar.self), UInt32(bytes.count))
        if uv_pipe_open(handle, fd) != 0 {
            Syscalls.close(fd)
            request.pointee.data = nil
            close()
            return
        }
        let status = uv_write(request, UVHandle.stream(handle), &buffer, 1) { request, _ in
            // Done, or failed (EPIPE: the job did not read it all; ECANCELED: closed).
            let writer = unsafeDowncast(LoopObject.owner(of: request!.pointee.data), to: InputWriter.self)
            writer.request.pointee.data = nil
            writer.close()
        }
        if status != 0 {
            request.pointee.data = nil
            close()
        }
    }

    deinit {
        request.deallocate()
        bytes.deallocate()
    }

    func close() {
        guard !closing else { return }
        closing = true
        UVHandle.close(handle)
    }

    override func handleDidClose(_ handle: UnsafeMutableRawPointer) {
        job.handleDidClose(handle)
    }
}
