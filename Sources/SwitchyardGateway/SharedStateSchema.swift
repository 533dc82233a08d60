/// The shared store's tables and functions, as numbered migrations applied in order inside one transaction
/// under an advisory lock, so replicas starting together do not race (`SharedStateStore.migrate`).
enum SharedStateSchema {
    static let migrations: [(version: Int, statements: [String])] = [
        (
            1,
            [
                """
                CREATE TABLE replicas (name TEXT PRIMARY KEY, started_ms BIGINT NOT NULL, seen_ms BIGINT NOT NULL)
                """,
                """
                CREATE TABLE key_state (
                  label TEXT NOT NULL, replica TEXT NOT NULL, fingerprint TEXT NOT NULL, state TEXT NOT NULL, until_ms BIGINT,
                  reason TEXT NOT NULL, disable_level INTEGER NOT NULL, removal_level INTEGER NOT NULL, saved_ms BIGINT NOT NULL,
                  PRIMARY KEY (label, replica))
                """,
                """
                CREATE TABLE daily_usage (
                  day TEXT NOT NULL, key TEXT NOT NULL, model TEXT NOT NULL, replica TEXT NOT NULL, requests BIGINT NOT NULL,
                  failures BIGINT NOT NULL, prompt_tokens BIGINT NOT NULL, completion_tokens BIGINT NOT NULL,
                  PRIMARY KEY (day, key, model, replica))
                """,
            ]
        ),
        (2, quotas),
        (
            3,
            [
                // Each replica's outcomes per key per second (of its own clock), added as it writes: the combined
                // error rate behind the 50% rule. Kept an hour.
                """
                CREATE TABLE outcome_counts (
                  label TEXT NOT NULL, replica TEXT NOT NULL, bucket_ms BIGINT NOT NULL, ok BIGINT NOT NULL, failed BIGINT NOT NULL,
                  PRIMARY KEY (label, replica, bucket_ms))
                """
            ]
        ),
        (
            4,
            [
                // The response cache's shared tier: complete answers by the SHA-256 of the canonical request and its
                // scope (never a client token itself), with when each was stored and when it expires.
                """
                CREATE TABLE cache_entries (
                  digest BYTEA PRIMARY KEY, stored_ms BIGINT NOT NULL, expires_ms BIGINT NOT NULL, id TEXT NOT NULL, created BIGINT NOT NULL,
                  upstream_model TEXT NOT NULL, model_name TEXT NOT NULL, key_label TEXT NOT NULL, content TEXT NOT NULL,
                  finish_reason TEXT NOT NULL, usage_json TEXT, body BYTEA, replayable BOOLEAN NOT NULL)
                """,
                "CREATE INDEX cache_entries_expires ON cache_entries (expires_ms)",
            ]
        ),
    ]

    /// Configured limits counted over every replica: per subject (`account:NAME`, `key:LABEL`) the send times of
    /// the last minute and the day's count. A reservation is one call that locks the request's rows (in subject
    /// order, so two never deadlock), refuses without counting when any limit is reached, and otherwise counts
    /// the send on every row: exact however many replicas reserve at once.
    static let quotas = [
        """
        CREATE TABLE quota (
          subject TEXT PRIMARY KEY, minute_ms BIGINT[] NOT NULL DEFAULT '{}', day BIGINT NOT NULL DEFAULT 0,
          today BIGINT NOT NULL DEFAULT 0)
        """,
        // per_minute / per_day: -1 where the subject has no such limit. Returns back_ms 0 when counted; otherwise
        // when the first refusing subject has room again, and which it is.
        """
        CREATE FUNCTION switchyard_reserve(subjects TEXT[], per_minute BIGINT[], per_day BIGINT[], now_ms BIGINT,
          OUT back_ms BIGINT, OUT refused TEXT)
        LANGUAGE plpgsql AS $$
        DECLARE
          i INT;
          r quota%ROWTYPE;
          recent BIGINT[];
          n INT;
          today_num BIGINT := floor(now_ms / 86400000.0);
        BEGIN
          back_ms := 0;
          refused := NULL;
          INSERT INTO quota (subject) SELECT unnest(subjects) ON CONFLICT DO NOTHING;
          PERFORM 1 FROM quota WHERE subject = ANY(subjects) ORDER BY subject FOR UPDATE;
          FOR i IN 1..cardinality(subjects) LOOP
            SELECT * INTO r FROM quota WHERE subject = subjects[i];
            IF per_minute[i] >= 0 THEN
              recent := ARRAY(SELECT t FROM unnest(r.minute_ms) AS t WHERE t > now_ms - 60000 ORDER BY t);
              n := cardinality(recent);
              IF n >= per_minute[i] THEN
                back_ms := GREATEST(back_ms, CASE WHEN per_minute[i] = 0 THEN now_ms ELSE recent[n - per_minute[i] + 1] END + 60000);
                refused := COALESCE(refused, subjects[i]);
              END IF;
            END IF;
            IF per_day[i] >= 0 AND r.day = today_num AND r.today >= per_day[i] THEN
              back_ms := GREATEST(back_ms, (today_num + 1) * 86400000);
              refused := COALESCE(refused, subjects[i]);
            END IF;
          END LOOP;
          IF refused IS NOT NULL THEN RETURN; END IF;
          FOR i IN 1..cardinality(subjects) LOOP
            UPDATE quota SET
              minute_ms = CASE WHEN per_minute[i] >= 0
                THEN ARRAY(SELECT t FROM unnest(minute_ms) AS t WHERE t > now_ms - 60000 ORDER BY t) || now_ms
                ELSE '{}'::BIGINT[] END,
              today = CASE WHEN day = today_num THEN today + 1 ELSE 1 END,
              day = today_num
            WHERE subject = subjects[i];
          END LOOP;
        END $$
        """,
        // Sends a replica made on its own share while the store was unreachable, counted once it is back.
        """
        CREATE FUNCTION switchyard_count_sends(subject_name TEXT, sends BIGINT[], now_ms BIGINT) RETURNS VOID
        LANGUAGE plpgsql AS $$
        DECLARE
          today_num BIGINT := floor(now_ms / 86400000.0);
          sent_today BIGINT := (SELECT count(*) FROM unnest(sends) AS t WHERE floor(t / 86400000.0) = today_num);
        BEGIN
          INSERT INTO quota (subject) VALUES (subject_name) ON CONFLICT DO NOTHING;
          UPDATE quota SET
            minute_ms = ARRAY(SELECT t FROM unnest(minute_ms || sends) AS t WHERE t > now_ms - 60000 ORDER BY t),
            today = CASE WHEN day = today_num THEN today + sent_today ELSE sent_today END,
            day = today_num
          WHERE subject = subject_name;
        END $$
        """,
    ]
}
