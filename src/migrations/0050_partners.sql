-- Partner API: partners, their API keys (hashed, scoped, rotated with an overlap,
-- revoked at once), per-key rate-limit windows shared by every API process, the products and gates
-- a partner owns, and the PostgreSQL role partner traffic runs as.
--
-- The role: `seigo_partner`, NOLOGIN. The engine's own user is made a member and its partner pool
-- switches to it at connect (`-c role=seigo_partner`), so partner requests run with only the grants
-- below and row-level security by partner id (the GUC `seigo.partner_id`, set per transaction).
-- Roles are cluster-wide: the role is created if missing (this needs CREATEROLE or a superuser);
-- where the engine's user has neither, a DBA runs once:
--   CREATE ROLE seigo_partner NOLOGIN; GRANT seigo_partner TO <engine user>;
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'seigo_partner') THEN
    BEGIN
      CREATE ROLE seigo_partner NOLOGIN;
    EXCEPTION
      WHEN duplicate_object OR unique_violation THEN NULL; -- another database of this cluster migrated at the same time
      WHEN insufficient_privilege THEN
        RAISE EXCEPTION 'seigo needs a role seigo_partner for partner traffic and % may not create roles', current_user
          USING HINT = format('as a superuser: CREATE ROLE seigo_partner NOLOGIN; GRANT seigo_partner TO %I;', current_user);
    END;
  END IF;
  IF NOT pg_has_role(current_user, 'seigo_partner', 'MEMBER') THEN
    EXECUTE format('GRANT seigo_partner TO %I', current_user);
  END IF;
END $$;

-- The partner the current transaction acts for; NULL outside partner transactions.
CREATE FUNCTION seigo_current_partner() RETURNS uuid
LANGUAGE sql STABLE AS $$ SELECT nullif(current_setting('seigo.partner_id', true), '')::uuid $$;

CREATE TABLE partners (
  id          uuid PRIMARY KEY,
  name        text NOT NULL UNIQUE CHECK (name ~ '^[a-z0-9][a-z0-9._-]{0,99}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);

-- A key is `<id>.<secret>`; only SHA-256(secret) is kept, compared in constant time by the engine.
CREATE TABLE partner_api_keys (
  id                   text PRIMARY KEY CHECK (id ~ '^pk_[0-9a-f]{16}$'),
  partner_id           uuid NOT NULL REFERENCES partners (id),
  name                 text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
  secret_sha256        bytea NOT NULL CHECK (length(secret_sha256) = 32),
  scopes               text[] NOT NULL CHECK (cardinality(scopes) > 0
                         AND scopes <@ ARRAY['tickets:issue', 'tickets:redeem', 'tickets:read', 'products:read', 'gates:sync']),
  rate_limit           integer NOT NULL CHECK (rate_limit BETWEEN 1 AND 1000000),
  rate_window_seconds  integer NOT NULL CHECK (rate_window_seconds BETWEEN 1 AND 86400),
  created_at           timestamptz NOT NULL DEFAULT now(),
  -- Set by a rotation: the old key keeps working until then, alongside its replacement.
  expires_at           timestamptz,
  replaced_by          text REFERENCES partner_api_keys (id),
  revoked_at           timestamptz
);
CREATE INDEX partner_api_keys_partner ON partner_api_keys (partner_id);

-- One fixed-window counter per key, bumped in one statement by whichever API process serves the request.
CREATE TABLE partner_rate_windows (
  key_id        text PRIMARY KEY REFERENCES partner_api_keys (id),
  window_start  timestamptz NOT NULL,
  count         integer NOT NULL CHECK (count >= 0)
);

CREATE TABLE partner_products (
  id          uuid PRIMARY KEY,
  partner_id  uuid NOT NULL REFERENCES partners (id),
  facility    text NOT NULL CHECK (facility ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  price       bigint NOT NULL CHECK (price >= 0),
  currency    text NOT NULL DEFAULT 'JPY' CHECK (currency ~ '^[A-Z]{3}$'),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_products_partner ON partner_products (partner_id);

CREATE TABLE partner_gates (
  id          uuid PRIMARY KEY,
  partner_id  uuid NOT NULL REFERENCES partners (id),
  facility    text NOT NULL CHECK (facility ~ '^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$'),
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX partner_gates_partner ON partner_gates (partner_id);

-- Authentication runs before the partner is known: the key's row, by its public id, through a
-- definer function, so the partner role never reads the keys table itself.
CREATE FUNCTION seigo_partner_key(p_id text)
RETURNS TABLE (partner_id uuid, secret_sha256 bytea, scopes text[], rate_limit integer, rate_window_seconds integer,
               expires_at timestamptz, revoked_at timestamptz, now timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
  SELECT k.partner_id, k.secret_sha256, k.scopes, k.rate_limit, k.rate_window_seconds, k.expires_at, k.revoked_at, now()
  FROM partner_api_keys k WHERE k.id = p_id
$$;

-- Counts one request in the key's window starting at p_window_start; returns the count so far in
-- the newest window. A process whose clock lags (an older window) counts into the newer one.
CREATE FUNCTION seigo_partner_hit(p_key text, p_window_start timestamptz)
RETURNS TABLE (count integer, window_start timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO partner_rate_windows AS w (key_id, window_start, count) VALUES (p_key, p_window_start, 1)
  ON CONFLICT (key_id) DO UPDATE
    SET count = CASE WHEN EXCLUDED.window_start > w.window_start THEN 1 ELSE w.count + 1 END,
        window_start = greatest(w.window_start, EXCLUDED.window_start)
  RETURNING w.count, w.window_start
$$;
REVOKE ALL ON FUNCTION seigo_partner_key(text) FROM PUBLIC;
REVOKE ALL ON FUNCTION seigo_partner_hit(text, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION seigo_partner_key(text), seigo_partner_hit(text, timestamptz) TO seigo_partner;

-- Row-level security: the partner role sees its own partner's rows; every other role sees all
-- (the engine may not own these tables when a DBA ran the migrations).
ALTER TABLE partner_products ENABLE ROW LEVEL SECURITY;
CREATE POLICY engine_all ON partner_products USING (current_user <> 'seigo_partner');
CREATE POLICY partner_own ON partner_products TO seigo_partner USING (partner_id = seigo_current_partner());
ALTER TABLE partner_gates ENABLE ROW LEVEL SECURITY;
CREATE POLICY engine_all ON partner_gates USING (current_user <> 'seigo_partner');
CREATE POLICY partner_own ON partner_gates TO seigo_partner USING (partner_id = seigo_current_partner());
GRANT SELECT ON partner_products, partner_gates TO seigo_partner;
-- Idempotency-Key on partner POSTs (src/api/idempotency.ts, client `partner:<id>`); rows are scoped
-- by client in every statement, as for /v1 clients.
GRANT SELECT, INSERT, UPDATE, DELETE ON idempotency_keys TO seigo_partner;
