-- Cases (issue 5, MISSION G3): what a person must resolve, with its cause, the records it concerns,
-- an owner and a full history. One open case per (subject, cause): a partial unique index, so two
-- detectors (or two reconciliation runs) seeing the same break at once still open one case.
CREATE TABLE cases (
  id            uuid PRIMARY KEY,
  kind          text NOT NULL CHECK (length(kind) BETWEEN 1 AND 100),
  cause         text NOT NULL CHECK (length(cause) BETWEEN 1 AND 200),
  status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'investigating', 'resolved', 'wont_fix')),
  subject_type  text NOT NULL CHECK (subject_type IN (
                  'deposit', 'operation', 'delivery', 'inbox', 'recon_break', 'ledger_account', 'ledger_transaction', 'bank_transfer')),
  subject_id    text NOT NULL CHECK (length(subject_id) BETWEEN 1 AND 255),
  -- Other records it concerns: [{"type": ..., "id": ...}], searchable by containment.
  related       jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(related) = 'array'),
  summary       text NOT NULL,
  details       jsonb NOT NULL DEFAULT '{}',
  assignee      text,
  opened_by     text NOT NULL,
  -- How often the same (subject, cause) was reported while this case was open.
  seen_count    integer NOT NULL DEFAULT 1 CHECK (seen_count >= 1),
  opened_at     timestamptz NOT NULL DEFAULT now(),
  last_seen_at  timestamptz NOT NULL DEFAULT now(),
  updated_at    timestamptz NOT NULL DEFAULT now(),
  closed_at     timestamptz,
  -- How it was closed: {"action": ..., "result": ...} when an action was performed.
  resolution    jsonb,
  CONSTRAINT cases_closed_at CHECK ((status IN ('resolved', 'wont_fix')) = (closed_at IS NOT NULL))
);
CREATE UNIQUE INDEX cases_one_open ON cases (subject_type, subject_id, cause) WHERE status IN ('open', 'investigating');
-- Admin lists page newest first by id (UUIDv7 is time-ordered).
CREATE INDEX cases_status_id ON cases (status, id DESC);
CREATE INDEX cases_subject ON cases (subject_type, subject_id, cause, closed_at);
CREATE INDEX cases_assignee ON cases (assignee, id DESC) WHERE assignee IS NOT NULL;
CREATE INDEX cases_kind_cause ON cases (kind, cause, id DESC);
CREATE INDEX cases_related ON cases USING gin (related jsonb_path_ops);

-- Every change with who made it and when: opening, being seen again, assignment, notes,
-- transitions, actions performed, adjustments proposed and decided.
CREATE TABLE case_events (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  case_id      uuid NOT NULL REFERENCES cases (id),
  at           timestamptz NOT NULL DEFAULT now(),
  actor        text NOT NULL,
  type         text NOT NULL CHECK (type IN (
                 'opened', 'seen_again', 'assigned', 'commented', 'transitioned', 'action_performed', 'action_failed',
                 'adjustment_proposed', 'adjustment_approved', 'adjustment_rejected')),
  from_status  text,
  to_status    text,
  note         text,
  data         jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX case_events_case ON case_events (case_id, id);

-- Manual ledger adjustments with two-person approval (four-eyes): one operator proposes balanced
-- entries, a different one approves, and only then is the posting made, keyed by the proposal id.
CREATE TABLE case_adjustments (
  id                     uuid PRIMARY KEY,
  case_id                uuid NOT NULL REFERENCES cases (id),
  status                 text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'posted', 'rejected')),
  -- [{"account_id": uuid, "amount": "<minor units>"}], summing to zero per currency.
  entries                jsonb NOT NULL CHECK (jsonb_typeof(entries) = 'array'),
  memo                   text NOT NULL CHECK (length(memo) BETWEEN 1 AND 2000),
  proposed_by            text NOT NULL,
  proposed_at            timestamptz NOT NULL DEFAULT now(),
  decided_by             text,
  decided_at             timestamptz,
  decision_note          text,
  ledger_transaction_id  uuid,
  -- Four eyes: whoever posts it is not whoever proposed it (the proposer may withdraw: rejected).
  CONSTRAINT case_adjustments_four_eyes CHECK (status <> 'posted' OR decided_by <> proposed_by),
  CONSTRAINT case_adjustments_posted CHECK ((status = 'posted') = (ledger_transaction_id IS NOT NULL)),
  CONSTRAINT case_adjustments_decided CHECK ((status = 'proposed') = (decided_at IS NULL))
);
CREATE INDEX case_adjustments_case ON case_adjustments (case_id, proposed_at);

-- The detectors' sweeps (src/cases/detect.ts) look for money in suspense and for reversed
-- preliminary credits the wallet had already spent: rare rows, found without scanning deposits.
CREATE INDEX deposits_suspended ON deposits (id) WHERE suspended > 0;
CREATE INDEX deposits_shortfall ON deposits (id) WHERE shortfall > 0;
