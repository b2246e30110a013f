-- Partner master data: where each partner's master comes from (its HTTP API or an uploaded CSV with
-- a mapping), our copy of it, every pull with its change set (field by field, before and after),
-- the approval of sensitive changes (maker-checker) and the per-partner rules that approve at once.

CREATE TABLE masterdata_sources (
  partner_id     uuid PRIMARY KEY REFERENCES partners (id),
  kind           text NOT NULL CHECK (kind IN ('http', 'csv')),
  -- http: the partner's master API (GET returns { items: [...] }).
  url            text CHECK (kind <> 'http' OR url IS NOT NULL),
  -- csv: the column mapping (src/masterdata/csv.ts).
  mapping        jsonb CHECK (kind <> 'csv' OR mapping IS NOT NULL),
  -- Scheduled pulls (http sources): every interval_ms, due at next_pull_at; NULL = on demand only.
  interval_ms    bigint CHECK (interval_ms IS NULL OR interval_ms >= 60000),
  next_pull_at   timestamptz,
  -- A trusted partner's cancellation-policy text may apply by rule (kind trusted_text).
  trusted        boolean NOT NULL DEFAULT false,
  updated_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX masterdata_sources_due ON masterdata_sources (next_pull_at) WHERE interval_ms IS NOT NULL;

-- Our copy of each partner's master, one row per product plan. Sensitive fields change only by an
-- approved change or a rule; product_id is the catalog row tickets are issued for (its price
-- follows `price`; tickets keep the price they were issued at).
CREATE TABLE masterdata_items (
  partner_id           uuid NOT NULL REFERENCES partners (id),
  product_code         text NOT NULL CHECK (length(product_code) BETWEEN 1 AND 100),
  plan_code            text NOT NULL CHECK (length(plan_code) BETWEEN 1 AND 100),
  product_id           uuid REFERENCES partner_products (id),
  facility             text NOT NULL,
  name                 text NOT NULL,
  description          text NOT NULL DEFAULT '',
  images               jsonb NOT NULL DEFAULT '[]',
  hours                text NOT NULL DEFAULT '',
  price                bigint NOT NULL CHECK (price >= 0),
  prices               jsonb NOT NULL DEFAULT '[]',
  sale_from            timestamptz,
  sale_until           timestamptz,
  capacity             integer CHECK (capacity >= 0),
  cancellation_policy  text NOT NULL DEFAULT '',
  tax_rate_bp          integer NOT NULL CHECK (tax_rate_bp BETWEEN 0 AND 10000),
  -- Ours, not the partner's: the range a price may move in by rule (NULL: no rule covers its price).
  min_price            bigint CHECK (min_price >= 0),
  max_price            bigint CHECK (max_price >= min_price),
  removed_at           timestamptz,
  updated_at           timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (partner_id, product_code, plan_code)
);

CREATE TABLE masterdata_pulls (
  id           uuid PRIMARY KEY,
  partner_id   uuid NOT NULL REFERENCES partners (id),
  trigger      text NOT NULL CHECK (trigger IN ('manual', 'schedule', 'upload')),
  actor        text NOT NULL,
  status       text NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'succeeded', 'failed')),
  error        text,
  -- The reason per row when the feed was refused: [{ row, reason }].
  row_errors   jsonb,
  rows         integer,
  -- { added, removed, changed, applied, applied_by_rule, waiting, superseded }
  counts       jsonb,
  started_at   timestamptz NOT NULL DEFAULT now(),
  finished_at  timestamptz
);
CREATE INDEX masterdata_pulls_partner ON masterdata_pulls (partner_id, started_at);

-- One row per changed field of one product plan (field '*' for a plan added or removed).
-- status: applied (not sensitive) | applied_by_rule | waiting → approved | rejected | superseded.
CREATE TABLE masterdata_changes (
  id             uuid PRIMARY KEY,
  pull_id        uuid NOT NULL REFERENCES masterdata_pulls (id),
  partner_id     uuid NOT NULL,
  product_code   text NOT NULL,
  plan_code      text NOT NULL,
  kind           text NOT NULL CHECK (kind IN ('added', 'removed', 'changed')),
  field          text NOT NULL,
  sensitive      boolean NOT NULL,
  before         jsonb,
  after          jsonb,
  status         text NOT NULL CHECK (status IN ('applied', 'applied_by_rule', 'waiting', 'approved', 'rejected', 'superseded')),
  rule           text,
  made_by        text NOT NULL,
  decided_by     text,
  decided_at     timestamptz,
  reason         text,
  superseded_by  uuid REFERENCES masterdata_changes (id),
  -- The transaction that applied it: the audit below must find one for every sensitive write.
  applied_txid   bigint,
  created_at     timestamptz NOT NULL DEFAULT now(),
  CHECK ((status = 'applied_by_rule') = (rule IS NOT NULL)),
  CHECK (status NOT IN ('approved', 'rejected') OR (decided_by IS NOT NULL AND decided_by <> made_by AND decided_at IS NOT NULL))
);
CREATE INDEX masterdata_changes_pull ON masterdata_changes (pull_id, product_code);
CREATE INDEX masterdata_changes_waiting ON masterdata_changes (partner_id, product_code, plan_code, field) WHERE status = 'waiting';
CREATE INDEX masterdata_changes_partner ON masterdata_changes (partner_id, created_at);

-- Per-partner auto-approval rules: price_within { pct } (and inside the plan's min/max price),
-- capacity_change { max_pct? }, trusted_text (cancellation policy text of a trusted partner).
CREATE TABLE masterdata_rules (
  id          uuid PRIMARY KEY,
  partner_id  uuid NOT NULL REFERENCES partners (id),
  kind        text NOT NULL CHECK (kind IN ('price_within', 'capacity_change', 'trusted_text')),
  params      jsonb NOT NULL DEFAULT '{}',
  enabled     boolean NOT NULL DEFAULT true,
  created_by  text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (partner_id, kind)
);

-- Every write to a sensitive field of our copy, by the database itself: whatever code path made
-- it, a write with no approved (or rule-applied) change in the same transaction is found.
CREATE TABLE masterdata_audit (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  partner_id    uuid NOT NULL,
  product_code  text NOT NULL,
  plan_code     text NOT NULL,
  field         text NOT NULL,
  before        jsonb,
  after         jsonb,
  txid          bigint NOT NULL DEFAULT txid_current(),
  at            timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION masterdata_audit_sensitive() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  f text;
  o jsonb := CASE WHEN TG_OP = 'UPDATE' THEN to_jsonb(OLD) END;
  n jsonb := to_jsonb(NEW);
BEGIN
  FOREACH f IN ARRAY ARRAY['price', 'prices', 'sale_from', 'sale_until', 'capacity', 'cancellation_policy', 'tax_rate_bp'] LOOP
    IF o IS NULL OR o -> f IS DISTINCT FROM n -> f THEN
      INSERT INTO masterdata_audit (partner_id, product_code, plan_code, field, before, after)
      VALUES (NEW.partner_id, NEW.product_code, NEW.plan_code, f, o -> f, n -> f);
    END IF;
  END LOOP;
  RETURN NEW;
END $$;
CREATE TRIGGER masterdata_items_audit AFTER INSERT OR UPDATE ON masterdata_items
  FOR EACH ROW EXECUTE FUNCTION masterdata_audit_sensitive();
