-- pg_input_is_valid() came with PostgreSQL 16, and seigo runs on 14 and newer: the same test for the
-- types a master-data feed is checked against, by a cast inside an exception block (a data
-- exception, SQLSTATE class 22, means "not valid"; anything else still raises).
CREATE FUNCTION seigo_input_is_valid(v text, type_name text) RETURNS boolean LANGUAGE plpgsql STABLE AS $$
BEGIN
  CASE type_name
    WHEN 'timestamptz' THEN PERFORM v::timestamptz;
    WHEN 'date' THEN PERFORM v::date;
    WHEN 'jsonb' THEN PERFORM v::jsonb;
    ELSE RAISE EXCEPTION 'seigo_input_is_valid: no check for type %', type_name;
  END CASE;
  RETURN true;
EXCEPTION WHEN data_exception THEN
  RETURN false;
END $$;
