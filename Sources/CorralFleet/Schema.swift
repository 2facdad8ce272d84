import Logging
import PostgresNIO

/// The fleet's tables and functions, as numbered migrations. The server
/// applies the missing ones at start (`Schema.migrate`): each in one
/// transaction, recorded in `schema_migrations`, under an advisory lock so
/// that servers started together apply each migration once. A migration
/// is never edited once released: a change is a new one.
///
/// Every agent operation is one statement calling one of these functions
/// (autocommit), so agents can sit behind PgBouncer in transaction mode.
package enum Schema {
    package struct Migration: Sendable {
        package let version: Int
        package let name: String
        package let statements: [String]
    }

    /// The advisory lock key the migrations run under.
    static let lockKey: Int64 = 0x636f7272616c  // "corral"

    package static let migrations: [Migration] = [
        Migration(version: 1, name: "agents, runs, tasks, their tally, task output, and the functions over them", statements: [
        #"""
        CREATE TABLE agent (
          agent_id bigserial PRIMARY KEY,
          name text NOT NULL UNIQUE,
          labels jsonb NOT NULL DEFAULT '{}',
          version text NOT NULL DEFAULT '',
          boot_id uuid,
          registered_at timestamptz NOT NULL DEFAULT now(),
          seen_at timestamptz NOT NULL DEFAULT now(),
          state text NOT NULL DEFAULT 'up' CHECK (state IN ('up', 'suspect', 'down'))
        ) WITH (fillfactor = 70);
        """#,
        #"""
        CREATE INDEX agent_labels ON agent USING gin (labels jsonb_path_ops);
        """#,
        #"""
        CREATE TABLE run (
          run_id bigserial PRIMARY KEY,
          name text NOT NULL,
          job text NOT NULL,
          target jsonb NOT NULL,
          max_concurrency int NOT NULL CHECK (max_concurrency > 0),
          max_errors int NOT NULL CHECK (max_errors >= 0),
          idempotency_key text UNIQUE,
          -- The create request as sent (a re-run reads its run's again), and,
          -- with a key, what a replay of that key must match.
          request text NOT NULL,
          idempotent_request text,
          state text NOT NULL DEFAULT 'running'
            CHECK (state IN ('running', 'stopped', 'cancelling', 'cancelled', 'done')),
          created_at timestamptz NOT NULL DEFAULT now(),
          -- The run's day (UTC): its output's partition, and what retention
          -- counts from.
          day date NOT NULL DEFAULT (now() AT TIME ZONE 'UTC')::date,
          finished_at timestamptz,
          -- The run this one re-ran (POST /v1/runs/{id}/rerun).
          rerun_of bigint REFERENCES run ON DELETE SET NULL,
          -- The job's timeout + kill grace + drain, when it has a timeout: a
          -- task running longer than that plus the TTL with no outcome is
          -- ended 'lost' by the reaper, even while its agent heartbeats.
          deadline_s double precision CHECK (deadline_s > 0)
        );
        """#,
        #"""
        CREATE TABLE task (
          run_id bigint NOT NULL REFERENCES run ON DELETE CASCADE,
          agent_id bigint NOT NULL REFERENCES agent,
          host text NOT NULL,
          ordinal int NOT NULL,
          state text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'queued', 'running', 'exited', 'signaled',
            'timed_out', 'cancelled', 'failed', 'lost', 'undelivered', 'skipped')),
          attempt_id uuid,
          queued_at timestamptz, claimed_at timestamptz, finished_at timestamptz,
          cancel_requested_at timestamptz, reconciled_at timestamptz,
          exit_code int, signal text, duration_s double precision, note text, result text,
          PRIMARY KEY (run_id, agent_id)
        ) WITH (fillfactor = 80);
        """#,
        #"""
        CREATE INDEX task_inbox ON task (agent_id, run_id) WHERE state IN ('queued', 'running');
        """#,
        #"""
        CREATE INDEX task_pending ON task (run_id, ordinal) WHERE state = 'pending';
        """#,
        #"""
        CREATE UNIQUE INDEX task_host ON task (run_id, host);
        """#,
        #"""
        -- What an agent matches with its journal at start and after a failure.
        CREATE INDEX task_agent_open ON task (agent_id) WHERE state IN ('running', 'lost');
        """#,
        #"""
        -- Partitioned by the run's day: retention drops a day's output as one
        -- table, not row by row. The partitions are made by
        -- fleet_output_partition when a run is created (and a day ahead by
        -- the server), dropped by fleet_retain.
        CREATE TABLE task_output (
          day date NOT NULL,
          run_id bigint NOT NULL,
          agent_id bigint NOT NULL,
          seq int NOT NULL,
          stream text NOT NULL CHECK (stream IN ('stdout', 'stderr', 'combined', 'truncated')),
          at timestamptz NOT NULL DEFAULT now(),
          data bytea NOT NULL,
          PRIMARY KEY (run_id, agent_id, seq, day),
          FOREIGN KEY (run_id, agent_id) REFERENCES task ON DELETE CASCADE
        ) PARTITION BY RANGE (day);
        """#,
        #"""
        CREATE INDEX run_day ON run (day);
        """#,
        #"""
        -- Makes the output partition of a day, once (servers may race).
        CREATE FUNCTION fleet_output_partition(p_day date) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
          name text := 'task_output_' || to_char(p_day, 'YYYYMMDD');
        BEGIN
          IF to_regclass(name) IS NOT NULL THEN RETURN; END IF;
          PERFORM pg_advisory_xact_lock(hashtext('corral.fleet.partition'));
          IF to_regclass(name) IS NOT NULL THEN RETURN; END IF;
          EXECUTE format('CREATE TABLE %I PARTITION OF task_output FOR VALUES FROM (%L) TO (%L)', name, p_day, p_day + 1);
        END $$;
        """#,
        #"""
        -- Retention, one server at a time: the output partitions of days older
        -- than p_keep_days are dropped and those days' finished runs deleted
        -- (with their tasks and tallies). A day with a run still unfinished is
        -- kept whole. Returns the runs deleted, or -1 when another server
        -- holds the lock.
        CREATE FUNCTION fleet_retain(p_keep_days int) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE
          cutoff date := (now() AT TIME ZONE 'UTC')::date - p_keep_days;
          part record;
          n int;
        BEGIN
          IF NOT pg_try_advisory_xact_lock(hashtext('corral.fleet.retain')) THEN RETURN -1; END IF;
          FOR part IN
            SELECT c.relname, to_date(right(c.relname, 8), 'YYYYMMDD') AS day
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = 'task_output'::regclass AND c.relname ~ '^task_output_[0-9]{8}$'
          LOOP
            IF part.day < cutoff AND NOT EXISTS (SELECT 1 FROM run WHERE day = part.day AND finished_at IS NULL) THEN
              EXECUTE format('DROP TABLE %I', part.relname);
            END IF;
          END LOOP;
          DELETE FROM run r WHERE r.day < cutoff AND r.finished_at IS NOT NULL
             AND NOT EXISTS (SELECT 1 FROM run u WHERE u.day = r.day AND u.finished_at IS NULL);
          GET DIAGNOSTICS n = ROW_COUNT;
          RETURN n;
        END $$;
        """#,
        #"""
        CREATE FUNCTION fleet_time(p_at timestamptz) RETURNS text LANGUAGE sql STABLE AS $$
          SELECT to_char(p_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')
        $$;
        """#,
        #"""
        CREATE FUNCTION fleet_is_error(p_state text, p_exit int) RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
          SELECT p_state IN ('signaled', 'timed_out', 'failed', 'lost') OR (p_state = 'exited' AND p_exit IS DISTINCT FROM 0)
        $$;
        """#,
        #"""
        -- How many of a run's tasks are in each state (and are errors), kept
        -- in the same statement as every task transition by the triggers
        -- below: a run's counts, its error budget, its window and its close
        -- cost a few rows, not a scan of its hosts.
        CREATE TABLE run_tally (
          run_id bigint NOT NULL REFERENCES run ON DELETE CASCADE,
          state text NOT NULL,
          error boolean NOT NULL,
          n int NOT NULL,
          PRIMARY KEY (run_id, state, error)
        );
        """#,
        #"""
        -- One statement's changes, folded into the tally in key order (so two
        -- statements on the same runs lock the tally rows in the same order).
        -- n has no CHECK: PostgreSQL checks the row an upsert proposes (a
        -- negative change) even when it updates the existing row instead.
        CREATE FUNCTION fleet_tally_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO run_tally AS t (run_id, state, error, n)
          SELECT run_id, state, fleet_is_error(state, exit_code), count(*) FROM inserted
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
          ON CONFLICT (run_id, state, error) DO UPDATE SET n = t.n + excluded.n;
          RETURN NULL;
        END $$;
        """#,
        #"""
        CREATE FUNCTION fleet_tally_updated() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO run_tally AS t (run_id, state, error, n)
          SELECT run_id, state, error, sum(d) FROM (
              SELECT run_id, state, fleet_is_error(state, exit_code) AS error, 1 AS d FROM after_rows
              UNION ALL
              SELECT run_id, state, fleet_is_error(state, exit_code), -1 FROM before_rows) x
           GROUP BY 1, 2, 3 HAVING sum(d) <> 0 ORDER BY 1, 2, 3
          ON CONFLICT (run_id, state, error) DO UPDATE SET n = t.n + excluded.n;
          RETURN NULL;
        END $$;
        """#,
        #"""
        -- Tasks deleted on their own (not with their run, whose tally goes too).
        CREATE FUNCTION fleet_tally_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          INSERT INTO run_tally AS t (run_id, state, error, n)
          SELECT d.run_id, d.state, fleet_is_error(d.state, d.exit_code), -count(*) FROM deleted d
           WHERE EXISTS (SELECT 1 FROM run r WHERE r.run_id = d.run_id)
           GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
          ON CONFLICT (run_id, state, error) DO UPDATE SET n = t.n + excluded.n;
          RETURN NULL;
        END $$;
        """#,
        #"""
        CREATE TRIGGER task_tally_delete AFTER DELETE ON task REFERENCING OLD TABLE AS deleted
          FOR EACH STATEMENT EXECUTE FUNCTION fleet_tally_deleted();
        """#,
        #"""
        CREATE TRIGGER task_tally_insert AFTER INSERT ON task REFERENCING NEW TABLE AS inserted
          FOR EACH STATEMENT EXECUTE FUNCTION fleet_tally_inserted();
        """#,
        #"""
        CREATE TRIGGER task_tally_update AFTER UPDATE ON task REFERENCING OLD TABLE AS before_rows NEW TABLE AS after_rows
          FOR EACH STATEMENT EXECUTE FUNCTION fleet_tally_updated();
        """#,
        #"""
        -- Moves a run on, its row locked by the caller's transaction: the error
        -- budget, then the window, then the close. Every task transition calls
        -- it. Counts come from run_tally; the window looks at the next due
        -- tasks only (a due task of an agent known down is undelivered).
        CREATE FUNCTION fleet_settle(p_run bigint) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
          r run%ROWTYPE;
          errors int;
          active int;
          waiting int;
          open int;
          k int;
        BEGIN
          SELECT * INTO r FROM run WHERE run_id = p_run FOR UPDATE;
          IF NOT FOUND OR r.finished_at IS NOT NULL THEN RETURN; END IF;
          SELECT coalesce(sum(n) FILTER (WHERE error), 0),
                 coalesce(sum(n) FILTER (WHERE state IN ('queued', 'running')), 0),
                 coalesce(sum(n) FILTER (WHERE state IN ('pending', 'queued')), 0)
            INTO errors, active, waiting FROM run_tally WHERE run_id = p_run;
          IF r.state = 'running' AND errors > r.max_errors THEN
            UPDATE run SET state = 'stopped' WHERE run_id = p_run;
            r.state := 'stopped';
          END IF;
          IF r.state = 'stopped' AND waiting > 0 THEN
            UPDATE task SET state = 'skipped', finished_at = now(),
                            note = 'not started: the run stopped after more than max_errors errors'
             WHERE run_id = p_run AND state IN ('pending', 'queued');
          ELSIF r.state = 'cancelling' AND waiting > 0 THEN
            UPDATE task SET state = 'cancelled', finished_at = now(), note = 'cancelled before it started'
             WHERE run_id = p_run AND state IN ('pending', 'queued');
          ELSIF r.state = 'running' THEN
            WHILE active < r.max_concurrency LOOP
              WITH due AS (
                SELECT t.agent_id, a.state = 'down' AS down FROM task t JOIN agent a ON a.agent_id = t.agent_id
                 WHERE t.run_id = p_run AND t.state = 'pending' ORDER BY t.ordinal LIMIT r.max_concurrency - active)
              UPDATE task t SET state = CASE WHEN due.down THEN 'undelivered' ELSE 'queued' END,
                                queued_at = CASE WHEN due.down THEN NULL ELSE now() END,
                                finished_at = CASE WHEN due.down THEN now() END,
                                note = CASE WHEN due.down THEN 'the agent was down when the task was due' END
                FROM due WHERE t.run_id = p_run AND t.agent_id = due.agent_id;
              GET DIAGNOSTICS k = ROW_COUNT;
              EXIT WHEN k = 0;
              SELECT coalesce(sum(n), 0) INTO active FROM run_tally
               WHERE run_id = p_run AND state IN ('queued', 'running');
            END LOOP;
          END IF;
          SELECT coalesce(sum(n), 0) INTO open FROM run_tally
           WHERE run_id = p_run AND state IN ('pending', 'queued', 'running');
          IF open = 0 THEN
            UPDATE run SET finished_at = now(),
                           state = CASE state WHEN 'running' THEN 'done' WHEN 'cancelling' THEN 'cancelled' ELSE state END
             WHERE run_id = p_run;
          END IF;
        END $$;
        """#,
        #"""
        -- An agent's claim: its own queued tasks, at most one per attempt id it
        -- brings (its free slots), each now running under that attempt.
        -- The runs' rows are locked first, in run order, as every other
        -- transition locks its run before its tasks and tally rows (a claim
        -- taking task and tally rows first could deadlock with a finish).
        CREATE FUNCTION fleet_claim(p_agent bigint, p_attempts uuid[])
        RETURNS TABLE (run_id bigint, attempt_id uuid, job text) LANGUAGE plpgsql AS $$
        DECLARE
          runs bigint[];
        BEGIN
          runs := ARRAY(SELECT t.run_id FROM task t WHERE t.agent_id = p_agent AND t.state = 'queued'
                         ORDER BY t.run_id LIMIT cardinality(p_attempts));
          IF cardinality(runs) = 0 THEN RETURN; END IF;
          PERFORM 1 FROM run r WHERE r.run_id = ANY(runs) ORDER BY r.run_id FOR UPDATE;
          RETURN QUERY
          WITH picked AS (
            SELECT t.run_id FROM task t
             WHERE t.agent_id = p_agent AND t.state = 'queued' AND t.run_id = ANY(runs)
             ORDER BY t.run_id),
          numbered AS (SELECT picked.run_id, row_number() OVER (ORDER BY picked.run_id) AS i FROM picked)
          UPDATE task t SET state = 'running', attempt_id = p_attempts[n.i], claimed_at = now()
            FROM numbered n, run r
           WHERE t.run_id = n.run_id AND t.agent_id = p_agent AND r.run_id = t.run_id
          RETURNING t.run_id, t.attempt_id, r.job;
        END $$;
        """#,
        #"""
        -- An agent's outcome for an attempt: recorded only over the same attempt,
        -- running or lost (a late or repeated write changes nothing: 'stale').
        -- A lost task takes the outcome the agent's journal recorded: 'reconciled'.
        CREATE FUNCTION fleet_finish(p_run bigint, p_agent bigint, p_attempt uuid, p_state text, p_exit int,
                                     p_signal text, p_duration double precision, p_note text, p_result text)
        RETURNS text LANGUAGE plpgsql AS $$
        DECLARE prev text;
        BEGIN
          PERFORM 1 FROM run WHERE run_id = p_run FOR UPDATE;
          SELECT state INTO prev FROM task
           WHERE run_id = p_run AND agent_id = p_agent AND attempt_id = p_attempt AND state IN ('running', 'lost')
             FOR UPDATE;
          IF prev IS NULL THEN RETURN 'stale'; END IF;
          UPDATE task SET state = p_state, exit_code = p_exit, signal = p_signal, duration_s = p_duration,
                          note = p_note, result = p_result,
                          finished_at = CASE WHEN prev = 'running' THEN now() ELSE finished_at END,
                          reconciled_at = CASE WHEN prev = 'lost' THEN now() END
           WHERE run_id = p_run AND agent_id = p_agent;
          PERFORM fleet_settle(p_run);
          RETURN CASE prev WHEN 'lost' THEN 'reconciled' ELSE 'recorded' END;
        END $$;
        """#,
        #"""
        -- An agent's heartbeat; the reply is its running attempts to cancel.
        CREATE FUNCTION fleet_heartbeat(p_agent bigint, p_boot uuid)
        RETURNS TABLE (run_id bigint, attempt_id uuid) LANGUAGE sql AS $$
          WITH hb AS (UPDATE agent SET seen_at = now(), boot_id = p_boot, state = 'up'
                       WHERE agent_id = p_agent RETURNING agent_id)
          SELECT t.run_id, t.attempt_id FROM task t JOIN hb ON t.agent_id = hb.agent_id
           WHERE t.state = 'running' AND t.cancel_requested_at IS NOT NULL
        $$;
        """#,
        #"""
        -- The reaper, one server at a time. An agent silent past half the TTL is
        -- 'suspect' (shown; it keeps its tasks); past the TTL 'down': its running
        -- tasks lost (never re-run), its queued ones undelivered. A running task
        -- past its deadline + grace + TTL with no outcome is lost too.
        -- Returns the tasks it ended, or -1 when another server holds the lock.
        CREATE FUNCTION fleet_reap(p_ttl interval) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE
          r bigint;
          n int := 0;
          k int;
        BEGIN
          IF NOT pg_try_advisory_xact_lock(hashtext('corral.fleet.reaper')) THEN RETURN -1; END IF;
          UPDATE agent SET state = 'down' WHERE state <> 'down' AND seen_at < now() - p_ttl;
          UPDATE agent SET state = 'suspect' WHERE state = 'up' AND seen_at < now() - p_ttl / 2;
          FOR r IN SELECT DISTINCT t.run_id FROM task t JOIN agent a ON a.agent_id = t.agent_id
                    WHERE a.state = 'down' AND t.state IN ('queued', 'running')
                   UNION
                   SELECT t.run_id FROM task t JOIN run ru ON ru.run_id = t.run_id
                    WHERE t.state = 'running' AND ru.deadline_s IS NOT NULL
                      AND t.claimed_at < now() - make_interval(secs => ru.deadline_s) - p_ttl
                   ORDER BY 1 LOOP
            PERFORM 1 FROM run WHERE run_id = r FOR UPDATE;
            UPDATE task t SET state = 'undelivered', finished_at = now(), note = 'the agent went silent before it took the task'
              FROM agent a WHERE t.run_id = r AND a.agent_id = t.agent_id AND a.state = 'down' AND t.state = 'queued';
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            UPDATE task t SET state = 'lost', finished_at = now(),
                              note = 'the agent went silent past the TTL while the task ran; it is not run again'
              FROM agent a WHERE t.run_id = r AND a.agent_id = t.agent_id AND a.state = 'down' AND t.state = 'running';
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            UPDATE task t SET state = 'lost', finished_at = now(),
                              note = 'no outcome from the agent by the deadline + grace + TTL; it is not run again'
              FROM run ru WHERE t.run_id = r AND ru.run_id = r AND t.state = 'running' AND ru.deadline_s IS NOT NULL
               AND t.claimed_at < now() - make_interval(secs => ru.deadline_s) - p_ttl;
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            PERFORM fleet_settle(r);
          END LOOP;
          RETURN n;
        END $$;
        """#,
        #"""
        -- Cancels a run (p_host NULL) or one host's task: not started → cancelled
        -- at once; running → asked in the agent's next heartbeat reply.
        -- Returns the tasks it touched, or -1 for no such run or host.
        CREATE FUNCTION fleet_cancel(p_run bigint, p_host text) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE
          n int;
          k int;
        BEGIN
          PERFORM 1 FROM run WHERE run_id = p_run FOR UPDATE;
          IF NOT FOUND THEN RETURN -1; END IF;
          IF p_host IS NOT NULL AND NOT EXISTS (SELECT 1 FROM task WHERE run_id = p_run AND host = p_host) THEN
            RETURN -1;
          END IF;
          IF p_host IS NULL THEN
            UPDATE run SET state = 'cancelling' WHERE run_id = p_run AND finished_at IS NULL AND state IN ('running', 'stopped');
          END IF;
          UPDATE task SET state = 'cancelled', finished_at = now(), note = 'cancelled before it started'
           WHERE run_id = p_run AND (p_host IS NULL OR host = p_host) AND state IN ('pending', 'queued');
          GET DIAGNOSTICS n = ROW_COUNT;
          UPDATE task SET cancel_requested_at = now()
           WHERE run_id = p_run AND (p_host IS NULL OR host = p_host) AND state = 'running' AND cancel_requested_at IS NULL;
          GET DIAGNOSTICS k = ROW_COUNT;
          PERFORM fleet_settle(p_run);
          RETURN n + k;
        END $$;
        """#,
        ]),
        Migration(version: 2, name: "the reaper counts silence only while it watches", statements: [
        #"""
        -- When the reaper's last pass ended, and since when it has run without a gap.
        -- Nobody can heartbeat while the database is down, and nobody reaps
        -- while every server is: silence that started before such a gap is
        -- not the agents' doing.
        CREATE TABLE reaper_watch (
          one boolean PRIMARY KEY DEFAULT true CHECK (one),
          reaped_at timestamptz NOT NULL,
          watching_since timestamptz NOT NULL
        );
        """#,
        #"""
        -- The reaper, one server at a time. A gap of more than half the TTL
        -- between the end of its last pass and the start of this one (the
        -- database was down, or every server was; passes come every TTL/4)
        -- starts a new watch: until a TTL into it, nobody is 'down' and no
        -- deadline ends a task, so agents reconnecting after an outage are not
        -- called down for the outage itself. A slow pass does not count as a
        -- gap: the end of each pass is what is recorded. Otherwise as before: an agent
        -- silent past half the TTL is 'suspect' (shown; it keeps its tasks);
        -- past the TTL 'down': its running tasks lost (never re-run), its
        -- queued ones undelivered. A running task past its deadline + grace +
        -- TTL with no outcome is lost too.
        -- Returns the tasks it ended, or -1 when another server holds the lock.
        CREATE OR REPLACE FUNCTION fleet_reap(p_ttl interval) RETURNS int LANGUAGE plpgsql AS $$
        DECLARE
          r bigint;
          n int := 0;
          k int;
          last timestamptz;
          since timestamptz;
        BEGIN
          IF NOT pg_try_advisory_xact_lock(hashtext('corral.fleet.reaper')) THEN RETURN -1; END IF;
          SELECT reaped_at, watching_since INTO last, since FROM reaper_watch;
          IF last IS NULL OR last < now() - p_ttl / 2 THEN since := now(); END IF;
          UPDATE agent SET state = 'down' WHERE state <> 'down' AND greatest(seen_at, since) < now() - p_ttl;
          UPDATE agent SET state = 'suspect' WHERE state = 'up' AND greatest(seen_at, since) < now() - p_ttl / 2;
          FOR r IN SELECT DISTINCT t.run_id FROM task t JOIN agent a ON a.agent_id = t.agent_id
                    WHERE a.state = 'down' AND t.state IN ('queued', 'running')
                   UNION
                   SELECT t.run_id FROM task t JOIN run ru ON ru.run_id = t.run_id
                    WHERE t.state = 'running' AND ru.deadline_s IS NOT NULL AND t.claimed_at IS NOT NULL
                      AND greatest(t.claimed_at + make_interval(secs => ru.deadline_s), since) < now() - p_ttl
                   ORDER BY 1 LOOP
            PERFORM 1 FROM run WHERE run_id = r FOR UPDATE;
            UPDATE task t SET state = 'undelivered', finished_at = now(), note = 'the agent went silent before it took the task'
              FROM agent a WHERE t.run_id = r AND a.agent_id = t.agent_id AND a.state = 'down' AND t.state = 'queued';
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            UPDATE task t SET state = 'lost', finished_at = now(),
                              note = 'the agent went silent past the TTL while the task ran; it is not run again'
              FROM agent a WHERE t.run_id = r AND a.agent_id = t.agent_id AND a.state = 'down' AND t.state = 'running';
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            UPDATE task t SET state = 'lost', finished_at = now(),
                              note = 'no outcome from the agent by the deadline + grace + TTL; it is not run again'
              FROM run ru WHERE t.run_id = r AND ru.run_id = r AND t.state = 'running' AND ru.deadline_s IS NOT NULL
               AND t.claimed_at IS NOT NULL
               AND greatest(t.claimed_at + make_interval(secs => ru.deadline_s), since) < now() - p_ttl;
            GET DIAGNOSTICS k = ROW_COUNT;
            n := n + k;
            PERFORM fleet_settle(r);
          END LOOP;
          INSERT INTO reaper_watch (reaped_at, watching_since) VALUES (clock_timestamp(), since)
            ON CONFLICT (one) DO UPDATE SET reaped_at = excluded.reaped_at, watching_since = excluded.watching_since;
          RETURN n;
        END $$;
        """#,
        ]),
        Migration(version: 3, name: "one agent per name", statements: [
        #"""
        -- The journal an agent runs with (its `meta` instance): a restart or a
        -- reboot of one host keeps it, a second host given the same name (a
        -- cloned image, a copied config) has another. NULL: registered by an
        -- agent older than this migration.
        ALTER TABLE agent ADD COLUMN instance text;
        """#,
        #"""
        -- Registers an agent under its name. The name is taken over at once by
        -- the journal that holds it (or a row of an older agent), and by
        -- another journal only once the reaper called the holder 'down': two
        -- live agents of one name would each claim the other's tasks. A
        -- refused call returns the holder's instance and when it was last
        -- seen, and no agent id. Each statement reads afresh: a name another
        -- agent registered meanwhile is answered with that agent.
        CREATE FUNCTION fleet_register(p_name text, p_labels jsonb, p_version text, p_boot uuid, p_instance text)
        RETURNS TABLE (agent_id bigint, holder text, holder_seen_at timestamptz) LANGUAGE plpgsql AS $$
        DECLARE
          v_id bigint;
          v_holder text;
          v_seen timestamptz;
        BEGIN
          LOOP
            INSERT INTO agent AS a (name, labels, version, boot_id, seen_at, state, instance)
            VALUES (p_name, p_labels, p_version, p_boot, now(), 'up', p_instance)
            ON CONFLICT (name) DO UPDATE SET labels = excluded.labels, version = excluded.version,
              boot_id = excluded.boot_id, seen_at = now(), state = 'up', instance = excluded.instance
              WHERE a.instance IS NULL OR a.instance = excluded.instance OR a.state = 'down'
            RETURNING a.agent_id INTO v_id;
            IF v_id IS NOT NULL THEN
              RETURN QUERY SELECT v_id, NULL::text, NULL::timestamptz;
              RETURN;
            END IF;
            SELECT a.instance, a.seen_at INTO v_holder, v_seen FROM agent a WHERE a.name = p_name;
            IF FOUND THEN
              RETURN QUERY SELECT NULL::bigint, v_holder, v_seen;
              RETURN;
            END IF;
          END LOOP;
        END $$;
        """#,
        #"""
        -- Whether the agent row is still the caller's, locked for the rest of
        -- the transaction (a takeover waits for it): CR001 when another
        -- journal holds the name now (the caller registers again, and waits
        -- while that one is up); CR002 when another process registered with
        -- the caller's journal since it did (a copy of its data directory on
        -- another host, or an older corral agent with its name): the caller
        -- stands aside until restarted, so the two never both claim.
        CREATE FUNCTION fleet_hold(p_agent bigint, p_instance text, p_boot uuid) RETURNS void LANGUAGE plpgsql AS $$
        DECLARE
          v_instance text;
          v_boot uuid;
        BEGIN
          SELECT a.instance, a.boot_id INTO v_instance, v_boot FROM agent a WHERE a.agent_id = p_agent FOR SHARE;
          IF NOT FOUND OR v_instance IS DISTINCT FROM p_instance THEN
            RAISE EXCEPTION 'the agent name is held by another agent now' USING ERRCODE = 'CR001';
          END IF;
          IF v_boot IS DISTINCT FROM p_boot THEN
            RAISE EXCEPTION 'another process registered under this agent''s name with its journal since it did'
              USING ERRCODE = 'CR002';
          END IF;
        END $$;
        """#,
        #"""
        -- The heartbeat of an agent that still holds its row (`fleet_hold`).
        CREATE FUNCTION fleet_heartbeat(p_agent bigint, p_boot uuid, p_instance text)
        RETURNS TABLE (run_id bigint, attempt_id uuid) LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM fleet_hold(p_agent, p_instance, p_boot);
          UPDATE agent SET seen_at = now(), state = 'up' WHERE agent.agent_id = p_agent;
          RETURN QUERY SELECT t.run_id, t.attempt_id FROM task t
           WHERE t.agent_id = p_agent AND t.state = 'running' AND t.cancel_requested_at IS NOT NULL;
        END $$;
        """#,
        #"""
        -- The claim (as migration 1's), moved here so that both the holder's
        -- claim and an older agent's can check first.
        CREATE FUNCTION fleet_claim_tasks(p_agent bigint, p_attempts uuid[])
        RETURNS TABLE (run_id bigint, attempt_id uuid, job text) LANGUAGE plpgsql AS $$
        DECLARE
          runs bigint[];
        BEGIN
          runs := ARRAY(SELECT t.run_id FROM task t WHERE t.agent_id = p_agent AND t.state = 'queued'
                         ORDER BY t.run_id LIMIT cardinality(p_attempts));
          IF cardinality(runs) = 0 THEN RETURN; END IF;
          PERFORM 1 FROM run r WHERE r.run_id = ANY(runs) ORDER BY r.run_id FOR UPDATE;
          RETURN QUERY
          WITH picked AS (
            SELECT t.run_id FROM task t
             WHERE t.agent_id = p_agent AND t.state = 'queued' AND t.run_id = ANY(runs)
             ORDER BY t.run_id),
          numbered AS (SELECT picked.run_id, row_number() OVER (ORDER BY picked.run_id) AS i FROM picked)
          UPDATE task t SET state = 'running', attempt_id = p_attempts[n.i], claimed_at = now()
            FROM numbered n, run r
           WHERE t.run_id = n.run_id AND t.agent_id = p_agent AND r.run_id = t.run_id
          RETURNING t.run_id, t.attempt_id, r.job;
        END $$;
        """#,
        #"""
        -- A claim by the agent that holds its row (`fleet_hold`, whose lock
        -- keeps a takeover out until the claim commits).
        CREATE FUNCTION fleet_claim(p_agent bigint, p_attempts uuid[], p_instance text, p_boot uuid)
        RETURNS TABLE (run_id bigint, attempt_id uuid, job text) LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM fleet_hold(p_agent, p_instance, p_boot);
          RETURN QUERY SELECT * FROM fleet_claim_tasks(p_agent, p_attempts);
        END $$;
        """#,
        #"""
        -- The tasks an agent adopts at start and after a failure (its running
        -- attempts, and its lost ones not yet reconciled), read only while it
        -- holds its row (`fleet_hold`): an agent that lost its name never
        -- takes another's fresh claims for its own.
        CREATE FUNCTION fleet_adoptable(p_agent bigint, p_instance text, p_boot uuid, p_including_lost boolean)
        RETURNS TABLE (run_id bigint, attempt_id uuid, task_state text) LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM fleet_hold(p_agent, p_instance, p_boot);
          RETURN QUERY SELECT t.run_id, t.attempt_id, t.state FROM task t
           WHERE t.agent_id = p_agent AND t.attempt_id IS NOT NULL AND t.reconciled_at IS NULL
             AND (t.state = 'running' OR (p_including_lost AND t.state = 'lost' AND t.finished_at > now() - interval '7 days'));
        END $$;
        """#,
        #"""
        -- An older agent (no instance) heartbeats and claims only a row no
        -- newer agent holds: never the task of a live agent of its name.
        CREATE OR REPLACE FUNCTION fleet_claim(p_agent bigint, p_attempts uuid[])
        RETURNS TABLE (run_id bigint, attempt_id uuid, job text) LANGUAGE plpgsql AS $$
        BEGIN
          PERFORM 1 FROM agent a WHERE a.agent_id = p_agent AND a.instance IS NULL FOR SHARE;
          IF NOT FOUND THEN
            RAISE EXCEPTION 'the agent name is held by a newer agent' USING ERRCODE = 'CR001';
          END IF;
          RETURN QUERY SELECT * FROM fleet_claim_tasks(p_agent, p_attempts);
        END $$;
        """#,
        #"""
        -- An older agent that registered last (its boot id is the row's: its
        -- upsert leaves the instance alone) holds the row again as an older
        -- one: a rollback works, and the newer agent, if alive, hears CR001.
        CREATE OR REPLACE FUNCTION fleet_heartbeat(p_agent bigint, p_boot uuid)
        RETURNS TABLE (run_id bigint, attempt_id uuid) LANGUAGE plpgsql AS $$
        BEGIN
          UPDATE agent SET seen_at = now(), boot_id = p_boot, state = 'up', instance = NULL
           WHERE agent.agent_id = p_agent AND (agent.instance IS NULL OR agent.boot_id = p_boot);
          IF NOT FOUND THEN
            RAISE EXCEPTION 'the agent name is held by a newer agent' USING ERRCODE = 'CR001';
          END IF;
          RETURN QUERY SELECT t.run_id, t.attempt_id FROM task t
           WHERE t.agent_id = p_agent AND t.state = 'running' AND t.cancel_requested_at IS NOT NULL;
        END $$;
        """#,
        ]),
    ]

    /// Applies the migrations `schema_migrations` does not list, in order;
    /// returns the versions applied. Refuses a database that a newer Corral
    /// migrated (a version this one does not know).
    @discardableResult
    package static func migrate(_ client: PostgresClient, logger: Logger) async throws -> [Int] {
        try await client.withConnection { connection in
            _ = try await connection.query("SELECT pg_advisory_lock(\(lockKey))", logger: logger).collect()
            do {
                let applied = try await apply(connection, logger: logger)
                _ = try await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger).collect()
                return applied
            } catch {
                // The session lock goes with the connection if this fails too.
                _ = try? await connection.query("SELECT pg_advisory_unlock(\(lockKey))", logger: logger)
                throw error
            }
        }
    }

    private static func apply(_ connection: PostgresConnection, logger: Logger) async throws -> [Int] {
        _ = try await connection.query("""
            CREATE TABLE IF NOT EXISTS schema_migrations (
              version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())
            """, logger: logger).collect()
        var known: Set<Int> = []
        for try await version in try await connection.query("SELECT version FROM schema_migrations", logger: logger)
            .decode(Int.self) {
            known.insert(version)
        }
        if let newest = known.max(), let ours = migrations.last?.version, newest > ours {
            throw FleetError("the database's schema is version \(newest), newer than this corral knows (\(ours)): upgrade corral")
        }
        var applied: [Int] = []
        for migration in migrations where !known.contains(migration.version) {
            try await connection.withTransaction(logger: logger) { transaction in
                for statement in migration.statements {
                    _ = try await transaction.query(PostgresQuery(unsafeSQL: statement), logger: logger).collect()
                }
                _ = try await transaction.query(
                    "INSERT INTO schema_migrations (version, name) VALUES (\(migration.version), \(migration.name))",
                    logger: logger).collect()
            }
            logger.notice("database migrated", metadata: ["version": .stringConvertible(migration.version),
                                                          "migration": "\(migration.name)"])
            applied.append(migration.version)
        }
        return applied
    }
}
