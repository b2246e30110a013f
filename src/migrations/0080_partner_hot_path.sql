-- The partner API's hot path in fewer round trips: API processes keep verified keys in memory for a
-- moment, told at once by NOTIFY when a key changes (revoked, rotated); and concurrent requests'
-- rate-limit counts are bumped together, one statement for many requests; online redemptions too.

-- Any change to a key (revocation, the expiry a rotation sets) tells every API process to forget it.
-- Keys change rarely, so the notify queue lock this takes until commit costs nothing on the hot path.
CREATE FUNCTION seigo_partner_key_changed() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('seigo_partner_keys', OLD.id);
  RETURN NULL;
END $$;
CREATE TRIGGER partner_api_keys_changed AFTER UPDATE OR DELETE ON partner_api_keys
  FOR EACH ROW EXECUTE FUNCTION seigo_partner_key_changed();

-- Counts p_hits[i] requests for key p_keys[i] in the window starting at p_window_starts[i] (keys
-- distinct); returns each key's count so far in its newest window. As seigo_partner_hit (0050), for many.
CREATE FUNCTION seigo_partner_hits(p_keys text[], p_window_starts timestamptz[], p_hits integer[])
RETURNS TABLE (key_id text, count integer, window_start timestamptz)
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
  INSERT INTO partner_rate_windows AS w (key_id, window_start, count)
  SELECT * FROM unnest(p_keys, p_window_starts, p_hits)
  ON CONFLICT (key_id) DO UPDATE
    SET count = CASE WHEN EXCLUDED.window_start > w.window_start THEN EXCLUDED.count ELSE w.count + EXCLUDED.count END,
        window_start = greatest(w.window_start, EXCLUDED.window_start)
  RETURNING w.key_id, w.count, w.window_start
$$;
REVOKE ALL ON FUNCTION seigo_partner_hits(text[], timestamptz[], integer[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION seigo_partner_hits(text[], timestamptz[], integer[]) TO seigo_partner;

-- Online redemption of a batch of scans in one call, so one round trip and one commit serve many
-- requests: acts for p_partner (row-level security, as withPartner does with SET LOCAL) and redeems
-- each distinct ticket that is unused, at its gate's facility, valid at p_at, and whose presented QR
-- token is the one seigo issued for it (compared by digest; a token seigo issued carries its
-- signature). Returns the tickets it redeemed; the callers of the others find out why one by one.
CREATE FUNCTION seigo_redeem_online(p_partner uuid, p_tickets uuid[], p_redemptions uuid[], p_gates uuid[],
                                    p_at timestamptz[], p_events uuid[], p_qrs text[])
RETURNS TABLE (ticket_id uuid, redemption_id uuid, redeemed_at timestamptz)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
  PERFORM set_config('seigo.partner_id', p_partner::text, true);
  RETURN QUERY
  WITH s AS (
    SELECT * FROM unnest(p_tickets, p_redemptions, p_gates, p_at, p_events, p_qrs) AS s(ticket_id, redemption_id, gate_id, at, event_id, qr)),
  u AS (
    UPDATE tickets t SET status = 'redeemed', redemption_id = s.redemption_id, redeemed_gate = g.id, redeemed_gate_time = s.at, redeemed_at = now()
    FROM s JOIN partner_gates g ON g.id = s.gate_id
    WHERE t.id = s.ticket_id AND t.status = 'issued' AND t.facility = g.facility AND t.valid_from <= s.at AND s.at < t.valid_until
      AND (s.qr IS NULL OR sha256(convert_to(t.qr, 'UTF8')) = sha256(convert_to(s.qr, 'UTF8')))
    RETURNING t.id, t.redemption_id, t.redeemed_gate, t.redeemed_gate_time, t.redeemed_at),
  r AS (
    INSERT INTO ticket_redemptions (id, partner_id, ticket_id, gate_id, gate_time, source, outcome)
    SELECT u.redemption_id, p_partner, u.id, u.redeemed_gate, u.redeemed_gate_time, 'online', 'accepted' FROM u),
  e AS (
    INSERT INTO ticket_events (id, ticket_id, partner_id, from_status, to_status, cause, posting)
    SELECT s.event_id, u.id, p_partner, 'issued', 'redeemed', 'redeemed_online', 'redeemed' FROM u JOIN s ON s.redemption_id = u.redemption_id)
  SELECT u.id, u.redemption_id, u.redeemed_at FROM u;
END $$;
REVOKE ALL ON FUNCTION seigo_redeem_online(uuid, uuid[], uuid[], uuid[], timestamptz[], uuid[], text[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION seigo_redeem_online(uuid, uuid[], uuid[], uuid[], timestamptz[], uuid[], text[]) TO seigo_partner;
