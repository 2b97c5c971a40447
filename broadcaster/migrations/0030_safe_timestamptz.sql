-- A stored custom string that looks like a timestamp but is not one ("2024-13-45T25:61")
-- must not fail a filter comparing it as a time: it simply does not match.
CREATE OR REPLACE FUNCTION bc_try_timestamptz(v text) RETURNS timestamptz
LANGUAGE plpgsql STABLE PARALLEL SAFE AS $$
BEGIN
    RETURN v::timestamptz;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
